package server

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// Tolerances of the LoRA aggregation tests.
const (
	loraProductTol = 1e-5 // relative Frobenius error of products and merged weights (float32 outputs)
	loraOrthoTol   = 1e-5 // |A A^T - I| entries after a refactor
)

// loraFixture is a model with adapters on every shared weight (shapes
// 12 -> 10 -> 3 with rank 4, so one adapter has r > d_out), a global model
// with random A, B and W0, and K client updates (compact deltas over A and
// B).
type loraFixture struct {
	m      *nn.Model
	before []float32
	ups    []aggregator.Update
}

func newLoRAFixture(t *testing.T, k int, seed uint64) loraFixture {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 3, W: 4}, Hidden: []int{10}, Classes: 3, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 4, Alpha: 8}})
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, 9))
	p := make([]float32, m.NumParams())
	for i := range p {
		p[i] = float32(r.NormFloat64())
	}
	f := loraFixture{m: m, before: p}
	size := m.AdapterParams("ab").Size()
	for c := range k {
		d := make([]float32, size)
		for i := range d {
			d[i] = float32(0.3 * r.NormFloat64())
		}
		f.ups = append(f.ups, aggregator.Update{Client: c, N: int64(10 + 7*c), Delta: d})
	}
	return f
}

// apply runs what the server does for a LoRA round: mean of the compact
// deltas, scatter, apply, then afterApply. It returns the new global model
// and the scattered mean.
func (f loraFixture) apply(t *testing.T, cfg LoRAConfig, w aggregator.Weighting, round int) ([]float32, []float32, *loraState) {
	t.Helper()
	l, err := newLoRAState(Config{LoRA: &cfg, Seed: 5, Weighting: w, ServerLR: 1}, f.m)
	if err != nil {
		t.Fatal(err)
	}
	train := client.Trainable(f.m, cfg.Factors(), 0)
	mean := make([]float32, train.Size())
	aggregator.Mean(mean, f.ups, w)
	agg := make([]float32, f.m.NumParams())
	client.Scatter(agg, mean, train)
	params := append([]float32(nil), f.before...)
	aggregator.Apply(params, agg, 1)
	if err := l.afterApply(params, f.before, f.ups, agg, round); err != nil {
		t.Fatal(err)
	}
	return params, agg, l
}

// effective returns W0 + s B A of adapter a in float64.
func effective(m *nn.Model, p []float32, a int) []float64 {
	ad := m.Adapters()[a]
	w := m.Weights()[ad.Weight]
	dst := make([]float32, w.Rows*w.Cols)
	m.EffectiveWeight(dst, p, a)
	out := make([]float64, len(dst))
	for i, v := range dst {
		out[i] = float64(v)
	}
	return out
}

// product returns s B A of adapter a in float64.
func product(m *nn.Model, p []float32, a int) []float64 {
	ad := m.Adapters()[a]
	r, din, dout := ad.A.Rows, ad.A.Cols, ad.B.Rows
	out := make([]float64, dout*din)
	for o := range dout {
		for j := range din {
			var s float64
			for k := range r {
				s += float64(p[ad.B.Offset+o*r+k]) * float64(p[ad.A.Offset+k*din+j])
			}
			out[o*din+j] = float64(ad.Scale) * s
		}
	}
	return out
}

func relErr(got, want []float64) float64 {
	var d, n float64
	for i := range got {
		d += (got[i] - want[i]) * (got[i] - want[i])
		n += want[i] * want[i]
	}
	if n == 0 {
		return math.Sqrt(d)
	}
	return math.Sqrt(d / n)
}

// clientFactor returns client k's factors B_k = B + dB_k and A_k = A + dA_k
// written into a copy of the global model.
func (f loraFixture) clientModel(k int) []float32 {
	p := append([]float32(nil), f.before...)
	lo := f.m.AdapterParams("ab")[0][0]
	for i, v := range f.ups[k].Delta {
		p[lo+i] += v
	}
	return p
}

// FedSVD: after a refactor round B A equals the averaged product B_avg A
// (to 1e-5) and A has orthonormal rows; with period 2 and warmup 1 the
// refactor runs in LoRA rounds 2, 4, ... only.
func TestFedSVDRefactorRound(t *testing.T) {
	f := newLoRAFixture(t, 3, 1)
	// FedSVD clients send B only: keep the B part of the fixture's deltas.
	nb := f.m.AdapterParams("b").Size()
	for i := range f.ups {
		f.ups[i].Delta = f.ups[i].Delta[len(f.ups[i].Delta)-nb:]
	}
	params, agg, _ := f.apply(t, LoRAConfig{Method: "fedsvd", Period: 1}, aggregator.Uniform, 0)
	avg := append([]float32(nil), f.before...)
	aggregator.Apply(avg, agg, 1)
	for a, ad := range f.m.Adapters() {
		if e := relErr(product(f.m, params, a), product(f.m, avg, a)); e > loraProductTol {
			t.Errorf("%s: B A after the refactor differs from B_avg A by %.2g (relative)", ad.Name, e)
		}
		r, din := ad.A.Rows, ad.A.Cols
		for i := range min(r, din) {
			for j := range min(r, din) {
				var dot float64
				for k := range din {
					dot += float64(params[ad.A.Offset+i*din+k]) * float64(params[ad.A.Offset+j*din+k])
				}
				if want := map[bool]float64{true: 1, false: 0}[i == j]; math.Abs(dot-want) > loraOrthoTol {
					t.Errorf("%s: (A A^T)[%d][%d] = %v, want %v", ad.Name, i, j, dot, want)
				}
			}
		}
	}
	// Period and warm-up: the refactor changes A only in the rounds it runs.
	l, err := newLoRAState(Config{LoRA: &LoRAConfig{Method: "fedsvd", Period: 2, Warmup: 1}, Seed: 5, ServerLR: 1}, f.m)
	if err != nil {
		t.Fatal(err)
	}
	ad := f.m.Adapters()[0]
	for j, wantRefactor := range []bool{false, false, true, false, true} {
		p := append([]float32(nil), avg...)
		if err := l.afterApply(p, f.before, f.ups, agg, j); err != nil {
			t.Fatal(err)
		}
		if got := changed32(p, avg, ad.A.Offset, ad.A.Rows*ad.A.Cols); got != wantRefactor {
			t.Errorf("LoRA round %d (period 2, warmup 1): refactored %v, want %v", j, got, wantRefactor)
		}
	}
}

func changed32(a, b []float32, off, n int) bool {
	for i := off; i < off+n; i++ {
		if a[i] != b[i] {
			return true
		}
	}
	return false
}

// FLoRA merges sum_k p_k s B_k A_k into W0 and re-initialises A (seeded by
// the round) and B = 0; FedEx-LoRA keeps the averaged factors and merges
// the residual, so that its effective weight is W0 + s sum_k p_k B_k A_k
// too. Both for uniform and sample weights.
func TestFLoRAAndFedExMerge(t *testing.T) {
	for _, w := range []aggregator.Weighting{aggregator.Uniform, aggregator.Samples} {
		f := newLoRAFixture(t, 3, 2)
		p := aggregator.Weights(nil, f.ups, w)
		for _, method := range []string{"flora", "fedex-lora"} {
			params, agg, _ := f.apply(t, LoRAConfig{Method: method, Period: 1}, w, 17)
			for a, ad := range f.m.Adapters() {
				// want = W0 + sum_k p_k s B_k A_k
				want := make([]float64, ad.B.Rows*ad.A.Cols)
				wv := f.m.Weights()[ad.Weight]
				for i := range want {
					want[i] = float64(f.before[wv.Offset+i])
				}
				for k := range f.ups {
					pk := product(f.m, f.clientModel(k), a)
					for i := range want {
						want[i] += p[k] * pk[i]
					}
				}
				if e := relErr(effective(f.m, params, a), want); e > loraProductTol {
					t.Errorf("%s (%v) %s: effective weight off by %.2g (relative)", method, w, ad.Name, e)
				}
			}
			switch method {
			case "flora":
				again, _, _ := f.apply(t, LoRAConfig{Method: method, Period: 1}, w, 17)
				other, _, _ := f.apply(t, LoRAConfig{Method: method, Period: 1}, w, 18)
				for _, ad := range f.m.Adapters() {
					for i := ad.B.Offset; i < ad.B.Offset+ad.B.Rows*ad.B.Cols; i++ {
						if params[i] != 0 {
							t.Fatalf("flora: B not re-initialised to 0")
						}
					}
					if changed32(params, again, ad.A.Offset, ad.A.Rows*ad.A.Cols) {
						t.Errorf("flora: A re-initialisation is not deterministic for a round")
					}
					if !changed32(params, other, ad.A.Offset, ad.A.Rows*ad.A.Cols) {
						t.Errorf("flora: rounds 17 and 18 drew the same A")
					}
				}
			case "fedex-lora":
				avg := append([]float32(nil), f.before...)
				aggregator.Apply(avg, agg, 1)
				lo := f.m.AdapterParams("ab")[0][0]
				for i := lo; i < len(avg); i++ {
					if params[i] != avg[i] {
						t.Fatalf("fedex-lora: factor %d is %v, want the average %v", i, params[i], avg[i])
					}
				}
			}
		}
	}
}

// The DP accounts compose the steps of every update that reports its
// sampling rate and report each client's epsilon.
func TestDPAccounts(t *testing.T) {
	a := &dpAccounts{cfg: DPConfig{Delta: 1e-5, Sigma: []float64{1.1, 0.9, 1}}}
	up := func(c int, q float64, steps int) *transport.Message {
		return &transport.Message{Kind: transport.KindUpdate, Client: int32(c), Scalars: []transport.Scalar{
			{Name: client.ScalarSteps, Value: float64(steps)}, {Name: client.ScalarDPQ, Value: q}}}
	}
	for _, m := range []*transport.Message{up(0, 0.05, 10), up(1, 0.1, 10), up(0, 0.05, 10),
		{Kind: transport.KindUpdate, Client: 2, Scalars: []transport.Scalar{{Name: client.ScalarSteps, Value: 10}}}} {
		if err := a.add(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.add(up(7, 0.1, 1)); err == nil {
		t.Error("an update of a client without sigma was accounted")
	}
	rec, err := a.record()
	if err != nil {
		t.Fatal(err)
	}
	want0, _, _ := dp.Epsilon(0.05, 1.1, 20, 1e-5)
	want1, _, _ := dp.Epsilon(0.1, 0.9, 10, 1e-5)
	want := results.DP{Delta: 1e-5, Sigma: []float64{1.1, 0.9, 1}, EpsilonSpent: []float64{want0, want1, 0}, EpsilonSpentMax: max(want0, want1)}
	for c := range want.EpsilonSpent {
		if math.Abs(rec.EpsilonSpent[c]-want.EpsilonSpent[c]) > 1e-12*max(1, want.EpsilonSpent[c]) {
			t.Errorf("client %d spent %v, want %v", c, rec.EpsilonSpent[c], want.EpsilonSpent[c])
		}
	}
	if rec.EpsilonSpentMax != want.EpsilonSpentMax || rec.Delta != want.Delta || len(rec.Sigma) != 3 {
		t.Errorf("record %+v, want %+v", rec, want)
	}
}

// LoRA configurations that cannot run are refused.
func TestLoRAConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  LoRAConfig
		ok   bool
	}{
		{"fedsvd", LoRAConfig{Method: "fedsvd", Period: 1}, true},
		{"fedsvd period 0", LoRAConfig{Method: "fedsvd"}, false},
		{"fedsvd negative warmup", LoRAConfig{Method: "fedsvd", Period: 1, Warmup: -1}, false},
		{"ffa fot", LoRAConfig{Method: "ffa-lora", FOT: true}, false},
		{"unknown", LoRAConfig{Method: "lora"}, false},
		{"flora", LoRAConfig{Method: "flora"}, true},
	}
	for _, c := range cases {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok %v", c.name, err, c.ok)
		}
	}
}
