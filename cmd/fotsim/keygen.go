package main

import (
	"context"
	"fmt"
	"io"

	"github.com/fotsim/fotsim/auth"
)

func init() {
	register(command{name: "keygen", usage: "FILE                 write a new run secret for fotsim server/client --key", order: 16, run: cmdKeygen})
}

const keygenUsage = `Usage: fotsim keygen FILE

Writes a new random run secret to FILE (readable by its owner only; an
existing FILE is not overwritten). Copy FILE to every machine of a run and
give it to "fotsim server --key FILE" and "fotsim client --key FILE": the
server then signs its rounds and stops and accepts only updates signed by
their client, and the clients sign their updates and accept only the
server's signed messages. Whoever holds FILE can sign as any of them: keep
it private.

Flags:
`

func cmdKeygen(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", keygenUsage, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usagef("keygen takes exactly one FILE, got %d arguments", fs.NArg())
	}
	path := fs.Arg(0)
	k, err := auth.NewKeys()
	if err != nil {
		return err
	}
	if err := auth.SaveKeyFile(path, k); err != nil {
		return usageError{err}
	}
	fmt.Fprintf(stdout, "fotsim keygen: wrote a new run secret to %s; copy it to every machine and pass --key %s to fotsim server and fotsim client\n", path, path)
	return nil
}

// loadKey reads --key FILE for cmd (server, client): a usage error (exit
// 2) naming the file when it is missing, unreadable or malformed.
func loadKey(cmd, path string) (*auth.Keys, error) {
	k, err := auth.LoadKeyFile(path)
	if err != nil {
		return nil, usagef("%s: --key %s: %v", cmd, path, err)
	}
	return k, nil
}
