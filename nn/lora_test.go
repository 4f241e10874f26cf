package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Tolerances of the LoRA checks.
const (
	loraFnTol = 1e-5 // |logits| differences after merging or with W_eff, relative to max(1, |want|)
	bRandom   = 0.3  // B ~ U(-bRandom, bRandom) in tests, so that dA != 0
)

// withLoRA returns a copy of s with adapters of the given rank on layers.
func withLoRA(s Spec, rank int, alpha float64, layers ...string) Spec {
	s.LoRA = &LoRASpec{Rank: rank, Alpha: alpha, Layers: layers}
	return s
}

// loraGradCases are models with adapters on linear and conv layers, one
// or several heads, with and without dropout.
var loraGradCases = []struct {
	name  string
	spec  Spec
	batch int
	head  int
}{
	{"linear", withLoRA(gradCases[0].spec, 2, 3), 3, 0},
	{"mlp-dropout", withLoRA(gradCases[2].spec, 3, 0), 5, 0},
	{"mlp-some-layers", withLoRA(gradCases[1].spec, 4, 2, "fc1.weight", "head.weight"), 4, 0},
	{"conv-stride-pad", withLoRA(gradCases[4].spec, 2, 4), 3, 0},
	{"cnn", withLoRA(gradCases[6].spec, 3, 6), 3, 0},
	{"conv-gram", withLoRA(Spec{Arch: "cnn", In: Shape{4, 4, 4}, Conv: []ConvSpec{{Out: 16, Kernel: 3}}, Hidden: []int{6}, Classes: 3, Heads: 1}, 8, 8), 4, 0},
	{"multi-head-used", withLoRA(gradCases[7].spec, 2, 2, "fc0.weight", "head1.weight"), 4, 1},
	{"multi-head-unused", withLoRA(gradCases[7].spec, 2, 2, "fc0.weight", "head1.weight"), 4, 2},
}

// randomiseB draws every adapter's B from U(-bRandom, bRandom).
func randomiseB(m *Model, params []float32, r *rand.Rand) {
	for _, ad := range m.Adapters() {
		b := params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols]
		for i := range b {
			b[i] = float32(bRandom * (2*r.Float64() - 1))
		}
	}
}

// effective64 returns p with the weight of every adapter of the trunk and
// of head replaced by W0 + s B A, in float64: the parameters of the base
// model that computes the same function, for refForward.
func effective64(m *Model, p []float64, head int) []float64 {
	q := append([]float64(nil), p...)
	for _, ad := range m.adapters {
		if ad.A.Head >= 0 && ad.A.Head != head {
			continue
		}
		w := m.weights[ad.Weight]
		r, din := ad.A.Rows, ad.A.Cols
		for o := 0; o < w.Rows; o++ {
			for j := 0; j < din; j++ {
				var s float64
				for k := 0; k < r; k++ {
					s += p[ad.B.Offset+o*r+k] * p[ad.A.Offset+k*din+j]
				}
				q[w.Offset+o*din+j] += float64(ad.Scale) * s
			}
		}
	}
	return q
}

func TestLoRASpecValidate(t *testing.T) {
	mlp := gradCases[1].spec // fc0, fc1, head
	multi := gradCases[7].spec
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error; nil = valid
	}{
		{"default", withLoRA(mlp, 0, 0), nil},
		{"named", withLoRA(mlp, 4, 16, "fc0.weight", "head.weight"), nil},
		{"conv", withLoRA(smallCNN, 8, 8, "conv1.weight"), nil},
		{"per-task head named", withLoRA(multi, 2, 2, "head2.weight"), nil},
		{"rank", withLoRA(mlp, -1, 8), []string{"lora rank -1"}},
		{"alpha", withLoRA(mlp, 8, -2), []string{"lora alpha -2"}},
		{"alpha nan", withLoRA(mlp, 8, math.NaN()), []string{"lora alpha NaN"}},
		{"alpha inf", withLoRA(mlp, 8, math.Inf(1)), []string{"lora alpha +Inf"}},
		{"unknown", withLoRA(mlp, 8, 8, "fc7.weight", "fc0.bias"), []string{`layers[0] "fc7.weight" is not a weight`, `layers[1] "fc0.bias"`}},
		{"twice", withLoRA(mlp, 8, 8, "fc0.weight", "fc0.weight"), []string{`layers[1] "fc0.weight" listed twice`}},
		{"no shared weight", withLoRA(Spec{Arch: "mlp", In: Shape{1, 1, 3}, Classes: 2, Heads: 2}, 8, 8), []string{"has none"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkSpecError(t, tc.spec.Validate(), tc.want)
		})
	}
}

func TestLoRALayout(t *testing.T) {
	base, _ := Build(paperMLP)
	s := paperMLP
	s.LoRA = &LoRASpec{Rank: 4}
	m, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Spec().LoRA; got == nil || got.Rank != 4 || got.Alpha != DefaultLoRAAlpha || got == s.LoRA {
		t.Errorf("Spec().LoRA: got %+v, want a copy with rank 4 and alpha %v", got, DefaultLoRAAlpha)
	}
	if s.LoRA.Alpha != 0 {
		t.Errorf("Build changed the caller's LoRASpec: alpha %v", s.LoRA.Alpha)
	}
	bw, mw := base.Weights(), m.Weights()
	for i := range bw {
		if bw[i] != mw[i] || base.Biases()[i] != m.Biases()[i] {
			t.Errorf("view %d: got %+v, want %+v (as without LoRA)", i, mw[i], bw[i])
		}
	}
	if off, n := m.HeadRange(0); off != mw[3].Offset || n != 10*400+10 {
		t.Errorf("HeadRange(0): got (%d, %d)", off, n)
	}
	if got, want := m.NumBaseParams(), base.NumParams(); got != want {
		t.Errorf("NumBaseParams: got %d, want %d", got, want)
	}
	ads := m.Adapters()
	// weights 784->400, 400->400, 400->400, 400->10; rank 4.
	dims := [][2]int{{400, 784}, {400, 400}, {400, 400}, {10, 400}}
	names := []string{"fc0", "fc1", "fc2", "head"}
	if len(ads) != len(dims) {
		t.Fatalf("len(Adapters()): got %d, want %d", len(ads), len(dims))
	}
	off := base.NumParams()
	for i, ad := range ads {
		wantA := ParamView{Name: names[i] + ".lora_A", Offset: off, Rows: 4, Cols: dims[i][1], Kind: "linear", Head: -1, Shared: true}
		if i == 3 {
			wantA.Head = 0
		}
		if ad.A != wantA || ad.Weight != i || ad.Name != names[i]+".weight" || ad.Scale != 2 {
			t.Errorf("Adapters()[%d]: got %+v, want A %+v, weight %d, scale 2", i, ad, wantA, i)
		}
		off += 4 * dims[i][1]
	}
	for i, ad := range ads {
		if ad.B.Offset != off || ad.B.Rows != dims[i][0] || ad.B.Cols != 4 || ad.B.Name != names[i]+".lora_B" {
			t.Errorf("Adapters()[%d].B: got %+v, want offset %d, %d x 4", i, ad.B, off, dims[i][0])
		}
		off += 4 * dims[i][0]
	}
	if m.NumParams() != off {
		t.Errorf("NumParams: got %d, want %d", m.NumParams(), off)
	}
	mh, _ := Build(withLoRA(gradCases[7].spec, 2, 2, "head1.weight", "fc0.weight"))
	if ads := mh.Adapters(); len(ads) != 2 || ads[0].Name != "fc0.weight" || ads[1].Name != "head1.weight" || ads[1].A.Head != 1 || ads[1].B.Shared {
		t.Errorf("multi-head adapters: got %+v, want fc0 then head1 (head 1, not shared)", ads)
	}
}

func TestLoRAInitKeepsFunction(t *testing.T) {
	for i, tc := range loraGradCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Build(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			bs := tc.spec
			bs.LoRA = nil
			base, _ := Build(bs)
			params := make([]float32, m.NumParams())
			m.Init(params, rand.New(rand.NewPCG(uint64(i), 5)))
			bp := make([]float32, base.NumParams())
			base.Init(bp, rand.New(rand.NewPCG(uint64(i), 5)))
			for j := range bp {
				if bp[j] != params[j] {
					t.Fatalf("base param %d (%s): got %v, want %v (Init without LoRA)", j, paramName(m, j), params[j], bp[j])
				}
			}
			for _, ad := range m.Adapters() {
				bound := float32(1 / math.Sqrt(float64(ad.A.Cols)))
				for _, v := range params[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols] {
					if v < -bound || v > bound || v == 0 {
						t.Fatalf("%s: got %v, want in (-%v, %v)", ad.A.Name, v, bound, bound)
					}
				}
			}
			// Train B, then re-initialise: B = 0, base untouched, A redrawn.
			randomiseB(m, params, rand.New(rand.NewPCG(1, 1)))
			before := append([]float32(nil), params...)
			m.InitAdapters(params, rand.New(rand.NewPCG(2, 2)))
			for j := 0; j < m.NumBaseParams(); j++ {
				if params[j] != before[j] {
					t.Fatalf("InitAdapters changed base param %d", j)
				}
			}
			for _, ad := range m.Adapters() {
				for j, v := range params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols] {
					if v != 0 {
						t.Fatalf("%s[%d] after InitAdapters: got %v, want 0", ad.B.Name, j, v)
					}
				}
			}
			x, _ := randInput(m, tc.batch, rand.New(rand.NewPCG(3, 3)))
			got := m.NewWorkspace(tc.batch).Forward(params, x, tc.batch, tc.head, true, rand.New(rand.NewPCG(4, 4)))
			want := base.NewWorkspace(tc.batch).Forward(params[:base.NumParams()], x, tc.batch, tc.head, true, rand.New(rand.NewPCG(4, 4)))
			for j := range want {
				if got[j] != want[j] {
					t.Fatalf("logits[%d] with B = 0: got %v, want %v (base model)", j, got[j], want[j])
				}
			}
		})
	}
}

// TestLoRAForwardEqualsEffectiveWeights compares the LoRA model with the
// base model whose adapted weights are replaced by EffectiveWeight, and
// checks that MergeAdapters keeps the function and clears B.
func TestLoRAForwardEqualsEffectiveWeights(t *testing.T) {
	for i, tc := range loraGradCases {
		for _, train := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/train=%v", tc.name, train), func(t *testing.T) {
				m, _ := Build(tc.spec)
				bs := tc.spec
				bs.LoRA = nil
				base, _ := Build(bs)
				r := rand.New(rand.NewPCG(uint64(i), 6))
				params := make([]float32, m.NumParams())
				m.Init(params, r)
				randomiseB(m, params, r)
				x, _ := randInput(m, tc.batch, r)
				var dr func() *rand.Rand
				if train {
					dr = func() *rand.Rand { return rand.New(rand.NewPCG(7, 7)) }
				} else {
					dr = func() *rand.Rand { return nil }
				}
				ws := m.NewWorkspace(tc.batch)
				got := append([]float32(nil), ws.Forward(params, x, tc.batch, tc.head, train, dr())...)

				eff := append([]float32(nil), params[:m.NumBaseParams()]...)
				for a, ad := range m.Adapters() {
					w := m.Weights()[ad.Weight]
					m.EffectiveWeight(eff[w.Offset:w.Offset+w.Rows*w.Cols], params, a)
				}
				want := base.NewWorkspace(tc.batch).Forward(eff, x, tc.batch, tc.head, train, dr())
				compareLogits(t, "LoRA vs W_eff", got, want)

				merged := append([]float32(nil), params...)
				m.MergeAdapters(merged)
				for _, ad := range m.Adapters() {
					for j, v := range merged[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols] {
						if v != 0 {
							t.Fatalf("%s[%d] after merge: got %v, want 0", ad.B.Name, j, v)
						}
					}
					for j := ad.A.Offset; j < ad.A.Offset+ad.A.Rows*ad.A.Cols; j++ {
						if merged[j] != params[j] {
							t.Fatalf("%s changed by merge", ad.A.Name)
						}
					}
				}
				for j := range eff {
					if merged[j] != eff[j] {
						t.Fatalf("merged param %d (%s): got %v, want %v (EffectiveWeight)", j, paramName(m, j), merged[j], eff[j])
					}
				}
				compareLogits(t, "after merge", ws.Forward(merged, x, tc.batch, tc.head, train, dr()), got)
			})
		}
	}
}

func compareLogits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d logits, want %d", what, len(got), len(want))
	}
	for j := range want {
		if d := math.Abs(float64(got[j] - want[j])); d > loraFnTol*math.Max(1, math.Abs(float64(want[j]))) {
			t.Fatalf("%s: logits[%d]: got %v, want %v", what, j, got[j], want[j])
		}
	}
}

// TestLoRAGradMatchesFiniteDifferences checks the gradients with respect
// to W0, the biases, A and B against central differences of the float64
// reference run on the effective weights.
func TestLoRAGradMatchesFiniteDifferences(t *testing.T) {
	for i, tc := range loraGradCases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Build(tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(uint64(i), 11))
			params := make([]float32, m.NumParams())
			m.Init(params, r)
			randomiseB(m, params, r)
			x, y := randInput(m, tc.batch, r)
			ws := m.NewWorkspace(tc.batch)
			loss, grad, masks, p64 := lossGradForReference(ws, params, x, y, tc.batch, tc.head)
			lossAt := func() float64 {
				return refForward(m, effective64(m, p64, tc.head), x, y, tc.batch, tc.head, masks).loss
			}
			if ref := lossAt(); math.Abs(float64(loss)-ref) > lossRelTol*math.Max(1, ref) {
				t.Errorf("loss: got %v, want %v (reference)", loss, ref)
			}
			idx := checkedIndices(m, r)
			for _, ad := range m.Adapters() {
				for _, v := range []ParamView{ad.A, ad.B} {
					for _, j := range r.Perm(v.Rows * v.Cols)[:min(perViewDraw, v.Rows*v.Cols)] {
						idx = append(idx, v.Offset+j)
					}
				}
			}
			checkFiniteDifferences(t, grad, p64, idx, lossAt, func(j int) string { return loraParamName(m, j) })
			for j, g := range grad {
				if math.IsNaN(float64(g)) {
					t.Fatalf("grad[%d] (%s) not written", j, loraParamName(m, j))
				}
			}
			for _, ad := range m.Adapters() {
				if ad.A.Head < 0 || ad.A.Head == tc.head {
					continue
				}
				for j := ad.A.Offset; j < ad.A.Offset+ad.A.Rows*ad.A.Cols; j++ {
					if grad[j] != 0 {
						t.Fatalf("grad of unused %s: got %v, want 0", ad.A.Name, grad[j])
					}
				}
			}
		})
	}
}

// loraParamName names the view holding parameter j, adapters included.
func loraParamName(m *Model, j int) string {
	for _, ad := range m.Adapters() {
		for _, v := range []ParamView{ad.A, ad.B} {
			if j >= v.Offset && j < v.Offset+v.Rows*v.Cols {
				return fmt.Sprintf("%s[%d]", v.Name, j-v.Offset)
			}
		}
	}
	return paramName(m, j)
}

func TestLoRAPanics(t *testing.T) {
	m, _ := Build(withLoRA(gradCases[1].spec, 2, 2))
	params := make([]float32, m.NumParams())
	tests := []panicCase{
		{"effective weight index", func() { m.EffectiveWeight(make([]float32, 8*10), params, 3) }},
		{"effective weight dst", func() { m.EffectiveWeight(make([]float32, 5), params, 0) }},
		{"effective weight params", func() { m.EffectiveWeight(make([]float32, 8*10), params[1:], 0) }},
		{"merge params", func() { m.MergeAdapters(params[1:]) }},
		{"init adapters params", func() { m.InitAdapters(params[1:], rand.New(rand.NewPCG(1, 1))) }},
		{"adapter params which", func() { m.AdapterParams("c") }},
	}
	expectPanics(t, tests)
}
