package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
)

func init() {
	register(command{name: "demo", usage: "[flags]              a narrated teaching run: forgetting, then FOT", order: 70, run: cmdDemo})
}

const demoUsage = `Usage: fotsim demo [flags]

A narrated teaching run of about 10 s: FedAvg learns a small Permuted MNIST
stream (4 tasks, 10 clients) task after task and forgets the old tasks; FOT
learns the same stream, its subspace bases grow after every task and its
projection removes a share of every later update, and it forgets far less.
Short explanations come between the steps, the project's tables after each
run, and a side-by-side summary at the end. Without MNIST it runs on
generated data (the synthetic built-in) instead, and says so. Nothing is
written to disk.

Flags:
`

// demoSets turn the quickstart built-in into the demo: FedAvg and FOT on 4
// Permuted MNIST tasks of 5 rounds, each task's first 20000 training and
// 5000 test images, with a learning rate that learns each task within them
// (and so forgets visibly under FedAvg). About 2 s for FedAvg and 6 s for
// FOT on 2 cores.
var demoSets = []string{
	"methods=[fedavg, fot]", "seeds=[0]", "data.tasks=4", "train.lr=0.05",
	"data.train_limit=20000", "data.test_limit=5000", "eval.every=0", "fot.epsilon=0.96",
}

// demoFallbackSets do the same to the synthetic built-in, for a machine
// without MNIST: 4 tasks of 5 rounds, well under a second.
var demoFallbackSets = []string{
	"methods=[fedavg, fot]", "seeds=[0]", "data.tasks=4", "train.rounds_per_task=5", "eval.every=0",
}

// demoConfig is what a demo runs; tests shrink the scenarios.
type demoConfig struct {
	sets, fallbackSets []string
	pause              time.Duration // between the steps
	quiet              bool          // tables only, no narration or progress
	progress           bool          // progress display (bars on a terminal)
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", demoUsage, stderr)
	pause := fs.Duration("pause", 0, "pause between the steps (default 1s on a terminal, 0 otherwise)")
	quiet := fs.Bool("quiet", false, "no narration: the tables only")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fs.Usage()
		return usagef("demo takes no arguments, got %q", fs.Args())
	}
	pauseSet := false
	fs.Visit(func(f *flag.Flag) { pauseSet = pauseSet || f.Name == "pause" })
	if !pauseSet && isTerminal(stdout) {
		*pause = time.Second
	}
	if *pause < 0 {
		return usagef("--pause %v is negative", *pause)
	}
	_, err := demo(ctx, demoConfig{
		sets: demoSets, fallbackSets: demoFallbackSets,
		pause: *pause, quiet: *quiet, progress: !*quiet,
	}, stdout)
	return err
}

// demo runs the narrated demo and returns its records (FedAvg's, FOT's).
func demo(ctx context.Context, cfg demoConfig, w io.Writer) ([]*results.Record, error) {
	start := time.Now()
	n := &narrator{w: w, quiet: cfg.quiet, pause: cfg.pause, ctx: ctx}
	sc, err := scenarios.Load("quickstart", cfg.sets)
	if err != nil {
		return nil, err
	}
	env := sim.NewEnv()
	runs := sc.Runs()
	fallback := ""
	if _, err := env.Build(sc, runs[0]); errors.Is(err, data.ErrNoMNIST) {
		fallback = err.Error()
		if sc, err = scenarios.Load("synthetic", cfg.fallbackSets); err != nil {
			return nil, err
		}
		runs = sc.Runs()
	} else if err != nil {
		return nil, err
	}
	if len(runs) != 2 { // the sets name FedAvg, then FOT, with one seed
		return nil, fmt.Errorf("demo: want a FedAvg and a FOT run, got %d runs", len(runs))
	}

	n.say("fotsim demo: how a federation forgets, and how FOT keeps what it learnt.")
	if fallback != "" {
		n.say("Note: MNIST was not found, so this demo runs on generated data (the synthetic built-in) instead:")
		n.say("the same story on a smaller problem. Why, and how to get MNIST: %s", fallback)
	}
	n.section("1", "The task stream")
	n.say("A task is one classification problem that the federation learns for a while before it moves on;")
	n.say("by then the old task's training data is gone. Here every task is %s,", describeData(sc))
	n.say("with the input values shuffled by a fixed random permutation of the task's own (a \"permuted\" stream):")
	n.say("the same labels, different inputs. %d tasks come one after the other, %d rounds each.", sc.Data.Tasks, sc.Train.RoundsPerTask)
	n.say("%d clients share each task's data; in every round %d of them train the global model for %d local epoch(s)",
		sc.Partition.Clients, sc.Train.ClientsPerRound, sc.Train.LocalEpochs)
	n.say("of SGD and send their update, and the server applies the mean update (FedAvg). The model is an MLP with")
	n.say("hidden layers %v and one output head shared by every task: all tasks live in the same weights.", sc.Model.Hidden)
	n.step()

	var recs []*results.Record
	runOne := func(r scenarios.Run) (*results.Record, error) {
		opts := sim.Options{}
		if cfg.progress {
			prog := newProgress(w)
			opts.Progress, opts.OnRound = prog.Tasks(), prog.Round
			defer prog.End()
		}
		rec, err := env.Run(ctx, sc, r, opts)
		if err != nil {
			return nil, fmt.Errorf("demo: %s: %w", r.Method.Label(), err)
		}
		recs = append(recs, rec)
		return rec, nil
	}

	n.section("2", "FedAvg learns the tasks one after the other")
	n.say("One line per task: the accuracy (%%) on every task seen so far, right after the task's last round.")
	fedavg, err := runOne(runs[0])
	if err != nil {
		return nil, err
	}
	n.step()

	n.section("3", "Forgetting under FedAvg")
	if err := n.accuracy(fedavg); err != nil {
		return nil, err
	}
	n.say("Row i is the model after task i, column j the task it is tested on. The diagonal is each task just")
	n.say("after it was learnt; going down a column, later tasks' updates overwrite it:")
	n.drops(fedavg)
	n.say("FedAvg's FGT (forgetting: the mean of those drops over the tasks before the last) = %.2f points.", fedavg.FGT)
	n.step()

	n.section("4", "FOT: protect the subspaces the old tasks use")
	n.say("FOT (Federated Orthogonal Training) keeps FedAvg's rounds and adds two things.")
	n.say("- At the end of each task, every selected client runs GPSE on its model: for each shared layer it")
	n.say("  collects the inputs the layer sees on the task's data, keeps what the layer's basis does not yet")
	n.say("  span, and sends only a random sketch of it. The server sums the sketches, takes their SVD and keeps")
	n.say("  the fewest directions that hold a share eps = %.2f of the energy: they grow that layer's basis U,", sc.FOT.Epsilon)
	n.say("  the input subspace the old tasks rely on.")
	n.say("- In every round of a later task, the server projects each layer's aggregated update D off that")
	n.say("  subspace, D <- D - D U U^T. The part removed would change the layer's output on the old tasks'")
	n.say("  inputs; what is left does not touch them.")
	n.say("Each line now also shows the basis dimension per layer after the task.")
	fot, err := runOne(runs[1])
	if err != nil {
		return nil, err
	}
	n.step()

	n.section("5", "FOT's bases grow, and the projection removes part of every update")
	if err := n.subspaces(fot); err != nil {
		return nil, err
	}
	n.step()

	n.section("6", "Forgetting under FOT")
	if err := n.accuracy(fot); err != nil {
		return nil, err
	}
	n.drops(fot)
	n.say("FOT's FGT = %.2f points (FedAvg's: %.2f).", fot.FGT, fedavg.FGT)
	n.step()

	n.section("7", "Side by side")
	if !n.quiet {
		fmt.Fprintln(w, "ACC: mean final accuracy over the tasks; FGT: mean drop from just-learnt to final; BWT = -FGT.")
	}
	if err := results.SummaryTable(w, recs); err != nil {
		return nil, err
	}
	switch {
	case fot.FGT < fedavg.FGT:
		n.say("FedAvg forgot %.2f points on average, FOT %.2f: the projection kept the later updates out of the", fedavg.FGT, fot.FGT)
		n.say("subspaces the old tasks use.")
	default:
		n.say("This time FOT did not forget less than FedAvg (FGT %.2f vs %.2f): with this little training", fot.FGT, fedavg.FGT)
		n.say("the tasks barely interfere.")
	}
	if fot.ACC < fedavg.ACC {
		n.say("FOT's ACC is lower (%.2f vs %.2f): its bases only grow, so later tasks have less room to learn in", fot.ACC, fedavg.ACC)
		n.say("(the README's \"FOT on short runs\").")
	} else {
		n.say("FOT's ACC is %.2f against FedAvg's %.2f. Its bases only grow, though: on long streams or with little", fot.ACC, fedavg.ACC)
		n.say("training they can fill up and leave later tasks no room (the README's \"FOT on short runs\").")
	}
	n.say("Next: fotsim run quickstart --set 'methods=[fedavg,fot]' (fotsim list shows every method and scenario).")
	n.say("The demo took %.1fs.", time.Since(start).Seconds())
	return recs, ctx.Err()
}

// describeData names the scenario's data for the narration.
func describeData(sc *scenarios.Scenario) string {
	switch sc.Data.Dataset {
	case "mnist":
		return "MNIST's handwritten digits (28 x 28 pixels, 10 classes)"
	case "synthetic":
		s := sc.Data.Synthetic
		return fmt.Sprintf("generated Gaussian clusters (%d classes in %d dimensions)", s.Classes, s.Dim)
	}
	return sc.Data.Dataset
}

// narrator prints the demo's explanations (not with quiet) and pauses
// between the steps.
type narrator struct {
	w     io.Writer
	quiet bool
	pause time.Duration
	ctx   context.Context
}

func (n *narrator) say(format string, args ...any) {
	if !n.quiet {
		fmt.Fprintf(n.w, format+"\n", args...)
	}
}

// section starts a step: "== 3. Forgetting under FedAvg ==".
func (n *narrator) section(num, title string) {
	if !n.quiet {
		fmt.Fprintf(n.w, "\n== %s. %s ==\n", num, title)
	}
}

// step ends a step: a pause, cut short by a cancelled context.
func (n *narrator) step() {
	if n.pause <= 0 {
		return
	}
	t := time.NewTimer(n.pause)
	defer t.Stop()
	select {
	case <-t.C:
	case <-n.ctx.Done():
	}
}

// accuracy prints rec's accuracy matrix.
func (n *narrator) accuracy(rec *results.Record) error {
	if n.quiet {
		fmt.Fprintf(n.w, "\nAccuracy (%%) of %s, seed %d: row = after task i, column = task j\n", rec.MethodLabel, rec.Seed)
	}
	return results.AccuracyTable(n.w, rec)
}

// drops says, for every task before the last, how much of its accuracy
// the end of the stream kept.
func (n *narrator) drops(rec *results.Record) {
	last := len(rec.AccMatrix) - 1
	for j := 0; j < last; j++ {
		just, final := rec.AccMatrix.At(j, j), rec.AccMatrix.At(last, j)
		n.say("  task %d: %.2f%% just after it was learnt, %.2f%% at the end: %s", j, just, final, change(just-final))
	}
}

// change says a drop of accuracy: "dropped 6.08 points", or "rose 2.00
// points" when a later task helped.
func change(drop float64) string {
	if drop < 0 {
		return fmt.Sprintf("rose %.2f points", -drop)
	}
	return fmt.Sprintf("dropped %.2f points", drop)
}

// subspaces prints FOT's subspace table and says how the bases grew and
// how much of the updates the projection removed.
func (n *narrator) subspaces(rec *results.Record) error {
	if n.quiet {
		fmt.Fprintf(n.w, "\nSubspaces of %s, seed %d: basis dimension after each task, share of the aggregated update removed by the projection\n", rec.MethodLabel, rec.Seed)
	}
	if err := results.SubspaceTable(n.w, rec); err != nil {
		return err
	}
	var layers []string
	for _, d := range rec.TasksDetail {
		for l := range d.BasisDims {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
	}
	slices.Sort(layers)
	n.say("k/d_in is a layer's basis dimension over its input width d_in: the subspace kept for the old tasks.")
	n.say("Basis dimension after each task:")
	for _, d := range rec.TasksDetail {
		parts := make([]string, 0, len(layers))
		for _, l := range layers {
			parts = append(parts, fmt.Sprintf("%s %d/%d", l, d.BasisDims[l], d.BasisCapacity[l]))
		}
		n.say("  after task %d: %s", d.Task, strings.Join(parts, ", "))
	}
	n.say("Share of each aggregated update the projection removed (||D U U^T|| / ||D||, mean over the task's rounds;")
	n.say("task 0 has nothing to protect):")
	for _, d := range rec.TasksDetail {
		if d.Task == 0 {
			continue
		}
		parts := make([]string, 0, len(layers))
		for _, l := range layers {
			if f, ok := d.ProjectedFraction[l]; ok {
				parts = append(parts, fmt.Sprintf("%s %.1f%%", l, 100*f))
			}
		}
		n.say("  during task %d: %s", d.Task, strings.Join(parts, ", "))
	}
	n.say("The more the old tasks span, the more of a new update is removed: the price of not forgetting.")
	return nil
}
