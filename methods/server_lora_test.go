package methods_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
)

// Tolerances of the LoRA aggregation tests.
const (
	srvLoRAProductTol = 1e-5 // relative Frobenius error of products and merged weights (float32 outputs)
	srvLoRAOrthoTol   = 1e-5 // |A A^T - I| entries after a refactor
)

// srvLoRAFixture is a model with adapters on every shared weight (shapes
// 12 -> 10 -> 3 with rank 4, so one adapter has r > d_out), a global model
// with random A, B and W0, and K client updates (compact deltas over A and
// B).
type srvLoRAFixture struct {
	m      *nn.Model
	before []float32
	ups    []aggregator.Update
}

func newSrvLoRAFixture(t *testing.T, k int, seed uint64) srvLoRAFixture {
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
	f := srvLoRAFixture{m: m, before: p}
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

// apply runs what the server does for a normal LoRA round of the method
// name with the options written: mean of the compact deltas, scatter,
// BeforeApply, apply, then AfterApply. It returns the new global model,
// the scattered mean and the method's rule.
func (f srvLoRAFixture) apply(t *testing.T, name string, written map[string]any, w aggregator.Weighting, round int) ([]float32, []float32, server.Rule) {
	t.Helper()
	method, rule := srvRule(t, name, written, methods.Env{Model: f.m, Seed: 5, Weighting: w, ServerLR: 1})
	train := protocol.Trainable(f.m, method.Info().LoRA, 0)
	mean := make([]float32, train.Size())
	aggregator.Mean(mean, f.ups, w)
	agg := make([]float32, f.m.NumParams())
	protocol.Scatter(agg, mean, train)
	rule.BeforeApply(agg, 0)
	params := append([]float32(nil), f.before...)
	aggregator.Apply(params, agg, 1)
	if err := rule.AfterApply(&server.Applied{Round: round, Params: params, Before: f.before, Ups: f.ups, Agg: agg}); err != nil {
		t.Fatal(err)
	}
	return params, agg, rule
}

// srvEffective returns W0 + s B A of adapter a in float64.
func srvEffective(m *nn.Model, p []float32, a int) []float64 {
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

// srvProduct returns s B A of adapter a in float64.
func srvProduct(m *nn.Model, p []float32, a int) []float64 {
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

func srvRelErr(got, want []float64) float64 {
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
func (f srvLoRAFixture) clientModel(k int) []float32 {
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
	f := newSrvLoRAFixture(t, 3, 1)
	// FedSVD clients send B only: keep the B part of the fixture's deltas.
	nb := f.m.AdapterParams("b").Size()
	for i := range f.ups {
		f.ups[i].Delta = f.ups[i].Delta[len(f.ups[i].Delta)-nb:]
	}
	params, agg, _ := f.apply(t, "fedsvd", map[string]any{"period": 1}, aggregator.Uniform, 0)
	avg := append([]float32(nil), f.before...)
	aggregator.Apply(avg, agg, 1)
	for a, ad := range f.m.Adapters() {
		if e := srvRelErr(srvProduct(f.m, params, a), srvProduct(f.m, avg, a)); e > srvLoRAProductTol {
			t.Errorf("%s: B A after the refactor differs from B_avg A by %.2g (relative)", ad.Name, e)
		}
		r, din := ad.A.Rows, ad.A.Cols
		for i := range min(r, din) {
			for j := range min(r, din) {
				var dot float64
				for k := range din {
					dot += float64(params[ad.A.Offset+i*din+k]) * float64(params[ad.A.Offset+j*din+k])
				}
				if want := map[bool]float64{true: 1, false: 0}[i == j]; math.Abs(dot-want) > srvLoRAOrthoTol {
					t.Errorf("%s: (A A^T)[%d][%d] = %v, want %v", ad.Name, i, j, dot, want)
				}
			}
		}
	}
	// Period and warm-up: the refactor changes A only in the rounds it runs.
	_, l := srvRule(t, "fedsvd", map[string]any{"period": 2, "warmup": 1}, methods.Env{Model: f.m, Seed: 5, ServerLR: 1})
	ad := f.m.Adapters()[0]
	for j, wantRefactor := range []bool{false, false, true, false, true} {
		p := append([]float32(nil), avg...)
		if err := l.AfterApply(&server.Applied{Round: j, Params: p, Before: f.before, Ups: f.ups, Agg: agg}); err != nil {
			t.Fatal(err)
		}
		if got := srvChanged32(p, avg, ad.A.Offset, ad.A.Rows*ad.A.Cols); got != wantRefactor {
			t.Errorf("LoRA round %d (period 2, warmup 1): refactored %v, want %v", j, got, wantRefactor)
		}
	}
}

func srvChanged32(a, b []float32, off, n int) bool {
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
		f := newSrvLoRAFixture(t, 3, 2)
		p := aggregator.Weights(nil, f.ups, w)
		for _, method := range []string{"flora", "fedex-lora"} {
			params, agg, _ := f.apply(t, method, nil, w, 17)
			for a, ad := range f.m.Adapters() {
				// want = W0 + sum_k p_k s B_k A_k
				want := make([]float64, ad.B.Rows*ad.A.Cols)
				wv := f.m.Weights()[ad.Weight]
				for i := range want {
					want[i] = float64(f.before[wv.Offset+i])
				}
				for k := range f.ups {
					pk := srvProduct(f.m, f.clientModel(k), a)
					for i := range want {
						want[i] += p[k] * pk[i]
					}
				}
				if e := srvRelErr(srvEffective(f.m, params, a), want); e > srvLoRAProductTol {
					t.Errorf("%s (%v) %s: srvEffective weight off by %.2g (relative)", method, w, ad.Name, e)
				}
			}
			switch method {
			case "flora":
				again, _, _ := f.apply(t, method, nil, w, 17)
				other, _, _ := f.apply(t, method, nil, w, 18)
				for _, ad := range f.m.Adapters() {
					for i := ad.B.Offset; i < ad.B.Offset+ad.B.Rows*ad.B.Cols; i++ {
						if params[i] != 0 {
							t.Fatalf("flora: B not re-initialised to 0")
						}
					}
					if srvChanged32(params, again, ad.A.Offset, ad.A.Rows*ad.A.Cols) {
						t.Errorf("flora: A re-initialisation is not deterministic for a round")
					}
					if !srvChanged32(params, other, ad.A.Offset, ad.A.Rows*ad.A.Cols) {
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

// LoRA configurations that cannot run are refused. This was server's
// TestLoRAConfigValidate on server.LoRAConfig; the checks moved to the
// registry: the method's options (Resolve, Check) and its server side
// (Server, which builds the LoRA state).
func TestLoRAServerValidate(t *testing.T) {
	f := newSrvLoRAFixture(t, 1, 3)
	env := methods.Env{Model: f.m, Seed: 5, ServerLR: 1, FOT: methods.DefaultFOT()}
	cases := []struct {
		name    string
		method  string
		written map[string]any
		ok      bool
	}{
		{"fedsvd", "fedsvd", map[string]any{"period": 1}, true},
		{"fedsvd period 0", "fedsvd", map[string]any{"period": 0}, false},
		{"fedsvd negative warmup", "fedsvd", map[string]any{"period": 1, "warmup": -1}, false},
		{"fedsvd fot", "fedsvd", map[string]any{"period": 1, "fot": true}, true},
		{"ffa fot", "ffa-lora", map[string]any{"fot": true}, false},
		{"fedavg-lora fot", "fedavg-lora", map[string]any{"fot": true}, false},
		{"flora fot", "flora", map[string]any{"fot": true}, false},
		{"fedex-lora fot", "fedex-lora", map[string]any{"fot": true}, false},
		{"unknown", "lora", nil, false},
		{"flora", "flora", nil, true},
	}
	for _, c := range cases {
		ok := func() bool {
			m, found := methods.Lookup(c.method)
			if !found {
				return false
			}
			opts, err := m.Resolve(nil, c.written)
			if err != nil {
				if !errors.Is(err, methods.ErrOptions) {
					t.Errorf("%s: Resolve error %v does not wrap ErrOptions", c.name, err)
				}
				return false
			}
			if p := m.Check(opts); len(p) > 0 {
				return false
			}
			rule, err := m.Server(opts, env)
			if err != nil || rule == nil {
				t.Errorf("%s: valid options, but Server = (%v, %v)", c.name, rule, err)
				return false
			}
			return true
		}()
		if ok != c.ok {
			t.Errorf("%s: accepted %v, want %v", c.name, ok, c.ok)
		}
	}

	// The factors each method's clients train (server.Config.LoRA).
	for name, want := range map[string]string{"fedavg-lora": "ab", "flora": "ab", "fedex-lora": "ab", "ffa-lora": "b", "fedsvd": "b"} {
		m, found := methods.Lookup(name)
		if !found {
			t.Errorf("%s is not registered", name)
			continue
		}
		if got := m.Info().LoRA; got != want {
			t.Errorf("%s: Info().LoRA = %q, want %q", name, got, want)
		}
		// A LoRA method on a model without adapters cannot run.
		opts, err := m.Resolve(nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		plain := servertest.Model(t, 1)
		if _, err := m.Server(opts, methods.Env{Model: plain, Seed: 5, ServerLR: 1, FOT: methods.DefaultFOT()}); !errors.Is(err, methods.ErrOptions) {
			t.Errorf("%s on a model without adapters: Server error %v, want one wrapping ErrOptions", name, err)
		}
	}

	// FedSVD with FOT takes FOT's settings from the fot: block (Env.FOT),
	// which must be valid.
	fedsvd, _ := methods.Lookup("fedsvd")
	opts, err := fedsvd.Resolve(nil, map[string]any{"fot": true})
	if err != nil {
		t.Fatal(err)
	}
	bad := methods.DefaultFOT()
	bad.Oversample = 0
	if _, err := fedsvd.Server(opts, methods.Env{Model: f.m, Seed: 5, ServerLR: 1, FOT: bad}); !errors.Is(err, methods.ErrOptions) {
		t.Errorf("fedsvd+fot with oversample 0: Server error %v, want one wrapping ErrOptions", err)
	}
}
