package main

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/results"
)

// demoSections are the headings of the demo's steps, in order.
var demoSections = []string{
	"== 1. The task stream ==",
	"== 2. FedAvg learns the tasks one after the other ==",
	"== 3. Forgetting under FedAvg ==",
	"== 4. FOT: protect the subspaces the old tasks use ==",
	"== 5. FOT's bases grow, and the projection removes part of every update ==",
	"== 6. Forgetting under FOT ==",
	"== 7. Side by side ==",
}

// runDemo runs the demo with the given scenario overrides and checks its
// narration against its records.
func runDemo(t *testing.T, sets, fallback []string) string {
	t.Helper()
	var out bytes.Buffer
	recs, err := demo(context.Background(), demoConfig{sets: sets, fallbackSets: fallback, progress: true}, &out)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	s := out.String()
	t.Log(s)
	checkDemo(t, s, recs)
	return s
}

// checkDemo checks that the narration has its steps in order and that
// every number it says is the records' (forgetting, FGT, basis dimensions,
// projected shares), and that the bases it shows grow.
func checkDemo(t *testing.T, s string, recs []*results.Record) {
	t.Helper()
	if len(recs) != 2 || recs[0].Method != "fedavg" || recs[1].Method != "fot" {
		t.Fatalf("records %v, want fedavg and fot", recs)
	}
	fedavg, fot := recs[0], recs[1]
	at := 0
	parts := make([]string, len(demoSections))
	for i, h := range demoSections {
		k := strings.Index(s[at:], h)
		if k < 0 {
			t.Fatalf("section %q missing or out of order:\n%s", h, s)
		}
		at += k
		if i > 0 {
			parts[i-1] = s[:at][strings.LastIndex(s[:at], demoSections[i-1]):]
		}
	}
	parts[len(parts)-1] = s[at:]
	sec := func(i int) string { return parts[i-1] }

	f2 := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	// Steps 2 and 4: the per-task lines of each run.
	for i, w := range []string{"fedavg s0  task 1/", "fot s0  task 1/"} {
		if !strings.Contains(sec(2*i+2), w) {
			t.Errorf("step %d lacks the per-task line %q", 2*i+2, w)
		}
	}
	// Steps 3 and 6: every task's drop and the FGT, from the records.
	for _, c := range []struct {
		step int
		rec  *results.Record
	}{{3, fedavg}, {6, fot}} {
		m := c.rec.AccMatrix
		last := len(m) - 1
		for j := range last {
			drop := m.At(j, j) - m.At(last, j)
			says := "dropped " + f2(drop) + " points"
			if drop < 0 {
				says = "rose " + f2(-drop) + " points"
			}
			w := fmt.Sprintf("task %d: %s%% just after it was learnt, %s%% at the end: %s", j, f2(m.At(j, j)), f2(m.At(last, j)), says)
			if !strings.Contains(sec(c.step), w) {
				t.Errorf("step %d lacks %q", c.step, w)
			}
		}
		if !strings.Contains(sec(c.step), "after task "+strconv.Itoa(last)) {
			t.Errorf("step %d lacks the accuracy table", c.step)
		}
	}
	if w := "FedAvg's FGT (forgetting: the mean of those drops over the tasks before the last) = " + f2(fedavg.FGT) + " points."; !strings.Contains(sec(3), w) {
		t.Errorf("step 3 lacks %q", w)
	}
	if w := "FOT's FGT = " + f2(fot.FGT) + " points (FedAvg's: " + f2(fedavg.FGT) + ")."; !strings.Contains(sec(6), w) {
		t.Errorf("step 6 lacks %q", w)
	}

	// Step 5: the basis dimensions said are the record's, and they grow.
	line := regexp.MustCompile(`(?m)^  after task (\d+): (.*)$`)
	dim := regexp.MustCompile(`([\w.]+) (\d+)/(\d+)`)
	got := line.FindAllStringSubmatch(sec(5), -1)
	if len(got) != len(fot.TasksDetail) || len(got) < 2 {
		t.Fatalf("step 5 has %d basis lines, the record %d tasks:\n%s", len(got), len(fot.TasksDetail), sec(5))
	}
	prev := map[string]int{}
	prevSum := 0
	for i, g := range got {
		d := fot.TasksDetail[i]
		if g[1] != strconv.Itoa(d.Task) {
			t.Errorf("basis line %d is of task %s, want %d", i, g[1], d.Task)
		}
		ds := dim.FindAllStringSubmatch(g[2], -1)
		if len(ds) != len(d.BasisDims) || len(ds) == 0 {
			t.Errorf("task %d: %d layers said, the record has %d", d.Task, len(ds), len(d.BasisDims))
		}
		sum := 0
		for _, x := range ds {
			k, _ := strconv.Atoi(x[2])
			c, _ := strconv.Atoi(x[3])
			if k != d.BasisDims[x[1]] || c != d.BasisCapacity[x[1]] {
				t.Errorf("task %d: said %s %d/%d, the record has %d/%d", d.Task, x[1], k, c, d.BasisDims[x[1]], d.BasisCapacity[x[1]])
			}
			if k < prev[x[1]] {
				t.Errorf("task %d: basis of %s shrank from %d to %d", d.Task, x[1], prev[x[1]], k)
			}
			prev[x[1]] = k
			sum += k
		}
		if sum <= prevSum {
			t.Errorf("task %d: the bases did not grow (%d dimensions in all, %d before)", d.Task, sum, prevSum)
		}
		prevSum = sum
	}
	for _, d := range fot.TasksDetail[1:] {
		for l, f := range d.ProjectedFraction {
			if w := fmt.Sprintf("%s %.1f%%", l, 100*f); !strings.Contains(sec(5), w) {
				t.Errorf("step 5 lacks task %d's removed share %q", d.Task, w)
			}
		}
	}

	// Step 7: the summary, and a conclusion that follows the records.
	for _, w := range []string{"FGT (final vs just-learnt)", "fedavg", "fot"} {
		if !strings.Contains(sec(7), w) {
			t.Errorf("step 7 lacks %q", w)
		}
	}
	less := "FedAvg forgot " + f2(fedavg.FGT) + " points on average, FOT " + f2(fot.FGT)
	notLess := "This time FOT did not forget less than FedAvg (FGT " + f2(fot.FGT) + " vs " + f2(fedavg.FGT) + ")"
	if fot.FGT < fedavg.FGT {
		if !strings.Contains(sec(7), less) {
			t.Errorf("step 7 lacks %q", less)
		}
	} else if !strings.Contains(sec(7), notLess) {
		t.Errorf("step 7 lacks %q", notLess)
	}
}

// A smaller demo on real MNIST (or its fallback): a few seconds.
func TestDemoSmall(t *testing.T) {
	runDemo(t, []string{
		"methods=[fedavg, fot]", "seeds=[0]", "data.tasks=3", "train.rounds_per_task=2",
		"train.lr=0.05", "data.train_limit=6000", "data.test_limit=1000", "eval.every=0", "fot.epsilon=0.96",
	}, demoFallbackSets)
}

// Without MNIST the demo says so and runs on generated data.
func TestDemoFallsBackToSynthetic(t *testing.T) {
	s := runDemo(t, append(slices.Clone(demoSets), "data.dir="+t.TempDir()), demoFallbackSets)
	for _, w := range []string{"MNIST was not found", "generated Gaussian clusters"} {
		if !strings.Contains(s, w) {
			t.Errorf("output lacks %q", w)
		}
	}
}

// The demo as shipped: on 2 cores about 10 s.
func TestDemoFull(t *testing.T) {
	if testing.Short() {
		t.Skip("the full demo trains on MNIST for about 10 s")
	}
	runDemo(t, demoSets, demoFallbackSets)
}

// --quiet prints the tables without narration; bad arguments exit 2.
func TestDemoCommand(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"demo", "--help"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Usage: fotsim demo", "-pause", "-quiet"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("help lacks %q:\n%s", w, errb.String())
		}
	}
	if code := exitCode(run(context.Background(), []string{"demo", "extra"}, &out, &errb), &errb); code != 2 {
		t.Errorf("demo with an argument: exit code %d, want 2", code)
	}
	if code := exitCode(run(context.Background(), []string{"demo", "--pause", "-1s"}, &out, &errb), &errb); code != 2 {
		t.Errorf("demo with a negative pause: exit code %d, want 2", code)
	}
	if !strings.Contains(mainUsage(), "fotsim demo [flags]") {
		t.Errorf("usage lacks the demo:\n%s", mainUsage())
	}

	var q bytes.Buffer
	recs, err := demo(context.Background(), demoConfig{
		sets: append(slices.Clone(demoSets), "data.dir="+t.TempDir()), fallbackSets: demoFallbackSets, quiet: true,
	}, &q)
	if err != nil || len(recs) != 2 {
		t.Fatalf("quiet demo: %v, %d records", err, len(recs))
	}
	s := q.String()
	if strings.Contains(s, "==") || strings.Contains(s, "FedAvg forgot") || strings.Contains(s, "task 1/") {
		t.Errorf("--quiet narrates or shows progress:\n%s", s)
	}
	for _, w := range []string{"Accuracy (%) of fedavg", "Accuracy (%) of fot", "Subspaces of fot", "FGT (final vs just-learnt)"} {
		if !strings.Contains(s, w) {
			t.Errorf("--quiet output lacks %q:\n%s", w, s)
		}
	}
}
