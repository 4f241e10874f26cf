package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// ParamView locates one weight matrix (or bias vector) inside the flat
// parameter vector: params[Offset : Offset+Rows*Cols], row-major.
//
// A weight matrix W is d_out x d_in (Rows x Cols) in PyTorch layout; conv
// weights are C_out x (C_in*kh*kw) with each row in (C_in, kh, kw) order.
// A bias has Rows = d_out and Cols = 1.
type ParamView struct {
	Name   string // "conv0.weight", "fc1.bias", "head.weight" (one head) or "head3.weight"
	Offset int
	Rows   int
	Cols   int
	Kind   string // "linear" | "conv"
	Head   int    // -1 for the trunk, else the head index
	Shared bool   // trunk, or the head when Heads == 1; false for per-task heads
}

// convLayer is the geometry of one conv block and where its parameters live.
type convLayer struct {
	inC, inH, inW  int
	inCHW          bool // input stored (C,H,W) per sample (the raw input), else (H,W,C)
	k, stride, pad int
	outC           int
	outH, outW     int // after the convolution
	pool           int // 0: none
	finH, finW     int // after pooling (== outH, outW without pooling)
	w, b           int // offsets of W and bias in params
	wi             int // index in Model.Weights
}

// din is the patch length C_in*kh*kw.
func (c *convLayer) din() int { return c.inC * c.k * c.k }

// linLayer is one fully connected layer.
type linLayer struct {
	din, dout int
	w, b      int     // offsets of W and bias in params
	wi        int     // index in Model.Weights
	drop      float32 // dropout rate after the ReLU (hidden layers only)
}

// Model is an immutable description of a network and of the layout of its
// flat parameter vector. It holds no parameters and no buffers, so one
// Model serves any number of goroutines; each needs its own Workspace.
//
// Parameter layout: for every layer in forward order its weight matrix then
// its bias, trunk first, then head 0, head 1, ... . Each head (weight and
// bias) is therefore contiguous, see HeadRange. With Spec.LoRA the adapter
// matrices follow all of these: every adapter's A in the order of
// Adapters, then every adapter's B (see Adapters).
type Model struct {
	spec    Spec
	convs   []convLayer
	hidden  []linLayer
	heads   []linLayer
	flatDim int // input size of the first fully connected layer
	// feature map entering Flatten (cnn only), stored (H,W,C)
	flatC, flatH, flatW int
	nParams             int
	weights, biases     []ParamView

	nBase     int       // parameters before the adapters
	adapters  []Adapter // LoRA adapters in Weights order
	adapterOf []int     // per weight: index in adapters, -1 when not adapted
}

// Build validates s and lays out its parameters.
func Build(s Spec) (*Model, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	s.Conv = append([]ConvSpec(nil), s.Conv...)
	s.Hidden = append([]int(nil), s.Hidden...)
	s.Dropout = append([]float64(nil), s.Dropout...)
	s.LoRA = s.LoRA.filled()
	m := &Model{spec: s}
	off := 0
	add := func(name, kind string, head, rows, cols int) (w, b int) {
		shared := head < 0 || s.Heads == 1
		w, b = off, off+rows*cols
		m.weights = append(m.weights, ParamView{Name: name + ".weight", Offset: w, Rows: rows, Cols: cols, Kind: kind, Head: head, Shared: shared})
		m.biases = append(m.biases, ParamView{Name: name + ".bias", Offset: b, Rows: rows, Cols: 1, Kind: kind, Head: head, Shared: shared})
		off = b + rows
		return w, b
	}
	c, h, w := s.In.C, s.In.H, s.In.W
	for i, cs := range s.Conv {
		l := convLayer{inC: c, inH: h, inW: w, inCHW: i == 0, k: cs.Kernel, stride: cs.stride(), pad: cs.Pad, outC: cs.Out, pool: cs.pool()}
		l.outH, l.outW = convOut(h, l.k, l.stride, l.pad), convOut(w, l.k, l.stride, l.pad)
		l.finH, l.finW = l.outH, l.outW
		if l.pool > 0 {
			l.finH, l.finW = l.outH/l.pool, l.outW/l.pool
		}
		l.wi = len(m.weights)
		l.w, l.b = add(fmt.Sprintf("conv%d", i), "conv", -1, l.outC, l.din())
		m.convs = append(m.convs, l)
		c, h, w = l.outC, l.finH, l.finW
	}
	m.flatC, m.flatH, m.flatW = c, h, w
	m.flatDim = c * h * w
	din := m.flatDim
	for i, n := range s.Hidden {
		l := linLayer{din: din, dout: n}
		if len(s.Dropout) > 0 {
			l.drop = float32(s.Dropout[i])
		}
		l.wi = len(m.weights)
		l.w, l.b = add(fmt.Sprintf("fc%d", i), "linear", -1, n, din)
		m.hidden = append(m.hidden, l)
		din = n
	}
	for t := 0; t < s.Heads; t++ {
		l := linLayer{din: din, dout: s.Classes, wi: len(m.weights)}
		l.w, l.b = add(headName(t, s.Heads), "linear", t, s.Classes, din)
		m.heads = append(m.heads, l)
	}
	m.nBase = off
	m.nParams = m.layoutAdapters(off)
	return m, nil
}

// NumParams returns the length of the flat parameter vector.
func (m *Model) NumParams() int { return m.nParams }

// InputSize returns the length of one input sample, Spec().In.Size().
func (m *Model) InputSize() int { return m.spec.In.Size() }

// Spec returns a copy of the spec the model was built from.
func (m *Model) Spec() Spec {
	s := m.spec
	s.Conv = append([]ConvSpec(nil), s.Conv...)
	s.Hidden = append([]int(nil), s.Hidden...)
	s.Dropout = append([]float64(nil), s.Dropout...)
	s.LoRA = s.LoRA.filled()
	return s
}

// Weights returns every weight matrix in forward order, heads last
// (head 0 first). The slice is a copy.
func (m *Model) Weights() []ParamView { return append([]ParamView(nil), m.weights...) }

// Biases returns every bias vector in the order of Weights. The slice is a copy.
func (m *Model) Biases() []ParamView { return append([]ParamView(nil), m.biases...) }

// HeadRange returns the contiguous range params[off:off+n] holding head's
// weight matrix and bias (not the head's LoRA adapter, which lives after
// the base parameters, see Adapters). It panics if head is not in
// [0, Heads).
func (m *Model) HeadRange(head int) (off, n int) {
	m.checkHead(head)
	h := m.heads[head]
	return h.w, h.dout*h.din + h.dout
}

func (m *Model) checkHead(head int) {
	if head < 0 || head >= len(m.heads) {
		panic(fmt.Sprintf("nn: head %d out of range [0, %d)", head, len(m.heads)))
	}
}

// Init fills params with PyTorch's default initialisation: for a layer with
// fan_in = d_in (C_in*kh*kw for a conv), every weight and bias is drawn
// from U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Draws come from r in parameter
// order. With adapters, InitAdapters then initialises them from r, so the
// base parameters equal those of the same Spec without LoRA initialised
// from the same stream. It panics if len(params) != NumParams().
func (m *Model) Init(params []float32, r *rand.Rand) {
	m.checkParams("params", params)
	for i, w := range m.weights {
		bound := 1 / math.Sqrt(float64(w.Cols))
		b := m.biases[i]
		for j := w.Offset; j < b.Offset+b.Rows; j++ {
			params[j] = float32((2*r.Float64() - 1) * bound)
		}
	}
	m.InitAdapters(params, r)
}

func (m *Model) checkParams(name string, p []float32) {
	if len(p) != m.nParams {
		panic(fmt.Sprintf("nn: %s has %d values, model has %d", name, len(p), m.nParams))
	}
}
