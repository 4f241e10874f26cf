package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/scenarios"
)

// recordFiles are the files of a run record compared byte for byte.
var recordFiles = []string{"result.json", "scenario.yaml", "acc_matrix.csv", "curves.csv"}

// readRecordFiles returns dir's record files, wall time zeroed.
func readRecordFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, f := range recordFiles {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if f == "result.json" {
			b = wallSeconds.ReplaceAll(b, []byte(`"wall_seconds": 0`))
		}
		out[f] = b
	}
	return out
}

// pickCheckpoints chooses the saved checkpoints to resume from: the first
// in the middle of a task, the first at a later task's start, and the last
// in the middle of a task (each once).
func pickCheckpoints(cks []*Checkpoint) []int {
	var picks []int
	add := func(i int) {
		if i >= 0 && !containsInt(picks, i) {
			picks = append(picks, i)
		}
	}
	first, boundary, last := -1, -1, -1
	for i, c := range cks {
		st := c.Server
		if st.Round > 0 && first < 0 {
			first = i
		}
		if st.Round == 0 && st.Task > 0 && st.Task < len(cks) && boundary < 0 && i+1 < len(cks) {
			boundary = i
		}
		if st.Round > 0 {
			last = i
		}
	}
	add(first)
	add(boundary)
	add(last)
	return picks
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestResumeMatchesUninterruptedRun runs every method (the golden groups
// that cover the methods with state: FOT's bases, EWC's and FedCurv's
// Fisher sums and client terms, FLwF's teacher, FedSVD's rounds with FOT,
// DP accountants, central pretraining) with a checkpoint after every round,
// then resumes each run in a fresh experiment from checkpoints in the
// middle of a task, at a task's start and near the end: every resumed run
// writes the same record files, byte for byte (wall time aside), as the
// uninterrupted one, which itself matches the recorded build.
func TestResumeMatchesUninterruptedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("about a minute of training")
	}
	level := false // the recorded build's kernel level: compare with its records too
	if s, ok := nn.ActiveBackend().(*gemm.SIMD); ok && s.Level() == goldenLevel {
		level = true
	}
	env := NewEnv()
	for _, g := range goldenGroups {
		if !g.resume {
			continue
		}
		sc, err := scenarios.Load(g.scenario, g.sets)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sc.Runs() {
			name := filepath.Base(DefaultOut(sc, r))
			t.Run(g.dir+"/"+name, func(t *testing.T) {
				golden := ""
				if level {
					golden = filepath.Join("testdata", "golden", g.dir, name)
				}
				checkResume(t, env, sc, r, golden)
			})
		}
	}
}

// resumeExtra are runs without a recorded golden build that resume like
// the golden groups: the methods added after the groups were recorded
// (their records are not a contract yet, so they are only compared with
// their own uninterrupted run).
var resumeExtra = []struct {
	name, scenario string
	sets           []string
}{
	{"merging", "quickstart", []string{"methods=[opcm,{name: opcm, scaling: fixed, lambda: 1},fisher-avg,sculpt]", "train.rounds_per_task=3"}},
	{"econtrol", "quickstart", []string{"methods=[econtrol,{name: econtrol, compressor: quant, bits: 3}]", "train.rounds_per_task=3"}},
	{"system", "synthetic", []string{"methods=[fedavg,fot]", "system.availability=0.8", "system.dropout=0.2", "train.rounds_per_task=6"}},
}

// TestResumeExtraMatchesUninterruptedRun is TestResumeMatchesUninterruptedRun
// for resumeExtra.
func TestResumeExtraMatchesUninterruptedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("about half a minute of training")
	}
	env := NewEnv()
	for _, g := range resumeExtra {
		sc, err := scenarios.Load(g.scenario, g.sets)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range sc.Runs() {
			name := filepath.Base(DefaultOut(sc, r))
			t.Run(g.name+"/"+name, func(t *testing.T) {
				checkResume(t, env, sc, r, "")
			})
		}
	}
}

// checkResume runs r of sc with a checkpoint after every round and resumes
// it from checkpoints in the middle of a task, at a task's start and near
// the end: each resumed run must write the same record files as the
// uninterrupted one, and that one those of golden (a recorded build's
// run folder) unless golden is "".
func checkResume(t *testing.T, env *Env, sc *scenarios.Scenario, r scenarios.Run, golden string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "full")
	var cks []*Checkpoint
	opts := Options{Out: out, Checkpoint: true, CheckpointEveryRound: true, saved: func(dir string) {
		c, err := ReadCheckpoint(dir)
		if err != nil {
			t.Error(err)
			return
		}
		cks = append(cks, c)
	}}
	if _, err := env.Run(context.Background(), sc, r, opts); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, CheckpointFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the finished run left its checkpoint: %v", err)
	}
	want := readRecordFiles(t, out)
	if golden != "" {
		compareFiles(t, "with checkpoints vs recorded build", readRecordFiles(t, golden), want)
	}
	picks := pickCheckpoints(cks)
	if len(picks) < 2 {
		t.Fatalf("%d checkpoints gave %d to resume from, want a task's middle and start", len(cks), len(picks))
	}
	for _, i := range picks {
		c := cks[i]
		rsc, rrun, err := c.ScenarioAndRun(nil)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("resumed-%d", i))
		if _, err := env.Run(context.Background(), rsc, rrun, Options{Out: dir, Checkpoint: true, Resume: c}); err != nil {
			t.Fatalf("resume before round %d of task %d: %v", c.Server.Round, c.Server.Task, err)
		}
		compareFiles(t, fmt.Sprintf("resumed before round %d of task %d", c.Server.Round, c.Server.Task), want, readRecordFiles(t, dir))
	}
}

func compareFiles(t *testing.T, what string, want, got map[string][]byte) {
	t.Helper()
	for _, f := range recordFiles {
		if !bytes.Equal(want[f], got[f]) {
			t.Errorf("%s: %s differs:\nwant %.600s\ngot  %.600s", what, f, want[f], got[f])
		}
	}
}

// A checkpoint that does not fit is refused with a clear error, never
// resumed into a different run: a garbled file, a --set of a key that
// changes results, a run its scenario lacks, a model of another size.
func TestResumeRefusesMismatches(t *testing.T) {
	sc, err := scenarios.Load("synthetic", nil)
	if err != nil {
		t.Fatal(err)
	}
	run := sc.Runs()[0]
	dir := t.TempDir()
	var saved []byte
	opts := Options{Out: dir, Checkpoint: true, CheckpointEveryRound: true, saved: func(d string) {
		if saved == nil {
			saved, _ = os.ReadFile(filepath.Join(d, CheckpointFile))
		}
	}}
	if _, err := NewEnv().Run(context.Background(), sc, run, opts); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), saved, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.ScenarioAndRun([]string{"transport.timeout=5s"}); err != nil {
		t.Errorf("a transport key: %v", err)
	}
	if _, _, err := c.ScenarioAndRun([]string{"train.lr=0.5"}); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), "train.lr") {
		t.Errorf("--set train.lr: %v, want ErrCheckpoint naming the key", err)
	}
	other := *c
	other.Seed = 99
	if _, _, err := other.ScenarioAndRun(nil); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("a run not in the scenario: %v, want ErrCheckpoint", err)
	}
	// A model of another size: the server refuses the saved parameters.
	bigger, err := scenarios.Load("synthetic", []string{"model.hidden=[7]"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewEnv().Run(context.Background(), bigger, bigger.Runs()[0], Options{Resume: c})
	if err == nil || !strings.Contains(err.Error(), "parameters") {
		t.Errorf("resume into another model: %v, want an error about the parameters", err)
	}
	if err := os.WriteFile(filepath.Join(dir, CheckpointFile), saved[:len(saved)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadCheckpoint(dir); !errors.Is(err, ErrCheckpoint) {
		t.Errorf("a truncated checkpoint: %v, want ErrCheckpoint", err)
	}
	if _, err := ReadCheckpoint(t.TempDir()); !errors.Is(err, ErrCheckpoint) || !strings.Contains(err.Error(), CheckpointFile) {
		t.Errorf("no checkpoint: %v", err)
	}
}
