package sim

import (
	"context"
	"encoding/json"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/fotsim/fotsim/server"
)

// Bench fills every number of its contract on a tiny configuration.
func TestBenchSmall(t *testing.T) {
	res, err := Bench(context.Background(), BenchConfig{
		Duration: 50 * time.Millisecond, SgemmN: 64, Clients: 4, ClientsPerRound: 2, Rounds: 2, Workers: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"sgemm_gflops", "mlp_train_gflops", "mlp_train_fraction_of_sgemm", "round_seconds", "round_overhead_fraction", "allocs_per_step", "nats_cpu_seconds_per_update", "round_nats_cpu_fraction", "fot_round_vs_fedavg"} {
		v, ok := m[k].(float64)
		if !ok {
			t.Errorf("--json lacks %q", k)
			continue
		}
		if k != "allocs_per_step" && !(v > 0) {
			t.Errorf("%s = %v, want > 0", k, v)
		}
	}
	// An allocation in the step would count at least 1 per step. The count
	// is process-wide, so goroutines left by earlier tests in this binary
	// (NATS clients shutting down) can add a few over the 200 steps;
	// `fotsim bench` in a fresh process reports exactly 0.
	if res.AllocsPerStep >= 0.5 {
		t.Errorf("allocs per training step = %v, want 0", res.AllocsPerStep)
	}
	if res.RoundNATSSeconds <= 0 || res.NATSBytesPerS <= 0 {
		t.Errorf("NATS: %v bytes/s, %v s per round: want both > 0", res.NATSBytesPerS, res.RoundNATSSeconds)
	}
	// NATS's CPU per update: more than one copy of the 1.9 MB frame
	// (> 10 us at any memory speed), and no more than every core busy for
	// the wall time one message takes at the measured rate.
	if _, ok := processCPU(); ok {
		perMsgWall := res.RoundNATSSeconds / 2 // ClientsPerRound messages
		if c := res.NATSCPUSecondsPerUpdate; c < 1e-5 || c > 1.2*perMsgWall*float64(runtime.NumCPU()) {
			t.Errorf("NATS CPU per update %v s: want from 1e-5 s to %v (wall per message %v s on %d cores)", c, 1.2*perMsgWall*float64(runtime.NumCPU()), perMsgWall, runtime.NumCPU())
		}
		want := 2 * res.NATSCPUSecondsPerUpdate / (res.RoundSeconds * float64(min(2, runtime.NumCPU())))
		if f := res.RoundNATSCPUFraction; f <= 0 || math.Abs(f-want) > 1e-12 {
			t.Errorf("round NATS CPU fraction %v, want %v (2 updates' CPU over the round's CPU)", f, want)
		}
	}
	if f := res.RoundOverheadFraction; f < 0 || f > 1 {
		t.Errorf("round overhead fraction %v outside [0, 1]", f)
	}
	// The same work on the same data: FOT's rounds cannot take several
	// times FedAvg's.
	if r := res.FOTRoundVsFedAvg; r < 0.25 || r > 4 {
		t.Errorf("FOT round vs FedAvg round %v, want within [0.25, 4]", r)
	}
	if res.FOTRoundSeconds <= 0 || res.GPSERoundSeconds <= 0 {
		t.Errorf("FOT round %v s, GPSE round %v s: want both > 0", res.FOTRoundSeconds, res.GPSERoundSeconds)
	}
}

// A run's timing has a round entry per round, tagged with its task, and
// the evaluation time split by task sums to the total.
func TestTimingSplitsEvalByTask(t *testing.T) {
	sc := load(t, "methods=[fedavg]", "seeds=[0]", "eval.every=2")
	run := sc.Runs()[0]
	var tm server.Timing
	if _, err := NewEnv().Run(context.Background(), sc, run, Options{Timing: &tm}); err != nil {
		t.Fatal(err)
	}
	tasks, rounds := sc.Data.Tasks, sc.Train.RoundsPerTask
	if len(tm.Rounds) != tasks*rounds {
		t.Fatalf("got %d round timings, want %d", len(tm.Rounds), tasks*rounds)
	}
	for i, r := range tm.Rounds {
		if r.Task != i/rounds || r.Round != i {
			t.Errorf("round timing %d: task %d, round %d; want task %d, round %d", i, r.Task, r.Round, i/rounds, i)
		}
	}
	if len(tm.EvalTask) != tasks {
		t.Fatalf("got evaluation times of %d tasks, want %d", len(tm.EvalTask), tasks)
	}
	var sum time.Duration
	for task, d := range tm.EvalTask {
		if d <= 0 {
			t.Errorf("task %d: evaluation time %v, want > 0", task, d)
		}
		sum += d
	}
	if sum != tm.Eval {
		t.Errorf("evaluation times by task sum to %v, want the total %v", sum, tm.Eval)
	}
	if got, want := taskEval(tm, 1), tm.EvalTask[1].Seconds()/float64(rounds); got != want {
		t.Errorf("taskEval(1) = %v, want %v", got, want)
	}
}
