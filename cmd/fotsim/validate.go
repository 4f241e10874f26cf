package main

import (
	"fmt"
	"io"

	"github.com/fotsim/fotsim/scenarios"
)

const validateUsage = `Usage: fotsim validate [--set path=value]... FILE...

Checks scenarios (files or built-in names) without running them and reports
every problem of every file at once, as file:line:col: key: problem.

Flags:
`

func cmdValidate(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("validate", validateUsage, stderr)
	var sets multi
	fs.Var(&sets, "set", "override a scenario key: path=value, value in YAML (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("validate needs at least one scenario")
	}
	bad := 0
	for _, f := range fs.Args() {
		sc, err := scenarios.Load(f, sets)
		if err != nil {
			bad++
			fmt.Fprintln(stderr, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok (%d runs: %d methods x %d seeds)\n", f, len(sc.Runs()), len(sc.Methods), len(sc.Seeds))
	}
	if bad > 0 {
		return usagef("%d of %d scenarios are invalid", bad, fs.NArg())
	}
	return nil
}
