// Command fotsim runs federated continual-learning experiments described by
// YAML scenarios. See `fotsim help` and the README.
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"syscall"
)

// usageError marks a command-line mistake or bad input: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func main() {
	ctx, stop := notifySignals(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(interrupted(ctx, err), os.Stderr))
}

// exitCode prints err and maps it to the process exit code: 0 ok, 2 usage
// or bad input, 130 or 143 interrupted by SIGINT or SIGTERM (signals.go),
// 1 anything else.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "fotsim: %v\n", err)
	var sig signalError
	if errors.As(err, &sig) {
		return sig.exitCode()
	}
	var u usageError
	if errors.As(err, &u) {
		return 2
	}
	return 1
}

// command is one subcommand of fotsim.
type command struct {
	name  string
	usage string // "[flags] SCENARIO      run every method x seed of a scenario"
	order int    // place in the usage text
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands holds the subcommands; each command's file registers its own in
// an init function (register), so that adding one edits no other file.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("fotsim: command " + c.name + " registered twice")
	}
	commands[c.name] = c
}

func init() {
	register(command{name: "run", usage: "[flags] SCENARIO      run every method x seed of a scenario", order: 10,
		run: cmdRun})
	register(command{name: "validate", usage: "FILE...          check scenarios without running them", order: 20,
		run: func(_ context.Context, a []string, o, e io.Writer) error { return cmdValidate(a, o, e) }})
	register(command{name: "list", usage: "                     datasets, streams, methods, built-in scenarios, keys", order: 30,
		run: func(_ context.Context, a []string, o, e io.Writer) error { return cmdList(a, o, e) }})
	register(command{name: "bench", usage: "[flags]             measure this machine's speed", order: 90, run: cmdBench})
}

// mainUsage is the top-level help: every registered command in order.
func mainUsage() string {
	cs := make([]command, 0, len(commands))
	for _, c := range commands {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b command) int { return cmp.Compare(a.order, b.order) })
	var b strings.Builder
	b.WriteString("fotsim: a federated continual-learning simulator.\n\nUsage:\n")
	for _, c := range cs {
		fmt.Fprintf(&b, "  fotsim %s %s\n", c.name, c.usage)
	}
	b.WriteString(`  fotsim help [COMMAND]            this text, or a command's flags

SCENARIO is a YAML file or the name of a built-in scenario (fotsim list).
Run "fotsim COMMAND --help" for a command's flags.
`)
	return b.String()
}

// run is the whole CLI: it parses args and runs one subcommand.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, mainUsage())
		return usagef("no command given")
	}
	name, rest := args[0], args[1:]
	if c, ok := commands[name]; ok {
		// --help printed the command's usage (parse returns errHelp): done.
		if err := c.run(ctx, rest, stdout, stderr); !errors.Is(err, errHelp) {
			return err
		}
		return nil
	}
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			return run(ctx, []string{rest[0], "--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, mainUsage())
		return nil
	}
	fmt.Fprint(stderr, mainUsage())
	return usagef("unknown command %q", name)
}
