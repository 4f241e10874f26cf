package client

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
)

// GPSEConfig is the client side of FOT's subspace extraction
// (ALGORITHMS.md §3.2).
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

// Projected returns the weight matrices FOT projects, in order: every
// shared weight (trunk layers and a single shared head), never per-task
// heads. Their position in this list names their tensors on the wire.
func Projected(m *nn.Model) []nn.ParamView {
	var out []nn.ParamView
	for _, w := range m.Weights() {
		if w.Shared {
			out = append(out, w)
		}
	}
	return out
}

// Names of the GPSE tensors and scalars for projected layer i.
func BasisTensor(i int) string  { return fmt.Sprintf("basis/%d", i) }
func SketchTensor(i int) string { return fmt.Sprintf("sketch/%d", i) }
func RatioScalar(i int) string  { return fmt.Sprintf("ratio/%d", i) }

// gpseState is a worker's reusable GPSE buffers.
type gpseState struct {
	widx     []int // index of each projected layer in Model.Weights()
	bases    []*aggregator.Basis
	sketches []*aggregator.Sketch
	srcs     []*rand.PCG // one G stream per layer
	rs       []*rand.Rand
	dsrc     *rand.PCG
	dr       *rand.Rand
}

func (h *Host) newGPSE() (*gpseState, error) {
	dist, err := aggregator.ParseSketchDist(h.cfg.GPSE.Sketch)
	if err != nil {
		return nil, err
	}
	g := &gpseState{dsrc: rand.NewPCG(0, 0)}
	g.dr = rand.New(g.dsrc)
	shared := map[string]bool{}
	for _, p := range Projected(h.model) {
		shared[p.Name] = true
	}
	for i, w := range h.model.Weights() {
		if !shared[w.Name] {
			continue
		}
		b := aggregator.NewBasis(w.Cols)
		g.widx = append(g.widx, i)
		g.bases = append(g.bases, b)
		m := aggregator.SketchCols(w.Cols, float64(max(h.cfg.GPSE.Oversample, 1)))
		g.sketches = append(g.sketches, aggregator.NewSketch(w.Cols, m, h.cfg.Train.BatchSize, b, dist, nn.ActiveBackend()))
		src := rand.NewPCG(0, 0)
		g.srcs, g.rs = append(g.srcs, src), append(g.rs, rand.New(src))
	}
	return g, nil
}

// sketch runs GPSE for client c after its local training: one pass over
// all its training rows with the local model, accumulating every projected
// layer's residual sketch, and appends the sketches and ratios to the
// worker's update message. G for layer i comes from the stream
// (seed, "sketch", client, round, i); dropout masks of the pass (when
// TrainMode) from (seed, "gpse-dropout", client, round).
func (h *Host) sketch(wk *worker, m *transport.Message, segs []Segment, c int) error {
	if wk.sketch == nil {
		g, err := h.newGPSE()
		if err != nil {
			return fmt.Errorf("client %d: GPSE: %w", c, err)
		}
		wk.sketch = g
	}
	g := wk.sketch
	for i, b := range g.bases {
		k := 0
		var u []float32
		if t := findTensor(m.Tensors, BasisTensor(i)); t != nil {
			if t.Rows != b.Dim() || t.Cols > b.Dim() || len(t.Data) != t.Rows*t.Cols {
				return fmt.Errorf("client %d: round %d: basis %d is %dx%d, want %d rows", c, m.Round, i, t.Rows, t.Cols, b.Dim())
			}
			k, u = t.Cols, t.Data
		}
		b.SetFloat32(u, k)
		g.sketches[i].Reset()
		rng.Reseed(g.srcs[i], h.cfg.Train.Seed, "sketch", c, int(m.Round), i)
	}
	cfg := h.cfg.Train
	round := int(m.Round)
	rng.Reseed(g.dsrc, cfg.Seed, "gpse-dropout", c, round)
	in := h.model.InputSize()
	ws := wk.tr.ws
	for _, s := range segs {
		rows := s.Rows
		if k := h.cfg.GPSE.Samples; k > 0 && k < len(rows) {
			rows = rows[:k]
		}
		for lo := 0; lo < len(rows); lo += cfg.BatchSize {
			hi := min(lo+cfg.BatchSize, len(rows))
			n := hi - lo
			s.View.Gather(wk.tr.x[:n*in], wk.tr.y[:n], rows[lo:hi])
			ws.Forward(wk.local, wk.tr.x[:n*in], n, s.Head, h.cfg.GPSE.TrainMode, g.dr)
			for i, w := range g.widx {
				at, r, _ := ws.LayerInput(w)
				g.sketches[i].Add(at, r, g.rs[i])
			}
		}
	}
	u := &wk.msg
	u.Flags |= FlagSketch
	for i, s := range g.sketches {
		u.Tensors = append(u.Tensors, transport.Tensor{Name: SketchTensor(i), Rows: s.Dim(), Cols: s.M(), Data: s.Y()})
		u.Scalars = append(u.Scalars, transport.Scalar{Name: RatioScalar(i), Value: s.Ratio()})
	}
	return nil
}
