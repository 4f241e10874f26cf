package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/nn/gemm"
)

// Tolerances of the checks against the float64 reference.
const (
	fdStep      = 1e-6 // central-difference step on the float64 reference
	gradAbsTol  = 2e-4 // |analytic - numeric| <= gradAbsTol + gradRelTol*|numeric|
	gradRelTol  = 2e-3
	lossRelTol  = 1e-5 // float32 loss vs float64 reference loss
	actAbsTol   = 1e-5 // float32 activations vs float64 reference
	perViewDraw = 12   // parameters checked per weight matrix or bias
)

// gradCases covers every layer type alone and in whole models.
var gradCases = []struct {
	name  string
	spec  Spec
	batch int
	head  int
}{
	{"linear", Spec{Arch: "mlp", In: Shape{1, 3, 4}, Classes: 5, Heads: 1}, 3, 0},
	{"linear-relu", Spec{Arch: "mlp", In: Shape{1, 1, 10}, Hidden: []int{8, 6}, Classes: 4, Heads: 1}, 4, 0},
	{"mlp-dropout", Spec{Arch: "mlp", In: Shape{1, 4, 5}, Hidden: []int{16, 12, 10}, Dropout: []float64{0.2, 0.5, 0.5}, Classes: 3, Heads: 1}, 5, 0},
	{"conv", Spec{Arch: "cnn", In: Shape{2, 6, 6}, Conv: []ConvSpec{{Out: 3, Kernel: 3}}, Classes: 4, Heads: 1}, 2, 0},
	{"conv-stride-pad", Spec{Arch: "cnn", In: Shape{2, 7, 7}, Conv: []ConvSpec{{Out: 4, Kernel: 3, Stride: 2, Pad: 1}}, Hidden: []int{5}, Classes: 3, Heads: 1}, 3, 0},
	{"conv-pool-floor", Spec{Arch: "cnn", In: Shape{1, 9, 9}, Conv: []ConvSpec{{Out: 3, Kernel: 3, Pool: 3}}, Classes: 3, Heads: 1}, 2, 0},
	{"cnn", Spec{Arch: "cnn", In: Shape{2, 10, 10}, Conv: []ConvSpec{{Out: 4, Kernel: 3, Pad: 1, Pool: 2}, {Out: 5, Kernel: 3, Pool: 2}}, Hidden: []int{7}, Dropout: []float64{0.3}, Classes: 4, Heads: 1}, 3, 0},
	{"multi-head-mlp", Spec{Arch: "mlp", In: Shape{1, 2, 5}, Hidden: []int{8}, Dropout: []float64{0.25}, Classes: 3, Heads: 3}, 4, 1},
	{"multi-head-cnn", Spec{Arch: "cnn", In: Shape{1, 6, 6}, Conv: []ConvSpec{{Out: 2, Kernel: 3, Pool: 2}}, Classes: 2, Heads: 2}, 3, 1},
}

// checkedIndices picks up to perViewDraw parameters of every weight matrix
// and bias.
func checkedIndices(m *Model, r *rand.Rand) []int {
	var idx []int
	views := append(m.Weights(), m.Biases()...)
	for _, v := range views {
		n := v.Rows * v.Cols
		if n <= perViewDraw {
			for i := 0; i < n; i++ {
				idx = append(idx, v.Offset+i)
			}
			continue
		}
		for _, i := range r.Perm(n)[:perViewDraw] {
			idx = append(idx, v.Offset+i)
		}
	}
	return idx
}

func TestLossGradMatchesFiniteDifferences(t *testing.T) {
	for i, tc := range gradCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Build(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(uint64(i), 1))
			params := make([]float32, m.NumParams())
			m.Init(params, r)
			x, y := randInput(m, tc.batch, r)
			ws := m.NewWorkspace(tc.batch + 1)
			loss, grad, masks, p64 := lossGradForReference(ws, params, x, y, tc.batch, tc.head)
			ref := refForward(m, p64, x, y, tc.batch, tc.head, masks)
			if d := math.Abs(float64(loss) - ref.loss); d > lossRelTol*math.Max(1, ref.loss) {
				t.Errorf("loss: got %v, want %v (reference)", loss, ref.loss)
			}
			lossAt := func() float64 { return refForward(m, p64, x, y, tc.batch, tc.head, masks).loss }
			checkFiniteDifferences(t, grad, p64, checkedIndices(m, r), lossAt, func(j int) string { return paramName(m, j) })
			for h := range m.heads {
				if h == tc.head {
					continue
				}
				off, n := m.HeadRange(h)
				for j := off; j < off+n; j++ {
					if grad[j] != 0 {
						t.Fatalf("grad[%d] of unused head %d: got %v, want 0", j, h, grad[j])
					}
				}
			}
			for j, g := range grad {
				if math.IsNaN(float64(g)) {
					t.Fatalf("grad[%d] (%s) not written", j, paramName(m, j))
				}
			}
		})
	}
}

// lossGradForReference runs ws.LossGrad on a NaN-filled gradient (so that
// an entry it does not write shows) with dropout drawn from PCG(7, 7), and
// returns the loss, the gradient, the dropout masks the pass drew (for
// refForward) and params widened to float64.
func lossGradForReference(ws *Workspace, params, x []float32, y []int32, batch, head int) (loss float32, grad []float32, masks [][]float32, p64 []float64) {
	m := ws.m
	grad = make([]float32, m.NumParams())
	for j := range grad {
		grad[j] = float32(math.NaN()) // must be overwritten
	}
	loss = ws.LossGrad(params, grad, x, y, batch, head, rand.New(rand.NewPCG(7, 7)))
	masks = make([][]float32, len(m.hidden))
	for l := range m.hidden {
		if ws.mask[l] != nil {
			masks[l] = ws.mask[l][:batch*m.hidden[l].dout]
		}
	}
	p64 = make([]float64, len(params))
	for j, v := range params {
		p64[j] = float64(v)
	}
	return loss, grad, masks, p64
}

// checkFiniteDifferences compares grad[j], for every j in idx, with the
// central difference of lossAt (a float64 reference loss reading p64) at
// step fdStep; name(j) names parameter j in messages.
func checkFiniteDifferences(t *testing.T, grad []float32, p64 []float64, idx []int, lossAt func() float64, name func(int) string) {
	t.Helper()
	for _, j := range idx {
		old := p64[j]
		p64[j] = old + fdStep
		lp := lossAt()
		p64[j] = old - fdStep
		lm := lossAt()
		p64[j] = old
		num := (lp - lm) / (2 * fdStep)
		if d := math.Abs(float64(grad[j]) - num); !(d <= gradAbsTol+gradRelTol*math.Abs(num)) {
			t.Errorf("grad[%d] (%s): got %v, want %v (finite difference)", j, name(j), grad[j], num)
		}
	}
}

// paramName names the view holding parameter j, for messages.
func paramName(m *Model, j int) string {
	for _, v := range append(m.Weights(), m.Biases()...) {
		if j >= v.Offset && j < v.Offset+v.Rows*v.Cols {
			return fmt.Sprintf("%s[%d]", v.Name, j-v.Offset)
		}
	}
	return "?"
}

func TestForwardMatchesReference(t *testing.T) {
	for i, tc := range gradCases {
		for _, train := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/train=%v", tc.name, train), func(t *testing.T) {
				m, _ := Build(tc.spec)
				r := rand.New(rand.NewPCG(uint64(i), 2))
				params := make([]float32, m.NumParams())
				m.Init(params, r)
				x, _ := randInput(m, tc.batch, r)
				ws := m.NewWorkspace(tc.batch)
				var dr *rand.Rand
				if train {
					dr = rand.New(rand.NewPCG(3, 3))
				}
				logits := ws.Forward(params, x, tc.batch, tc.head, train, dr)
				var masks [][]float32
				if train {
					for l := range m.hidden {
						var mk []float32
						if ws.mask[l] != nil {
							mk = ws.mask[l][:tc.batch*m.hidden[l].dout]
						}
						masks = append(masks, mk)
					}
				}
				p64 := make([]float64, len(params))
				for j, v := range params {
					p64[j] = float64(v)
				}
				ref := refForward(m, p64, x, nil, tc.batch, tc.head, masks)
				if len(logits) != len(ref.logits) {
					t.Fatalf("len(logits): got %d, want %d", len(logits), len(ref.logits))
				}
				for j := range logits {
					if d := math.Abs(float64(logits[j]) - ref.logits[j]); d > actAbsTol*math.Max(1, math.Abs(ref.logits[j])) {
						t.Fatalf("logits[%d]: got %v, want %v", j, logits[j], ref.logits[j])
					}
				}
				// LayerInput of every weight matrix against the reference,
				// conv patches against a direct-loop im2col.
				for w := range m.weights {
					data, rows, cols := ws.LayerInput(w)
					v := m.weights[w]
					if cols != v.Cols || len(data) != rows*cols {
						t.Fatalf("LayerInput(%d): got %d x %d (len %d), want cols %d", w, rows, cols, len(data), v.Cols)
					}
					ri := min(w, len(ref.inputs)-1) // every head shares one input
					want := ref.inputs[ri]
					if w < len(m.convs) {
						want = refIm2col(&m.convs[w], want, tc.batch)
						if wantRows := tc.batch * m.convs[w].outH * m.convs[w].outW; rows != wantRows {
							t.Fatalf("LayerInput(%d) rows: got %d, want %d", w, rows, wantRows)
						}
					} else if rows != tc.batch {
						t.Fatalf("LayerInput(%d) rows: got %d, want %d", w, rows, tc.batch)
					}
					if len(want) != len(data) {
						t.Fatalf("LayerInput(%d): got %d values, want %d", w, len(data), len(want))
					}
					for j := range data {
						if d := math.Abs(float64(data[j]) - want[j]); d > actAbsTol*math.Max(1, math.Abs(want[j])) {
							t.Fatalf("LayerInput(%d)[%d] (%s): got %v, want %v", w, j, v.Name, data[j], want[j])
						}
					}
				}
			})
		}
	}
}

func TestBackwardEqualsLossGrad(t *testing.T) {
	tc := gradCases[6] // cnn with dropout
	m, _ := Build(tc.spec)
	r := rand.New(rand.NewPCG(1, 1))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	x, y := randInput(m, tc.batch, r)
	ws := m.NewWorkspace(tc.batch)
	want := make([]float32, m.NumParams())
	ws.LossGrad(params, want, x, y, tc.batch, 0, rand.New(rand.NewPCG(5, 5)))

	logits := ws.Forward(params, x, tc.batch, 0, true, rand.New(rand.NewPCG(5, 5)))
	dz := make([]float32, len(logits))
	softmaxXent(dz, logits, y, tc.batch, m.spec.Classes)
	got := make([]float32, m.NumParams())
	ws.Backward(params, got, dz)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("grad[%d]: got %v, want %v (LossGrad)", i, got[i], want[i])
		}
	}
}

// TestBackendsAgree runs one CNN and one MLP step through every compiled-in
// backend and compares with the naive float64-accumulating backend.
func TestBackendsAgree(t *testing.T) {
	const tol = 1e-4 // relative to the largest gradient entry
	defer SetBackend(nil)
	for _, tc := range []int{2, 6} {
		spec := gradCases[tc].spec
		m, _ := Build(spec)
		r := rand.New(rand.NewPCG(9, uint64(tc)))
		params := make([]float32, m.NumParams())
		m.Init(params, r)
		x, y := randInput(m, 8, r)
		run := func(b gemm.Backend) ([]float32, float32) {
			SetBackend(b)
			ws := m.NewWorkspace(8)
			if got := ws.Backend().Name(); got != b.Name() {
				t.Fatalf("workspace backend: got %q, want %q", got, b.Name())
			}
			g := make([]float32, m.NumParams())
			l := ws.LossGrad(params, g, x, y, 8, 0, rand.New(rand.NewPCG(1, 2)))
			return g, l
		}
		want, wantLoss := run(naive{})
		var scale float64
		for _, v := range want {
			scale = math.Max(scale, math.Abs(float64(v)))
		}
		for _, name := range gemm.Names() {
			b, err := gemm.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			got, loss := run(b)
			if d := math.Abs(float64(loss - wantLoss)); d > tol {
				t.Errorf("%s/%s loss: got %v, want %v", gradCases[tc].name, name, loss, wantLoss)
			}
			for i := range got {
				if d := math.Abs(float64(got[i] - want[i])); d > tol*scale {
					t.Errorf("%s/%s grad[%d]: got %v, want %v", gradCases[tc].name, name, i, got[i], want[i])
					break
				}
			}
		}
	}
}
