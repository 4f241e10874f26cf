package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/sim"
)

const benchUsage = `Usage: fotsim bench [flags]

Measures this machine with the chosen matrix backend: the sgemm rate,
training throughput of the paper MLP (784-400-400-400-10) and the small CNN
at batch 64 (samples/s, GFLOP/s, share of the sgemm rate, allocations per
step), NATS throughput, and the time split of a FedAvg round and a FOT round
with 64 of 125 clients on generated data of MNIST's shape. Prints a table,
or with --json the same numbers as JSON.

The simd backend's cache blocking is tuned once per machine (CPU model and
caches) at its first use and cached in the user's cache directory
(~/.cache/fotsim/gemm-*.json on Linux); --retune measures it again. The
blocking changes no result. FOTSIM_GEMM_TUNE=off uses the built-in
blocking, FOTSIM_GEMM_TUNE=retune retunes in every command.

Flags:
`

func cmdBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchUsage, stderr)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	backend := fs.String("backend", "", "matrix backend: "+fmt.Sprint(gemm.Names())+" (default: fastest available)")
	dur := fs.Duration("time", 2*time.Second, "duration of each throughput measurement")
	rounds := fs.Int("rounds", 6, "rounds per task of the round benchmark (a task's first round is left out of the averages)")
	workers := fs.Int("workers", 0, "training goroutines (0 = one per core)")
	kernels := fs.Bool("kernels", false, "measure the kernels only, not the rounds")
	retune := fs.Bool("retune", false, "tune the simd backend's blocking for this machine again (and update its cache) before measuring")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("bench takes no arguments")
	}
	if err := selectBackend(*backend); err != nil {
		return err
	}
	if *retune {
		gemm.Retune()
	}
	res, err := sim.Bench(ctx, sim.BenchConfig{Duration: *dur, Rounds: *rounds, Workers: *workers, SkipRounds: *kernels})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	t := results.NewTable(stdout)
	t.Header("measure", "value")
	pct := func(f float64) string { return fmt.Sprintf("%.0f%%", 100*f) }
	rows := [][]string{
		{"backend", fmt.Sprintf("%s (%d cores, %d workers)", res.Backend, res.Cores, res.Workers)},
		{"CPU", res.CPU.String()},
		{"simd blocking", tuningString(res.GemmTuning)},
		{fmt.Sprintf("sgemm %d^3, one thread", res.SgemmN), fmt.Sprintf("%.1f GFLOP/s", res.SgemmGFLOPS)},
		{"paper MLP train step, batch 64", fmt.Sprintf("%.0f samples/s, %.1f GFLOP/s, %s of sgemm, %.1f allocs/step",
			res.MLPTrainSamplesPerS, res.MLPTrainGFLOPS, pct(res.MLPTrainFraction), res.AllocsPerStep)},
		{"small CNN train step, batch 64", fmt.Sprintf("%.0f samples/s, %.1f GFLOP/s, %s of sgemm",
			res.CNNTrainSamplesPerS, res.CNNTrainGFLOPS, pct(res.CNNTrainFraction))},
		{"NATS (embedded, 1.9 MB messages)", fmt.Sprintf("%.0f MB/s", res.NATSBytesPerS/1e6)},
	}
	split := func(name string, s sim.RoundSplit) []string {
		return []string{name, fmt.Sprintf("%.2fs: train %.2fs, messaging %.3fs, aggregation+projection %.3fs, eval %.3fs; overhead %s",
			s.Total(), s.Train, s.Messaging, s.Aggregation, s.Eval, pct(s.Overhead()))}
	}
	if res.RoundSeconds > 0 {
		rows = append(rows,
			split("FedAvg round, 64 of 125 clients", res.RoundSplit),
			[]string{"NATS alone, one round's updates", fmt.Sprintf("%.3fs at the NATS rate above (%s of the FedAvg round)",
				res.RoundNATSSeconds, pct(res.RoundNATSSeconds/res.RoundSeconds))},
			[]string{"NATS CPU, one round's updates", natsCPUString(res)},
			split("FOT round (projected)", res.FOTRoundSplit),
			[]string{"FOT vs FedAvg, same task", fmt.Sprintf("%.2fx a FedAvg round's time (median over the second task's rounds, the runs taking turns; evaluation left out)", res.FOTRoundVsFedAvg)},
			[]string{"FOT task-end round (GPSE)", fmt.Sprintf("%.2fs", res.GPSERoundSeconds)})
	}
	for _, r := range rows {
		if err := t.Append(r); err != nil {
			return err
		}
	}
	return t.Render()
}

// natsCPUString describes NATS's CPU time per update and its share of a
// FedAvg round's CPU: the floor under the round overhead when the workers
// use every core.
func natsCPUString(res *sim.BenchResult) string {
	if res.NATSCPUSecondsPerUpdate == 0 {
		return "not measured (no CPU time on this platform)"
	}
	return fmt.Sprintf("%.2f ms per update, %.1f%% of the FedAvg round's CPU (with workers on every core, taken from training: a floor under the round's real overhead, which the overhead above may count as training)",
		1000*res.NATSCPUSecondsPerUpdate, 100*res.RoundNATSCPUFraction)
}

// tuningString describes the simd backend's tuning in one line.
func tuningString(t gemm.Tuning) string {
	s := fmt.Sprintf("%s for %s", t.Blocking, t.Level)
	switch t.Source {
	case "cache":
		s += ", tuned " + t.TunedAt.Format("2006-01-02") + ", cached in " + t.CachePath
	case "tuned":
		s += fmt.Sprintf(", tuned now (%d candidates)", len(t.Trials))
		if t.CacheError != "" {
			s += ", not cached: " + t.CacheError
		} else {
			s += ", cached in " + t.CachePath
		}
	default:
		s += ", built-in (" + gemm.TuneEnv + "=off, or nothing to tune)"
	}
	return s
}
