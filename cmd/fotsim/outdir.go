package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

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

// interruptedRuns ends a fotsim run interrupted by SIGINT or SIGTERM (ctx
// ended): jobs are the runs from the first one the interrupt stopped on
// (with --interleave, later ones may have finished or been stopped too;
// the rest never started), recs the records of the runs before. It
// prints the summary of the runs that finished (their records are
// written) and a line naming each interrupted run, which left no record,
// and returns the cause (see exitCode).
func interruptedRuns(ctx context.Context, stdout io.Writer, sc *scenarios.Scenario, jobs []*runJob, recs []*results.Record, out string) error {
	cause := context.Cause(ctx)
	var stopped []*runJob
	for _, j := range jobs {
		switch {
		case j.err != nil:
			stopped = append(stopped, j)
		case j.rec != nil:
			recs = append(recs, j.rec)
		}
	}
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
	all := sc.Runs()
	fmt.Fprintln(stdout)
	for k, j := range stopped {
		r := j.run
		n := slices.IndexFunc(all, func(a scenarios.Run) bool { return a.Method.Label() == r.Method.Label() && a.Seed == r.Seed })
		end := ""
		if k == len(stopped)-1 {
			end = kept
		}
		fmt.Fprintf(stdout, "interrupted: %s, method %s, seed %d (run %d of %d) did not finish and wrote no record%s\n",
			sc.Name, r.Method.Label(), r.Seed, n+1, len(all), end)
	}
	var cks []string // the stopped runs' folders with a checkpoint
	for _, j := range stopped {
		if exists(filepath.Join(j.dir, sim.CheckpointFile)) {
			cks = append(cks, j.dir)
		}
	}
	switch {
	case len(cks) == 1:
		to := out
		if to == "" {
			to = cks[0]
		}
		fmt.Fprintf(stdout, "its checkpoint is in %s: fotsim run --resume %s continues\n", cks[0], to)
	case out == "":
		for _, d := range cks {
			fmt.Fprintf(stdout, "a checkpoint is in %s: fotsim run --resume %s continues that run\n", d, d)
		}
	case len(cks) > 1:
		fmt.Fprintf(stdout, "their checkpoints are in %s: fotsim run --resume %s continues\n", strings.Join(cks, ", "), out)
	}
	r := stopped[0].run
	return fmt.Errorf("%s, method %s, seed %d: %w", sc.Name, r.Method.Label(), r.Seed, cause)
}
