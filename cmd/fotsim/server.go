package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

func init() {
	register(command{name: "server", usage: "[flags] SCENARIO   run a scenario's server; fotsim client processes train", order: 12,
		run: cmdServer})
}

const serverUsage = `Usage: fotsim server SCENARIO --nats URL [--key FILE] [--wait D] [--nats-password-file FILE] [run's flags]

Runs the server side of every method x seed of SCENARIO, one run after the
other, while "fotsim client" processes, on this machine or others, train the
clients. Each run is announced on the subject fotsim.announce of the NATS
server at URL (transport.nats of the scenario when --nats is not given;
"embedded" cannot work across processes); its rounds start when the client
processes that joined cover every client id. Prints and writes what
"fotsim run" prints and writes: the same tables, and the same run records,
byte for byte apart from wall_seconds (which leaves out the wait for clients).
Lines about client processes (joined, refused, failed) go to stderr.
With --key FILE (written by "fotsim keygen", the same file as the clients'
--key), the server signs its rounds and stops and accepts only updates
signed by their client; without it messages are checked but not signed.

The NATS password of a URL with a user and no password
(nats://fotsim-server@host:4222) comes from --nats-password-file, or else
from the environment variable FOTSIM_NATS_PASSWORD, so that ps does not
show it; records and announcements never hold it.

Flags:
`

func cmdServer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var natsURL *string
	var wait *time.Duration
	var keyFile *string
	var keys *auth.Keys
	var creds *natsAuth
	natsResolved := false
	caFile := "" // --nats-ca, once resolved
	return runScenario(ctx, args, stdout, stderr, runHooks{
		name: "server", usage: serverUsage,
		flags: func(fs *flag.FlagSet) {
			natsURL = fs.String("nats", "", "`URL` of the NATS server the client processes use (nats://host:4222); default: the scenario's transport.nats")
			wait = fs.Duration("wait", sim.DefaultRemoteWait, "how long each run waits for client processes to cover every client id")
			keyFile = fs.String("key", "", "run secret `FILE` (fotsim keygen), the clients' --key: sign rounds and stops, accept only signed updates")
			creds = addNATSAuth(fs, false)
		},
		sets: func() ([]string, error) {
			if *wait <= 0 {
				return nil, usagef("server: --wait %v, want > 0", *wait)
			}
			if *keyFile != "" {
				var err error
				if keys, err = loadKey("server", *keyFile); err != nil {
					return nil, err
				}
			} else {
				fmt.Fprintln(stderr, "fotsim server: warning: no --key: messages are checked but not signed (see fotsim keygen)")
			}
			if *natsURL == "" {
				return nil, nil
			}
			return []string{"transport.nats=" + strconv.Quote(*natsURL)}, nil
		},
		options: func(sc *scenarios.Scenario, o *sim.Options) error {
			if u := sc.Transport.NATS; u == "" || u == "embedded" {
				return usagef("server: the client processes need an external NATS server: give --nats URL (nats://host:4222) or transport.nats in the scenario")
			}
			if !natsResolved { // once: every run has the same scenario
				dopts, err := creds.dialOptions("server", sc.Transport.NATS)
				if err != nil {
					return err
				}
				// The password joins the URL in memory only: the
				// records and announcements redact it.
				sc.Transport.NATS, _ = transport.WithPassword(sc.Transport.NATS, dopts.Password)
				caFile = dopts.CAFile
				natsResolved = true
			}
			o.Keys = keys
			o.Remote = &sim.Remote{Wait: *wait, Log: prefixed(stderr, "fotsim server: "), CAFile: caFile}
			return nil
		},
	})
}

// prefixed returns a writer that writes each Write to w with prefix in
// front (sim's log lines are one Write each).
func prefixed(w io.Writer, prefix string) io.Writer {
	return prefixWriter{w, prefix}
}

type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := io.WriteString(p.w, p.prefix+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
