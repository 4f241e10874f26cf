package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
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
