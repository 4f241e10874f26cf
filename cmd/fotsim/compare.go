package main

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/fotsim/fotsim/results"
)

func init() {
	register(command{name: "compare", usage: "[flags] DIR...        compare methods over seeds from run folders", order: 40, run: cmdCompare})
}

const compareUsage = `Usage: fotsim compare [flags] DIR...

Reads the run records (result.json) written by fotsim run and compares the
methods over their seeds: one row per method label with the number of seeds,
the seeds, and mean +- sample std of ACC, FGT, BWT, max-FGT, last-task ACC,
rounds, bytes up and down and wall time. The best method of each column is
marked (highest ACC, BWT and last-task ACC; lowest FGT and max-FGT).

A DIR holding a result.json is one run; any other DIR contributes its
sub-folders that hold one (a sweep written by fotsim run --out DIR, or runs/).
All runs must be of one scenario unless --allow-mixed is given.

Flags:
`

func cmdCompare(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("compare", compareUsage, stderr)
	format := fs.String("format", "table", "output format: "+strings.Join(results.CompareFormats, ", "))
	mixed := fs.Bool("allow-mixed", false, "compare runs of different scenarios (one row per scenario and method)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if !slices.Contains(results.CompareFormats, *format) {
		return usagef("unknown --format %q: want one of %s", *format, strings.Join(results.CompareFormats, ", "))
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("compare needs at least one run folder")
	}
	runs, err := results.LoadRuns(fs.Args()...)
	if err != nil {
		return usageError{err}
	}
	c, err := results.Compare(runs, results.CompareOptions{AllowMixed: *mixed})
	if errors.Is(err, results.ErrMixedScenarios) {
		return usagef("%w (compare one scenario at a time, or pass --allow-mixed)", err)
	}
	if err != nil {
		return usageError{err}
	}
	return c.Write(stdout, *format)
}
