package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
)

// Defaults of LoRASpec (docs/ALGORITHMS.md §4): rank 8 and alpha 8, so scale 1.
const (
	DefaultLoRARank  = 8
	DefaultLoRAAlpha = 8.0
)

// LoRASpec asks for LoRA adapters (Hu et al. 2021) on some weight matrices:
// each adapted weight W0 (d_out x d_in; a conv weight in its im2col shape
// C_out x C_in*kh*kw) is used as
//
//	W = W0 + s B A,   B: d_out x r (starts at 0),  A: r x d_in,  s = Alpha / Rank.
//
// Rank 0 means DefaultLoRARank and Alpha 0 means DefaultLoRAAlpha; Build
// fills them in, and Model.Spec reports the filled values. Rank may exceed
// min(d_out, d_in) (the product then still has rank <= min(d_out, d_in)).
type LoRASpec struct {
	Rank   int      // r >= 1, 0 = DefaultLoRARank
	Alpha  float64  // > 0, 0 = DefaultLoRAAlpha
	Layers []string // names of weights to adapt, e.g. "fc0.weight"; empty = every shared Linear/conv weight
}

// filled returns a deep copy of l with the defaults filled in, nil for nil.
func (l *LoRASpec) filled() *LoRASpec {
	if l == nil {
		return nil
	}
	c := *l
	c.Layers = append([]string(nil), l.Layers...)
	if c.Rank == 0 {
		c.Rank = DefaultLoRARank
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultLoRAAlpha
	}
	return &c
}

// Adapter is the LoRA adapter of one weight matrix, W = W0 + Scale*B*A.
// A (Rows = r, Cols = d_in) and B (Rows = d_out, Cols = r) are row-major
// views into the flat parameter vector, named "<layer>.lora_A" and
// "<layer>.lora_B" (e.g. "fc0.lora_A"); their Kind, Head and Shared are
// those of the adapted weight.
type Adapter struct {
	Weight int    // index of the adapted weight in Model.Weights
	Name   string // name of the adapted weight, e.g. "fc0.weight"
	A, B   ParamView
	Scale  float32 // s = Alpha / Rank
}

// layoutAdapters appends the adapters of m.spec.LoRA to the parameter
// layout starting at off (all A matrices, then all B matrices, each in
// Weights order) and returns the new parameter count.
func (m *Model) layoutAdapters(off int) int {
	m.adapterOf = make([]int, len(m.weights))
	for i := range m.adapterOf {
		m.adapterOf[i] = -1
	}
	l := m.spec.LoRA
	if l == nil {
		return off
	}
	scale := float32(l.Alpha / float64(l.Rank))
	for i, w := range m.weights {
		adapt := w.Shared
		if len(l.Layers) > 0 {
			adapt = slices.Contains(l.Layers, w.Name)
		}
		if !adapt {
			continue
		}
		layer := strings.TrimSuffix(w.Name, ".weight")
		m.adapterOf[i] = len(m.adapters)
		m.adapters = append(m.adapters, Adapter{
			Weight: i,
			Name:   w.Name,
			A:      ParamView{Name: layer + ".lora_A", Rows: l.Rank, Cols: w.Cols, Kind: w.Kind, Head: w.Head, Shared: w.Shared},
			B:      ParamView{Name: layer + ".lora_B", Rows: w.Rows, Cols: l.Rank, Kind: w.Kind, Head: w.Head, Shared: w.Shared},
			Scale:  scale,
		})
	}
	for i := range m.adapters {
		a := &m.adapters[i].A
		a.Offset, off = off, off+a.Rows*a.Cols
	}
	for i := range m.adapters {
		b := &m.adapters[i].B
		b.Offset, off = off, off+b.Rows*b.Cols
	}
	return off
}

// Adapters returns the LoRA adapters in the order of the weights they
// adapt (nil without Spec.LoRA). The slice is a copy.
//
// Layout: the adapters follow the base parameters (so Weights, Biases and
// HeadRange are those of the model without LoRA, and the first
// NumBaseParams values of a LoRA parameter vector form a valid vector of
// that model): first every adapter's A, then every adapter's B, so the A
// matrices, the B matrices and both together are each one contiguous range
// (see AdapterParams).
func (m *Model) Adapters() []Adapter { return append([]Adapter(nil), m.adapters...) }

// NumBaseParams returns the number of parameters before the adapters:
// NumParams() without LoRA.
func (m *Model) NumBaseParams() int { return m.nBase }

// InitAdapters re-initialises every adapter of params, leaving the other
// parameters alone: B = 0 and A ~ U(-1/sqrt(d_in), 1/sqrt(d_in)) (PyTorch's
// and PEFT's default for A), drawn from r adapter by adapter, row-major.
// Then W = W0, so the model computes the same function as before. FLoRA
// calls it every round after merging. It panics if len(params) !=
// NumParams().
func (m *Model) InitAdapters(params []float32, r *rand.Rand) {
	m.checkParams("params", params)
	for _, ad := range m.adapters {
		bound := 1 / math.Sqrt(float64(ad.A.Cols))
		a := params[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols]
		for j := range a {
			a[j] = float32((2*r.Float64() - 1) * bound)
		}
		clear(params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols])
	}
}

// MergeAdapters folds every adapter into its weight and clears B:
//
//	W0 += s B A;  B = 0
//
// so the function computed is unchanged (up to rounding) and A stays as it
// was. Products accumulate in float64. It panics if len(params) !=
// NumParams().
func (m *Model) MergeAdapters(params []float32) {
	m.checkParams("params", params)
	for i := range m.adapters {
		ad := &m.adapters[i]
		w := m.weights[ad.Weight]
		w0 := params[w.Offset : w.Offset+w.Rows*w.Cols]
		lowRankAdd(w0, w0, params, ad)
		clear(params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols])
	}
}

// EffectiveWeight writes the effective weight of Adapters()[adapter],
//
//	dst = W0 + s B A   (d_out x d_in, row-major),
//
// into dst, with the products accumulated in float64. It panics if adapter
// is out of range, len(params) != NumParams() or len(dst) != d_out*d_in.
func (m *Model) EffectiveWeight(dst, params []float32, adapter int) {
	m.checkParams("params", params)
	if adapter < 0 || adapter >= len(m.adapters) {
		panic(fmt.Sprintf("nn: adapter %d out of range [0, %d)", adapter, len(m.adapters)))
	}
	ad := &m.adapters[adapter]
	w := m.weights[ad.Weight]
	if len(dst) != w.Rows*w.Cols {
		panic(fmt.Sprintf("nn: dst has %d values, %s has %d x %d", len(dst), w.Name, w.Rows, w.Cols))
	}
	lowRankAdd(dst, params[w.Offset:w.Offset+w.Rows*w.Cols], params, ad)
}

// lowRankAdd computes dst = w0 + s B A for adapter ad of params, summing
// each entry of B A in float64. dst may be w0.
func lowRankAdd(dst, w0, params []float32, ad *Adapter) {
	r, din, dout := ad.A.Rows, ad.A.Cols, ad.B.Rows
	a := params[ad.A.Offset : ad.A.Offset+r*din]
	b := params[ad.B.Offset : ad.B.Offset+dout*r]
	s := float64(ad.Scale)
	for o := 0; o < dout; o++ {
		brow := b[o*r : o*r+r]
		for j := 0; j < din; j++ {
			var sum float64
			for k, bv := range brow {
				sum += float64(bv) * float64(a[k*din+j])
			}
			dst[o*din+j] = float32(float64(w0[o*din+j]) + s*sum)
		}
	}
}
