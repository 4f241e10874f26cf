package nn

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/nn/gemm"
)

// paperMLP is the FOT paper's permuted-MNIST model.
var paperMLP = Spec{Arch: "mlp", In: Shape{1, 28, 28}, Hidden: []int{400, 400, 400}, Dropout: []float64{0.2, 0.5, 0.5}, Classes: 10, Heads: 1}

// smallCNN is the CNN of the benchmarks.
var smallCNN = Spec{Arch: "cnn", In: Shape{1, 28, 28}, Conv: []ConvSpec{{Out: 32, Kernel: 5, Pool: 2}, {Out: 64, Kernel: 5, Pool: 2}}, Hidden: []int{256}, Classes: 10, Heads: 1}

func TestSpecValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error; nil = valid
	}{
		{"paper mlp", paperMLP, nil},
		{"small cnn", smallCNN, nil},
		{"no hidden", Spec{Arch: "mlp", In: Shape{1, 1, 3}, Classes: 2, Heads: 1}, nil},
		{"multi-head", Spec{Arch: "mlp", In: Shape{1, 1, 3}, Hidden: []int{4}, Classes: 2, Heads: 5}, nil},
		{"arch", Spec{Arch: "rnn", In: Shape{1, 1, 3}, Classes: 2, Heads: 1}, []string{`arch "rnn"`}},
		{"mlp with conv", Spec{Arch: "mlp", In: Shape{1, 5, 5}, Conv: []ConvSpec{{Out: 1, Kernel: 3}}, Classes: 2, Heads: 1}, []string{"1 conv blocks"}},
		{"cnn without conv", Spec{Arch: "cnn", In: Shape{1, 5, 5}, Classes: 2, Heads: 1}, []string{"no conv blocks"}},
		{"input", Spec{Arch: "mlp", In: Shape{0, 28, 28}, Classes: 2, Heads: 1}, []string{"input shape"}},
		{"hidden", Spec{Arch: "mlp", In: Shape{1, 1, 3}, Hidden: []int{4, 0}, Classes: 2, Heads: 1}, []string{"hidden[1] = 0"}},
		{"dropout len", Spec{Arch: "mlp", In: Shape{1, 1, 3}, Hidden: []int{4, 4}, Dropout: []float64{0.5}, Classes: 2, Heads: 1}, []string{"1 dropout rates for 2 hidden"}},
		{"dropout range", Spec{Arch: "mlp", In: Shape{1, 1, 3}, Hidden: []int{4}, Dropout: []float64{1}, Classes: 2, Heads: 1}, []string{"dropout[0] = 1"}},
		{"classes and heads", Spec{Arch: "mlp", In: Shape{1, 1, 3}}, []string{"classes 0", "heads 0"}},
		{"conv fields", Spec{Arch: "cnn", In: Shape{1, 5, 5}, Conv: []ConvSpec{{Out: 0, Kernel: 0, Stride: -1, Pad: -1, Pool: -1}}, Classes: 2, Heads: 1}, []string{"conv[0].out 0", "conv[0].kernel 0", "conv[0].stride -1", "conv[0].pad -1", "conv[0].pool -1"}},
		{"kernel too big", Spec{Arch: "cnn", In: Shape{1, 5, 5}, Conv: []ConvSpec{{Out: 2, Kernel: 7}}, Classes: 2, Heads: 1}, []string{"kernel 7 larger"}},
		{"pool too big", Spec{Arch: "cnn", In: Shape{1, 5, 5}, Conv: []ConvSpec{{Out: 2, Kernel: 3, Pool: 4}}, Classes: 2, Heads: 1}, []string{"pool 4 larger"}},
		{"second conv too big", Spec{Arch: "cnn", In: Shape{1, 8, 8}, Conv: []ConvSpec{{Out: 2, Kernel: 3, Pool: 2}, {Out: 2, Kernel: 5}}, Classes: 2, Heads: 1}, []string{"conv[1]: kernel 5 larger"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkSpecError(t, tc.spec.Validate(), tc.want)
			if tc.want == nil {
				return
			}
			if _, berr := Build(tc.spec); !errors.Is(berr, ErrSpec) {
				t.Errorf("Build: got %v, want an error wrapping ErrSpec", berr)
			}
		})
	}
}

func TestLayout(t *testing.T) {
	m, err := Build(smallCNN)
	if err != nil {
		t.Fatal(err)
	}
	// conv0: 32 x 25, conv1: 64 x 800, fc0: 256 x 1024, head: 10 x 256.
	want := []ParamView{
		{Name: "conv0.weight", Offset: 0, Rows: 32, Cols: 25, Kind: "conv", Head: -1, Shared: true},
		{Name: "conv1.weight", Offset: 832, Rows: 64, Cols: 800, Kind: "conv", Head: -1, Shared: true},
		{Name: "fc0.weight", Offset: 832 + 51264, Rows: 256, Cols: 1024, Kind: "linear", Head: -1, Shared: true},
		{Name: "head.weight", Offset: 832 + 51264 + 262400, Rows: 10, Cols: 256, Kind: "linear", Head: 0, Shared: true},
	}
	got := m.Weights()
	if len(got) != len(want) {
		t.Fatalf("len(Weights()): got %d, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("Weights()[%d]: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if n, want := m.NumParams(), 832+51264+262400+2570; n != want {
		t.Errorf("NumParams: got %d, want %d", n, want)
	}
	if n := m.InputSize(); n != 784 {
		t.Errorf("InputSize: got %d, want 784", n)
	}

	mh, _ := Build(Spec{Arch: "mlp", In: Shape{1, 1, 6}, Hidden: []int{4}, Classes: 3, Heads: 3})
	// fc0: 4x6+4 = 28; each head 3x4+3 = 15.
	for h := 0; h < 3; h++ {
		off, n := mh.HeadRange(h)
		if off != 28+15*h || n != 15 {
			t.Errorf("HeadRange(%d): got (%d, %d), want (%d, 15)", h, off, n, 28+15*h)
		}
		w, b := mh.Weights()[1+h], mh.Biases()[1+h]
		if w.Head != h || w.Shared || b.Offset != off+12 || b.Rows != 3 || b.Cols != 1 {
			t.Errorf("head %d views: got %+v and %+v", h, w, b)
		}
	}
	if mh.NumParams() != 28+45 {
		t.Errorf("NumParams: got %d, want %d", mh.NumParams(), 28+45)
	}
}

func TestInit(t *testing.T) {
	const (
		edgeFrac = 0.95 // the extreme draw of a large layer is this close to the bound
		meanTol  = 0.05 // |mean| / bound
	)
	m, _ := Build(smallCNN)
	p := make([]float32, m.NumParams())
	m.Init(p, rand.New(rand.NewPCG(1, 2)))
	q := make([]float32, m.NumParams())
	m.Init(q, rand.New(rand.NewPCG(1, 2)))
	for i := range p {
		if p[i] != q[i] {
			t.Fatalf("Init not deterministic at %d: %v vs %v", i, p[i], q[i])
		}
	}
	ws, bs := m.Weights(), m.Biases()
	for i := range ws {
		bound := 1 / math.Sqrt(float64(ws[i].Cols))
		for _, v := range []ParamView{ws[i], bs[i]} {
			vals := p[v.Offset : v.Offset+v.Rows*v.Cols]
			var lo, hi, sum float64
			for _, x := range vals {
				lo, hi, sum = math.Min(lo, float64(x)), math.Max(hi, float64(x)), sum+float64(x)
			}
			if lo < -bound || hi > bound {
				t.Errorf("%s: range [%v, %v], want within ±%v", v.Name, lo, hi, bound)
			}
			if len(vals) >= 500 {
				if hi < edgeFrac*bound || lo > -edgeFrac*bound {
					t.Errorf("%s: range [%v, %v], want close to ±%v", v.Name, lo, hi, bound)
				}
				if mean := sum / float64(len(vals)); math.Abs(mean) > meanTol*bound {
					t.Errorf("%s: mean %v, want about 0", v.Name, mean)
				}
			}
		}
	}
}

func TestSGDStep(t *testing.T) {
	const tol = 1e-6
	tests := []struct {
		name         string
		opt          SGD
		p, g, v      []float32
		wantP, wantV []float32
		steps        int
	}{
		{"plain", SGD{LR: 0.1}, []float32{1, -2}, []float32{0.5, 1}, nil, []float32{0.95, -2.1}, nil, 1},
		// g = grad + 0.01*p = {0.51, 0.98}; p -= 0.1*g
		{"weight decay", SGD{LR: 0.1, WeightDecay: 0.01}, []float32{1, -2}, []float32{0.5, 1}, nil, []float32{0.949, -2.098}, nil, 1},
		// step 1: v = g = {0.5, 1}; p = {0.95, -2.1}
		// step 2: v = 0.9*{0.5, 1} + {0.5, 1} = {0.95, 1.9}; p = {0.855, -2.29}
		{"momentum", SGD{LR: 0.1, Momentum: 0.9}, []float32{1, -2}, []float32{0.5, 1}, []float32{0, 0}, []float32{0.855, -2.29}, []float32{0.95, 1.9}, 2},
		// step 1: g = {0.5+0.1, 1-0.2} = {0.6, 0.8}; v = g; p = {0.94, -2.08}
		// step 2: g = {0.5+0.094, 1-0.208} = {0.594, 0.792}; v = 0.5*v + g = {0.894, 1.192}; p = {0.8506, -2.1992}
		{"momentum and decay", SGD{LR: 0.1, WeightDecay: 0.1, Momentum: 0.5}, []float32{1, -2}, []float32{0.5, 1}, []float32{0, 0}, []float32{0.8506, -2.1992}, []float32{0.894, 1.192}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := append([]float32(nil), tc.g...)
			for s := 0; s < tc.steps; s++ {
				tc.opt.Step(tc.p, g, tc.v)
			}
			for i := range tc.p {
				if math.Abs(float64(tc.p[i]-tc.wantP[i])) > tol {
					t.Errorf("p[%d]: got %v, want %v", i, tc.p[i], tc.wantP[i])
				}
				if g[i] != tc.g[i] {
					t.Errorf("grad[%d] modified: got %v, want %v", i, g[i], tc.g[i])
				}
			}
			for i := range tc.wantV {
				if math.Abs(float64(tc.v[i]-tc.wantV[i])) > tol {
					t.Errorf("v[%d]: got %v, want %v", i, tc.v[i], tc.wantV[i])
				}
			}
		})
	}
}

func TestPredictIsArgmaxOfForward(t *testing.T) {
	for _, tc := range gradCases {
		m, _ := Build(tc.spec)
		r := rand.New(rand.NewPCG(4, 4))
		params := make([]float32, m.NumParams())
		m.Init(params, r)
		x, _ := randInput(m, 16, r)
		ws := m.NewWorkspace(16)
		got := make([]int32, 16)
		ws.Predict(params, x, 16, tc.head, got)
		logits := ws.Forward(params, x, 16, tc.head, false, nil)
		c := m.spec.Classes
		for b := 0; b < 16; b++ {
			row := logits[b*c : (b+1)*c]
			best := 0
			for j := range row {
				if row[j] > row[best] {
					best = j
				}
			}
			if int(got[b]) != best {
				t.Errorf("%s sample %d: got class %d, want %d (logits %v)", tc.name, b, got[b], best, row)
			}
		}
	}
}

func TestDeterministicAndEvalIgnoresRNG(t *testing.T) {
	m, _ := Build(gradCases[6].spec)
	r := rand.New(rand.NewPCG(8, 8))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	x, y := randInput(m, 6, r)
	ws := m.NewWorkspace(6)
	g1, g2 := make([]float32, len(params)), make([]float32, len(params))
	l1 := ws.LossGrad(params, g1, x, y, 6, 0, rand.New(rand.NewPCG(1, 1)))
	l2 := m.NewWorkspace(8).LossGrad(params, g2, x, y, 6, 0, rand.New(rand.NewPCG(1, 1)))
	if l1 != l2 {
		t.Errorf("loss with the same dropout stream: got %v and %v, want equal", l1, l2)
	}
	for i := range g1 {
		if g1[i] != g2[i] {
			t.Fatalf("grad[%d] with the same dropout stream: got %v and %v", i, g1[i], g2[i])
		}
	}
	a := append([]float32(nil), ws.Forward(params, x, 6, 0, false, nil)...)
	b := ws.Forward(params, x, 6, 0, false, rand.New(rand.NewPCG(2, 2)))
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("eval logits[%d] depend on r: %v vs %v", i, a[i], b[i])
		}
	}
}

func TestPanicsOnShapeMismatch(t *testing.T) {
	m, _ := Build(gradCases[1].spec)
	params := make([]float32, m.NumParams())
	grad := make([]float32, m.NumParams())
	x := make([]float32, 4*m.InputSize())
	y := make([]int32, 4)
	ws := m.NewWorkspace(2)
	tests := []panicCase{
		{"batch above max", func() { ws.Forward(params, x, 3, 0, false, nil) }},
		{"batch zero", func() { ws.Forward(params, x, 0, 0, false, nil) }},
		{"short x", func() { ws.Forward(params, x[:1], 2, 0, false, nil) }},
		{"params length", func() { ws.Forward(params[1:], x, 2, 0, false, nil) }},
		{"grad length", func() { ws.LossGrad(params, grad[1:], x, y, 2, 0, nil) }},
		{"head", func() { ws.Forward(params, x, 2, 1, false, nil) }},
		{"label", func() { ws.LossGrad(params, grad, x, []int32{0, 9}, 2, 0, nil) }},
		{"layer", func() { ws.LayerInput(3) }},
		{"sgd", func() { SGD{LR: 1}.Step(params, grad[1:], nil) }},
		{"sgd velocity", func() { SGD{LR: 1, Momentum: 0.9}.Step(params, grad, nil) }},
		{"max batch", func() { m.NewWorkspace(0) }},
		{"init", func() { m.Init(params[1:], rand.New(rand.NewPCG(1, 1))) }},
	}
	expectPanics(t, tests)
}

func TestWorkspaceCapturesBackend(t *testing.T) {
	defer SetBackend(nil)
	m, _ := Build(gradCases[6].spec)
	calls := 0
	SetBackend(naive{calls: &calls})
	ws := m.NewWorkspace(2)
	SetBackend(nil)
	if got, want := ActiveBackend().Name(), gemm.Default().Name(); got != want {
		t.Errorf("ActiveBackend after SetBackend(nil): got %q, want %q", got, want)
	}
	params := make([]float32, m.NumParams())
	x, y := randInput(m, 2, rand.New(rand.NewPCG(1, 1)))
	ws.LossGrad(params, make([]float32, len(params)), x, y, 2, 0, rand.New(rand.NewPCG(1, 1)))
	// conv0: fwd + dW; conv1: fwd + dW + dX; fc0 and head: 3 each.
	if want := 2 + 3 + 3 + 3; calls != want {
		t.Errorf("products through the captured backend: got %d, want %d", calls, want)
	}
}

// TestHotPathAllocatesNothing checks Forward, LossGrad and Predict with
// the allocation-free naive backend (so the count is nn's own) and with
// every compiled-in backend. gonum's Sgemm starts goroutines for products
// of 4 or more 64x64 blocks, which allocates; that is reported, not failed.
func TestHotPathAllocatesNothing(t *testing.T) {
	defer SetBackend(nil)
	backends := []gemm.Backend{naive{}}
	for _, name := range gemm.Names() {
		b, _ := gemm.Lookup(name)
		backends = append(backends, b)
	}
	for _, spec := range []Spec{gradCases[6].spec, gradCases[7].spec, {Arch: "mlp", In: Shape{1, 1, 30}, Hidden: []int{20, 20}, Dropout: []float64{0.2, 0.5}, Classes: 10, Heads: 1}} {
		m, _ := Build(spec)
		r := rand.New(rand.NewPCG(1, 1))
		params := make([]float32, m.NumParams())
		m.Init(params, r)
		grad := make([]float32, m.NumParams())
		vel := make([]float32, m.NumParams())
		x, y := randInput(m, 8, r)
		pred := make([]int32, 8)
		opt := SGD{LR: 0.01, WeightDecay: 1e-4, Momentum: 0.9}
		for _, b := range backends {
			SetBackend(b)
			ws := m.NewWorkspace(8)
			allocs := testing.AllocsPerRun(20, func() {
				ws.LossGrad(params, grad, x, y, 8, 0, r)
				opt.Step(params, grad, vel)
				ws.Forward(params, x, 5, 0, true, r)
				ws.Predict(params, x, 8, 0, pred)
				ws.LayerInput(0)
			})
			switch {
			case allocs == 0:
			case b.Name() == "gonum":
				t.Logf("%s/%s: %v allocs per step (inside gonum's parallel Sgemm)", spec.Arch, b.Name(), allocs)
			default:
				t.Errorf("%s/%s: got %v allocs per step, want 0", spec.Arch, b.Name(), allocs)
			}
		}
	}
}

// checkSpecError checks a Spec.Validate result: nil when want is nil,
// otherwise an ErrSpec whose message mentions every fragment of want.
func checkSpecError(t *testing.T, err error, want []string) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("got %v, want nil", err)
		}
		return
	}
	if !errors.Is(err, ErrSpec) {
		t.Fatalf("got %v, want an error wrapping ErrSpec", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("got %q, want it to mention %q", err, w)
		}
	}
}

// panicCase is a call that must panic.
type panicCase struct {
	name string
	f    func()
}

// expectPanics runs every case as a subtest and fails those that return.
func expectPanics(t *testing.T, cases []panicCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			tc.f()
		})
	}
}
