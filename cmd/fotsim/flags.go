package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fotsim/fotsim/transport"
)

// newFlags returns a FlagSet that reports errors instead of exiting and
// prints its usage to stderr.
func newFlags(name, usage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, allowing flags after positional arguments
// ("fotsim run quickstart --set a=b"); "--" ends flag parsing. The
// positional arguments are left in fs.Args(). --help yields errHelp: a
// command returns it as it is and run turns it into a clean exit.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		if err != nil {
			return usageError{err}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	// Re-parse an empty list so that fs.Args() returns the positionals.
	return fs.Parse(append([]string{"--"}, pos...))
}

var errHelp = errors.New("help requested")

// multi is a repeatable string flag.
type multi []string

func (m *multi) String() string     { return strings.Join(*m, " ") }
func (m *multi) Set(v string) error { *m = append(*m, v); return nil }

// passwordEnv is the environment variable that gives the NATS password of
// a --nats URL with a user and no password (natsAuth).
const passwordEnv = "FOTSIM_NATS_PASSWORD"

// natsAuth are the flags that give a NATS connection its password and the
// CA of its server's TLS certificate, so that neither need be on the
// command line (where ps shows it): --nats-password-file and, unless
// noCA, --nats-ca.
type natsAuth struct {
	passwordFile, ca *string
}

func addNATSAuth(fs *flag.FlagSet, noCA bool) *natsAuth {
	a := &natsAuth{
		passwordFile: fs.String("nats-password-file", "", "`FILE` holding the password of the --nats URL's user (nats://USER@host:4222), instead of the URL or $"+passwordEnv),
	}
	if !noCA {
		a.ca = fs.String("nats-ca", "", "PEM `FILE` of the CA that signed the NATS server's TLS certificate: require TLS and verify the server with it")
	}
	return a
}

// dialOptions returns the options to dial urls with: the password, from
// --nats-password-file, else from $FOTSIM_NATS_PASSWORD, for the URLs that
// name a user without a password (a password in the URL wins over the
// variable; with the file too, it is refused as ambiguous), and the CA
// file.
func (a *natsAuth) dialOptions(cmd, urls string) (transport.DialOptions, error) {
	var o transport.DialOptions
	if a.ca != nil && *a.ca != "" {
		o.CAFile = *a.ca
		if _, err := os.Stat(o.CAFile); err != nil {
			return o, usagef("%s: --nats-ca: %v", cmd, err)
		}
	}
	hasPass, userOnly := transport.URLHasPassword(urls)
	if *a.passwordFile != "" {
		switch {
		case hasPass:
			return o, usagef("%s: the --nats URL has a password and --nats-password-file gives one: give it in one place (the file)", cmd)
		case !userOnly:
			return o, usagef("%s: --nats-password-file needs a user in the --nats URL (nats://USER@host:4222)", cmd)
		}
		b, err := os.ReadFile(*a.passwordFile)
		if err != nil {
			return o, usagef("%s: --nats-password-file: %v", cmd, err)
		}
		o.Password = strings.TrimRight(string(b), "\r\n")
		if o.Password == "" || strings.ContainsAny(o.Password, "\r\n") {
			return o, usagef("%s: --nats-password-file %s: want the password alone on one line", cmd, *a.passwordFile)
		}
		return o, nil
	}
	if userOnly {
		o.Password = os.Getenv(passwordEnv)
	}
	return o, nil
}
