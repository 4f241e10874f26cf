package methods

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// Fisher-weighted averaging (Matena & Raffel, "Merging Models with
// Fisher-Weighted Averaging", NeurIPS 2022; docs/ALGORITHMS.md §7): every
// round each client also sends the diagonal Fisher of its local model, and
// the server replaces FedAvg's mean by the per-parameter Fisher-weighted
// mean of the client models.
func init() {
	Register(Def[FisherAvgOptions]{
		Spec: Spec{
			Name:     "fisher-avg",
			Summary:  "Fisher-weighted averaging: every round the server merges the client models as sum_k p_k F_k theta_k / sum_k p_k F_k with their diagonal Fisher F_k (docs/ALGORITHMS.md 7)",
			NoDP:     "its clients send the diagonal Fisher of their raw data every round, without noise, so DP-SGD's guarantee would not cover what they send",
			NoSecAgg: "its server weighs each client's delta by that client's own Fisher (Applied.Ups and the updates' Fisher), not only their sum",
		},
		Defaults: FisherAvgOptions{FisherSamples: 256, Epsilon: 1e-6},
		Validate: FisherAvgOptions.Validate,
		NewClient: func(o FisherAvgOptions, _ Env) (client.Behaviour, error) {
			// EWC's client with no penalty: on a FlagFisher round it adds
			// its diagonal Fisher to the update, and nothing else.
			return newPenaltyClient(false, PenaltyOptions{Lambda: 0, FisherSamples: o.FisherSamples}), nil
		},
		NewServer: func(o FisherAvgOptions, e Env) (server.Rule, error) {
			return newFisherAvgRule(o, e), nil
		},
	})
}

// FisherAvgOptions are fisher-avg's options.
type FisherAvgOptions struct {
	FisherSamples int     `yaml:"fisher_samples" doc:"samples per client for the diagonal Fisher sent every round (0 = all)"`
	Epsilon       float64 `yaml:"epsilon" short:"eps" doc:"floor of every Fisher entry, F <- max(F, epsilon) (> 0), so that a parameter no client's loss depends on gets the plain mean"`
}

// Validate returns the invalid options.
func (o FisherAvgOptions) Validate() []Problem {
	var out []Problem
	if o.FisherSamples < 0 {
		out = append(out, Problem{"fisher_samples", fmt.Sprintf("must be 0 (all) or more, got %d", o.FisherSamples)})
	}
	if !(o.Epsilon > 0) || math.IsInf(o.Epsilon, 0) {
		out = append(out, Problem{"epsilon", fmt.Sprintf("must be finite and > 0, got %g", o.Epsilon)})
	}
	return out
}

// fisherAvgRule is fisher-avg's server side. It keeps nothing across
// rounds (so it is not protocol.Stateful): the updates that passed Check
// in the open round, whose Fisher AfterApply needs, are forgotten when the
// next round's flags are asked for.
type fisherAvgRule struct {
	BaseRule
	eps       float64
	weighting aggregator.Weighting
	lr        float32

	mu   sync.Mutex
	seen []*transport.Message // updates of the open round that passed Check

	ups []*transport.Message // AfterApply: the update of each accepted delta
	c   []float64
	num []float64
	den []float64
}

func newFisherAvgRule(o FisherAvgOptions, e Env) *fisherAvgRule {
	lr := e.ServerLR
	if lr == 0 {
		lr = 1
	}
	return &fisherAvgRule{eps: o.Epsilon, weighting: e.Weighting, lr: lr}
}

// Flags asks every round for the clients' Fisher, and starts the round's
// list of checked updates.
func (r *fisherAvgRule) Flags(task int, last bool) uint32 {
	r.mu.Lock()
	clear(r.seen)
	r.seen = r.seen[:0]
	r.mu.Unlock()
	return protocol.FlagFisher
}

// Check verifies an update's Fisher (one non-negative value per
// parameter, as long as the delta) and remembers the update for
// AfterApply.
func (r *fisherAvgRule) Check(m *transport.Message, flags uint32) error {
	if flags&protocol.FlagFisher == 0 {
		return nil
	}
	f, d := m.Tensor(protocol.TensorFisher), m.Tensor(protocol.TensorDelta)
	if f == nil || d == nil || len(f.Data) != len(d.Data) {
		return fmt.Errorf("no %q tensor as long as the delta", protocol.TensorFisher)
	}
	for _, v := range f.Data {
		if !(v >= 0) {
			return fmt.Errorf("%q has a negative entry", protocol.TensorFisher)
		}
	}
	r.mu.Lock()
	r.seen = append(r.seen, m)
	r.mu.Unlock()
	return nil
}

// AfterApply replaces the FedAvg step just applied by the Fisher-weighted
// one (docs/ALGORITHMS.md §7):
//
//	w_k,i = p_k max(F_k,i, eps)
//	agg_i = sum_k w_k,i delta_k,i / sum_k w_k,i
//	params = before + server_lr * agg
//
// with p_k the scenario's weighting (1/K or n_k / sum n) and the sums in
// float64 in client-id order (the order of a.Ups). a.Agg is overwritten
// with agg.
func (r *fisherAvgRule) AfterApply(a *server.Applied) error {
	if len(a.Ups) == 0 {
		return nil
	}
	n := len(a.Params)
	r.mu.Lock()
	r.ups = r.ups[:0]
	for _, u := range a.Ups {
		m := r.updateOf(u)
		if m == nil {
			r.mu.Unlock()
			return fmt.Errorf("fisher-avg: no checked Fisher for the update of client %d", u.Client)
		}
		if len(u.Delta) != n {
			r.mu.Unlock()
			return fmt.Errorf("fisher-avg: client %d's delta has %d values, the model %d", u.Client, len(u.Delta), n)
		}
		r.ups = append(r.ups, m)
	}
	r.mu.Unlock()
	r.c = aggregator.Weights(r.c, a.Ups, r.weighting)
	if len(r.num) != n {
		r.num, r.den = make([]float64, n), make([]float64, n)
	}
	aggregator.FisherMean(a.Agg, a.Ups, r.fishers(), r.c, r.eps, r.num, r.den)
	for i, v := range a.Agg {
		a.Params[i] = a.Before[i] + r.lr*v
	}
	return nil
}

// fishers returns the Fisher of each matched update.
func (r *fisherAvgRule) fishers() [][]float32 {
	out := make([][]float32, len(r.ups))
	for k, m := range r.ups {
		out[k] = m.Tensor(protocol.TensorFisher).Data
	}
	return out
}

// updateOf returns the checked update whose delta is u's (the same
// values, not a copy), or nil; r.mu is held.
func (r *fisherAvgRule) updateOf(u aggregator.Update) *transport.Message {
	for _, m := range r.seen {
		d := m.Tensor(protocol.TensorDelta)
		if int(m.Client) == u.Client && d != nil && len(d.Data) == len(u.Delta) &&
			(len(u.Delta) == 0 || unsafe.SliceData(d.Data) == unsafe.SliceData(u.Delta)) {
			return m
		}
	}
	return nil
}
