package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/nn/gemm"
)

// Tolerances of the DP-SGD checks, relative to the largest value compared.
const (
	normRelTol = 1e-4 // per-sample norms vs the norms of separately computed gradients
	sumRelTol  = 1e-4 // clipped sums vs sums of separately clipped gradients
)

// clipCases are the models of the DP-SGD checks: without and with LoRA,
// linear and conv layers (conv-gram takes the Gram route, cnn the direct
// one), dropout, several heads.
var clipCases = []struct {
	name  string
	spec  Spec
	batch int
	head  int
	masks []string // names in trainRanges
}{
	{"mlp", gradCases[1].spec, 6, 0, []string{"all", "head", "first", "biases"}},
	{"mlp-dropout", gradCases[2].spec, 6, 0, []string{"all", "first"}},
	{"cnn", gradCases[6].spec, 5, 0, []string{"all", "first", "biases"}},
	{"conv-stride-pad", gradCases[4].spec, 5, 0, []string{"all"}},
	{"lora-mlp", loraGradCases[2].spec, 6, 0, []string{"all", "ab", "b", "a", "first+b"}},
	{"lora-mlp-dropout", loraGradCases[1].spec, 6, 0, []string{"ab", "b", "all"}},
	{"lora-cnn", loraGradCases[4].spec, 5, 0, []string{"ab", "b", "first+b", "all"}},
	{"lora-conv-gram", loraGradCases[5].spec, 5, 0, []string{"ab", "b", "all"}},
	{"lora-multi-head", loraGradCases[6].spec, 6, 1, []string{"ab", "b", "all"}},
	{"lora-multi-head-unused", loraGradCases[7].spec, 6, 2, []string{"ab", "b", "head"}},
}

// trainRanges returns the training set called name for a pass through head.
func trainRanges(m *Model, name string, head int) Ranges {
	nc, nh := len(m.convs), len(m.hidden)
	var bs []ParamView
	for _, ad := range m.Adapters() {
		bs = append(bs, ad.B)
	}
	switch name {
	case "all":
		return m.AllParams()
	case "ab", "a", "b":
		return m.AdapterParams(name)
	case "head":
		return RangesOf(m.Weights()[nc+nh+head], m.Biases()[nc+nh+head])
	case "first":
		return RangesOf(m.Weights()[0])
	case "first+b":
		return RangesOf(append(bs, m.Weights()[0])...)
	case "biases":
		return RangesOf(m.Biases()...)
	}
	panic("unknown training set " + name)
}

// perSampleGrads returns the gradient of each sample's own loss (not
// divided by batch) under the dropout masks drawn from seed: one Forward,
// then one Backward per sample with only that sample's logits gradient.
func perSampleGrads(m *Model, params, x []float32, y []int32, batch, head int, seed uint64) [][]float32 {
	ws := m.NewWorkspace(batch)
	logits := ws.Forward(params, x, batch, head, true, rand.New(rand.NewPCG(seed, seed)))
	c := m.spec.Classes
	dz := make([]float32, batch*c)
	grads := make([][]float32, batch)
	for i := range grads {
		clear(dz)
		row := logits[i*c : (i+1)*c]
		mx := slices.Max(row)
		var s float64
		for _, v := range row {
			s += math.Exp(float64(v - mx))
		}
		for j, v := range row {
			dz[i*c+j] = float32(math.Exp(float64(v-mx)) / s)
		}
		dz[i*c+int(y[i])]--
		grads[i] = make([]float32, m.NumParams())
		ws.Backward(params, grads[i], dz)
	}
	return grads
}

func norm64(x []float32) float64 { return math.Sqrt(sumSq(x)) }

func maxAbs(x []float64) float64 {
	var s float64
	for _, v := range x {
		s = math.Max(s, math.Abs(v))
	}
	return s
}

func TestLossGradClipped(t *testing.T) {
	for ci, tc := range clipCases {
		for _, mask := range tc.masks {
			t.Run(tc.name+"/"+mask, func(t *testing.T) {
				m := mustBuild(t, tc.spec)
				r := rand.New(rand.NewPCG(uint64(ci), 21))
				params := make([]float32, m.NumParams())
				m.Init(params, r)
				randomiseB(m, params, r)
				x, y := randInput(m, tc.batch, r)
				train := trainRanges(m, mask, tc.head)
				const seed = 99
				dropout := func() *rand.Rand { return rand.New(rand.NewPCG(seed, seed)) }

				// Reference: per-sample gradients restricted to train.
				gs := perSampleGrads(m, params, x, y, tc.batch, tc.head, seed)
				refNorms := make([]float64, tc.batch)
				for i, g := range gs {
					train.Mask(g)
					refNorms[i] = norm64(g)
				}
				hasDropout := slices.ContainsFunc(tc.spec.Dropout, func(p float64) bool { return p > 0 })
				if !hasDropout {
					// A per-sample gradient is the batch gradient of that
					// sample alone (the mean over a batch of 1 is its loss).
					ws1 := m.NewWorkspace(1)
					g1 := make([]float32, m.NumParams())
					in := m.InputSize()
					for i, g := range gs {
						ws1.LossGrad(params, g1, x[i*in:(i+1)*in], y[i:i+1], 1, tc.head, nil)
						train.Mask(g1)
						scale := math.Max(norm64(g), 1e-6)
						for j := range g {
							if d := math.Abs(float64(g1[j] - g[j])); d > sumRelTol*scale {
								t.Fatalf("sample %d grad[%d] (%s): batch-1 LossGrad %v, per-sample Backward %v", i, j, loraParamName(m, j), g1[j], g[j])
							}
						}
					}
				}

				ws := m.NewWorkspace(tc.batch + 2)
				grad := make([]float32, m.NumParams())
				wantLoss := ws.LossGrad(params, grad, x, y, tc.batch, tc.head, dropout())

				// Unclipped (C = +Inf): norms and the plain sum.
				for j := range grad {
					grad[j] = float32(math.NaN())
				}
				loss, norms := ws.LossGradClipped(params, grad, x, y, tc.batch, tc.head, dropout(), float32(math.Inf(1)), train)
				if loss != wantLoss {
					t.Errorf("loss: got %v, want %v (LossGrad with the same dropout stream)", loss, wantLoss)
				}
				if len(norms) != tc.batch {
					t.Fatalf("len(norms): got %d, want %d", len(norms), tc.batch)
				}
				scale := math.Max(maxAbs(refNorms), 1e-6)
				for i, n := range norms {
					if d := math.Abs(float64(n) - refNorms[i]); d > normRelTol*scale {
						t.Errorf("norms[%d]: got %v, want %v (separate gradient)", i, n, refNorms[i])
					}
				}
				checkSum(t, m, grad, gs, func(int) float64 { return 1 }, train)

				// Clip at the median norm: some samples clipped, some not.
				sorted := slices.Clone(refNorms)
				slices.Sort(sorted)
				c := sorted[tc.batch/2]
				if c == 0 {
					c = 1
				}
				got := slices.Clone(norms)
				loss, norms = ws.LossGradClipped(params, grad, x, y, tc.batch, tc.head, dropout(), float32(c), train)
				if loss != wantLoss {
					t.Errorf("clipped loss: got %v, want %v", loss, wantLoss)
				}
				if !slices.Equal(norms, got) {
					t.Errorf("norms depend on the clip: got %v, want %v", norms, got)
				}
				factor := func(i int) float64 {
					if refNorms[i] == 0 {
						return 1
					}
					return math.Min(1, c/refNorms[i])
				}
				clipped := 0
				for i, g := range gs {
					f := 1.0
					if norms[i] > 0 {
						f = math.Min(1, c/float64(norms[i]))
					}
					if f < 1 {
						clipped++
					}
					if n := f * norm64(g); n > c*(1+normRelTol) {
						t.Errorf("sample %d: clipped norm %v, want <= C = %v", i, n, c)
					}
				}
				if refNorms[tc.batch-1] > 0 && !(clipped > 0 && clipped < tc.batch) && sorted[0] != sorted[tc.batch-1] {
					t.Errorf("clipped %d of %d samples, want some but not all", clipped, tc.batch)
				}
				checkSum(t, m, grad, gs, factor, train)
			})
		}
	}
}

// checkSum compares grad with sum_i factor(i) g_i and checks it is zero
// outside train.
func checkSum(t *testing.T, m *Model, grad []float32, gs [][]float32, factor func(int) float64, train Ranges) {
	t.Helper()
	want := make([]float64, len(grad))
	for i, g := range gs {
		f := factor(i)
		for j, v := range g {
			want[j] += f * float64(v)
		}
	}
	scale := math.Max(maxAbs(want), 1e-6)
	outside := slices.Clone(grad)
	train.Zero(outside)
	for j := range grad {
		if outside[j] != 0 {
			t.Fatalf("grad[%d] (%s) outside train: got %v, want 0", j, loraParamName(m, j), grad[j])
		}
		if d := math.Abs(float64(grad[j]) - want[j]); !(d <= sumRelTol*scale) {
			t.Fatalf("grad[%d] (%s): got %v, want %v (sum of clipped per-sample gradients)", j, loraParamName(m, j), grad[j], want[j])
		}
	}
}

// TestOuterNorms checks both routes of the conv per-sample norm against a
// direct float64 computation of ||A_i^T B_i||_F^2.
func TestOuterNorms(t *testing.T) {
	tests := []struct {
		per, da, db int
		gram        bool
	}{
		{1, 5, 7, false},
		{4, 16, 36, true},
		{9, 5, 36, false},
		{3, 8, 3, false},
		{2, 8, 8, true},
	}
	const batch = 3
	for _, tc := range tests {
		t.Run(fmt.Sprintf("per=%d/%dx%d", tc.per, tc.da, tc.db), func(t *testing.T) {
			if got := tc.per > 1 && gramCheaper(tc.per, tc.da, tc.db); got != tc.gram {
				t.Fatalf("gram route: got %v, want %v", got, tc.gram)
			}
			r := rand.New(rand.NewPCG(uint64(tc.per), uint64(tc.da)))
			a := make([]float32, batch*tc.per*tc.da)
			b := make([]float32, batch*tc.per*tc.db)
			for i := range a {
				a[i] = float32(r.NormFloat64())
			}
			for i := range b {
				b[i] = float32(r.NormFloat64())
			}
			ws := &Workspace{be: gemm.Gonum{}, batch: batch, clip: &clipState{
				norm2:   make([]float64, batch),
				scratch: make([]float32, outerScratch(tc.per, tc.da, tc.db)),
			}}
			ws.outerNorms(a, tc.da, b, tc.db, tc.per, 2)
			for i := 0; i < batch; i++ {
				var want float64
				for p := 0; p < tc.da; p++ {
					for q := 0; q < tc.db; q++ {
						var s float64
						for k := 0; k < tc.per; k++ {
							s += float64(a[(i*tc.per+k)*tc.da+p]) * float64(b[(i*tc.per+k)*tc.db+q])
						}
						want += s * s
					}
				}
				want *= 2
				if got := ws.clip.norm2[i]; math.Abs(got-want) > normRelTol*want {
					t.Errorf("sample %d: got %v, want %v", i, got, want)
				}
			}
		})
	}
}

func TestLossGradClippedPanics(t *testing.T) {
	m := mustBuild(t, loraGradCases[2].spec)
	params := make([]float32, m.NumParams())
	grad := make([]float32, m.NumParams())
	x, y := randInput(m, 2, rand.New(rand.NewPCG(1, 1)))
	ws := m.NewWorkspace(2)
	w0 := m.Weights()[0]
	tests := []struct {
		name  string
		clip  float32
		train Ranges
	}{
		{"partial view", 1, Ranges{{w0.Offset, w0.Offset + 3}}},
		{"partial adapter", 1, Ranges{{m.AdapterParams("b")[0][0] + 1, m.NumParams()}}},
		{"unsorted", 1, Ranges{{m.NumBaseParams(), m.NumParams()}, {0, 10}}},
		{"past end", 1, Ranges{{0, m.NumParams() + 1}}},
		{"clip zero", 0, m.AllParams()},
		{"clip negative", -1, m.AllParams()},
		{"clip nan", float32(math.NaN()), m.AllParams()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("got no panic, want one")
				}
			}()
			ws.LossGradClipped(params, grad, x, y, 2, 0, nil, tc.clip, tc.train)
		})
	}
}

// TestLossGradClippedAllocatesNothing: after the first call, with the
// allocation-free naive backend and every compiled-in one.
func TestLossGradClippedAllocatesNothing(t *testing.T) {
	defer SetBackend(nil)
	backends := []gemm.Backend{naive{}}
	for _, name := range gemm.Names() {
		b, _ := gemm.Lookup(name)
		backends = append(backends, b)
	}
	for _, tc := range []struct {
		spec Spec
		mask string
	}{
		{loraGradCases[4].spec, "b"},
		{loraGradCases[5].spec, "ab"},
		{loraGradCases[1].spec, "all"},
		{gradCases[6].spec, "all"},
	} {
		m := mustBuild(t, tc.spec)
		r := rand.New(rand.NewPCG(1, 1))
		params := make([]float32, m.NumParams())
		m.Init(params, r)
		grad := make([]float32, m.NumParams())
		x, y := randInput(m, 8, r)
		train := trainRanges(m, tc.mask, 0)
		for _, b := range backends {
			SetBackend(b)
			ws := m.NewWorkspace(8)
			ws.LossGradClipped(params, grad, x, y, 8, 0, r, 1, train)
			allocs := testing.AllocsPerRun(20, func() {
				ws.LossGradClipped(params, grad, x, y, 8, 0, r, 1, train)
				ws.LossGradClipped(params, grad, x, y, 3, 0, r, 0.5, train)
				SGD{LR: 0.1}.StepRanges(params, grad, nil, train)
				ws.LossGrad(params, grad, x, y, 8, 0, r)
			})
			switch {
			case allocs == 0:
			case b.Name() == "gonum":
				t.Logf("%s/%s: %v allocs per step (inside gonum's parallel Sgemm)", tc.spec.Arch, b.Name(), allocs)
			default:
				t.Errorf("%s/%s/%s: got %v allocs per step, want 0", tc.spec.Arch, tc.mask, b.Name(), allocs)
			}
		}
	}
}
