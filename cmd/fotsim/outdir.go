package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
)

// runDir is the record folder of run r, one of n runs: out, or with
// several runs out/<scenario>-<method>-s<seed>; without out,
// runs/<scenario>-<method>-s<seed> (sim.DefaultOut).
func runDir(out string, sc *scenarios.Scenario, r scenarios.Run, n int) string {
	switch {
	case out == "":
		return sim.DefaultOut(sc, r)
	case n > 1:
		return filepath.Join(out, filepath.Base(sim.DefaultOut(sc, r)))
	}
	return out
}

// checkOutDirs checks, before any training, that the record folder of
// every run of sc can be made and written: it makes the folder (and its
// parents), writes a probe file in it and removes both again, so that a
// folder that cannot be written fails at once (exit code 2) and not after
// the run, losing it.
func checkOutDirs(out string, sc *scenarios.Scenario) error {
	runs := sc.Runs()
	what := "run record folder"
	if out != "" {
		what = "--out"
	}
	for _, r := range runs {
		dir := runDir(out, sc, r, len(runs))
		if err := probeDir(dir); err != nil {
			return usagef("%s %s: cannot write run records there: %v", what, dir, err)
		}
	}
	return nil
}

// probeDir makes dir and a file in it, then removes the file and the
// folders it made.
func probeDir(dir string) (err error) {
	var made []string // the folders MkdirAll will make, deepest first
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Lstat(d); err == nil || filepath.Dir(d) == d {
			break
		}
		made = append(made, d)
	}
	defer func() {
		for _, d := range made {
			_ = os.Remove(d) // only if empty: never a record
		}
	}()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".fotsim-probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	werr := f.Close()
	if err := os.Remove(name); err != nil {
		return err
	}
	return werr
}

// interruptedRun ends a fotsim run whose run r was interrupted (ctx ended
// by SIGINT or SIGTERM): it prints the summary of the runs that finished
// (their records are written) and a line naming the interrupted run, which
// left no record, and returns the cause (see exitCode).
func interruptedRun(ctx context.Context, stdout io.Writer, sc *scenarios.Scenario, r scenarios.Run, recs []*results.Record, dir, out string) error {
	cause := context.Cause(ctx)
	if len(recs) > 0 {
		fmt.Fprintf(stdout, "\nSummary of the finished runs of %s (FGT: accuracy just after learning a task minus final accuracy; BWT = -FGT)\n", sc.Name)
		if err := results.SummaryTable(stdout, recs); err != nil {
			return err
		}
	}
	kept := ""
	switch len(recs) {
	case 0:
	case 1:
		kept = "; the run that finished kept its record"
	default:
		kept = fmt.Sprintf("; the %d runs that finished kept their records", len(recs))
	}
	fmt.Fprintf(stdout, "\ninterrupted: %s, method %s, seed %d (run %d of %d) did not finish and wrote no record%s\n",
		sc.Name, r.Method.Label(), r.Seed, len(recs)+1, len(sc.Runs()), kept)
	if exists(filepath.Join(dir, sim.CheckpointFile)) {
		if out == "" {
			out = dir
		}
		fmt.Fprintf(stdout, "its checkpoint is in %s: fotsim run --resume %s continues\n", dir, out)
	}
	return fmt.Errorf("%s, method %s, seed %d: %w", sc.Name, r.Method.Label(), r.Seed, cause)
}
