package server

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// ErrConfig reports an unusable server configuration.
var ErrConfig = errors.New("server: bad config")

// ErrNoUpdates is returned when a round ends with no accepted update.
var ErrNoUpdates = errors.New("server: no client update arrived")

// Transport is what the server needs from the messaging layer.
type Transport interface {
	Publish(subject string, m *transport.Message) (int, error)
	Subscribe(subject string, fn func(m *transport.Message, err error)) (func() error, error)
	Flush() error
}

// Config is the round loop's recipe.
type Config struct {
	Subjects        transport.Subjects
	Seed            uint64
	Tasks           int
	RoundsPerTask   int
	Clients         int
	ClientsPerRound int
	Weighting       aggregator.Weighting
	ServerLR        float32
	// EvalEvery > 0 adds an accuracy curve point every EvalEvery rounds.
	EvalEvery int
	// Deadline > 0 closes a round's collection after that long; late
	// updates are counted and dropped. 0 waits for every selected client.
	Deadline time.Duration
	// Resend > 0 publishes a round's message again, listing only the
	// selected clients not heard from, when Resend passes without an
	// update: a round or an update lost while a NATS connection was down
	// or moved to another cluster node is sent again (a client host
	// trains those clients again, which gives the same updates). Resent
	// bytes are not counted in BytesDown. 0 never resends.
	Resend time.Duration
	// Rule, when non-nil, is the method's server side on top of FedAvg
	// (FOT's projection and bases, EWC's penalty, a LoRA method's
	// refactor or merge; the methods package builds it).
	Rule Rule
	// LoRA is "ab" or "b" for a LoRA method: the clients train and send
	// only those factors (protocol.Trainable). "" for every parameter.
	LoRA string
	// Pretrain, when non-nil, makes the first Pretrain.Tasks tasks pretrain
	// the base model (see PretrainConfig).
	Pretrain *PretrainConfig
	// DP, when non-nil, accounts the clients' DP-SGD steps (see DPConfig).
	DP *DPConfig
	// Auth, when non-nil, authenticates the run (package auth, see
	// check.go): the server signs every message it publishes with Auth's
	// server key and accepts only updates signed with the key of the
	// client they name, over RunID. nil accepts unsigned updates.
	Auth *auth.Keys
	// RunID is the run id that signatures name; required with Auth.
	RunID string
	// MaxUpdateNorm bounds the L2 norm of an update's delta (and so its
	// largest value): larger ones are rejected. 0 is
	// DefaultMaxUpdateNorm; +Inf turns the bound off.
	MaxUpdateNorm float64
	// Samples, when set, returns the number of training samples client
	// has in task: an update that reports more (N) is rejected. It is
	// called from the transport's delivery goroutine. nil bounds N by
	// MaxSamples only.
	Samples func(task, client int) int64
	// Logf receives one line per rejected message; nil discards them.
	Logf func(format string, args ...any)
	// System, when non-nil, is the system heterogeneity (see System): the
	// run record gets one RoundDetail per round and their totals.
	System *System
	// OnTask, when set, is called after each task's evaluation.
	OnTask func(TaskReport)
	// OnRound, when set, is called after every round (and its curve
	// evaluation, if any), from the round loop: it must return quickly.
	OnRound func(RoundReport)
	// Checkpoint, when set, receives the loop's state after every round
	// (after the task's end on a task's last round), from the round loop,
	// before the next round starts; the State (its Params) is only valid
	// during the call. An error ends the run with it.
	Checkpoint func(*State) error
	// Resume, when non-nil, is a State a Checkpoint saved: Run loads it
	// (the params it is given are overwritten) and runs the rounds after it.
	Resume *State
	// SecAgg, when non-nil, aggregates every round securely (package
	// secagg, see secure.go): the server only ever holds the sum of the
	// clients' weighted deltas (and of their GPSE sketches), never one
	// client's. The clients' hosts must be configured alike.
	SecAgg *protocol.SecAgg
}

// RoundReport is the progress of one finished round.
type RoundReport struct {
	Task, Tasks   int
	Round, Rounds int     // global round index (0-based) and rounds in the run
	TrainLoss     float64 // mean client training loss of the round (NaN in a round without training)
	Updates       int     // accepted updates
	// Acc is the accuracy on tasks 0..Task when the round added a curve
	// point (eval.every), else nil.
	Acc     []float64
	Elapsed time.Duration // since the run started
}

// TaskReport is the progress of one finished task.
type TaskReport struct {
	Task, Tasks int
	Rounds      int
	TrainLoss   float64
	Acc         []float64 // on tasks 0..Task
	Elapsed     time.Duration
	Detail      results.TaskDetail
}

// Timing splits the wall time of a run's rounds. Broadcast, Collect,
// Aggregate and Eval are server wall times; ClientTrain is the sum over
// accepted updates of the clients' own training time (divide by the hosts'
// workers for its wall-time share). Collect includes the clients' training.
type Timing struct {
	Rounds []RoundTiming
	Eval   time.Duration // accuracy on the test sets, all rounds
	// EvalTask is Eval by the task whose training it followed (index:
	// task; it sums to Eval).
	EvalTask []time.Duration
}

// RoundTiming is the time split of one round.
type RoundTiming struct {
	Task        int
	Round       int           // global round index (task*rounds_per_task + round in task)
	Last        bool          // the task's last round (GPSE, Fisher)
	Broadcast   time.Duration // encode and publish the round message
	Collect     time.Duration // from broadcast to the last update
	Aggregate   time.Duration // mean, projection, apply, end-of-task work
	ClientTrain time.Duration // summed client training time of the updates
}

// Timing returns the time split of the rounds run so far.
func (s *Server) Timing() Timing { return s.timing }

// Validate reports an unusable configuration.
func (c Config) Validate() error {
	switch {
	case c.Tasks < 1:
		return fmt.Errorf("%w: tasks %d < 1", ErrConfig, c.Tasks)
	case c.RoundsPerTask < 1:
		return fmt.Errorf("%w: rounds per task %d < 1", ErrConfig, c.RoundsPerTask)
	case c.Clients < 1:
		return fmt.Errorf("%w: clients %d < 1", ErrConfig, c.Clients)
	case c.ClientsPerRound < 1 || c.ClientsPerRound > c.Clients:
		return fmt.Errorf("%w: clients per round %d not in [1, %d]", ErrConfig, c.ClientsPerRound, c.Clients)
	case c.ServerLR == 0 || math.IsNaN(float64(c.ServerLR)) || math.IsInf(float64(c.ServerLR), 0):
		return fmt.Errorf("%w: server learning rate %v (want a finite, non-zero rate)", ErrConfig, c.ServerLR)
	}
	if p := c.Pretrain; p != nil && (p.Tasks < 0 || p.Tasks >= c.Tasks) {
		return fmt.Errorf("%w: %d pretraining tasks, want 0 to %d", ErrConfig, p.Tasks, c.Tasks-1)
	}
	if d := c.DP; d != nil && (!(d.Delta > 0 && d.Delta < 1) || len(d.Sigma) < c.Clients) {
		return fmt.Errorf("%w: DP delta %v (want in (0, 1)) and %d noise multipliers for %d clients", ErrConfig, d.Delta, len(d.Sigma), c.Clients)
	}
	if c.LoRA != "" && c.LoRA != "ab" && c.LoRA != "b" {
		return fmt.Errorf("%w: LoRA factors %q (want ab or b)", ErrConfig, c.LoRA)
	}
	if !(c.MaxUpdateNorm >= 0) {
		return fmt.Errorf("%w: max update norm %v (want >= 0; 0 is the default)", ErrConfig, c.MaxUpdateNorm)
	}
	if c.Auth != nil && c.RunID == "" {
		return fmt.Errorf("%w: authentication without a run id", ErrConfig)
	}
	if c.SecAgg != nil {
		if err := c.SecAgg.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if c.ClientsPerRound < 2 {
			return fmt.Errorf("%w: secure aggregation of %d client per round (want at least 2)", ErrConfig, c.ClientsPerRound)
		}
	}
	if c.System != nil {
		return c.System.validate(c.ClientsPerRound)
	}
	return nil
}

// Rule is a method's server-side state on top of FedAvg. The server calls
// it from the round loop only (never concurrently), in this order within a
// round: Flags, Broadcast, Check (for every update, under the collection
// lock), BeforeApply, AfterApply, and EndTask on a task's last round.
type Rule interface {
	// Flags returns what the clients must send with this round's updates
	// (protocol.FlagSketch, FlagFisher).
	Flags(task int, last bool) uint32
	// Broadcast appends what the clients need to the round's tensors.
	Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor
	// Check verifies the method's part of an update of a round with flags.
	Check(m *transport.Message, flags uint32) error
	// BeforeApply transforms the aggregate of a normal round of task
	// (not pretraining rounds).
	BeforeApply(agg []float32, task int)
	// AfterApply runs after the aggregate of a normal round was applied.
	AfterApply(r *Applied) error
	// EndTask runs after the last round of task was applied, with that
	// round's accepted updates and the global model before and after it.
	// Under secure aggregation (Config.SecAgg) the updates are the clear
	// parts of the survivors' (N, scalars), and the first carries the
	// sums of the GPSE sketches, the others empty ones.
	EndTask(got []*transport.Message, before, after []float32, task int, detail *results.TaskDetail) error
}

// Applied is a normal round just applied, as Rule.AfterApply sees it.
type Applied struct {
	Round  int                 // global round index
	Params []float32           // the global model, updated in place
	Before []float32           // the global model the round started from
	Ups    []aggregator.Update // the accepted updates (compact deltas), in client-id order; nil under secure aggregation
	Agg    []float32           // the scattered mean delta, before the server learning rate
}

// Server runs the round loop of one experiment.
type Server struct {
	cfg   Config
	model *nn.Model
	eval  *Evaluator
	tr    Transport
	rule  Rule // nil for plain FedAvg
	dp    *dpAccounts
	prev  []float32 // global model before the round (every round with a rule)
	aggc  []float32 // the mean of the compact deltas

	timing Timing
	conn   faults // tr's connection, when it can be lost (transport.Conn)
	base   baseTracker
	cur    []float32 // the global model of the round being collected (resend)

	mu      sync.Mutex
	col     collection
	agg     []float32
	ups     []aggregator.Update
	partUps []aggregator.Update // s.ups cut into ranges by mean
	rec     results.Record
	msg     transport.Message

	lastSecure secureSum // the last secure aggregate (tests)
}

// collection is the state of the round being collected, guarded by mu.
type collection struct {
	round    int32
	open     bool
	flags    uint32 // what the round asked the clients to send
	slot     map[int32]int
	got      []*transport.Message
	n        int
	full     chan struct{}
	rejected int
	late     int
	task     int32          // the round's task
	reasons  map[string]int // rejected, by reason (Reject...)
	sa       *secure        // the secure aggregation of the round (Config.SecAgg)
}

// New returns a server for model, evaluating with eval, over tr.
func New(cfg Config, model *nn.Model, eval *Evaluator, tr Transport) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if eval.Tasks() != cfg.Tasks {
		return nil, fmt.Errorf("%w: evaluator has %d tasks, config %d", ErrConfig, eval.Tasks(), cfg.Tasks)
	}
	s := &Server{cfg: cfg, model: model, eval: eval, tr: tr, rule: cfg.Rule, agg: make([]float32, model.NumParams())}
	s.conn, _ = tr.(faults)
	if cfg.Auth != nil {
		s.tr = &signing{Transport: tr, key: cfg.Auth.ServerKey(), run: cfg.RunID}
	}
	if cfg.DP != nil {
		s.dp = &dpAccounts{cfg: *cfg.DP}
	}
	return s, nil
}

// roundMode says what kind of round the server runs.
type roundMode int

const (
	modeNormal  roundMode = iota // the method's own round
	modeBase                     // federated pretraining: FedAvg on the base parameters
	modeNoTrain                  // after central pretraining: GPSE/Fisher only, zero deltas
)

// pretrainTasks returns the number of leading pretraining tasks.
func (s *Server) pretrainTasks() int {
	if s.cfg.Pretrain == nil {
		return 0
	}
	return s.cfg.Pretrain.Tasks
}

// Run trains params (the initial global model, updated in place) through
// every task and round, and returns the parts of the run record the server
// owns: the accuracy matrix, curves, rounds, bytes and per-task details.
func (s *Server) Run(ctx context.Context, params []float32) (*results.Record, error) {
	if len(params) != s.model.NumParams() {
		return nil, fmt.Errorf("%w: %d parameters, model has %d", ErrConfig, len(params), s.model.NumParams())
	}
	unsub, err := s.tr.Subscribe(s.cfg.Subjects.Update, s.receive)
	if err != nil {
		return nil, fmt.Errorf("server: subscribe %s: %w", s.cfg.Subjects.Update, err)
	}
	defer unsub()
	defer s.stop()

	T, R := s.cfg.Tasks, s.cfg.RoundsPerTask
	s.rec.AccMatrix = results.NewMatrix(T)
	if s.cfg.System != nil {
		s.rec.System = &results.SystemTotals{}
	}
	t0, r0 := 0, 0 // the first round to run
	var resumed results.TaskDetail
	var resumedLoss float64
	var resumedN int
	if st := s.cfg.Resume; st != nil {
		if resumed, resumedLoss, resumedN, err = s.restore(st, params); err != nil {
			return nil, err
		}
		t0, r0 = st.Task, st.Round
	}
	runStart := time.Now()
	for t := t0; t < T; t++ {
		start := time.Now()
		var lossSum float64
		var lossN int
		detail := results.TaskDetail{Task: t, Rounds: R}
		mode, first := modeNormal, 0
		mid := t == t0 && r0 > 0 // resuming in the middle of task t
		if mid {
			detail, lossSum, lossN, first = resumed, resumedLoss, resumedN, r0
		}
		if t < s.pretrainTasks() {
			mode = modeBase
			if s.cfg.Pretrain.Central != nil && mid {
				mode = modeNoTrain // pretrained before the checkpoint
			} else if central := s.cfg.Pretrain.Central; central != nil {
				// Central pretraining; then, if the method wants end-of-task
				// information (GPSE, Fisher), one round without training in
				// the slot of the task's last round.
				loss, err := central(ctx, params, t)
				if err != nil {
					return nil, fmt.Errorf("server: pretraining task %d: %w", t, err)
				}
				lossSum, lossN = loss, 1
				mode, first = modeNoTrain, R
				if s.rule != nil && s.rule.Flags(t, true) != 0 {
					first = R - 1
				}
				detail.Rounds = R - first
			}
		}
		for r := first; r < R; r++ {
			round := t*R + r
			last := r == R-1
			loss, n, err := s.round(ctx, params, t, round, last, mode, &detail)
			if err != nil {
				return nil, err
			}
			if mode != modeNoTrain {
				lossSum += loss
				lossN += n
			}
			s.rec.Rounds++
			var acc []float64
			if s.cfg.EvalEvery > 0 && (round+1)%s.cfg.EvalEvery == 0 {
				acc = s.evaluate(params, t)
				s.rec.Curves = append(s.rec.Curves, results.Curve{Round: round + 1, Task: t, Acc: acc})
			}
			if s.cfg.OnRound != nil {
				rl := math.NaN()
				if mode != modeNoTrain && n > 0 {
					rl = loss / float64(n)
				}
				s.cfg.OnRound(RoundReport{Task: t, Tasks: T, Round: round, Rounds: T * R, TrainLoss: rl, Updates: n,
					Acc: slices.Clone(acc), Elapsed: time.Since(runStart)})
			}
			if !last {
				if err := s.checkpoint(t, r+1, params, lossSum, lossN, &detail); err != nil {
					return nil, err
				}
			}
		}
		row := s.rec.AccMatrix[t]
		copy(row, s.evaluate(params, t))
		if lossN > 0 {
			detail.TrainLoss = lossSum / float64(lossN)
		}
		s.rec.TasksDetail = append(s.rec.TasksDetail, detail)
		if s.cfg.OnTask != nil {
			s.cfg.OnTask(TaskReport{Task: t, Tasks: T, Rounds: detail.Rounds, TrainLoss: detail.TrainLoss,
				Acc: slices.Clone(row[:t+1]), Elapsed: time.Since(start), Detail: detail})
		}
		if err := s.checkpoint(t+1, 0, params, 0, 0, nil); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	s.rec.RejectedUpdates, s.rec.LateUpdates = s.col.rejected, s.col.late
	s.rec.RejectedByReason = maps.Clone(s.col.reasons)
	s.mu.Unlock()
	if s.dp != nil {
		d, err := s.dp.record()
		if err != nil {
			return nil, err
		}
		s.rec.DP = d
	}
	s.rec.PretrainTasks = s.pretrainTasks()
	s.rec.TrainableParams = protocol.Trainable(s.model, s.cfg.LoRA, 0).Size()
	rec := s.rec
	return &rec, nil
}

// evaluate returns the accuracy on tasks 0..t.
func (s *Server) evaluate(params []float32, t int) []float64 {
	start := time.Now()
	acc := make([]float64, t+1)
	for j := range acc {
		acc[j] = s.eval.Accuracy(params, j)
	}
	d := time.Since(start)
	s.timing.Eval += d
	for len(s.timing.EvalTask) <= t {
		s.timing.EvalTask = append(s.timing.EvalTask, 0)
	}
	s.timing.EvalTask[t] += d
	return acc
}

// sendRound adds the method's tensors to round message m and broadcasts
// it, returning when the broadcast started and when it was sent.
func (s *Server) sendRound(m *transport.Message, task int, last bool) (start, sent time.Time, err error) {
	if s.rule != nil {
		m.Tensors = s.rule.Broadcast(m.Tensors, task, last)
	}
	start = time.Now()
	if err := s.broadcast(m); err != nil {
		return start, start, err
	}
	return start, time.Now(), nil
}

// stop tells every client host that the run is over.
func (s *Server) stop() {
	_, _ = s.tr.Publish(s.cfg.Subjects.Round, &transport.Message{Kind: transport.KindStop})
	_ = s.tr.Flush()
}

// round runs one round: sample, broadcast, collect, aggregate, project,
// apply, and (on a task's last round under FOT) grow the bases. It returns
// the summed client training loss and the number of updates behind it.
func (s *Server) round(ctx context.Context, params []float32, task, round int, last bool, mode roundMode, detail *results.TaskDetail) (float64, int, error) {
	var sel, drop []int32
	var sys *results.RoundDetail
	if y := s.cfg.System; y != nil && mode != modeNoTrain {
		report, dropped, d := y.plan(s.cfg.Seed, task, round, s.cfg.Clients, s.cfg.ClientsPerRound)
		s.rec.RoundsDetail = append(s.rec.RoundsDetail, d)
		sys = &s.rec.RoundsDetail[len(s.rec.RoundsDetail)-1]
		if len(report) < y.quorum() {
			// Skipped: nobody is asked to train and the model is unchanged.
			sys.Skipped = true
			s.rec.System.Add(*sys)
			return 0, 0, nil
		}
		sel = report
		if s.cfg.SecAgg != nil {
			// The clients that fail do so after sharing their keys.
			sel, drop = secureSelect(report, dropped), dropped
		}
	} else {
		sel = Sample(s.cfg.Seed, round, s.cfg.Clients, s.cfg.ClientsPerRound)
	}
	var flags uint32
	if s.rule != nil {
		flags = s.rule.Flags(task, last)
	}
	switch mode {
	case modeBase:
		flags |= protocol.FlagBase
	case modeNoTrain:
		flags |= protocol.FlagBase | protocol.FlagNoTrain
	}
	if s.cfg.SecAgg != nil {
		return s.secureRound(ctx, params, task, round, last, mode, detail, sel, drop, flags, sys)
	}
	s.open(int32(round), int32(task), sel, flags)

	m := s.roundMessage(params, task, round, sel, flags)
	start, sent, err := s.sendRound(m, task, last)
	if err != nil {
		return 0, 0, err
	}

	got, err := s.collect(ctx)
	collected := time.Now()
	if err != nil {
		return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
	}
	if sys != nil {
		// Fewer updates than the quorum arrived (rejected, or past the
		// wall-clock deadline): the round is skipped as well.
		if len(got) >= s.cfg.System.quorum() {
			sys.Aggregated = len(got)
		} else {
			sys.Skipped = true
		}
		s.rec.System.Add(*sys)
		if sys.Skipped {
			return 0, 0, nil
		}
	}
	if len(got) == 0 {
		return 0, 0, fmt.Errorf("%w in round %d of task %d", ErrNoUpdates, round, task)
	}
	s.ups = s.ups[:0]
	var loss float64
	var train time.Duration
	for _, u := range got {
		d := u.Tensor(protocol.TensorDelta)
		s.ups = append(s.ups, aggregator.Update{Client: int(u.Client), N: u.N, Delta: d.Data})
		loss += scalar(u, protocol.ScalarLoss)
		train += time.Duration(scalar(u, protocol.ScalarTrainSeconds) * float64(time.Second))
	}
	// The deltas carry the trained parameters only (protocol.Trainable):
	// the mean is taken over those and scattered into the full aggregate.
	trained := protocol.Trainable(s.model, s.cfg.LoRA, flags)
	if cap(s.aggc) < trained.Size() {
		s.aggc = make([]float32, trained.Size())
	}
	aggc := s.aggc[:trained.Size()]
	s.mean(aggc)
	clear(s.agg)
	protocol.Scatter(s.agg, aggc, trained)
	if s.rule != nil {
		if mode == modeNormal {
			s.rule.BeforeApply(s.agg, task)
		}
		s.prev = append(s.prev[:0], params...)
	}
	aggregator.Apply(params, s.agg, s.cfg.ServerLR)
	if s.rule != nil && mode == modeNormal {
		a := Applied{Round: round, Params: params, Before: s.prev, Ups: s.ups, Agg: s.agg}
		if err := s.rule.AfterApply(&a); err != nil {
			return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
		}
	}
	if s.rule != nil && last {
		if err := s.rule.EndTask(got, s.prev, params, task, detail); err != nil {
			return 0, 0, fmt.Errorf("server: end of task %d: %w", task, err)
		}
	}
	s.timing.Rounds = append(s.timing.Rounds, RoundTiming{
		Task: task, Round: round, Last: last, Broadcast: sent.Sub(start), Collect: collected.Sub(sent),
		Aggregate: time.Since(collected), ClientTrain: train,
	})
	return loss, len(got), nil
}

// roundMessage builds the message of a round in s.msg: the global model
// (whole, or a LoRA run's adapters with the base version, modelTensor),
// the selected clients and the flags; the caller adds the rest.
func (s *Server) roundMessage(params []float32, task, round int, sel []int32, flags uint32) *transport.Message {
	m := &s.msg
	model, version, lora := s.modelTensor(params, false)
	*m = transport.Message{
		Kind:    transport.KindRound,
		Round:   int32(round),
		Task:    int32(task),
		Clients: sel,
		Flags:   flags,
		Tensors: append(m.Tensors[:0], model),
	}
	if lora {
		m.Scalars = append(m.Scalars[:0], version)
	}
	s.cur = params
	return m
}

// broadcast publishes the round message m to its clients and counts its
// bytes down: the message's content times the clients it names (the
// bytes of its signature are left out, so the record does not depend on
// authentication).
func (s *Server) broadcast(m *transport.Message) error {
	if _, err := s.tr.Publish(s.cfg.Subjects.Round, m); err != nil {
		return fmt.Errorf("server: broadcast round %d: %w", m.Round, err)
	}
	if err := s.tr.Flush(); err != nil {
		return fmt.Errorf("server: broadcast round %d: %w", m.Round, err)
	}
	s.rec.BytesDown += int64(m.BodyLen()) * int64(len(m.Clients))
	return nil
}

// minMeanPart is the fewest values per goroutine in mean.
const minMeanPart = 1 << 16

// mean is aggregator.Mean of s.ups into dst, on one goroutine per core:
// the mean is element-wise, so each goroutine takes a range of elements
// and the result has the same bits as one call over the whole range.
func (s *Server) mean(dst []float32) {
	parts := min(runtime.GOMAXPROCS(0), len(dst)/minMeanPart)
	for _, u := range s.ups {
		if len(u.Delta) != len(dst) {
			parts = 1 // let Mean report the mismatch
		}
	}
	if parts <= 1 {
		aggregator.Mean(dst, s.ups, s.cfg.Weighting)
		return
	}
	if cap(s.partUps) < parts*len(s.ups) {
		s.partUps = make([]aggregator.Update, parts*len(s.ups))
	}
	var wg sync.WaitGroup
	for p := range parts {
		lo, hi := p*len(dst)/parts, (p+1)*len(dst)/parts
		ups := s.partUps[p*len(s.ups) : (p+1)*len(s.ups)]
		for k, u := range s.ups {
			u.Delta = u.Delta[lo:hi]
			ups[k] = u
		}
		wg.Go(func() { aggregator.Mean(dst[lo:hi], ups, s.cfg.Weighting) })
	}
	wg.Wait()
}

// open starts collecting the updates of round from the selected clients.
func (s *Server) open(round, task int32, sel []int32, flags uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.col
	c.round, c.task, c.open, c.flags, c.n = round, task, true, flags, 0
	c.slot = make(map[int32]int, len(sel))
	for i, id := range sel {
		c.slot[id] = i
	}
	c.got = make([]*transport.Message, len(sel))
	c.full = make(chan struct{})
}

// faults is implemented by transports that can lose their connection for
// good (transport.Conn): Done is closed then, and Err says why.
type faults interface {
	Done() <-chan struct{}
	Err() error
}

// collect waits until every selected client has answered, the deadline
// passes, ctx ends or the transport's connection is lost (faults), and
// returns the accepted updates in client-id order. Every cfg.Resend
// without an update, it sends the round again to the clients missing.
func (s *Server) collect(ctx context.Context) ([]*transport.Message, error) {
	var deadline <-chan time.Time
	if s.cfg.Deadline > 0 {
		t := time.NewTimer(s.cfg.Deadline)
		defer t.Stop()
		deadline = t.C
	}
	var resend *time.Ticker
	var tick <-chan time.Time
	if s.cfg.Resend > 0 {
		resend = time.NewTicker(s.cfg.Resend)
		defer resend.Stop()
		tick = resend.C
	}
	var lost <-chan struct{}
	if s.conn != nil {
		lost = s.conn.Done()
	}
	s.mu.Lock()
	full, heard := s.col.full, s.col.n
	s.mu.Unlock()
	var err error
wait:
	for {
		select {
		case <-full:
			break wait
		case <-deadline:
			break wait
		case <-ctx.Done():
			err = ctx.Err()
			break wait
		case <-lost:
			err = s.conn.Err()
			break wait
		case <-tick:
			if heard, err = s.resend(heard); err != nil {
				break wait
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.col.open = false
	var out []*transport.Message
	for _, m := range s.col.got {
		if m != nil {
			out = append(out, m)
		}
	}
	return out, err
}

// resend publishes the round being collected (s.msg) again to the
// selected clients not heard from, unless updates arrived since the last
// call (heard: how many had then). It returns how many have arrived now.
func (s *Server) resend(heard int) (int, error) {
	s.mu.Lock()
	c := &s.col
	n := c.n
	var missing []int32
	if n == heard {
		for _, id := range s.msg.Clients {
			if c.got[c.slot[id]] == nil {
				missing = append(missing, id)
			}
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return n, nil
	}
	m := s.msg
	m.Clients = missing
	if m.Tensors[0].Name == protocol.TensorAdapters {
		// A host that missed the round may have missed the base too:
		// send the whole model again.
		m.Tensors = slices.Clone(m.Tensors)
		m.Tensors[0] = transport.Tensor{Name: protocol.TensorParams, Rows: 1, Cols: len(s.cur), Data: s.cur}
	}
	if _, err := s.tr.Publish(s.cfg.Subjects.Round, &m); err != nil {
		return n, fmt.Errorf("server: send round %d again: %w", m.Round, err)
	}
	s.logf("server: no update of round %d in the last %v: sent the round again to the %d clients not heard from", m.Round, s.cfg.Resend, len(missing))
	return n, nil
}

// receive is the update handler: it checks an update (the checks that
// need no round state and the signature first, see check.go; then against
// the round being collected) and stores it, or counts and logs why it was
// rejected.
func (s *Server) receive(m *transport.Message, err error) {
	if err != nil {
		s.reject(RejectDecode, "server: rejected update: %v", err)
		return
	}
	if s.cfg.SecAgg != nil {
		s.receiveSecure(m)
		return
	}
	body := m.BodyLen() // what the update cost on the wire, before any decoding
	if reason, err := s.checkSender(m); err != nil {
		s.reject(reason, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.col
	if m.Round > c.round {
		s.rejectLocked(RejectRound, "server: rejected update of client %d for round %d, which has not started (collecting round %d)", m.Client, m.Round, c.round)
		return
	}
	if !c.open || m.Round != c.round {
		c.late++
		s.logf("server: late update of client %d for round %d (collecting round %d)", m.Client, m.Round, c.round)
		return
	}
	if m.Task != c.task {
		s.rejectLocked(RejectTask, "server: rejected update of client %d in round %d: task %d, the round's is %d", m.Client, m.Round, m.Task, c.task)
		return
	}
	i, ok := c.slot[m.Client]
	if !ok {
		s.rejectLocked(RejectNotSelected, "server: rejected update of round %d from client %d, which was not selected", m.Round, m.Client)
		return
	}
	if reason, err := s.decodeUpdate(m); err != nil {
		s.rejectLocked(reason, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	if reason, err := s.checkUpdate(m); err != nil {
		s.rejectLocked(reason, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	if c.got[i] != nil {
		s.rejectLocked(RejectDuplicate, "server: rejected duplicate update of client %d in round %d", m.Client, m.Round)
		return
	}
	if s.dp != nil {
		if err := s.dp.add(m); err != nil {
			s.rejectLocked(RejectDP, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
			return
		}
	}
	c.got[i] = m
	s.rec.BytesUp += int64(body)
	c.n++
	if c.n == len(c.got) {
		close(c.full)
	}
}

// checkUpdate verifies the shape of an update's tensors for the round
// being collected, and the method's part (Rule.Check); s.mu is held.
func (s *Server) checkUpdate(m *transport.Message) (reason string, err error) {
	d := m.Tensor(protocol.TensorDelta)
	if d == nil {
		return RejectShape, fmt.Errorf("no %q tensor", protocol.TensorDelta)
	}
	if want := protocol.Trainable(s.model, s.cfg.LoRA, s.col.flags).Size(); len(d.Data) != want {
		return RejectShape, fmt.Errorf("%q has %d values, want %d", protocol.TensorDelta, len(d.Data), want)
	}
	if s.rule != nil {
		if err := s.rule.Check(m, s.col.flags); err != nil {
			return RejectRule, err
		}
	}
	return "", nil
}

// reject counts an update rejected for reason and logs why.
func (s *Server) reject(reason, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectLocked(reason, format, args...)
}

// rejectLocked is reject with s.mu held.
func (s *Server) rejectLocked(reason, format string, args ...any) {
	c := &s.col
	c.rejected++
	if c.reasons == nil {
		c.reasons = map[string]int{}
	}
	c.reasons[reason]++
	s.logf(format, args...)
}

func (s *Server) logf(format string, args ...any) {
	if s.cfg.Logf != nil {
		s.cfg.Logf(format, args...)
	}
}

// scalar returns the value of m's scalar called name, NaN if it is missing.
func scalar(m *transport.Message, name string) float64 {
	v, _ := m.Scalar(name)
	return v
}
