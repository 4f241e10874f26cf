package sim

import (
	"context"
	"encoding/json"
	"math"
	"runtime"
	"testing"
	"time"
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
	for _, k := range []string{"sgemm_gflops", "mlp_train_gflops", "mlp_train_fraction_of_sgemm", "round_seconds", "round_overhead_fraction", "allocs_per_step", "nats_cpu_seconds_per_update", "round_nats_cpu_fraction"} {
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
	if res.FOTRoundSeconds <= 0 || res.GPSERoundSeconds <= 0 {
		t.Errorf("FOT round %v s, GPSE round %v s: want both > 0", res.FOTRoundSeconds, res.GPSERoundSeconds)
	}
}
