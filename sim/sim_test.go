package sim

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/transport"
)

// canonical returns rec's result.json bytes with the wall time zeroed: the
// only field allowed to differ between two runs of the same scenario+seed.
func canonical(t *testing.T, rec *results.Record) []byte {
	t.Helper()
	c := *rec
	c.WallSeconds = 0
	var b bytes.Buffer
	if err := results.WriteRecord(&b, &c); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func load(t *testing.T, sets ...string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load("synthetic", sets)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func runAll(t *testing.T, sc *scenarios.Scenario) map[string][]byte {
	t.Helper()
	env := NewEnv()
	out := map[string][]byte{}
	for _, r := range sc.Runs() {
		rec, err := env.Run(context.Background(), sc, r, Options{})
		if err != nil {
			t.Fatalf("%s seed %d: %v", r.Method.Label(), r.Seed, err)
		}
		out[fmt.Sprintf("%s/s%d", r.Method.Label(), r.Seed)] = canonical(t, rec)
	}
	return out
}

// The same scenario and seed give byte-identical records whatever the
// number of workers and whether NATS is embedded or reached over TCP.
func TestDeterministicAcrossWorkersAndTransport(t *testing.T) {
	base := []string{"seeds=[0, 1]", "eval.every=2"}
	ref := runAll(t, load(t, append(base, "train.workers=1")...))

	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	variants := map[string][]string{
		"workers=3":       append(base, "train.workers=3"),
		"workers=1 again": append(base, "train.workers=1"),
		"external nats":   append(base, "train.workers=2", "transport.nats="+emb.URL()),
	}
	for name, sets := range variants {
		t.Run(name, func(t *testing.T) {
			got := runAll(t, load(t, sets...))
			for k, want := range ref {
				if !bytes.Equal(got[k], want) {
					t.Errorf("%s: record differs from the 1-worker embedded run:\ngot  %s\nwant %s", k, got[k], want)
				}
			}
		})
	}
	// Different seeds must give different runs, or the check above is empty.
	if bytes.Equal(ref["fedavg/s0"], ref["fedavg/s1"]) {
		t.Error("seeds 0 and 1 gave identical records")
	}
}

func TestRunWritesRecord(t *testing.T) {
	sc := load(t, "methods=fot", "eval.every=1")
	dir := filepath.Join(t.TempDir(), "out")
	rec, err := NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{Out: dir})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{results.RecordFile, results.MatrixFile, results.CurvesFile, results.ScenarioFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	back, err := results.ReadRecord(filepath.Join(dir, results.RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical(t, back), canonical(t, rec)) {
		t.Error("result.json does not round-trip to the returned record")
	}
	T := sc.Data.Tasks
	R := sc.Train.RoundsPerTask
	switch {
	case rec.Tasks != T || len(rec.AccMatrix) != T:
		t.Errorf("tasks %d, matrix rows %d, want %d", rec.Tasks, len(rec.AccMatrix), T)
	case rec.Rounds != T*R:
		t.Errorf("rounds %d, want %d", rec.Rounds, T*R)
	case len(rec.Curves) != T*R:
		t.Errorf("curves %d, want %d (eval.every=1)", len(rec.Curves), T*R)
	case rec.BytesUp <= 0 || rec.BytesDown <= 0:
		t.Errorf("bytes up %d, down %d: want > 0", rec.BytesUp, rec.BytesDown)
	case rec.RejectedUpdates != 0 || rec.LateUpdates != 0:
		t.Errorf("rejected %d, late %d: want 0", rec.RejectedUpdates, rec.LateUpdates)
	}
	for i, row := range rec.AccMatrix {
		for j, a := range row {
			if evaluated := j <= i; evaluated != (a == a) {
				t.Errorf("acc[%d][%d] = %v: evaluated %v", i, j, a, evaluated)
			}
		}
	}
	// FOT reports per-task basis dimensions, growing, never above d_in.
	prev := map[string]int{}
	for _, d := range rec.TasksDetail {
		if len(d.BasisDims) == 0 {
			t.Fatalf("task %d: no basis dimensions in the record", d.Task)
		}
		for l, k := range d.BasisDims {
			if k < prev[l] || k < 1 {
				t.Errorf("task %d layer %s: basis %d after %d", d.Task, l, k, prev[l])
			}
			prev[l] = k
		}
	}
}

func TestDefaultOut(t *testing.T) {
	sc := load(t, "methods=[fedavg, {name: fot, epsilon: 0.5}]")
	runs := sc.Runs()
	got := []string{DefaultOut(sc, runs[0]), DefaultOut(sc, runs[1])}
	want := []string{filepath.Join("runs", "synthetic-fedavg-s0"), filepath.Join("runs", "synthetic-fot-eps0.5-s0")}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("run %d: got %q, want %q", i, got[i], want[i])
		}
	}
}
