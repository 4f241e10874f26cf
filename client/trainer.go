package client

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync/atomic"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Config is a client's local training recipe (docs/ALGORITHMS.md §1 step 3).
type Config struct {
	Seed      uint64 // scenario seed: names every random stream
	Epochs    int    // local epochs over the shard
	BatchSize int    // mini-batch size; the last batch of a segment may be smaller
	SGD       nn.SGD // learning rate, weight decay, momentum
	// Steps > 0 runs exactly Steps SGD steps instead of Epochs epochs: the
	// batches of epoch 0, then of epoch 1 (a new shuffle), and so on.
	Steps int
	// Train is the set of parameters trained (Ranges selecting whole views,
	// e.g. Model.AdapterParams("b")); the others keep their values. nil
	// trains every parameter.
	Train nn.Ranges
	// DP, when non-nil, trains with DP-SGD (see DPStep) instead of plain
	// mini-batch SGD.
	DP *DPStep
}

// Validate reports a recipe that cannot train.
func (c Config) Validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("%w: epochs %d < 1", ErrConfig, c.Epochs)
	case c.Steps < 0:
		return fmt.Errorf("%w: steps %d < 0", ErrConfig, c.Steps)
	case c.BatchSize < 1:
		return fmt.Errorf("%w: batch size %d < 1", ErrConfig, c.BatchSize)
	case !(c.SGD.LR > 0):
		return fmt.Errorf("%w: learning rate %v <= 0", ErrConfig, c.SGD.LR)
	}
	return nil
}

// Segment is a run of training rows that share a view and a model head.
// A federated client has one segment per task; joint training over several
// tasks has one per task seen.
type Segment struct {
	View data.View
	Rows []int32
	Head int
}

// Extras are a method's additions to plain local SGD (docs/ALGORITHMS.md §6).
// The zero value adds nothing.
type Extras struct {
	// FedProx: loss + (Mu/2)||w - Global||^2, so grad += Mu (w - Global).
	Mu     float32
	Global []float32
	// Quadratic penalty (EWC, FedCurv): loss + (Lambda/2) sum_i (U_i w_i^2 -
	// 2 V_i w_i) + const, so grad += Lambda (U w - V). EWC sets U = sum_t
	// F_t and V = sum_t F_t w*_t; FedCurv the other clients' terms.
	Lambda float32
	U, V   []float32
	// Distillation (LwF): loss + Alpha T^2 KL(softmax(z_T/T) || softmax(z/T))
	// where z_T are the Teacher model's eval-mode logits on the same batch.
	Teacher []float32
	Alpha   float32
	Temp    float32
}

// Trainer owns every buffer a worker needs to train one client at a time.
// It is not safe for concurrent use; give each worker its own.
type Trainer struct {
	model   *nn.Model
	ws      *nn.Workspace
	batch   int
	classes int // outputs of one head
	grad    []float32
	vel     []float32
	x       []float32
	y       []int32
	order   []int32
	batches []span
	tlog    []float32 // teacher logits
	dlog    []float32 // logits gradient
	src     *rand.PCG
	r       *rand.Rand
	dsrc    *rand.PCG // the dropout stream (nn runs a *rand.PCG directly)
	dp      *dpState  // DP-SGD buffers, made on first use
	stop    *atomic.Bool
}

// StopOn makes Train return early, after the mini-batch in progress, once
// flag is set (a host sets it when its context ends, e.g. on SIGINT): the
// parameters are then partly trained and must be dropped. Checking it costs
// an atomic load per mini-batch. nil never stops.
func (t *Trainer) StopOn(flag *atomic.Bool) { t.stop = flag }

// stopped reports whether the flag given to StopOn is set.
func (t *Trainer) stopped() bool { return t.stop != nil && t.stop.Load() }

// span is one mini-batch: order[lo:hi] of segment seg.
type span struct{ seg, lo, hi int }

// NewTrainer returns a Trainer for m with mini-batches of at most batch.
func NewTrainer(m *nn.Model, batch int) *Trainer {
	src, dsrc := rand.NewPCG(0, 0), rand.NewPCG(0, 0)
	c := m.Spec().Classes
	return &Trainer{
		model:   m,
		ws:      m.NewWorkspace(batch),
		batch:   batch,
		classes: c,
		grad:    make([]float32, m.NumParams()),
		x:       make([]float32, batch*m.InputSize()),
		y:       make([]int32, batch),
		tlog:    make([]float32, batch*c),
		dlog:    make([]float32, batch*c),
		src:     src,
		r:       rand.New(src),
		dsrc:    dsrc,
	}
}

// Train runs cfg.Epochs epochs (or cfg.Steps steps) of SGD on the
// segments' rows, starting from the parameters already in params (the
// caller copies the global model in), updating params in place (only those
// in cfg.Train when it is set). Each epoch shuffles every segment's rows
// with the stream (seed, "shuffle", client, round, epoch), cuts each segment
// into mini-batches, and (with several segments) shuffles the order of the
// batches with the same stream; dropout masks come from (seed, "dropout",
// client, round). With cfg.DP it runs DP-SGD instead (trainDP). ex may be
// nil. It returns the mean training loss (the data term) over all steps
// and the number of steps. Train allocates only when the data is larger
// than any this Trainer has seen. It stops early when told to (StopOn).
func (t *Trainer) Train(params []float32, segs []Segment, cfg Config, ex *Extras, client, round int) (loss float64, steps int) {
	if len(params) != len(t.grad) {
		panic(fmt.Sprintf("client: params has %d values, model has %d", len(params), len(t.grad)))
	}
	if cfg.BatchSize > t.batch {
		panic(fmt.Sprintf("client: batch size %d larger than the trainer's %d", cfg.BatchSize, t.batch))
	}
	if cfg.SGD.Momentum != 0 {
		if len(t.vel) != len(params) {
			t.vel = make([]float32, len(params))
		}
		clear(t.vel)
	}
	total := 0
	for _, s := range segs {
		total += len(s.Rows)
	}
	train := t.ranges(cfg.Train)
	if cfg.DP != nil {
		return t.trainDP(params, segs, total, cfg, train, ex, client, round)
	}
	if total == 0 {
		return 0, 0
	}
	if cap(t.order) < total {
		t.order = make([]int32, total)
	}
	order := t.order[:total]
	in := t.model.InputSize()
	rng.Reseed(t.dsrc, cfg.Seed, "dropout", client, round)
	for e := 0; ((cfg.Steps > 0 && steps < cfg.Steps) || (cfg.Steps <= 0 && e < cfg.Epochs)) && !t.stopped(); e++ {
		rng.Reseed(t.src, cfg.Seed, "shuffle", client, round, e)
		t.batches = t.batches[:0]
		off := 0
		for si, s := range segs {
			o := order[off : off+len(s.Rows)]
			copy(o, s.Rows)
			t.r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
			for lo := 0; lo < len(o); lo += cfg.BatchSize {
				t.batches = append(t.batches, span{si, off + lo, off + min(lo+cfg.BatchSize, len(o))})
			}
			off += len(s.Rows)
		}
		if len(segs) > 1 {
			t.r.Shuffle(len(t.batches), func(i, j int) { t.batches[i], t.batches[j] = t.batches[j], t.batches[i] })
		}
		for _, b := range t.batches {
			if (cfg.Steps > 0 && steps == cfg.Steps) || t.stopped() {
				break
			}
			s := segs[b.seg]
			n := b.hi - b.lo
			x, y := t.x[:n*in], t.y[:n]
			s.View.Gather(x, y, order[b.lo:b.hi])
			var l float32
			switch {
			case ex != nil && ex.Teacher != nil && ex.Alpha > 0:
				l = t.distillStep(params, x, y, n, s.Head, ex)
			case train == nil:
				l = t.ws.LossGrad(params, t.grad, x, y, n, s.Head, t.dsrc)
			default:
				l = t.ws.LossGradRanges(params, t.grad, x, y, n, s.Head, t.dsrc, train)
			}
			if ex != nil {
				ex.addPenalties(t.grad, params)
			}
			if train == nil {
				cfg.SGD.Step(params, t.grad, t.vel)
			} else {
				cfg.SGD.StepRanges(params, t.grad, t.vel, train)
			}
			loss += float64(l)
			steps++
		}
	}
	if steps > 0 {
		loss /= float64(steps)
	}
	return loss, steps
}

// addPenalties adds the FedProx and quadratic penalty gradients to grad.
func (ex *Extras) addPenalties(grad, w []float32) {
	if ex.Mu != 0 && ex.Global != nil {
		mu, g := ex.Mu, ex.Global[:len(w)]
		for i, v := range w {
			grad[i] += mu * (v - g[i])
		}
	}
	if ex.Lambda != 0 && ex.U != nil {
		lam, u, vv := ex.Lambda, ex.U[:len(w)], ex.V[:len(w)]
		for i, v := range w {
			grad[i] += lam * (u[i]*v - vv[i])
		}
	}
}

// distillStep is one LwF step: cross-entropy on the labels plus
// Alpha T^2 KL(p_T || p) with p = softmax(z/T), p_T = softmax(z_T/T). The
// gradient of the distillation term with respect to z is Alpha T (p - p_T)
// per sample; both terms are averaged over the batch. It returns the
// cross-entropy part of the loss.
func (t *Trainer) distillStep(params, x []float32, y []int32, n, head int, ex *Extras) float32 {
	c := t.classes
	copy(t.tlog[:n*c], t.ws.Forward(ex.Teacher, x, n, head, false, nil))
	z := t.ws.Forward(params, x, n, head, true, t.dsrc)
	loss := DistillGrad(t.dlog[:n*c], z[:n*c], t.tlog[:n*c], y, n, c, ex.Alpha, ex.Temp)
	t.ws.Backward(params, t.grad, t.dlog[:n*c])
	return loss
}

// DistillGrad writes into dst (n x c) the gradient with respect to the
// logits z of
//
//	(1/n) sum_i [ CE(softmax(z_i), y_i) + alpha T^2 KL(softmax(zt_i/T) || softmax(z_i/T)) ]
//
// which is (softmax(z_i) - onehot(y_i) + alpha T (softmax(z_i/T) -
// softmax(zt_i/T))) / n, and returns the mean cross-entropy. Computed in
// float64 per row with the max-shift for stability.
func DistillGrad(dst, z, zt []float32, y []int32, n, c int, alpha, temp float32) float32 {
	if temp <= 0 {
		temp = 1
	}
	var ce float64
	inv := 1 / float64(n)
	T := float64(temp)
	for i := 0; i < n; i++ {
		zi, ti, di := z[i*c:(i+1)*c], zt[i*c:(i+1)*c], dst[i*c:(i+1)*c]
		m, mt := math.Inf(-1), math.Inf(-1)
		for j := range zi {
			m = math.Max(m, float64(zi[j]))
			mt = math.Max(mt, float64(ti[j]))
		}
		var s, sT, stT float64
		for j := range zi {
			s += math.Exp(float64(zi[j]) - m)
			sT += math.Exp((float64(zi[j]) - m) / T)
			stT += math.Exp((float64(ti[j]) - mt) / T)
		}
		ce += math.Log(s) - (float64(zi[y[i]]) - m)
		for j := range zi {
			p := math.Exp(float64(zi[j])-m) / s
			if int32(j) == y[i] {
				p--
			}
			pT := math.Exp((float64(zi[j])-m)/T) / sT
			qT := math.Exp((float64(ti[j])-mt)/T) / stT
			di[j] = float32((p + float64(alpha)*T*(pT-qT)) * inv)
		}
	}
	return float32(ce * inv)
}

// Fisher writes into dst the diagonal empirical Fisher information of
// params on up to limit rows of the segment (the first ones of a shuffle by
// the stream (seed, "fisher", client, round)): the mean over samples of the
// squared per-sample gradient of the cross-entropy, in evaluation mode (no
// dropout). It returns the number of samples used.
func (t *Trainer) Fisher(dst, params []float32, s Segment, limit int, seed uint64, client, round int) int {
	clear(dst)
	n := len(s.Rows)
	if limit > 0 && limit < n {
		n = limit
	}
	if cap(t.order) < len(s.Rows) {
		t.order = make([]int32, len(s.Rows))
	}
	o := t.order[:len(s.Rows)]
	copy(o, s.Rows)
	rng.Reseed(t.src, seed, "fisher", client, round)
	t.r.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
	in, c := t.model.InputSize(), t.classes
	for i := 0; i < n; i++ {
		x, y := t.x[:in], t.y[:1]
		s.View.Gather(x, y, o[i:i+1])
		z := t.ws.Forward(params, x, 1, s.Head, false, nil)
		softmaxMinusOneHot(t.dlog[:c], z[:c], y[0])
		t.ws.Backward(params, t.grad, t.dlog[:c])
		for j, g := range t.grad {
			dst[j] += g * g
		}
	}
	if n > 0 {
		inv := 1 / float32(n)
		for j := range dst {
			dst[j] *= inv
		}
	}
	return n
}

// softmaxMinusOneHot writes softmax(z) - onehot(y): the gradient of one
// sample's cross-entropy with respect to its logits.
func softmaxMinusOneHot(dst, z []float32, y int32) {
	m := math.Inf(-1)
	for _, v := range z {
		m = math.Max(m, float64(v))
	}
	var s float64
	for _, v := range z {
		s += math.Exp(float64(v) - m)
	}
	for j, v := range z {
		p := math.Exp(float64(v)-m) / s
		if int32(j) == y {
			p--
		}
		dst[j] = float32(p)
	}
}
