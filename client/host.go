package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/transport"
)

// ErrConfig reports an unusable client or host configuration.
var ErrConfig = errors.New("client: bad config")

// Message flags set by the server on a round broadcast.
const (
	// FlagSketch asks the selected clients to run GPSE after training and
	// send their activation sketches with the update.
	FlagSketch uint32 = 1 << iota
	// FlagFisher asks the selected clients to send the diagonal Fisher
	// information of their local model (EWC, FedCurv).
	FlagFisher
	// FlagBase marks a pretraining round (scenario pretrain:, federated
	// mode): the clients train every base parameter, LoRA adapters left
	// alone, with plain SGD (never DP), and send that delta.
	FlagBase
	// FlagNoTrain asks the selected clients not to train: they send a zero
	// delta and whatever else the flags ask for (GPSE sketches, Fisher) on
	// the global model. The server uses it after a central pretraining
	// task, so that FOT and EWC learn about that task too.
	FlagNoTrain
)

// Tensor and scalar names of the protocol.
const (
	TensorParams = "params" // round: the global model
	TensorDelta  = "delta"  // update: local minus global parameters
	ScalarLoss   = "loss"   // update: mean training loss
	ScalarSteps  = "steps"  // update: SGD steps taken
	ScalarDPQ    = "dp_q"   // update, DP-SGD only: the Poisson sampling rate of those steps
	// ScalarTrainSeconds is the client's local training wall time (for
	// timing reports only; it never enters a result).
	ScalarTrainSeconds = "train_seconds"
	TensorFisher       = "fisher" // update: diagonal Fisher of the local model
	TensorQuadU        = "quad/u" // round: quadratic penalty weights U (EWC, FedCurv)
	TensorQuadV        = "quad/v" // round: quadratic penalty centre term V
	// TensorCurvAccepted lists (as float32 ids) the clients whose Fisher
	// the server added to FedCurv's sums at the end of the last task; the
	// sums are means over them.
	TensorCurvAccepted = "curv/accepted"
)

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

// Method is the client side of the training method (ALGORITHMS.md §6).
type Method struct {
	Name          string  // fedavg, fot, fedprox, ewc, fedcurv, flwf, central-*
	Mu            float32 // fedprox: proximal coefficient
	Lambda        float32 // ewc, fedcurv: penalty strength
	FisherSamples int     // ewc, fedcurv: samples per client for the Fisher (0 = all)
	Alpha         float32 // flwf: distillation weight
	Temp          float32 // flwf: distillation temperature
	// LoRA is "ab" or "b" for a LoRA method (the clients train those
	// factors only, see Trainable), "" otherwise.
	LoRA string
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
	Method      Method
	GPSE        GPSEConfig
	// DP, when non-nil, trains with DP-SGD; Sigma must cover [First, Last).
	DP *DPConfig
	// PretrainLR, when > 0, replaces Train.SGD.LR in pretraining rounds
	// (FlagBase).
	PretrainLR float32
	// Logf receives one line per rejected message; nil discards them.
	Logf func(format string, args ...any)
}

// Validate reports an unusable host configuration.
func (c HostConfig) Validate() error {
	if c.Workers < 1 {
		return fmt.Errorf("%w: workers %d < 1", ErrConfig, c.Workers)
	}
	if c.First < 0 || c.Last <= c.First {
		return fmt.Errorf("%w: client range [%d, %d) is empty", ErrConfig, c.First, c.Last)
	}
	if c.Method.LoRA != "" && c.Method.LoRA != "ab" && c.Method.LoRA != "b" {
		return fmt.Errorf("%w: LoRA factors %q (want ab or b)", ErrConfig, c.Method.LoRA)
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
	pool   sync.Pool // *worker
	done   chan error

	teacher     []float32 // flwf: the global model at the start of the current task
	teacherTask int

	ownMu   sync.Mutex
	own     map[int]*curvTerm // fedcurv: each client's own accumulated term
	pending map[int]*curvTerm // fedcurv: F and F*w of the last Fisher round, unscaled
}

// curvTerm is one client's share of FedCurv's U and V sums.
type curvTerm struct{ u, v []float32 }

// NewHost returns a host that trains model's clients on shards and talks
// over tr.
func NewHost(cfg HostConfig, model *nn.Model, shards Shards, tr Transport) (*Host, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{cfg: cfg, model: model, shards: shards, tr: tr}
	h.pool.New = func() any { return h.newWorker() }
	return h, nil
}

// worker is the per-goroutine state: a trainer and parameter buffers.
type worker struct {
	tr     *Trainer
	local  []float32
	delta  []float32
	fisher []float32
	u, v   []float32 // fedcurv: U and V without the client's own term
	ex     Extras
	sketch *gpseState
	msg    transport.Message
	frame  transport.Frame // msg encoded, with the delta written in place
}

func (h *Host) newWorker() *worker {
	n := h.model.NumParams()
	return &worker{
		tr:    NewTrainer(h.model, h.cfg.Train.BatchSize),
		local: make([]float32, n),
		delta: make([]float32, n),
	}
}

// Start subscribes to the round subject and makes sure the server knows
// it (a flush), then handles rounds in the background until the server
// sends Stop, ctx ends or a publish fails; Wait returns that outcome.
// Rounds are handled one at a time, in arrival order.
func (h *Host) Start(ctx context.Context) error {
	inbox := make(chan *transport.Message, 16)
	unsub, err := h.tr.Subscribe(h.cfg.Subjects.Round, func(m *transport.Message, err error) {
		if err != nil {
			h.logf("client: rejected round message: %v", err)
			return
		}
		select {
		case inbox <- m:
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
	go func() {
		defer unsub()
		h.done <- h.serve(ctx, inbox)
	}()
	return nil
}

// Wait blocks until the host started by Start stops, and returns why: nil
// after a Stop message.
func (h *Host) Wait() error { return <-h.done }

func (h *Host) serve(ctx context.Context, inbox <-chan *transport.Message) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-inbox:
			switch m.Kind {
			case transport.KindStop:
				return nil
			case transport.KindRound:
				if err := h.round(ctx, m); err != nil {
					return err
				}
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
// goroutines, and publishes their updates.
func (h *Host) round(ctx context.Context, m *transport.Message) error {
	global := findTensor(m.Tensors, TensorParams)
	if global == nil || len(global.Data) != h.model.NumParams() {
		h.logf("client: round %d has no %q tensor of %d values; skipped", m.Round, TensorParams, h.model.NumParams())
		return nil
	}
	if t := findTensor(m.Tensors, TensorCurvAccepted); t != nil {
		h.commitCurv(t.Data)
	}
	if h.cfg.Method.Name == "flwf" && int(m.Task) > h.teacherTask {
		// The first broadcast of a task is the model that ended the last one.
		h.teacher = append(h.teacher[:0], global.Data...)
		h.teacherTask = int(m.Task)
	}
	var mine []int
	for _, c := range m.Clients {
		if int(c) >= h.cfg.First && int(c) < h.cfg.Last {
			mine = append(mine, int(c))
		}
	}
	// All jobs are queued up front: a worker that finishes a client takes
	// the next without waiting for a feeder goroutine to be scheduled.
	jobs := make(chan int, len(mine))
	for _, c := range mine {
		jobs <- c
	}
	close(jobs)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for w := 0; w < min(h.cfg.Workers, len(mine)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wk := h.pool.Get().(*worker)
			defer h.pool.Put(wk)
			for c := range jobs {
				if ctx.Err() != nil {
					return
				}
				if err := h.train(wk, m, global.Data, c); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return ctx.Err()
	}
}

// train runs one client's local training and publishes its update.
func (h *Host) train(wk *worker, m *transport.Message, global []float32, c int) error {
	task, round := int(m.Task), int(m.Round)
	segs := h.shards.Shard(task, c)
	copy(wk.local, global)
	ex, err := h.extras(wk, m, global, c)
	if err != nil {
		return err
	}
	n := 0
	for _, s := range segs {
		n += len(s.Rows)
	}
	cfg := h.cfg.Train
	cfg.Train = Trainable(h.model, h.cfg.Method.LoRA, m.Flags)
	if m.Flags&FlagBase != 0 && h.cfg.PretrainLR > 0 {
		cfg.SGD.LR = h.cfg.PretrainLR
	}
	dpOn := h.cfg.DP != nil && m.Flags&(FlagBase|FlagNoTrain) == 0
	if dpOn {
		cfg.DP = &DPStep{Clip: h.cfg.DP.Clip, Sigma: h.cfg.DP.Sigma[c]}
	}
	start := time.Now()
	var loss float64
	var steps int
	if m.Flags&FlagNoTrain == 0 {
		loss, steps = wk.tr.Train(wk.local, segs, cfg, ex, c, round)
	}
	// The delta carries the trained parameters only (Trainable), so bytes
	// up are what the method really sends. It is written straight into the
	// worker's encoded update when the last one had the same layout.
	delta := wk.frame.Values(0)
	if len(delta) != cfg.Train.Size() {
		delta = wk.delta[:cfg.Train.Size()]
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
			transport.Scalar{Name: ScalarLoss, Value: loss},
			transport.Scalar{Name: ScalarSteps, Value: float64(steps)},
			transport.Scalar{Name: ScalarTrainSeconds}),
		Tensors: append(u.Tensors[:0], transport.Tensor{Name: TensorDelta, Rows: 1, Cols: len(delta), Data: delta}),
	}
	if dpOn {
		u.Scalars = append(u.Scalars, transport.Scalar{Name: ScalarDPQ, Value: DPRate(cfg.BatchSize, n)})
	}
	if m.Flags&FlagFisher != 0 {
		h.fisher(wk, segs, c, round)
	}
	if m.Flags&FlagSketch != 0 {
		if err := h.sketch(wk, m, segs, c); err != nil {
			return err
		}
	}
	u.Scalars[2].Value = time.Since(start).Seconds() // training, Fisher and GPSE
	err = wk.frame.Encode(u)
	if err == nil {
		_, err = h.tr.PublishFrame(h.cfg.Subjects.Update, &wk.frame)
	}
	if err != nil {
		return fmt.Errorf("client %d: publish update of round %d: %w", c, round, err)
	}
	return nil
}

// extras builds the method's additions to local training for client c.
func (h *Host) extras(wk *worker, m *transport.Message, global []float32, c int) (*Extras, error) {
	mc := h.cfg.Method
	ex := &wk.ex
	*ex = Extras{}
	switch mc.Name {
	case "fedprox":
		ex.Mu, ex.Global = mc.Mu, global
	case "flwf":
		if h.teacher != nil {
			ex.Teacher, ex.Alpha, ex.Temp = h.teacher, mc.Alpha, mc.Temp
		}
	case "ewc", "fedcurv":
		u, v := findTensor(m.Tensors, TensorQuadU), findTensor(m.Tensors, TensorQuadV)
		if u == nil || v == nil {
			return ex, nil // no old task yet
		}
		if len(u.Data) != len(global) || len(v.Data) != len(global) {
			return nil, fmt.Errorf("client %d: round %d: penalty tensors have %d and %d values, want %d", c, m.Round, len(u.Data), len(v.Data), len(global))
		}
		ex.Lambda, ex.U, ex.V = mc.Lambda, u.Data, v.Data
		if mc.Name == "fedcurv" {
			h.ownMu.Lock()
			own := h.own[c]
			h.ownMu.Unlock()
			if own != nil {
				wk.u = append(wk.u[:0], u.Data...)
				wk.v = append(wk.v[:0], v.Data...)
				for i := range wk.u {
					wk.u[i] -= own.u[i]
					wk.v[i] -= own.v[i]
				}
				ex.U, ex.V = wk.u, wk.v
			}
		}
	}
	return ex, nil
}

// fisher computes the client's diagonal Fisher on its current-task data
// and adds it to the update. For FedCurv it also keeps the client's F and
// F*w (w its local model) until the server says whether it used them.
func (h *Host) fisher(wk *worker, segs []Segment, c, round int) {
	if len(wk.fisher) != len(wk.local) {
		wk.fisher = make([]float32, len(wk.local))
	}
	wk.tr.Fisher(wk.fisher, wk.local, segs[len(segs)-1], h.cfg.Method.FisherSamples, h.cfg.Train.Seed, c, round)
	wk.msg.Flags |= FlagFisher
	wk.msg.Tensors = append(wk.msg.Tensors, transport.Tensor{Name: TensorFisher, Rows: 1, Cols: len(wk.fisher), Data: wk.fisher})
	if h.cfg.Method.Name != "fedcurv" {
		return
	}
	t := &curvTerm{u: append([]float32(nil), wk.fisher...), v: make([]float32, len(wk.local))}
	for i, f := range wk.fisher {
		t.v[i] = f * wk.local[i]
	}
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	if h.pending == nil {
		h.pending = map[int]*curvTerm{}
	}
	h.pending[c] = t
}

// commitCurv adds to each accepted client's own FedCurv term its pending
// F and F*w scaled by 1/K, K = the number of accepted clients, exactly as
// the server added them to its sums; terms of clients the server did not
// accept are dropped.
func (h *Host) commitCurv(ids []float32) {
	h.ownMu.Lock()
	defer h.ownMu.Unlock()
	if len(ids) == 0 || len(h.pending) == 0 {
		clear(h.pending)
		return
	}
	if h.own == nil {
		h.own = map[int]*curvTerm{}
	}
	inv := 1 / float32(len(ids))
	for _, id := range ids {
		c := int(id)
		p := h.pending[c]
		if p == nil {
			continue
		}
		o := h.own[c]
		if o == nil {
			o = &curvTerm{u: make([]float32, len(p.u)), v: make([]float32, len(p.v))}
			h.own[c] = o
		}
		for i := range p.u {
			o.u[i] += p.u[i] * inv
			o.v[i] += p.v[i] * inv
		}
	}
	clear(h.pending)
}

func findTensor(ts []transport.Tensor, name string) *transport.Tensor {
	for i := range ts {
		if ts[i].Name == name {
			return &ts[i]
		}
	}
	return nil
}
