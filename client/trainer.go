package client

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Config is a client's local training recipe (ALGORITHMS.md §1 step 3).
type Config struct {
	Seed      uint64 // scenario seed: names every random stream
	Epochs    int    // local epochs over the shard
	BatchSize int    // mini-batch size; the last batch of an epoch may be smaller
	SGD       nn.SGD // learning rate, weight decay, momentum
}

// Validate reports a recipe that cannot train.
func (c Config) Validate() error {
	switch {
	case c.Epochs < 1:
		return fmt.Errorf("%w: epochs %d < 1", ErrConfig, c.Epochs)
	case c.BatchSize < 1:
		return fmt.Errorf("%w: batch size %d < 1", ErrConfig, c.BatchSize)
	case !(c.SGD.LR > 0):
		return fmt.Errorf("%w: learning rate %v <= 0", ErrConfig, c.SGD.LR)
	}
	return nil
}

// Trainer owns every buffer a worker needs to train one client at a time.
// It is not safe for concurrent use; give each worker its own.
type Trainer struct {
	model *nn.Model
	ws    *nn.Workspace
	batch int
	grad  []float32
	vel   []float32
	x     []float32
	y     []int32
	order []int32
	src   *rand.PCG
	r     *rand.Rand
	dsrc  *rand.PCG
	dr    *rand.Rand
}

// NewTrainer returns a Trainer for m with mini-batches of at most batch.
func NewTrainer(m *nn.Model, batch int) *Trainer {
	src, dsrc := rand.NewPCG(0, 0), rand.NewPCG(0, 0)
	return &Trainer{
		model: m,
		ws:    m.NewWorkspace(batch),
		batch: batch,
		grad:  make([]float32, m.NumParams()),
		x:     make([]float32, batch*m.InputSize()),
		y:     make([]int32, batch),
		src:   src,
		r:     rand.New(src),
		dsrc:  dsrc,
		dr:    rand.New(dsrc),
	}
}

// Workspace is the Trainer's model workspace, for passes that reuse it
// (GPSE activations).
func (t *Trainer) Workspace() *nn.Workspace { return t.ws }

// Train runs cfg.Epochs epochs of SGD on the shard rows of view, starting
// from the parameters already in params (the caller copies the global model
// in), updating params in place. Rows are shuffled each epoch with the
// stream (seed, "shuffle", client, round, epoch); dropout masks come from
// (seed, "dropout", client, round). It returns the mean training loss over
// all steps and the number of steps. Train allocates only when the shard
// is larger than any shard this Trainer has seen.
func (t *Trainer) Train(params []float32, view data.View, shard []int32, head int, cfg Config, client, round int) (loss float64, steps int) {
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
	if cap(t.order) < len(shard) {
		t.order = make([]int32, len(shard))
	}
	order := t.order[:len(shard)]
	in := t.model.InputSize()
	rng.Reseed(t.dsrc, cfg.Seed, "dropout", client, round)
	for e := 0; e < cfg.Epochs; e++ {
		copy(order, shard)
		rng.Reseed(t.src, cfg.Seed, "shuffle", client, round, e)
		t.r.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for lo := 0; lo < len(order); lo += cfg.BatchSize {
			hi := min(lo+cfg.BatchSize, len(order))
			b := hi - lo
			view.Gather(t.x[:b*in], t.y[:b], order[lo:hi])
			l := t.ws.LossGrad(params, t.grad, t.x[:b*in], t.y[:b], b, head, t.dr)
			cfg.SGD.Step(params, t.grad, t.vel)
			loss += float64(l)
			steps++
		}
	}
	if steps > 0 {
		loss /= float64(steps)
	}
	return loss, steps
}
