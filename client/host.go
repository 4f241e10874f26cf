package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// ErrConfig reports an unusable client or host configuration.
var ErrConfig = errors.New("client: bad config")

// Transport is what a Host needs from the messaging layer.
type Transport interface {
	Publish(subject string, m *transport.Message) (int, error)
	PublishFrame(subject string, f *transport.Frame) (int, error)
	Subscribe(subject string, fn func(m *transport.Message, err error)) (func() error, error)
	Flush() error
}

// Shards gives a client's training data for a task: usually one segment
// (the task's training view, the client's rows in it and the model head the
// task uses); joint training returns one segment per task seen.
type Shards interface {
	Shard(task, client int) []Segment
}

// Behaviour is a method's client side on top of plain local SGD (the
// methods package builds one per method; nil is plain FedAvg training). A
// Host calls Round once per round message, before any of its clients of
// that round train; then, for every client it trains, Extras before local
// training and Finish after it, on several workers at once: Extras and
// Finish must only read state that Round wrote, and keep per-worker
// buffers in Work.State.
type Behaviour interface {
	// Round sees every round message the host accepts (the global model
	// is there), in arrival order, before its clients train.
	Round(m *transport.Message) error
	// Extras returns the additions to client w.Client's local training
	// (nil for none); it may use w.Extras as storage.
	Extras(w *Work) (*Extras, error)
	// Finish appends the method's part of the update (tensors, scalars,
	// flags) to w.Update after local training.
	Finish(w *Work) error
}

// Work is one client's local training job of a round, as a Behaviour sees
// it.
type Work struct {
	Client   int
	Round    int
	Msg      *transport.Message // the round message
	Global   []float32          // the global model of the round
	Local    []float32          // the client's model: the global one before training, the trained one in Finish
	Segments []Segment          // the client's training data (Shards)
	Trainer  *Trainer           // the worker's trainer, free to use in Finish
	Config   Config             // the host's training recipe (seed, batch size, ...)
	Update   *transport.Message // the update being built (Finish)
	// Extras is storage for the Extras a Behaviour returns.
	Extras Extras
	// State is the Behaviour's own per-worker state, kept across the
	// clients and rounds a worker trains; nil at first.
	State any
}

// DPConfig turns on DP-SGD (see DPStep) for every client of a host, except
// in pretraining rounds.
type DPConfig struct {
	Clip float32
	// Sigma[c] is client c's noise multiplier, indexed by client id.
	Sigma []float64
}

// HostConfig configures a Host.
type HostConfig struct {
	Subjects transport.Subjects
	// First and Last bound the ids of the clients this host runs: [First, Last).
	First, Last int
	Workers     int
	Train       Config
	// Behaviour is the method's client side; nil trains plain FedAvg.
	Behaviour Behaviour
	// LoRA is "ab" or "b" for a LoRA method (the clients train those
	// factors only, see protocol.Trainable), "" otherwise.
	LoRA string
	// DP, when non-nil, trains with DP-SGD; Sigma must cover [First, Last).
	DP *DPConfig
	// PretrainLR, when > 0, replaces Train.SGD.LR in pretraining rounds
	// (FlagBase).
	PretrainLR float32
	// Tasks, Clients and ClientsPerRound are the run's: a round message
	// whose task is not in [0, Tasks), or whose client list is longer than
	// ClientsPerRound or names an id outside [0, Clients), is rejected
	// (see verify.go). 0 leaves that bound unchecked.
	Tasks, Clients, ClientsPerRound int
	// Auth, when non-nil, authenticates the run (package auth): the host
	// signs every update with the key of its client and accepts only
	// round and stop messages signed with the server's key, over RunID.
	Auth *auth.Keys
	// RunID is the run id that signatures name; required with Auth.
	RunID string
	// Logf receives one line per rejected message; nil discards them.
	Logf func(format string, args ...any)
	// SecAgg, when non-nil, makes the host's clients take part in secure
	// aggregation (see secure.go): they never send a delta in the clear,
	// and refuse a round that does not aggregate securely.
	SecAgg *protocol.SecAgg
}

// Validate reports an unusable host configuration.
func (c HostConfig) Validate() error {
	if c.Workers < 1 {
		return fmt.Errorf("%w: workers %d < 1", ErrConfig, c.Workers)
	}
	if c.First < 0 || c.Last <= c.First {
		return fmt.Errorf("%w: client range [%d, %d) is empty", ErrConfig, c.First, c.Last)
	}
	if c.LoRA != "" && c.LoRA != "ab" && c.LoRA != "b" {
		return fmt.Errorf("%w: LoRA factors %q (want ab or b)", ErrConfig, c.LoRA)
	}
	if c.Tasks < 0 || c.Clients < 0 || c.ClientsPerRound < 0 || (c.Clients > 0 && c.Last > c.Clients) {
		return fmt.Errorf("%w: %d tasks, %d clients (%d per round) for a host of clients [%d, %d)", ErrConfig, c.Tasks, c.Clients, c.ClientsPerRound, c.First, c.Last)
	}
	if c.Auth != nil && c.RunID == "" {
		return fmt.Errorf("%w: authentication without a run id", ErrConfig)
	}
	if c.SecAgg != nil {
		if err := c.SecAgg.Validate(); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
	}
	if d := c.DP; d != nil {
		if !(d.Clip > 0) {
			return fmt.Errorf("%w: DP clip %v, want > 0", ErrConfig, d.Clip)
		}
		if len(d.Sigma) < c.Last {
			return fmt.Errorf("%w: DP sigma for %d clients, host runs clients up to %d", ErrConfig, len(d.Sigma), c.Last)
		}
		for i, s := range d.Sigma {
			if !(s >= 0) || math.IsInf(s, 0) {
				return fmt.Errorf("%w: DP sigma of client %d is %v, want finite and >= 0", ErrConfig, i, s)
			}
		}
	}
	return c.Train.Validate()
}

// Host runs the simulated clients [First, Last) behind one connection.
type Host struct {
	cfg    HostConfig
	model  *nn.Model
	shards Shards
	tr     Transport
	checks checks                // of round messages, and what they rejected (verify.go)
	pool   sync.Pool             // *worker
	frames chan *transport.Frame // free update frames (publish.go)
	done   chan error
	stop   atomic.Bool // set when Start's context ends: training stops (Trainer.StopOn)
	sec    *hostSecure // the secure round in progress (HostConfig.SecAgg), serve's goroutine
	base   baseCache   // a LoRA run's base (base.go), serve's goroutine
}

// NewHost returns a host that trains model's clients on shards and talks
// over tr.
func NewHost(cfg HostConfig, model *nn.Model, shards Shards, tr Transport) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, model: model, shards: shards, tr: tr}
	if cfg.Auth != nil {
		h.checks.server = cfg.Auth.ServerPublic()
	}
	h.pool.New = func() any { return h.newWorker() }
	h.frames = make(chan *transport.Frame, 2*cfg.Workers)
	for range cap(h.frames) {
		h.frames <- new(transport.Frame)
	}
	return h, nil
}

// worker is the per-goroutine state: a trainer and parameter buffers.
type worker struct {
	tr    *Trainer
	local []float32
	delta []float32
	work  Work
	msg   transport.Message
	sa    []float64 // a secure round's input before encoding
}

func (h *Host) newWorker() *worker {
	n := h.model.NumParams()
	w := &worker{
		tr:    NewTrainer(h.model, h.cfg.Train.BatchSize),
		local: make([]float32, n),
		delta: make([]float32, n),
	}
	w.tr.StopOn(&h.stop)
	return w
}

// arrival is a message of the round subject and when it arrived.
type arrival struct {
	m  *transport.Message
	at time.Time
}

// Start subscribes to the round subject and makes sure the server knows
// it (a flush), then handles rounds in the background until the server
// sends Stop, ctx ends or a publish fails; Wait returns that outcome.
// Rounds are handled one at a time, in arrival order. When ctx ends, local
// training stops within a mini-batch and no update of that round is sent.
//
// A round message that repeats the round handled last (the server sends a
// round again to the clients it has not heard from, server.Config.Resend)
// trains the clients it lists again, unless it arrived while the host was
// still training that round, whose updates were then on their way.
func (h *Host) Start(ctx context.Context) error {
	inbox := make(chan arrival, 16)
	unsub, err := h.tr.Subscribe(h.cfg.Subjects.Round, func(m *transport.Message, err error) {
		if !h.admit(m, err) {
			return
		}
		select {
		case inbox <- arrival{m, time.Now()}:
		case <-ctx.Done():
		}
	})
	if err != nil {
		return fmt.Errorf("client: subscribe %s: %w", h.cfg.Subjects.Round, err)
	}
	if err := h.tr.Flush(); err != nil {
		_ = unsub()
		return fmt.Errorf("client: subscribe %s: %w", h.cfg.Subjects.Round, err)
	}
	h.done = make(chan error, 1)
	stopTraining := context.AfterFunc(ctx, func() { h.stop.Store(true) })
	go func() {
		defer unsub()
		defer stopTraining()
		h.done <- h.serve(ctx, inbox)
	}()
	return nil
}

// Wait blocks until the host started by Start stops, and returns why: nil
// after a Stop message.
func (h *Host) Wait() error { return <-h.done }

func (h *Host) serve(ctx context.Context, inbox <-chan arrival) error {
	defer h.endSecure()
	var last struct {
		ok    bool
		round int32
		done  time.Time // when the host finished it
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case a := <-inbox:
			m := a.m
			switch m.Kind {
			case transport.KindStop:
				return nil
			case transport.KindRound:
				if isSecureStep(m) {
					if err := h.secureStep(m); err != nil {
						return err
					}
					continue
				}
				if err := h.expand(m); err != nil { // not handled: a resend of it may be
					h.reject(RejectParams, "client: rejected %v; skipped until the server sends the round whole", err)
					continue
				}
				again := last.ok && m.Round == last.round
				if again && a.at.Before(last.done) {
					h.logf("client: round %d sent again while this host trained it: ignored", m.Round)
					continue
				}
				if err := h.round(ctx, m, again); err != nil {
					return err
				}
				last.ok, last.round, last.done = true, m.Round, time.Now()
			default:
				h.logf("client: ignored message of kind %d on the round subject", m.Kind)
			}
		}
	}
}

func (h *Host) logf(format string, args ...any) {
	if h.cfg.Logf != nil {
		h.cfg.Logf(format, args...)
	}
}

// round trains every selected client this host owns, on up to Workers
// goroutines, and publishes their updates. again is true for a round the
// host handled last, sent again: the Behaviour has seen it already.
func (h *Host) round(ctx context.Context, m *transport.Message, again bool) error {
	global := m.Tensor(protocol.TensorParams)
	if global == nil || len(global.Data) != h.model.NumParams() {
		h.logf("client: round %d has no %q tensor of %d values; skipped", m.Round, protocol.TensorParams, h.model.NumParams())
		return nil
	}
	switch secure := m.Flags&protocol.FlagSecAgg != 0; {
	case secure && !(again && h.sec != nil && h.sec.round == m.Round):
		if err := h.startSecure(m); err != nil {
			return err
		}
	case !secure && h.cfg.SecAgg != nil:
		return fmt.Errorf("client: round %d does not aggregate securely: this host's clients do not send their updates in the clear", m.Round)
	case !secure:
		h.endSecure()
	}
	if b := h.cfg.Behaviour; b != nil && !again {
		if err := b.Round(m); err != nil {
			return fmt.Errorf("client: round %d: %w", m.Round, err)
		}
	}
	var mine []int
	for _, c := range m.Clients {
		if int(c) >= h.cfg.First && int(c) < h.cfg.Last {
			mine = append(mine, int(c))
		}
	}
	// A worker's buffers are taken from the pool per client: the clients of
	// a round run on at most Workers goroutines, so that many are in use.
	pub := h.startPublisher()
	err := h.parallel(ctx, mine, func(c int) error {
		wk := h.pool.Get().(*worker)
		defer h.pool.Put(wk)
		return h.train(wk, pub, m, global.Data, c)
	})
	if perr := pub.end(); err == nil && perr != nil {
		err = fmt.Errorf("client: publish an update of round %d: %w", m.Round, perr)
	}
	if err != nil {
		return err
	}
	return ctx.Err()
}

// train runs one client's local training and queues its update on pub.
func (h *Host) train(wk *worker, pub *publisher, m *transport.Message, global []float32, c int) error {
	task, round := int(m.Task), int(m.Round)
	segs := h.shards.Shard(task, c)
	copy(wk.local, global)
	w := &wk.work
	w.Client, w.Round, w.Msg, w.Global, w.Local, w.Segments = c, round, m, global, wk.local, segs
	w.Trainer, w.Config, w.Update = wk.tr, h.cfg.Train, &wk.msg
	var ex *Extras
	if b := h.cfg.Behaviour; b != nil {
		var err error
		if ex, err = b.Extras(w); err != nil {
			return fmt.Errorf("client %d: round %d: %w", c, round, err)
		}
	}
	n := 0
	for _, s := range segs {
		n += len(s.Rows)
	}
	cfg := h.cfg.Train
	cfg.Train = protocol.Trainable(h.model, h.cfg.LoRA, m.Flags)
	if m.Flags&protocol.FlagBase != 0 && h.cfg.PretrainLR > 0 {
		cfg.SGD.LR = h.cfg.PretrainLR
	}
	dpOn := h.cfg.DP != nil && m.Flags&(protocol.FlagBase|protocol.FlagNoTrain) == 0
	if dpOn {
		cfg.DP = &DPStep{Clip: h.cfg.DP.Clip, Sigma: h.cfg.DP.Sigma[c]}
	}
	start := time.Now()
	var loss float64
	var steps int
	if m.Flags&protocol.FlagNoTrain == 0 {
		loss, steps = wk.tr.Train(wk.local, segs, cfg, ex, c, round)
	}
	if h.stop.Load() { // stopped part-way: no update
		return fmt.Errorf("client %d: round %d: %w", c, round, context.Canceled)
	}
	// The delta carries the trained parameters only (Trainable), so bytes
	// up are what the method really sends. It is written straight into an
	// encoded update frame when the frame's last update had the same
	// layout (a secure round sends no frame).
	var f *transport.Frame
	delta := wk.delta[:cfg.Train.Size()]
	if h.sec == nil {
		f = <-h.frames
		defer func() { // not sent: back to the free list
			if f != nil {
				h.frames <- f
			}
		}()
		if v := f.Values(0); len(v) == len(delta) {
			delta = v
		}
	}
	k := 0
	for _, q := range cfg.Train {
		d := delta[k : k+q[1]-q[0]]
		l, g := wk.local[q[0]:q[1]], global[q[0]:q[1]]
		for i := range d {
			d[i] = l[i] - g[i]
		}
		k += len(d)
	}
	u := &wk.msg
	*u = transport.Message{
		Kind:   transport.KindUpdate,
		Round:  m.Round,
		Task:   m.Task,
		Client: int32(c),
		N:      int64(n),
		Scalars: append(u.Scalars[:0],
			transport.Scalar{Name: protocol.ScalarLoss, Value: loss},
			transport.Scalar{Name: protocol.ScalarSteps, Value: float64(steps)},
			transport.Scalar{Name: protocol.ScalarTrainSeconds}),
		Tensors: append(u.Tensors[:0], transport.Tensor{Name: protocol.TensorDelta, Rows: 1, Cols: len(delta), Data: delta}),
	}
	if dpOn {
		u.Scalars = append(u.Scalars, transport.Scalar{Name: protocol.ScalarDPQ, Value: DPRate(cfg.BatchSize, n)})
	}
	if b := h.cfg.Behaviour; b != nil {
		if err := b.Finish(w); err != nil {
			return fmt.Errorf("client %d: round %d: %w", c, round, err)
		}
	}
	u.Scalars[2].Value = time.Since(start).Seconds() // training and the method's work (Fisher, GPSE)
	if h.sec != nil {
		if err := h.secureUpdate(wk, u, delta, c, n); err != nil {
			return fmt.Errorf("client %d: round %d: %w", c, round, err)
		}
		return nil
	}
	if h.cfg.Auth != nil {
		if err := protocol.Sign(u, h.cfg.RunID, h.cfg.Auth.ClientKey(c)); err != nil {
			return fmt.Errorf("client %d: sign update of round %d: %w", c, round, err)
		}
	}
	if err := f.Encode(u); err != nil {
		return fmt.Errorf("client %d: publish update of round %d: %w", c, round, err)
	}
	pub.send(f)
	f = nil
	return nil
}
