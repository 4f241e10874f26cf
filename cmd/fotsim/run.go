package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"time"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/sim"
)

const runUsage = `Usage: fotsim run [flags] SCENARIO

Runs every method x seed combination of SCENARIO (a YAML file or a built-in
name), prints a line per task, each run's accuracy matrix, a summary table
and, with several runs, a comparison table (mean +- std over seeds). Each
run's record goes to runs/<scenario>-<method>-s<seed>/ unless --out is given.

Flags:
`

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runScenario(ctx, args, stdout, stderr, runHooks{name: "run", usage: runUsage, interleave: true})
}

// runHooks let another command (fotsim server) run a scenario as run does,
// with run's flags, tables and records: flags adds its own flags, sets
// returns the --set overrides they imply, options adjusts each run's
// options. Each may be nil.
type runHooks struct {
	name, usage string
	interleave  bool // offer --interleave
	flags       func(fs *flag.FlagSet)
	sets        func() ([]string, error)
	options     func(sc *scenarios.Scenario, o *sim.Options) error
}

func runScenario(ctx context.Context, args []string, stdout, stderr io.Writer, h runHooks) error {
	fs := newFlags(h.name, h.usage, stderr)
	var sets multi
	out := fs.String("out", "", "run-record folder (with several runs: one sub-folder per run inside it)")
	fs.Var(&sets, "set", "override a scenario key: path=value, value in YAML (repeatable)")
	quiet := fs.Bool("quiet", false, "print the tables only")
	backend := fs.String("backend", "", "matrix backend: "+fmt.Sprint(gemm.Names())+" (default: fastest available)")
	verbose := fs.Bool("v", false, "log every rejected or late message to stderr")
	timing := fs.Bool("timing", false, "print each run's round time split and the process's peak memory")
	live := fs.String("live", "", "serve the live view of the runs at `ADDR` (host:port; no host: 127.0.0.1) while they run")
	noReport := fs.Bool("no-report", false, "write no report.html (by default every run folder gets one, and --out a sweep's)")
	noPlots := fs.Bool("no-plots", false, "draw no plots (by default each run's PNG and SVG plots go next to its record)")
	noCheckpoint := fs.Bool("no-checkpoint", false, "write no checkpoint (by default each run folder gets "+sim.CheckpointFile+" after every round, removed when the run finishes)")
	everyRound := fs.Bool("checkpoint-every-round", false, "write the checkpoint after every round even when rounds are so short that it costs more than 5% of the run (by default such rounds get one every few)")
	resume := fs.String("resume", "", "continue the interrupted runs in `DIR` (a run's folder, or a sweep's --out) from their last checkpoint, instead of a SCENARIO")
	interleave := new(bool)
	if h.interleave {
		interleave = fs.Bool("interleave", false, "run the scenario's runs side by side, taking turns round by round, so that their round times (--timing, wall_seconds) can be compared on a busy or throttled machine; records are the same")
	}
	if h.flags != nil {
		h.flags(fs)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	var plan *resumePlan // --resume
	if *resume != "" {
		if fs.NArg() != 0 || *out != "" {
			fs.Usage()
			return usagef("%s --resume DIR takes no scenario and no --out: the runs go on in DIR", h.name)
		}
		var err error
		if plan, err = loadResume(*resume, sets); err != nil {
			return err
		}
		*out = plan.out
		if *backend == "" { // the backend the rounds so far ran on: the same sums
			*backend = plan.backend
		}
	} else if fs.NArg() != 1 {
		fs.Usage()
		return usagef("%s takes exactly one scenario, got %d", h.name, fs.NArg())
	}
	if err := selectBackend(*backend); err != nil {
		return err
	}
	if h.sets != nil {
		more, err := h.sets()
		if err != nil {
			return err
		}
		sets = append(sets, more...)
	}
	var sc *scenarios.Scenario
	if plan != nil {
		sc = plan.sc
	} else {
		var err error
		if sc, err = scenarios.Load(fs.Arg(0), sets); err != nil {
			return scenarioError(err)
		}
	}
	if err := checkOutDirs(*out, sc); err != nil {
		return err
	}
	if *interleave && *live != "" {
		return usagef("%s: --interleave and --live cannot be combined: the live view follows one run at a time", h.name)
	}
	var lv *liveServer // the live view, or nil
	if *live != "" {
		var err error
		if lv, err = startLive(*live, stdout); err != nil {
			return err
		}
		defer lv.stop()
	}
	env := sim.NewEnv()
	var jobs []*runJob
	var recs []*results.Record
	for _, r := range sc.Runs() {
		dir := runDir(*out, sc, r, len(sc.Runs()))
		opts := sim.Options{Out: dir, Checkpoint: !*noCheckpoint, CheckpointEveryRound: *everyRound}
		if plan != nil {
			if plan.only != nil {
				if r.Method.Label() != plan.only.Method.Label() || r.Seed != plan.only.Seed {
					continue
				}
				dir, opts.Out = plan.out, plan.out
			}
			if rec := plan.finished[dir]; rec != nil {
				if !*quiet {
					fmt.Fprintf(stdout, "%s, seed %d: finished before (%s)\n", r.Method.Label(), r.Seed, filepath.Join(dir, results.RecordFile))
				}
				recs = append(recs, rec)
				continue
			}
			if opts.Resume = plan.ck[dir]; opts.Resume != nil && !*quiet {
				fmt.Fprintln(stdout, describe(opts.Resume))
			}
		}
		lv.options(&opts, sc)
		if h.options != nil {
			if err := h.options(sc, &opts); err != nil {
				return err
			}
		}
		j := &runJob{run: r, dir: dir, opts: opts}
		if !*quiet { // bars on a terminal, else a line every 10 s; plain lines for runs taking turns
			if *interleave {
				j.prog = newProgressTo(stdout, false, time.Now)
			} else {
				j.prog = newProgress(stdout)
			}
			j.opts.Progress, j.opts.OnRound = j.prog.Tasks(), j.prog.Round
		}
		if *verbose {
			j.opts.Log = stderr
		}
		if *timing {
			j.opts.Timing = &j.tm
		}
		jobs = append(jobs, j)
	}
	if *interleave && len(jobs) > 1 {
		runTakingTurns(ctx, env, sc, jobs)
	}
	for k, j := range jobs {
		if !j.ran {
			j.rec, j.err = env.Run(ctx, sc, j.run, j.opts)
			j.prog.End()
		}
		if j.err != nil && ctx.Err() != nil { // SIGINT, SIGTERM
			return interruptedRuns(ctx, stdout, sc, jobs[k:], recs, *out)
		}
		if j.err != nil {
			if errors.Is(j.err, data.ErrNoMNIST) || errors.Is(j.err, data.ErrNoFashionMNIST) {
				return usageError{j.err}
			}
			return fmt.Errorf("%s, method %s, seed %d: %w", sc.Name, j.run.Method.Label(), j.run.Seed, j.err)
		}
		rec, dir := j.rec, j.dir
		recs = append(recs, rec)
		if *timing {
			printTiming(stdout, rec, j.tm, sc.Train.Workers)
		}
		fmt.Fprintf(stdout, "\nAccuracy (%%) of %s, seed %d: row = after task i, column = task j\n", rec.MethodLabel, rec.Seed)
		if err := results.AccuracyTable(stdout, rec); err != nil {
			return err
		}
		if len(rec.TasksDetail) > 0 && len(rec.TasksDetail[0].BasisDims) > 0 {
			fmt.Fprintf(stdout, "Subspaces of %s, seed %d: basis dimension after each task, share of the aggregated update removed by the projection\n", rec.MethodLabel, rec.Seed)
			if err := results.SubspaceTable(stdout, rec); err != nil {
				return err
			}
		}
		if !*quiet {
			fmt.Fprintf(stdout, "record: %s\n", filepath.Join(dir, results.RecordFile))
		}
		if !*noReport {
			if err := writeReports(dir, []*results.Record{rec}, *quiet, stdout); err != nil {
				return err
			}
		}
		if !*noPlots {
			if err := plotRunTo(stdout, dir, rec, nil, *quiet); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(stdout, "\nSummary of %s (FGT: accuracy just after learning a task minus final accuracy; BWT = -FGT)\n", sc.Name)
	if err := results.SummaryTable(stdout, recs); err != nil {
		return err
	}
	if len(recs) > 1 {
		fmt.Fprintf(stdout, "\nComparison over seeds (mean +- sample std)\n")
		if err := results.ComparisonTable(stdout, recs); err != nil {
			return err
		}
	}
	if !*noPlots && len(recs) > 1 && *out != "" {
		if err := plotSummaryTo(stdout, *out, recs, nil, *quiet); err != nil {
			return err
		}
	}
	if !*noReport && len(recs) > 1 && *out != "" {
		if err := writeReports(*out, recs, *quiet, stdout); err != nil {
			return err
		}
	}
	return nil
}

// runJob is one run of a command: its options, and once run, its record
// or error.
type runJob struct {
	run  scenarios.Run
	dir  string
	opts sim.Options
	prog *progress
	tm   server.Timing

	ran bool
	rec *results.Record
	err error
}

// runTakingTurns runs the jobs side by side, taking turns round by round
// (sim.Turns, --interleave).
func runTakingTurns(ctx context.Context, env *sim.Env, sc *scenarios.Scenario, jobs []*runJob) {
	turns := sim.NewTurns(len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		j.opts.Turns, j.opts.Turn = turns, i
		wg.Add(1)
		go func() {
			defer wg.Done()
			j.rec, j.err = env.Run(ctx, sc, j.run, j.opts)
			j.ran = true
		}()
	}
	wg.Wait()
	for _, j := range jobs {
		j.prog.End()
	}
}

// printTiming prints the mean round time split of a run and the peak
// resident memory of the process so far.
func printTiming(w io.Writer, rec *results.Record, tm server.Timing, workers int) {
	s := sim.SplitOf(tm, max(workers, 1), func(server.RoundTiming) bool { return true })
	fmt.Fprintf(w, "timing of %s, seed %d: %d rounds, %.3fs per round: train %.3fs, messaging %.3fs, aggregation+projection %.3fs, eval %.3fs (overhead %.1f%%); peak RSS %s\n",
		rec.MethodLabel, rec.Seed, len(tm.Rounds), s.Total(), s.Train, s.Messaging, s.Aggregation, s.Eval, 100*s.Overhead(), results.HumanBytes(peakRSS()))
}

// selectBackend makes name the active matrix backend ("" keeps the default).
func selectBackend(name string) error {
	if name == "" {
		return nil
	}
	b, err := gemm.Lookup(name)
	if err != nil {
		return usageError{err}
	}
	nn.SetBackend(b)
	return nil
}

// scenarioError marks scenario problems as bad input (exit code 2).
func scenarioError(err error) error {
	if errors.Is(err, scenarios.ErrInvalid) {
		return usageError{err}
	}
	return err
}
