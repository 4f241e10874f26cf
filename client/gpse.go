package client

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
)

// GPSEConfig is the client side of FOT's subspace extraction
// (docs/ALGORITHMS.md §3.2).
type GPSEConfig struct {
	// Sketch is the distribution of G: "uniform" (Uniform[-1, 1], the MLP
	// setting) or "gaussian" (N(0, 1), the conv-net setting).
	Sketch string
	// Oversample sets the sketch width m = Oversample * d_in (1 for MLPs,
	// 5 for conv nets in the paper).
	Oversample int
	// TrainMode runs the activation pass with dropout on, as the authors'
	// MLP code does; false runs it in evaluation mode.
	TrainMode bool
	// Samples caps the rows of the pass (the first ones of each segment);
	// 0 uses them all.
	Samples int
}

// GPSE is one worker's client side of FOT's subspace extraction: its
// buffers, reused from client to client. It is not safe for concurrent
// use; give each worker its own.
type GPSE struct {
	model    *nn.Model
	cfg      GPSEConfig
	widx     []int // index of each projected layer in Model.Weights()
	bases    []*aggregator.Basis
	sketches []*aggregator.Sketch
	srcs     []*rand.PCG // one G stream per layer
	rs       []*rand.Rand
	dsrc     *rand.PCG
}

// NewGPSE returns the GPSE buffers for model's projected layers
// (protocol.Projected), for mini-batches of at most batch rows.
func NewGPSE(model *nn.Model, cfg GPSEConfig, batch int) (*GPSE, error) {
	dist, err := aggregator.ParseSketchDist(cfg.Sketch)
	if err != nil {
		return nil, err
	}
	g := &GPSE{model: model, cfg: cfg, dsrc: rand.NewPCG(0, 0)}
	shared := map[string]bool{}
	for _, p := range protocol.Projected(model) {
		shared[p.Name] = true
	}
	for i, w := range model.Weights() {
		if !shared[w.Name] {
			continue
		}
		b := aggregator.NewBasis(w.Cols)
		g.widx = append(g.widx, i)
		g.bases = append(g.bases, b)
		m := aggregator.SketchCols(w.Cols, float64(max(cfg.Oversample, 1)))
		g.sketches = append(g.sketches, aggregator.NewSketch(w.Cols, m, batch, b, dist, nn.ActiveBackend()))
		src := rand.NewPCG(0, 0)
		g.srcs, g.rs = append(g.srcs, src), append(g.rs, rand.New(src))
	}
	return g, nil
}

// Sketch runs GPSE for client w.Client after its local training: one pass
// over all its training rows (GPSEConfig.Samples caps them) with its local
// model w.Local, accumulating every projected layer's residual sketch
// against the basis the round message carries (protocol.BasisTensor; none
// = empty), and appends the sketches and ratios to w.Update with
// protocol.FlagSketch. G for layer i comes from the stream (seed, "sketch",
// client, round, i); dropout masks of the pass (when TrainMode) from
// (seed, "gpse-dropout", client, round).
func (g *GPSE) Sketch(w *Work) error {
	m, c := w.Msg, w.Client
	for i, b := range g.bases {
		k := 0
		var u []float32
		if t := m.Tensor(protocol.BasisTensor(i)); t != nil {
			if t.Rows != b.Dim() || t.Cols > b.Dim() || len(t.Data) != t.Rows*t.Cols {
				return fmt.Errorf("basis %d is %dx%d, want %d rows", i, t.Rows, t.Cols, b.Dim())
			}
			k, u = t.Cols, t.Data
		}
		b.SetFloat32(u, k)
		g.sketches[i].Reset()
		rng.Reseed(g.srcs[i], w.Config.Seed, "sketch", c, w.Round, i)
	}
	cfg := w.Config
	rng.Reseed(g.dsrc, cfg.Seed, "gpse-dropout", c, w.Round)
	in := g.model.InputSize()
	tr := w.Trainer
	for _, s := range w.Segments {
		rows := s.Rows
		if k := g.cfg.Samples; k > 0 && k < len(rows) {
			rows = rows[:k]
		}
		for lo := 0; lo < len(rows); lo += cfg.BatchSize {
			hi := min(lo+cfg.BatchSize, len(rows))
			n := hi - lo
			s.View.Gather(tr.x[:n*in], tr.y[:n], rows[lo:hi])
			tr.ws.Forward(w.Local, tr.x[:n*in], n, s.Head, g.cfg.TrainMode, g.dsrc)
			for i, wi := range g.widx {
				at, r, _ := tr.ws.LayerInput(wi)
				g.sketches[i].Add(at, r, g.rs[i])
			}
		}
	}
	u := w.Update
	u.Flags |= protocol.FlagSketch
	for i, s := range g.sketches {
		u.Tensors = append(u.Tensors, transport.Tensor{Name: protocol.SketchTensor(i), Rows: s.Dim(), Cols: s.M(), Data: s.Y()})
		u.Scalars = append(u.Scalars, transport.Scalar{Name: protocol.RatioScalar(i), Value: s.Ratio()})
	}
	return nil
}
