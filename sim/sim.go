package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// ErrMethod is returned for a method the simulator cannot run.
var ErrMethod = errors.New("sim: unsupported method")

// Options are the per-run choices that are not part of the scenario.
type Options struct {
	// Out is the run-record folder; "" writes nothing.
	Out string
	// Progress receives one line per finished task; nil is silent.
	Progress io.Writer
	// Log receives rejected-message lines; nil is silent.
	Log io.Writer
	// Timing, when non-nil, receives the server's time split of the rounds.
	Timing *server.Timing
	// Keys, when set, is the run's secret (package auth): the server and
	// the client hosts sign their messages with keys derived from it and
	// check each other's. nil: Execute draws a fresh secret for a run whose
	// client hosts are in this process.
	Keys *auth.Keys
	// OnRound, when set, is called after every round of the run (see
	// server.Config.OnRound).
	OnRound func(scenarios.Run, server.RoundReport)
	// Live, when true, publishes every round's Metrics as a JSON document
	// on the run's transport.Subjects.Metrics, with the server's
	// connection (see live.go).
	Live bool
	// LiveSink, when set, receives every round's Metrics document (the
	// same JSON bytes), in process: how `fotsim run --live` feeds its live
	// view whatever the transport. It is called from a goroutine of its
	// own, in round order, never from the round loop.
	LiveSink func(doc []byte)
	// Remote, when set, makes Execute run the server side only: it
	// announces the run on the scenario's external NATS server
	// (transport.nats) and waits for client hosts in other processes
	// (Env.ServeClients) to cover every client id (see Remote).
	Remote *Remote
	// Checkpoint, when true and Out is set, writes the run's Checkpoint to
	// Out after every round (CheckpointFile; after very short rounds only
	// every few, see checkpointShare), and removes it once the record is
	// written. A run over remote client hosts writes none.
	Checkpoint bool
	// CheckpointEveryRound writes a checkpoint after every round however
	// short.
	CheckpointEveryRound bool
	// Resume, when non-nil, continues the run from this checkpoint
	// (ReadCheckpoint; its ScenarioAndRun are the scenario and run to
	// give): the rounds after it run as they would have in the process
	// that wrote it, and the record is the same.
	Resume *Checkpoint
	// Turns, when set, makes the run take turns round by round with the
	// other runs given the same Turns, as their run number Turn (see
	// Turns).
	Turns *Turns
	Turn  int
	// saved, when set, is called after each checkpoint is written (tests).
	saved func(dir string)
}

// Env holds what the runs of one process share: loaded datasets.
type Env struct {
	mu    sync.Mutex
	cache map[string][2]*data.Dataset
}

// NewEnv returns an empty environment.
func NewEnv() *Env { return &Env{cache: map[string][2]*data.Dataset{}} }

// datasets loads (once) the train and test sets the scenario names.
func (e *Env) datasets(d scenarios.Data, seed int64) (train, test *data.Dataset, err error) {
	mean, std := d.Norm()
	norm := data.Norm{Mean: mean, Std: std}
	key := fmt.Sprintf("%s|%s|%v|%v", d.Dataset, d.Dir, mean, std)
	if d.Dataset == "synthetic" {
		key = fmt.Sprintf("synthetic|%+v|%d", d.Synthetic, seed)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if p, ok := e.cache[key]; ok {
		return p[0], p[1], nil
	}
	switch d.Dataset {
	case "mnist":
		train, test, err = data.LoadMNIST(d.Dir, norm)
	case "fashion":
		train, test, err = data.LoadFashionMNIST(d.Dir, norm)
	case "synthetic":
		side := 1
		for side*side < d.Synthetic.Dim {
			side++
		}
		cfg := data.SyntheticConfig{
			Train: d.Synthetic.Train, Test: d.Synthetic.Test, Classes: d.Synthetic.Classes,
			Noise: d.Synthetic.Noise, Shape: [3]int{1, 1, d.Synthetic.Dim},
		}
		if side*side == d.Synthetic.Dim {
			cfg.Shape = [3]int{1, side, side}
		}
		train, test = data.Synthetic(cfg, uint64(seed))
	default:
		return nil, nil, fmt.Errorf("sim: unknown dataset %q", d.Dataset)
	}
	if err != nil {
		return nil, nil, err
	}
	e.cache[key] = [2]*data.Dataset{train, test}
	return train, test, nil
}

// Experiment is a built, ready-to-run experiment.
type Experiment struct {
	Scenario *scenarios.Scenario
	Run      scenarios.Run
	Tasks    []data.Task
	Parts    [][][]int32 // [task][client] rows of the task's training view
	Model    *nn.Model
	Params   []float32
	// Final is the global model at the end of the last Execute (Params is
	// left as built).
	Final []float32
	// Spec is the registry's description of the run's method.
	Spec  methods.Spec
	heads []int
	ft    *fineTune // pretraining and DP-SGD settings, made once (fineTune)
	// waited is how long Execute waited for remote client hosts: not part
	// of the run's wall time.
	waited time.Duration
	// wall, when set (Env.Run), returns the run's wall time so far in
	// seconds, with the time before a checkpoint the run resumed from.
	wall func() float64
	// checkpoint, when set, is the server's Config.Checkpoint (Execute).
	checkpoint func(*server.State) error
}

// Shard implements client.Shards: the client's rows of the task, or, for
// a method with JointData (central-joint), of every task so far.
func (x *Experiment) Shard(task, c int) []client.Segment {
	first := task
	if x.Spec.JointData {
		first = 0
	}
	segs := make([]client.Segment, 0, task-first+1)
	for t := first; t <= task; t++ {
		segs = append(segs, client.Segment{View: x.Tasks[t].Train, Rows: x.Parts[t][c], Head: x.heads[t]})
	}
	return segs
}

// population returns the number of clients and the clients per round of a
// run: the scenario's, or 1 and 1 for a centralised reference.
func population(sc *scenarios.Scenario, spec methods.Spec) (clients, perRound int) {
	if spec.Central {
		return 1, 1
	}
	return sc.Partition.Clients, sc.Train.ClientsPerRound
}

// Build prepares the data, partitions, model and initial parameters of one
// run. Everything random is drawn from streams of the run's seed.
func (e *Env) Build(sc *scenarios.Scenario, run scenarios.Run) (*Experiment, error) {
	method, ok := methods.Lookup(run.Method.Name)
	if !ok {
		return nil, fmt.Errorf("%w %q", ErrMethod, run.Method.Name)
	}
	seed := uint64(run.Seed)
	d := sc.Data
	train, test, err := e.datasets(d, run.Seed)
	if err != nil {
		return nil, err
	}
	tasks, err := data.BuildStream(train, test, data.StreamConfig{
		Kind: d.Stream, Tasks: d.Tasks, Angles: d.Angles, ClassesPerTask: d.ClassesPerTask, Mode: d.Mode,
	}, seed)
	if err != nil {
		return nil, fmt.Errorf("sim: data stream: %w", err)
	}
	for i := range tasks {
		tasks[i].Train = limit(tasks[i].Train, d.TrainLimit)
		tasks[i].Test = limit(tasks[i].Test, d.TestLimit)
	}
	x := &Experiment{Scenario: sc, Run: run, Tasks: tasks, Spec: method.Info()}
	perTask := sc.Heads() > 1
	pcfg := data.PartitionConfig{Scheme: sc.Partition.Scheme, Alpha: sc.Partition.Alpha, ShardsPerClient: sc.Partition.ShardsPerClient}
	clients, _ := population(sc, x.Spec)
	for i, t := range tasks {
		parts, err := data.Partition(t.Train, clients, pcfg, rng.New(seed, "partition", i))
		if err != nil {
			return nil, fmt.Errorf("sim: partition of task %d: %w", i, err)
		}
		x.Parts = append(x.Parts, parts)
		h := 0
		if perTask {
			h = i
		}
		x.heads = append(x.heads, h)
	}
	spec := modelSpec(sc, train, x.Spec.LoRA != "")
	if x.Model, err = nn.Build(spec); err != nil {
		return nil, fmt.Errorf("sim: model: %w", err)
	}
	x.Params = make([]float32, x.Model.NumParams())
	x.Model.Init(x.Params, rng.New(seed, "init"))
	return x, nil
}

// limit keeps the first n rows of v (n <= 0: all rows), as data.train_limit
// and data.test_limit document.
func limit(v data.View, n int) data.View {
	if n <= 0 || n >= v.Len() {
		return v
	}
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(v.Row(i))
	}
	v.Idx = idx
	return v
}

// modelSpec is the network of the scenario; with lora (a LoRA method) it
// has model.lora's adapters, else the base model alone (its parameters are
// the same, Init drawing the base first).
func modelSpec(sc *scenarios.Scenario, train *data.Dataset, lora bool) nn.Spec {
	m := sc.Model
	classes := sc.Data.Classes()
	if sc.Data.Stream == data.KindSplit && sc.Data.Mode == data.ModeTask {
		classes = sc.Data.ClassesPerTask
	}
	spec := nn.Spec{
		Arch:    m.Arch,
		In:      nn.Shape{C: train.Shape[0], H: train.Shape[1], W: train.Shape[2]},
		Hidden:  m.Hidden,
		Dropout: m.Dropout,
		Classes: classes,
		Heads:   sc.Heads(),
	}
	for _, c := range m.Conv {
		spec.Conv = append(spec.Conv, nn.ConvSpec{Out: c.Out, Kernel: c.Kernel, Stride: c.Stride, Pad: c.Pad, Pool: c.Pool})
	}
	if l := m.LoRA; l != nil && lora {
		spec.LoRA = &nn.LoRASpec{Rank: l.Rank, Alpha: l.Alpha, Layers: l.Layers}
	}
	return spec
}

// Run builds and runs one experiment and, when opts.Out is set, writes its
// run record there.
func (e *Env) Run(ctx context.Context, sc *scenarios.Scenario, run scenarios.Run, opts Options) (*results.Record, error) {
	if t := opts.Turns; t != nil {
		if !t.wait(ctx, opts.Turn) {
			t.leave(opts.Turn)
			return nil, ctx.Err()
		}
		defer t.leave(opts.Turn)
	}
	start := time.Now()
	x, err := e.Build(sc, run)
	if err != nil {
		return nil, err
	}
	var before float64 // wall time before the checkpoint resumed from
	if opts.Resume != nil {
		before = opts.Resume.Wall
	}
	var others time.Duration // waiting for the other runs' turns
	if t := opts.Turns; t != nil {
		onRound := opts.OnRound
		opts.OnRound = func(run scenarios.Run, r server.RoundReport) {
			if onRound != nil {
				onRound(run, r)
			}
			w := time.Now()
			t.pass(opts.Turn)
			t.wait(ctx, opts.Turn) // a cancelled ctx ends the run at its next step
			others += time.Since(w)
		}
	}
	x.wall = func() float64 { return before + (time.Since(start) - x.waited - others).Seconds() }
	rec, err := x.Execute(ctx, opts)
	if err != nil {
		return nil, err
	}
	rec.WallSeconds = x.wall()
	if opts.Out != "" {
		resolved, err := sc.Resolved()
		if err != nil {
			return nil, err
		}
		if err := results.Write(opts.Out, rec, resolved); err != nil {
			return nil, fmt.Errorf("sim: write run record: %w", err)
		}
		if err := removeCheckpoint(opts.Out); err != nil {
			return nil, err
		}
	}
	return rec, nil
}

// Execute runs a built experiment over the scenario's transport and returns
// its record (without wall time): the server and one client host for every
// client in this process. With opts.Remote, only the server side runs here
// and client hosts in other processes (Env.ServeClients) train the clients
// (see remote.go).
func (x *Experiment) Execute(ctx context.Context, opts Options) (*results.Record, error) {
	if opts.Remote != nil {
		if opts.Resume != nil {
			return nil, fmt.Errorf("%w: a run over client hosts in other processes cannot resume (their clients' state is theirs); resume runs with in-process clients", ErrCheckpoint)
		}
		return x.executeRemote(ctx, opts)
	}
	sc := x.Scenario
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	srvConn, hostConn, closeAll, err := connect(sc.Transport.NATS, sc.Transport.DialTimeout())
	if err != nil {
		return nil, err
	}
	defer closeAll()
	ctx, unwatch := watchConns(ctx, srvConn, hostConn)
	defer unwatch()
	id := runID(sc, x.Run)
	logf := logger(opts.Log)
	clients, _ := population(sc, x.Spec)
	hcfg, err := x.hostConfig(transport.SubjectsFor(id), 0, clients, max(sc.Train.Workers, 1), logf)
	if err != nil {
		return nil, err
	}
	// Messages are signed wherever another process could publish on the
	// run's subjects: over an external NATS server. The embedded one is
	// in process only, so there the checks suffice and signing (about
	// 2.5 ms of hashing per paper-size update) is skipped.
	if opts.Keys == nil && !embedded(sc.Transport.NATS) {
		if opts.Keys, err = auth.NewKeys(); err != nil {
			return nil, err
		}
	}
	x.guardHost(&hcfg, id, opts.Keys)
	host, err := client.NewHost(hcfg, x.Model, x, hostConn)
	if err != nil {
		return nil, err
	}
	// The client hosts' refusals so far, with those before a checkpoint.
	rejected := func() map[string]int {
		r := host.Rejected()
		if opts.Resume != nil {
			for k, n := range opts.Resume.HostRejected {
				if r == nil {
					r = map[string]int{}
				}
				r[k] += n
			}
		}
		return r
	}
	if r := opts.Resume; r != nil {
		if err := loadHost(r, hcfg.Behaviour); err != nil {
			return nil, err
		}
		if st := r.Server; st.BaseSent && !st.BaseDirty {
			host.KeepBase(st.Params, st.BaseVersion)
		}
	}
	if opts.Checkpoint && opts.Out != "" {
		wall := x.wall
		if wall == nil { // Execute without Env.Run: the time since now
			start := time.Now()
			wall = func() float64 { return time.Since(start).Seconds() }
		}
		k, err := x.newCheckpointer(opts.Out, hcfg.Behaviour, rejected, wall)
		if err != nil {
			return nil, err
		}
		k.every, k.saved = opts.CheckpointEveryRound, opts.saved
		x.checkpoint = k.save
	}
	if err := host.Start(ctx); err != nil {
		return nil, err
	}
	// A host that fails (a client's update cannot be published, e.g. its
	// training diverged to NaN) ends the run with its error instead of
	// leaving the server waiting for updates that never come.
	hostDone := make(chan error, 1)
	go func() {
		err := host.Wait()
		if err != nil {
			cancel()
		}
		hostDone <- err
	}()
	rec, err := x.serve(ctx, id, srvConn, opts, logf)
	if err != nil {
		cancel()
		if herr := <-hostDone; herr != nil && !errors.Is(herr, context.Canceled) {
			return nil, connErr(ctx, fmt.Errorf("sim: client host: %w", herr))
		}
		return nil, connErr(ctx, err)
	}
	if err := <-hostDone; err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("sim: client host: %w", err)
	}
	noteRejected(rec, rejected())
	return rec, nil
}

// trainConfig is the clients' local training recipe.
func (x *Experiment) trainConfig() client.Config {
	sc := x.Scenario
	return client.Config{
		Seed:      uint64(x.Run.Seed),
		Epochs:    sc.Train.LocalEpochs,
		BatchSize: sc.Train.BatchSize,
		SGD:       nn.SGD{LR: float32(sc.Train.LR), WeightDecay: float32(sc.Train.WeightDecay), Momentum: float32(sc.Train.Momentum)},
		Steps:     sc.Train.LocalSteps,
	}
}

// hostConfig is the client side of the run (subjects) for the clients
// [first, last) on workers goroutines: the training recipe, the method's
// Behaviour, pretraining and DP-SGD. Every host of a run, in this process
// or another, is configured by it.
func (x *Experiment) hostConfig(subjects transport.Subjects, first, last, workers int, logf func(string, ...any)) (client.HostConfig, error) {
	weighting, err := aggregator.ParseWeighting(x.Scenario.Train.Weighting)
	if err != nil {
		return client.HostConfig{}, err
	}
	behaviour, err := x.clientMethod(weighting)
	if err != nil {
		return client.HostConfig{}, err
	}
	ft, err := x.fineTune()
	if err != nil {
		return client.HostConfig{}, err
	}
	return client.HostConfig{
		Subjects: subjects, First: first, Last: last,
		Workers: workers, Train: x.trainConfig(), Logf: logf,
		Behaviour: behaviour, LoRA: x.Spec.LoRA,
		PretrainLR: ft.pretrainLR, DP: ft.clientDP,
		SecAgg: x.secAgg(),
	}, nil
}

// secAgg is the run's secure aggregation (scenario secagg:), nil without;
// the centralised references, with one learner, ignore it.
func (x *Experiment) secAgg() *protocol.SecAgg {
	if x.Spec.Central {
		return nil
	}
	return x.Scenario.SecAgg.Protocol()
}

// serverConfig is the server side of the run (subjects): the round loop's
// recipe with the method's Rule, pretraining, DP accounting and opts'
// progress callbacks.
func (x *Experiment) serverConfig(subjects transport.Subjects, opts Options, logf func(string, ...any)) (server.Config, error) {
	sc, run := x.Scenario, x.Run
	clients, perRound := population(sc, x.Spec)
	weighting, err := aggregator.ParseWeighting(sc.Train.Weighting)
	if err != nil {
		return server.Config{}, err
	}
	rule, err := x.serverMethod(weighting)
	if err != nil {
		return server.Config{}, err
	}
	ft, err := x.fineTune()
	if err != nil {
		return server.Config{}, err
	}
	scfg := server.Config{
		Subjects: subjects, Seed: uint64(run.Seed),
		Tasks: len(x.Tasks), RoundsPerTask: sc.Train.RoundsPerTask,
		Clients: clients, ClientsPerRound: perRound,
		Weighting: weighting, ServerLR: float32(sc.Train.ServerLR),
		EvalEvery: sc.Eval.Every, Deadline: sc.Train.Deadline,
		Rule: rule, LoRA: x.Spec.LoRA, Logf: logf,
		Pretrain: ft.pretrain, DP: ft.dp,
		OnTask: func(r server.TaskReport) { progress(opts.Progress, run, r) },
		SecAgg: x.secAgg(),
	}
	if opts.OnRound != nil {
		scfg.OnRound = func(r server.RoundReport) { opts.OnRound(run, r) }
	}
	if y := sc.System; !y.IsDefault() && !x.Spec.Central { // the centralised references ignore it
		scfg.System = &server.System{
			Availability: y.Availability, Dropout: y.Dropout,
			Speed:    server.SpeedDist{Dist: y.Speed.Dist, Sigma: y.Speed.Sigma, Min: y.Speed.Min, Max: y.Speed.Max},
			Deadline: y.Deadline, Work: x.work, Quorum: min(y.Quorum, perRound),
		}
	}
	if external(sc.Transport.NATS) { // messages can be lost: send rounds again
		scfg.Resend = sc.Transport.DialTimeout()
	}
	return scfg, nil
}

// serve runs the server side of run id over conn, whoever runs the
// clients: the evaluator, the live metrics, the round loop, and the
// record's run fields.
func (x *Experiment) serve(ctx context.Context, id string, conn *transport.Conn, opts Options, logf func(string, ...any)) (*results.Record, error) {
	sc, run := x.Scenario, x.Run
	subjects := transport.SubjectsFor(id)
	scfg, err := x.serverConfig(subjects, opts, logf)
	if err != nil {
		return nil, err
	}
	x.guardServer(&scfg, id, opts.Keys)
	tests := make([]data.View, len(x.Tasks))
	for i, t := range x.Tasks {
		tests[i] = t.Test
	}
	ev := server.NewEvaluator(x.Model, tests, x.heads, sc.Eval.BatchSize, max(sc.Train.Workers, 1))
	if opts.Live || opts.LiveSink != nil {
		live := startLive(opts, conn, subjects.Metrics)
		defer live.stop(logf)
		scfg.OnRound = live.onRound(id, sc, run, scfg.OnRound)
	}
	scfg.Checkpoint = x.checkpoint
	if opts.Resume != nil {
		scfg.Resume = &opts.Resume.Server
	}
	srv, err := server.New(scfg, x.Model, ev, conn)
	if err != nil {
		return nil, err
	}
	params := append([]float32(nil), x.Params...)
	x.Final = params
	rec, err := srv.Run(ctx, params)
	if opts.Timing != nil {
		*opts.Timing = srv.Timing()
	}
	if err != nil {
		return nil, err
	}
	rec.Scenario = sc.Name
	rec.Method = run.Method.Name
	rec.MethodLabel = run.Method.Label()
	rec.Seed = uint64(run.Seed)
	rec.Tasks = len(x.Tasks)
	rec.Clients = scfg.Clients
	rec.ClientsPerRound = scfg.ClientsPerRound
	rec.Dataset = sc.Data.Dataset
	rec.Stream = sc.Data.Stream
	rec.Backend = nn.ActiveBackend().Name()
	if rec.DP != nil {
		d := sc.DPFor(run.Method)
		rec.DP.EpsilonTarget, rec.DP.Clip = d.Epsilon, d.Clip
	}
	rec.FotsimVersion = Version()
	rec.FillMetrics()
	return rec, nil
}

// methodDef returns the registry's definition of the run's method, its
// options resolved from the scenario, and the environment its sides are
// built from.
func (x *Experiment) methodDef(weighting aggregator.Weighting) (methods.Method, any, methods.Env, error) {
	sc, m := x.Scenario, x.Run.Method
	def, ok := methods.Lookup(m.Name)
	if !ok {
		return nil, nil, methods.Env{}, fmt.Errorf("%w %q", ErrMethod, m.Name)
	}
	opts, err := sc.MethodOptions(m)
	if err != nil {
		return nil, nil, methods.Env{}, err
	}
	clients, _ := population(sc, x.Spec)
	env := methods.Env{
		Model: x.Model, Seed: uint64(x.Run.Seed), BatchSize: sc.Train.BatchSize,
		Weighting: weighting, ServerLR: float32(sc.Train.ServerLR), FOT: sc.FOT, Clients: clients,
	}
	return def, opts, env, nil
}

// clientMethod builds the client side of the run's method (nil: plain
// local SGD); every host builds its own.
func (x *Experiment) clientMethod(weighting aggregator.Weighting) (client.Behaviour, error) {
	def, opts, env, err := x.methodDef(weighting)
	if err != nil {
		return nil, err
	}
	b, err := def.Client(opts, env)
	if err != nil {
		return nil, fmt.Errorf("sim: method %s: %w", x.Run.Method.Label(), err)
	}
	return b, nil
}

// serverMethod builds the server side of the run's method (nil: plain
// FedAvg).
func (x *Experiment) serverMethod(weighting aggregator.Weighting) (server.Rule, error) {
	def, opts, env, err := x.methodDef(weighting)
	if err != nil {
		return nil, err
	}
	r, err := def.Server(opts, env)
	if err != nil {
		return nil, fmt.Errorf("sim: method %s: %w", x.Run.Method.Label(), err)
	}
	return r, nil
}

// connect returns the server's and the host's connections and a function
// that closes them (and the embedded server, if it started one). External
// connections are given up after timeout without a server.
func connect(url string, timeout time.Duration) (srv, host *transport.Conn, closeAll func(), err error) {
	if embedded(url) {
		// In process only: no other process can reach the run's subjects.
		o := transport.DefaultEmbeddedOptions()
		o.Host, o.InProcess = "", true
		emb, err := transport.StartEmbeddedWith(o)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("sim: embedded NATS: %w", err)
		}
		srv, err = emb.Connect("fotsim-server")
		if err == nil {
			host, err = emb.Connect("fotsim-host-0")
		}
		if err != nil {
			emb.Shutdown()
			return nil, nil, nil, fmt.Errorf("sim: embedded NATS: %w", err)
		}
		return srv, host, func() { host.Close(); srv.Close(); emb.Shutdown() }, nil
	}
	opts := transport.DialOptions{Timeout: timeout}
	srv, err = transport.DialWith(url, "fotsim-server", opts)
	if err != nil {
		return nil, nil, nil, err
	}
	host, err = transport.DialWith(url, "fotsim-host-0", opts)
	if err != nil {
		srv.Close()
		return nil, nil, nil, err
	}
	return srv, host, func() { host.Close(); srv.Close() }, nil
}

// embedded reports whether transport.nats asks for the run's own
// in-process NATS server.
func embedded(url string) bool { return url == "" || url == "embedded" }

// runID names the run's NATS subjects: unique per process and time so that
// runs sharing an external NATS server do not hear each other.
func runID(sc *scenarios.Scenario, run scenarios.Run) string {
	return fmt.Sprintf("%s-%s-s%d-%d-%d", sc.Name, run.Method.Name, run.Seed, os.Getpid(), time.Now().UnixNano())
}

// DefaultOut is the default run-record folder: runs/<scenario>-<method>-s<seed>.
func DefaultOut(sc *scenarios.Scenario, run scenarios.Run) string {
	name := strings.NewReplacer("/", "-", " ", "_").Replace(sc.Name)
	label := strings.NewReplacer("(", "-", ")", "", "=", "", ",", "-", " ", "").Replace(run.Method.Label())
	return filepath.Join("runs", fmt.Sprintf("%s-%s-s%d", name, label, run.Seed))
}

func progress(w io.Writer, run scenarios.Run, r server.TaskReport) {
	if w == nil {
		return
	}
	var b strings.Builder
	for j, a := range r.Acc {
		if j > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%.2f", a)
	}
	extra := ""
	if len(r.Detail.BasisDims) > 0 {
		extra = "  basis " + formatDims(r.Detail.BasisDims)
	}
	fmt.Fprintf(w, "%s s%d  task %d/%d  %d rounds  loss %.4f  acc [%s]  %.1fs%s\n",
		run.Method.Label(), run.Seed, r.Task+1, r.Tasks, r.Rounds, r.TrainLoss, b.String(), r.Elapsed.Seconds(), extra)
}

func logger(w io.Writer) func(string, ...any) {
	if w == nil {
		return nil
	}
	var mu sync.Mutex
	return func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// Version is the fotsim module version from the build info ("devel" in a
// work tree).
func Version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "devel"
}
