package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

func init() {
	register(command{name: "client", usage: "[flags]            train clients A-B of the runs a fotsim server announces", order: 14,
		run: cmdClient})
}

const clientUsage = `Usage: fotsim client --nats URL --clients A-B [--key FILE] [--workers N] [--data-dir DIR] [--once]
       [--nats-password-file FILE] [--nats-ca FILE]

Trains the clients A to B (both included; "7" is one client) of every run
that a "fotsim server" announces on the NATS server at URL, one run after
the other, until interrupted (Ctrl-C) or, with --once, after one run. It
needs no scenario: each announcement carries the run's resolved scenario,
method and seed, from which this process builds the same data, partitions,
model and method as the server. A run with fewer clients gets the part of
A-B it has; a range that overlaps a live process's in the same run is
refused, but after the start a process may take over the clients of one
that went silent for transport.timeout (a killed client process, started
again, rejoins; not for methods whose clients keep state). The data must be on this machine (--data-dir when its folder
differs from the scenario's data.dir), and this fotsim must be the server's
version. With --key FILE (the server's --key, from "fotsim keygen"), the
clients sign their updates and accept only the server's signed messages.

The NATS password of a URL with a user and no password
(nats://fotsim-client-a@host:4222) comes from --nats-password-file, or else
from the environment variable FOTSIM_NATS_PASSWORD, so that ps does not
show it. If the server refuses this user a publish or a subscription (the
credentials of another role), the process exits with an error that names
the user and the subject, as it does when the connection is lost for
longer than its timeout.

Flags:
`

func cmdClient(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("client", clientUsage, stderr)
	natsURL := fs.String("nats", "", "`URL` of the NATS server the fotsim server announces on (nats://host:4222; required)")
	ids := fs.String("clients", "", "client ids to train, `A-B` (both included) or one id (required)")
	workers := fs.Int("workers", 0, "training goroutines (0: one per CPU); results do not depend on it")
	dataDir := fs.String("data-dir", "", "`DIR` of the dataset files on this machine, instead of the scenario's data.dir")
	once := fs.Bool("once", false, "exit after one run")
	name := fs.String("name", "", "this process's name in the server's messages (default: HOSTNAME:PID)")
	backend := fs.String("backend", "", "matrix backend: "+fmt.Sprint(gemm.Names())+" (default: fastest available; use the server's)")
	keyFile := fs.String("key", "", "run secret `FILE` (fotsim keygen), the server's --key: sign updates, accept only the server's signed messages")
	quiet := fs.Bool("quiet", false, "print errors only")
	verbose := fs.Bool("v", false, "log every rejected message to stderr")
	creds := addNATSAuth(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usagef("client takes no scenario (the server announces it), got %q", fs.Args())
	}
	if *natsURL == "" {
		fs.Usage()
		return usagef("client: --nats URL is required")
	}
	if *ids == "" {
		fs.Usage()
		return usagef("client: --clients A-B is required")
	}
	first, last, err := parseClients(*ids)
	if err != nil {
		return usageError{err}
	}
	if *workers < 0 || *workers > scenarios.MaxWorkers {
		return usagef("client: --workers %d, want 0 to %d", *workers, scenarios.MaxWorkers)
	}
	if err := selectBackend(*backend); err != nil {
		return err
	}
	var keys *auth.Keys
	if *keyFile != "" {
		if keys, err = loadKey("client", *keyFile); err != nil {
			return err
		}
	}
	dopts, err := creds.dialOptions("client", *natsURL)
	if err != nil {
		return err
	}
	conn, err := transport.DialWith(*natsURL, "fotsim-client", dopts)
	if err != nil {
		return err
	}
	defer conn.Close()
	o := sim.ClientOptions{First: first, Last: last, Workers: *workers, DataDir: *dataDir, Once: *once, Name: *name, Keys: keys}
	if !*quiet {
		o.Log = prefixed(stdout, "fotsim client: ")
		fmt.Fprintf(stdout, "fotsim client: clients %s, waiting for runs announced on %s (Ctrl-C to stop)\n", *ids, transport.RedactURLs(*natsURL))
	}
	if *verbose {
		o.Verbose = stderr
	}
	// A connection given up (lost for longer than its timeout, or refused
	// a publish or subscription by the server's permissions) ends the
	// process with its error, instead of leaving it waiting for messages
	// that cannot come.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-conn.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	err = sim.NewEnv().ServeClients(ctx, conn, o)
	if lost := conn.Err(); lost != nil {
		return fmt.Errorf("client: %w", lost)
	}
	return err
}

// parseClients parses --clients: "A-B" (both included) or "A", as the
// half-open range [first, last).
func parseClients(s string) (first, last int, err error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	id := func(v string) (int, error) {
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil || n >= transport.MaxClients {
			return 0, fmt.Errorf("client: --clients %q: %q is not a client id (0 to %d)", s, v, transport.MaxClients-1)
		}
		return int(n), nil
	}
	if first, err = id(lo); err != nil {
		return 0, 0, err
	}
	if last, err = id(hi); err != nil {
		return 0, 0, err
	}
	if last < first {
		return 0, 0, fmt.Errorf("client: --clients %q: the first id is above the last (want A-B with A <= B)", s)
	}
	return first, last + 1, nil
}
