package methods_test

import (
	"math"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
)

// faTol is the tolerance of the merged parameters against the float64
// reference (float32 storage of float64 sums).
const faTol = 1e-6

// faUpdate is client c's update with a random delta and the Fisher f.
func faUpdate(c int32, n int, f []float32) *transport.Message {
	r := rng.New(17, "fa-delta", int(c))
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return &transport.Message{Kind: transport.KindUpdate, Client: c, N: int64(10 + c), Flags: protocol.FlagFisher, Tensors: []transport.Tensor{
		{Name: protocol.TensorDelta, Rows: 1, Cols: n, Data: d},
		{Name: protocol.TensorFisher, Rows: 1, Cols: n, Data: f},
	}}
}

// faApply runs one round of the rule on the updates (all checked) from
// before and returns the new params and the aggregate.
func faApply(t *testing.T, rule server.Rule, before []float32, ms []*transport.Message, w aggregator.Weighting) ([]float32, []float32, error) {
	t.Helper()
	flags := rule.Flags(0, false)
	if flags&protocol.FlagFisher == 0 {
		t.Fatalf("fisher-avg flags %b lack FlagFisher", flags)
	}
	var ups []aggregator.Update
	for _, m := range ms {
		if err := rule.Check(m, flags); err != nil {
			t.Fatalf("Check client %d: %v", m.Client, err)
		}
		ups = append(ups, aggregator.Update{Client: int(m.Client), N: m.N, Delta: m.Tensor(protocol.TensorDelta).Data})
	}
	agg := make([]float32, len(before))
	aggregator.Mean(agg, ups, w)
	params := make([]float32, len(before))
	aggregator.Apply(append(params[:0], before...), agg, 1)
	err := rule.AfterApply(&server.Applied{Params: params, Before: before, Ups: ups, Agg: agg})
	return params, agg, err
}

// TestFisherAvgMergesByFisher checks fisher-avg's merge against the
// float64 formula theta_i = before_i + lr sum_k p_k F_k,i delta_k,i / sum_k
// p_k F_k,i: equal Fishers give FedAvg's mean, a larger Fisher pulls a
// parameter towards its client's model, a zero Fisher is floored at
// epsilon, and the server learning rate scales the step.
func TestFisherAvgMergesByFisher(t *testing.T) {
	m := servertest.Model(t, 1)
	n := m.NumParams()
	before := servertest.InitParams(m, 3)
	const eps = 1e-6
	for _, tc := range []struct {
		name string
		w    aggregator.Weighting
		lr   float32
		fish func(c int32, i int) float32
	}{
		{"equal", aggregator.Uniform, 1, func(c int32, i int) float32 { return 0.25 }},
		{"equal-samples", aggregator.Samples, 1, func(c int32, i int) float32 { return 0.25 }},
		{"client1-dominates", aggregator.Uniform, 1, func(c int32, i int) float32 {
			if c == 1 {
				return 100
			}
			return 1
		}},
		{"random-with-zeros", aggregator.Samples, 0.5, func(c int32, i int) float32 {
			if (i+int(c))%5 == 0 {
				return 0
			}
			return float32(1+c) * float32(1+i%7) * 1e-3
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, rule := srvRule(t, "fisher-avg", map[string]any{"epsilon": eps}, methods.Env{Model: m, Weighting: tc.w, ServerLR: tc.lr})
			var ms []*transport.Message
			for _, c := range []int32{0, 1, 4} {
				f := make([]float32, n)
				for i := range f {
					f[i] = tc.fish(c, i)
				}
				ms = append(ms, faUpdate(c, n, f))
			}
			params, agg, err := faApply(t, rule, before, ms, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			var ups []aggregator.Update
			for _, msg := range ms {
				ups = append(ups, aggregator.Update{Client: int(msg.Client), N: msg.N})
			}
			p := aggregator.Weights(nil, ups, tc.w)
			plain := make([]float32, n)
			for k := range ups {
				ups[k].Delta = ms[k].Tensor(protocol.TensorDelta).Data
			}
			aggregator.Mean(plain, ups, tc.w)
			for i := range n {
				var num, den float64
				for k, msg := range ms {
					wk := p[k] * math.Max(float64(tc.fish(msg.Client, i)), eps)
					num += wk * float64(msg.Tensor(protocol.TensorDelta).Data[i])
					den += wk
				}
				want := num / den
				if math.Abs(float64(agg[i])-want) > faTol*(1+math.Abs(want)) {
					t.Fatalf("agg[%d] = %v, want %v", i, agg[i], want)
				}
				wantP := float64(before[i]) + float64(tc.lr)*want
				if math.Abs(float64(params[i])-wantP) > faTol*(1+math.Abs(wantP)) {
					t.Fatalf("params[%d] = %v, want %v", i, params[i], wantP)
				}
				switch tc.name {
				case "equal", "equal-samples":
					if math.Abs(float64(agg[i]-plain[i])) > faTol {
						t.Fatalf("equal Fishers: agg[%d] = %v, FedAvg's mean %v", i, agg[i], plain[i])
					}
				case "client1-dominates":
					d1 := float64(ms[1].Tensor(protocol.TensorDelta).Data[i])
					if math.Abs(float64(agg[i])-d1) > math.Abs(float64(plain[i])-d1)+faTol {
						t.Fatalf("agg[%d] = %v is not closer to client 1's %v than FedAvg's %v", i, agg[i], d1, plain[i])
					}
				}
			}
		})
	}
}

// TestFisherAvgRefusesBadFisher checks the Fisher of each update and that
// an update that was never checked cannot be merged.
func TestFisherAvgRefusesBadFisher(t *testing.T) {
	m := servertest.Model(t, 1)
	n := m.NumParams()
	_, rule := srvRule(t, "fisher-avg", nil, methods.Env{Model: m})
	flags := rule.Flags(1, true)
	ones := func(k int) []float32 {
		f := make([]float32, k)
		for i := range f {
			f[i] = 1
		}
		return f
	}
	neg := faUpdate(0, n, ones(n))
	neg.Tensors[1].Data[2] = -1
	nan := faUpdate(0, n, ones(n))
	nan.Tensors[1].Data[2] = float32(math.NaN())
	short := faUpdate(0, n, ones(n-1))
	missing := faUpdate(0, n, nil)
	missing.Tensors = missing.Tensors[:1]
	for name, msg := range map[string]*transport.Message{"negative": neg, "nan": nan, "short": short, "missing": missing} {
		if err := rule.Check(msg, flags); err == nil {
			t.Errorf("%s Fisher accepted", name)
		}
	}
	before := servertest.InitParams(m, 1)
	good := faUpdate(2, n, ones(n))
	params := append([]float32(nil), before...)
	err := rule.AfterApply(&server.Applied{Params: params, Before: before, Ups: []aggregator.Update{{Client: 2, N: 1, Delta: good.Tensors[0].Data}}, Agg: make([]float32, n)})
	if err == nil || !strings.Contains(err.Error(), "client 2") {
		t.Errorf("AfterApply of an unchecked update: %v, want an error naming client 2", err)
	}
}

// TestFisherAvgOptions checks the options' validation.
func TestFisherAvgOptions(t *testing.T) {
	meth, _ := methods.Lookup("fisher-avg")
	for _, bad := range []map[string]any{{"epsilon": 0.0}, {"epsilon": -1.0}, {"fisher_samples": -1}} {
		o, err := meth.Resolve(nil, bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(meth.Check(o)) == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	if meth.Info().NoDP == "" {
		t.Error("fisher-avg runs with DP-SGD although its Fisher is not private")
	}
}
