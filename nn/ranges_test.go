package nn

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestRangesHelpers(t *testing.T) {
	m, _ := Build(withLoRA(gradCases[1].spec, 2, 2)) // 10 -> 8 -> 6 -> 4
	base := 8*10 + 8 + 6*8 + 6 + 4*6 + 4
	aSize := 2*10 + 2*8 + 2*6
	bSize := 8*2 + 6*2 + 4*2
	n := m.NumParams()
	if n != base+aSize+bSize {
		t.Fatalf("NumParams: got %d, want %d", n, base+aSize+bSize)
	}
	tests := []struct {
		name string
		got  Ranges
		want Ranges
	}{
		{"all", m.AllParams(), Ranges{{0, n}}},
		{"base", m.BaseParams(), Ranges{{0, base}}},
		{"ab", m.AdapterParams("ab"), Ranges{{base, n}}},
		{"a", m.AdapterParams("a"), Ranges{{base, base + aSize}}},
		{"b", m.AdapterParams("b"), Ranges{{base + aSize, n}}},
		{"no adapters", mustBuild(t, gradCases[1].spec).AdapterParams("b"), nil},
		{"of views", RangesOf(m.Biases()[2], m.Weights()[0], m.Biases()[0], m.Weights()[2]), Ranges{{0, 88}, {base - 28, base}}},
		{"of overlapping", RangesOf(ParamView{Offset: 5, Rows: 10, Cols: 1}, ParamView{Offset: 0, Rows: 2, Cols: 3}, ParamView{Offset: 20, Rows: 0, Cols: 3}), Ranges{{0, 15}}},
	}
	for _, tc := range tests {
		if !slices.Equal(tc.got, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := (Ranges{{1, 3}, {5, 9}}).Size(); got != 6 {
		t.Errorf("Size: got %d, want 6", got)
	}
}

func mustBuild(t *testing.T, s Spec) *Model {
	t.Helper()
	m, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRangesMaskAndZero(t *testing.T) {
	r := Ranges{{1, 3}, {3, 4}, {6, 6}, {7, 9}}
	tests := []struct {
		name string
		f    func(Ranges, []float32)
		want []float32
	}{
		{"mask", Ranges.Mask, []float32{0, 2, 3, 4, 0, 0, 0, 8, 9, 0}},
		{"zero", Ranges.Zero, []float32{1, 0, 0, 0, 5, 6, 7, 0, 0, 10}},
	}
	for _, tc := range tests {
		x := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
		tc.f(r, x)
		if !slices.Equal(x, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, x, tc.want)
		}
	}
	x := []float32{1, 2}
	Ranges(nil).Mask(x)
	if !slices.Equal(x, []float32{0, 0}) {
		t.Errorf("empty mask: got %v, want [0 0]", x)
	}
}

func TestSGDStepRanges(t *testing.T) {
	r := Ranges{{2, 5}, {8, 10}}
	for _, opt := range []SGD{{LR: 0.1}, {LR: 0.1, WeightDecay: 0.01}, {LR: 0.05, WeightDecay: 0.1, Momentum: 0.9}} {
		rng := rand.New(rand.NewPCG(1, 2))
		p := make([]float32, 12)
		g := make([]float32, 12)
		for i := range p {
			p[i], g[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
		}
		want, wantV := append([]float32(nil), p...), make([]float32, 12)
		got, gotV := append([]float32(nil), p...), make([]float32, 12)
		for i := range gotV {
			gotV[i] = 7 // must stay outside r
		}
		for i := range wantV {
			wantV[i] = 7
		}
		for _, q := range r {
			clear(wantV[q[0]:q[1]])
			clear(gotV[q[0]:q[1]])
		}
		var vel, wvel []float32
		if opt.Momentum != 0 {
			vel, wvel = gotV, wantV
		}
		for step := 0; step < 3; step++ {
			opt.StepRanges(got, g, vel, r)
			full, fullV := append([]float32(nil), want...), append([]float32(nil), wantV...)
			if opt.Momentum != 0 {
				opt.Step(full, g, fullV)
			} else {
				opt.Step(full, g, nil)
			}
			for _, q := range r {
				copy(want[q[0]:q[1]], full[q[0]:q[1]])
				copy(wantV[q[0]:q[1]], fullV[q[0]:q[1]])
			}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%+v params: got %v, want %v", opt, got, want)
		}
		if wvel != nil && !slices.Equal(vel, wvel) {
			t.Errorf("%+v velocity: got %v, want %v", opt, vel, wvel)
		}
	}
}

func TestRangesPanics(t *testing.T) {
	x := make([]float32, 10)
	tests := []panicCase{
		{"unsorted", func() { Ranges{{5, 6}, {1, 2}}.Mask(x) }},
		{"overlap", func() { Ranges{{1, 5}, {4, 6}}.Zero(x) }},
		{"reversed", func() { Ranges{{3, 2}}.Mask(x) }},
		{"negative", func() { Ranges{{-1, 2}}.Mask(x) }},
		{"past end", func() { Ranges{{8, 11}}.Mask(x) }},
		{"step past end", func() { SGD{LR: 1}.StepRanges(x, x, nil, Ranges{{8, 11}}) }},
		{"step grad", func() { SGD{LR: 1}.StepRanges(x, x[1:], nil, nil) }},
		{"step velocity", func() { SGD{LR: 1, Momentum: 0.5}.StepRanges(x, x, nil, nil) }},
	}
	expectPanics(t, tests)
}

// TestLossGradRanges: the gradients inside train are LossGrad's, bit for
// bit, and zero outside.
func TestLossGradRanges(t *testing.T) {
	for ci, tc := range clipCases {
		for _, mask := range tc.masks {
			t.Run(tc.name+"/"+mask, func(t *testing.T) {
				m := mustBuild(t, tc.spec)
				r := rand.New(rand.NewPCG(uint64(ci), 31))
				params := make([]float32, m.NumParams())
				m.Init(params, r)
				randomiseB(m, params, r)
				x, y := randInput(m, tc.batch, r)
				train := trainRanges(m, mask, tc.head)
				ws := m.NewWorkspace(tc.batch)
				want := make([]float32, m.NumParams())
				wantLoss := ws.LossGrad(params, want, x, y, tc.batch, tc.head, rand.New(rand.NewPCG(5, 5)))
				train.Mask(want)
				got := make([]float32, m.NumParams())
				for j := range got {
					got[j] = 1 // must be overwritten
				}
				loss := ws.LossGradRanges(params, got, x, y, tc.batch, tc.head, rand.New(rand.NewPCG(5, 5)), train)
				if loss != wantLoss {
					t.Errorf("loss: got %v, want %v", loss, wantLoss)
				}
				for j := range got {
					if got[j] != want[j] {
						t.Fatalf("grad[%d] (%s): got %v, want %v (masked LossGrad)", j, loraParamName(m, j), got[j], want[j])
					}
				}
			})
		}
	}
}
