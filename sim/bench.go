package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// BenchConfig sets what Bench measures and for how long.
type BenchConfig struct {
	Duration        time.Duration // per throughput measurement (default 2s)
	SgemmN          int           // size of the square sgemm (default 512)
	Clients         int           // registered clients of the round benchmark (default 125)
	ClientsPerRound int           // default 64, the paper's
	Rounds          int           // rounds per task in the round benchmark (default 6)
	Workers         int           // training goroutines (default: cores)
	SkipRounds      bool          // only the kernel measurements
}

func (c *BenchConfig) fill() {
	if c.Duration <= 0 {
		c.Duration = 2 * time.Second
	}
	if c.SgemmN <= 0 {
		c.SgemmN = 512
	}
	if c.Clients <= 0 {
		c.Clients = 125
	}
	if c.ClientsPerRound <= 0 {
		c.ClientsPerRound = 64
	}
	if c.Rounds <= 0 {
		c.Rounds = 6
	}
	if c.Workers <= 0 {
		c.Workers = runtime.NumCPU()
	}
}

// RoundSplit is the wall-time split of one round, in seconds.
type RoundSplit struct {
	Train       float64 `json:"train_seconds"`       // clients' training (and GPSE/Fisher), wall share
	Messaging   float64 `json:"messaging_seconds"`   // broadcast and collection beyond training
	Aggregation float64 `json:"aggregation_seconds"` // mean, projection, apply, end-of-task work
	Eval        float64 `json:"eval_seconds"`        // evaluation, averaged over the rounds
}

// Total is the round's wall time.
func (s RoundSplit) Total() float64 { return s.Train + s.Messaging + s.Aggregation + s.Eval }

// Overhead is the share of the round not spent training.
func (s RoundSplit) Overhead() float64 {
	if t := s.Total(); t > 0 {
		return (s.Messaging + s.Aggregation + s.Eval) / t
	}
	return 0
}

// BenchResult holds what `fotsim bench` prints; the JSON keys are a public
// contract (added to, never renamed).
type BenchResult struct {
	Backend string `json:"backend"`
	Cores   int    `json:"cores"`
	Workers int    `json:"workers"`

	SgemmN      int     `json:"sgemm_n"`
	SgemmGFLOPS float64 `json:"sgemm_gflops"`

	MLPTrainSamplesPerS float64 `json:"mlp_train_samples_per_s"`
	MLPTrainGFLOPS      float64 `json:"mlp_train_gflops"`
	MLPTrainFraction    float64 `json:"mlp_train_fraction_of_sgemm"`
	AllocsPerStep       float64 `json:"allocs_per_step"`

	CNNTrainSamplesPerS float64 `json:"cnn_train_samples_per_s"`
	CNNTrainGFLOPS      float64 `json:"cnn_train_gflops"`
	CNNTrainFraction    float64 `json:"cnn_train_fraction_of_sgemm"`

	RoundSeconds          float64    `json:"round_seconds"`
	RoundOverheadFraction float64    `json:"round_overhead_fraction"`
	RoundSplit            RoundSplit `json:"round_split"`

	FOTRoundSeconds          float64    `json:"fot_round_seconds"`
	FOTRoundOverheadFraction float64    `json:"fot_round_overhead_fraction"`
	FOTRoundSplit            RoundSplit `json:"fot_round_split"`
	GPSERoundSeconds         float64    `json:"gpse_round_seconds"`
	// FOTRoundVsFedAvg is a FOT round's time over a FedAvg round's, both
	// projected-task rounds of the second task (same data, same process),
	// evaluation left out: FOT's own cost per round. The two runs take
	// turns round by round, and this is the median over the round pairs
	// (pairedRatio).
	FOTRoundVsFedAvg float64 `json:"fot_round_vs_fedavg"`

	NATSBytesPerS float64 `json:"nats_bytes_per_s"`
	// RoundNATSSeconds is how long NATS, measured alone (NATSBytesPerS),
	// takes to move one round's updates (ClientsPerRound paper-MLP update
	// messages). In a round, part of that work runs on a core while the
	// other trains, so it is an estimate of NATS's share of the round, not
	// a part of messaging_seconds.
	RoundNATSSeconds float64 `json:"round_nats_seconds"`
	// NATSCPUSecondsPerUpdate is the CPU time (all cores, user + system)
	// the process spends moving one paper-MLP update through the embedded
	// server as a round does: the client publishing its encoded frame,
	// NATS's copies on both sides, and the server's in-place decode with
	// its NaN/Inf check. 0 where the platform does not report CPU time.
	NATSCPUSecondsPerUpdate float64 `json:"nats_cpu_seconds_per_update"`
	// RoundNATSCPUFraction is a round's updates' NATS CPU time
	// (ClientsPerRound x NATSCPUSecondsPerUpdate) as a share of the CPU
	// time the FedAvg round has (round_seconds on min(workers, cores)
	// cores). When the training workers use every core, NATS's work takes
	// that share of the CPU from them: rounds are that much longer than
	// their training alone, however fotsim's own parts shrink. Updates
	// are published off the workers (package client), so while NATS
	// copies them the workers train slower and round_overhead_fraction
	// counts that time as training: it can read below this share.
	RoundNATSCPUFraction float64 `json:"round_nats_cpu_fraction"`

	// CPU identifies the processor (vendor, model, cache sizes), and
	// GemmTuning is the simd backend's blocking on it, with where it came
	// from (the per-machine cache or a measurement at start-up). Set for
	// every backend; only simd uses the tuning.
	CPU        gemm.CPU    `json:"cpu"`
	GemmTuning gemm.Tuning `json:"gemm_tuning"`
}

// PaperMLP is the FOT paper's Permuted-MNIST network.
var PaperMLP = nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 28, W: 28}, Hidden: []int{400, 400, 400},
	Dropout: []float64{0.2, 0.5, 0.5}, Classes: 10, Heads: 1}

// SmallCNN is the conv net of the CNN scenarios: two conv 5x5 + ReLU +
// max-pool 2 blocks (32 and 64 channels), a 256 hidden layer, 10 classes.
var SmallCNN = nn.Spec{Arch: "cnn", In: nn.Shape{C: 1, H: 28, W: 28},
	Conv:   []nn.ConvSpec{{Out: 32, Kernel: 5, Pool: 2}, {Out: 64, Kernel: 5, Pool: 2}},
	Hidden: []int{256}, Dropout: []float64{0}, Classes: 10, Heads: 1}

// Bench measures this machine with the active matrix backend: the sgemm
// rate, training throughput of the paper MLP and the small CNN at batch 64,
// the time split of FedAvg and FOT rounds at the paper's scale (on
// generated data of MNIST's shape), and NATS throughput.
func Bench(ctx context.Context, cfg BenchConfig) (*BenchResult, error) {
	cfg.fill()
	be := nn.ActiveBackend()
	res := &BenchResult{Backend: be.Name(), Cores: runtime.NumCPU(), Workers: cfg.Workers, SgemmN: cfg.SgemmN,
		CPU: gemm.CPUInfo(), GemmTuning: gemm.SIMDTuning()}
	res.SgemmGFLOPS = gemm.Measure(be, cfg.SgemmN, cfg.Duration)

	var err error
	if res.MLPTrainSamplesPerS, res.MLPTrainGFLOPS, res.AllocsPerStep, err = trainThroughput(PaperMLP, 64, cfg.Duration); err != nil {
		return nil, err
	}
	if res.CNNTrainSamplesPerS, res.CNNTrainGFLOPS, _, err = trainThroughput(SmallCNN, 64, cfg.Duration); err != nil {
		return nil, err
	}
	if res.SgemmGFLOPS > 0 {
		res.MLPTrainFraction = res.MLPTrainGFLOPS / res.SgemmGFLOPS
		res.CNNTrainFraction = res.CNNTrainGFLOPS / res.SgemmGFLOPS
	}
	var msgBytes int
	if res.NATSBytesPerS, msgBytes, res.NATSCPUSecondsPerUpdate, err = natsThroughput(cfg.Duration); err != nil {
		return nil, err
	}
	res.RoundNATSSeconds = float64(cfg.ClientsPerRound*msgBytes) / res.NATSBytesPerS
	if cfg.SkipRounds {
		return res, nil
	}
	// FedAvg and FOT run side by side, taking turns round by round, so
	// that their comparison does not depend on when each ran.
	ts, err := roundTimings(ctx, cfg, []string{"fedavg", "fot"}, 2)
	if err != nil {
		return nil, err
	}
	fedavg, fot := ts[0], ts[1]
	// With 3 or more rounds per task, a task's first round is left out of
	// the averages (warm-up: workers and their buffers are made then), as
	// are, for FOT, the GPSE rounds, reported apart.
	warm := func(r server.RoundTiming) bool { return cfg.Rounds < 3 || r.Round%cfg.Rounds != 0 }
	// The FedAvg round: the first task's rounds, with the evaluation at
	// its end spread over them.
	res.RoundSplit = SplitOf(fedavg, cfg.Workers, func(r server.RoundTiming) bool { return r.Task == 0 && warm(r) })
	res.RoundSplit.Eval = taskEval(fedavg, 0)
	res.RoundSeconds, res.RoundOverheadFraction = res.RoundSplit.Total(), res.RoundSplit.Overhead()
	if res.RoundSeconds > 0 {
		cores := float64(min(cfg.Workers, res.Cores))
		res.RoundNATSCPUFraction = float64(cfg.ClientsPerRound) * res.NATSCPUSecondsPerUpdate / (res.RoundSeconds * cores)
	}
	// A FOT round proper: a projected round of a later task.
	res.FOTRoundSplit = SplitOf(fot, cfg.Workers, func(r server.RoundTiming) bool { return r.Task > 0 && !r.Last && warm(r) })
	res.FOTRoundSeconds, res.FOTRoundOverheadFraction = res.FOTRoundSplit.Total(), res.FOTRoundSplit.Overhead()
	res.GPSERoundSeconds = SplitOf(fot, cfg.Workers, func(r server.RoundTiming) bool { return r.Last }).Total()
	// FOT against FedAvg on the same (second) task's rounds, evaluation
	// left out (it is the same for both).
	res.FOTRoundVsFedAvg = pairedRatio(fedavg, fot, func(r server.RoundTiming) bool { return r.Task > 0 && !r.Last && warm(r) })
	return res, nil
}

// pairedRatio is the median, over the rounds keep selects, of b's round
// time over a's same round (broadcast, collection and aggregation). Runs
// taking turns (roundTimings) ran each such pair back to back, so a pair
// saw one state of the machine, and the median leaves out the pairs a
// passing spike hit. 0 without rounds.
func pairedRatio(a, b server.Timing, keep func(server.RoundTiming) bool) float64 {
	var q []float64
	for i, x := range a.Rounds {
		if i >= len(b.Rounds) || !keep(x) {
			continue
		}
		y := b.Rounds[i]
		if d := x.Broadcast + x.Collect + x.Aggregate; d > 0 {
			q = append(q, (y.Broadcast+y.Collect+y.Aggregate).Seconds()/d.Seconds())
		}
	}
	if len(q) == 0 {
		return 0
	}
	slices.Sort(q)
	return (q[(len(q)-1)/2] + q[len(q)/2]) / 2
}

// trainThroughput times LossGrad + SGD.Step on random data at the given
// batch for at least dur, and counts the allocations per step.
func trainThroughput(spec nn.Spec, batch int, dur time.Duration) (samplesPerS, gflops, allocs float64, err error) {
	m, err := nn.Build(spec)
	if err != nil {
		return 0, 0, 0, err
	}
	r := rand.New(rand.NewPCG(1, 2))
	params := make([]float32, m.NumParams())
	grad := make([]float32, m.NumParams())
	m.Init(params, r)
	x := make([]float32, batch*m.InputSize())
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	y := make([]int32, batch)
	for i := range y {
		y[i] = int32(r.IntN(spec.Classes))
	}
	ws := m.NewWorkspace(batch)
	opt := nn.SGD{LR: 1e-4}
	drop := rand.NewPCG(3, 4) // the dropout stream, a *rand.PCG as in training
	step := func() {
		ws.LossGrad(params, grad, x, y, batch, 0, drop)
		opt.Step(params, grad, nil)
	}
	step()
	// Count with one P, as testing.AllocsPerRun does, so that the
	// runtime's own goroutines do not add to the step's count.
	prev := runtime.GOMAXPROCS(1)
	step() // warm-up: a new P count makes the runtime reallocate per-P state
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const allocSteps = 200
	for i := 0; i < allocSteps; i++ {
		step()
	}
	runtime.ReadMemStats(&after)
	allocs = float64(after.Mallocs-before.Mallocs) / allocSteps
	runtime.GOMAXPROCS(prev)
	steps := 0
	start := time.Now()
	for time.Since(start) < dur {
		step()
		steps++
	}
	sec := time.Since(start).Seconds()
	return float64(steps*batch) / sec, m.TrainFLOPs(batch) * float64(steps) / sec / 1e9, allocs, nil
}

// natsThroughput publishes paper-MLP update frames through an embedded
// in-process server for at least dur, as a round's clients do (one
// encoded frame, PublishFrame) to a subscriber that decodes them as the
// server does, and returns the delivered bytes/s, the size of one message
// and the process's CPU seconds per message (0 where unknown).
func natsThroughput(dur time.Duration) (bytesPerS float64, msgBytes int, cpuPerMsg float64, err error) {
	o := transport.DefaultEmbeddedOptions()
	o.Host, o.InProcess = "", true // as fotsim run's own server
	emb, err := transport.StartEmbeddedWith(o)
	if err != nil {
		return 0, 0, 0, err
	}
	defer emb.Shutdown()
	pub, err := emb.Connect("bench-pub")
	if err != nil {
		return 0, 0, 0, err
	}
	defer pub.Close()
	sub, err := emb.Connect("bench-sub")
	if err != nil {
		return 0, 0, 0, err
	}
	defer sub.Close()
	subj := transport.SubjectsFor("bench").Update
	var (
		mu       sync.Mutex
		received int
		bytes    int64
	)
	got := make(chan struct{}, 1)
	unsub, err := sub.Subscribe(subj, func(m *transport.Message, err error) {
		if err != nil {
			return
		}
		mu.Lock()
		received++
		bytes += int64(m.EncodedLen())
		mu.Unlock()
		select {
		case got <- struct{}{}:
		default:
		}
	})
	if err != nil {
		return 0, 0, 0, err
	}
	defer unsub()
	if err := sub.Flush(); err != nil {
		return 0, 0, 0, err
	}
	p := make([]float32, 478410)
	msg := &transport.Message{Kind: transport.KindUpdate, Tensors: []transport.Tensor{{Name: "delta", Rows: 1, Cols: len(p), Data: p}}}
	var frame transport.Frame
	if err := frame.Encode(msg); err != nil {
		return 0, 0, 0, err
	}
	wait := func(n int) error {
		for {
			mu.Lock()
			done := received >= n
			mu.Unlock()
			if done {
				return nil
			}
			select {
			case <-got:
			case <-time.After(10 * time.Second):
				return fmt.Errorf("sim: bench: %d of %d NATS messages arrived", received, n)
			}
		}
	}
	sent := 0
	send := func() error {
		if _, err := pub.PublishFrame(subj, &frame); err != nil {
			return err
		}
		sent++
		return nil
	}
	for range 10 { // warm-up: buffers grow to the message size
		if err := send(); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := wait(sent); err != nil {
		return 0, 0, 0, err
	}
	mu.Lock()
	warm, bytes := sent, int64(0)
	mu.Unlock()
	cpu0, cpuOK := processCPU()
	start := time.Now()
	for time.Since(start) < dur {
		if err := send(); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := pub.Flush(); err != nil {
		return 0, 0, 0, err
	}
	if err := wait(sent); err != nil {
		return 0, 0, 0, err
	}
	sec := time.Since(start).Seconds()
	if cpu1, ok := processCPU(); ok && cpuOK {
		cpuPerMsg = (cpu1 - cpu0).Seconds() / float64(sent-warm)
	}
	mu.Lock()
	defer mu.Unlock()
	return float64(bytes) / sec, msg.EncodedLen(), cpuPerMsg, nil
}

// roundTimings runs the round benchmark for each method, the runs taking
// turns round by round (Turns), so that a slow spell of a shared or
// throttled machine falls on all of them alike.
func roundTimings(ctx context.Context, cfg BenchConfig, methods []string, tasks int) ([]server.Timing, error) {
	env := NewEnv() // one copy of the generated data for every run
	turns := NewTurns(len(methods))
	out := make([]server.Timing, len(methods))
	errs := make([]error, len(methods))
	var wg sync.WaitGroup
	for i, m := range methods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = roundTiming(ctx, env, cfg, m, tasks, Options{Timing: &out[i], Turns: turns, Turn: i})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", methods[i], err)
		}
	}
	return out, nil
}

// roundTiming runs the paper-shaped round benchmark for one method with
// opts (its Timing receives the split): 480 generated training samples
// per client (the paper's 60,000 over 125).
func roundTiming(ctx context.Context, env *Env, cfg BenchConfig, method string, tasks int, opts Options) error {
	y := fmt.Sprintf(`name: bench
methods: [%s]
data: {dataset: synthetic, stream: permuted, tasks: %d, synthetic: {train: %d, test: 10000, classes: 10, dim: 784, noise: 1}}
partition: {clients: %d, scheme: iid}
model: {arch: mlp, hidden: [400, 400, 400], dropout: [0.2, 0.5, 0.5]}
train: {rounds_per_task: %d, clients_per_round: %d, batch_size: 64, lr: 0.01, weight_decay: 0.00001, workers: %d}
eval: {every: 0}
`, method, tasks, 480*cfg.Clients, cfg.Clients, cfg.Rounds, cfg.ClientsPerRound, cfg.Workers)
	sc, err := scenarios.Parse([]byte(y), "bench", nil)
	if err != nil {
		return err
	}
	_, err = env.Run(ctx, sc, sc.Runs()[0], opts)
	return err
}

// taskEval is the evaluation time after task's rounds, spread over them.
func taskEval(t server.Timing, task int) float64 {
	n := 0
	for _, r := range t.Rounds {
		if r.Task == task {
			n++
		}
	}
	if n == 0 || task >= len(t.EvalTask) {
		return 0
	}
	return t.EvalTask[task].Seconds() / float64(n)
}

// SplitOf averages the split of the rounds that keep selects, for hosts
// training with the given number of workers; evaluation time is spread over
// all rounds.
func SplitOf(t server.Timing, workers int, keep func(server.RoundTiming) bool) RoundSplit {
	var s RoundSplit
	n := 0
	for _, r := range t.Rounds {
		if !keep(r) {
			continue
		}
		n++
		train := r.ClientTrain.Seconds() / float64(workers)
		wire := (r.Broadcast + r.Collect).Seconds()
		s.Train += min(train, wire)
		s.Messaging += max(wire-train, 0)
		s.Aggregation += r.Aggregate.Seconds()
	}
	if n == 0 {
		return RoundSplit{}
	}
	s.Train /= float64(n)
	s.Messaging /= float64(n)
	s.Aggregation /= float64(n)
	if len(t.Rounds) > 0 {
		s.Eval = t.Eval.Seconds() / float64(len(t.Rounds))
	}
	return s
}
