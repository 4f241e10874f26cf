package methods

import (
	"fmt"
	"io"
	"math"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// OPCM-style continual model merging (Tang et al., "Merging Models on the
// Fly Without Retraining: A Sequential Approach to Scalable Continual
// Model Merging", 2025; docs/ALGORITHMS.md §8): within a task the
// federation trains as FedAvg from the merged model; at the end of every
// task its task vector is projected, per weight matrix, off the merged
// task vector of the earlier tasks and added to it, and the global model
// becomes theta_0 + lambda_t (sum of the projected task vectors).
func init() {
	Register(Def[OPCMOptions]{
		Spec: Spec{
			Name:    "opcm",
			Summary: "OPCM continual merging: FedAvg within a task; at its end the task vector is projected off the earlier merged task vector (per weight matrix, by its SVD) and merged as theta_0 + lambda_t sum_t P(tau_t) (docs/ALGORITHMS.md 8)",
		},
		Defaults: OPCMOptions{Alpha: 0.5, Scaling: "adaptive", Lambda: 1},
		Validate: OPCMOptions.Validate,
		NewServer: func(o OPCMOptions, e Env) (server.Rule, error) {
			return newOPCMRule(o, e.Model), nil
		},
	})
}

// OPCMOptions are opcm's options.
type OPCMOptions struct {
	Alpha   float64 `yaml:"alpha" doc:"split threshold in [0, 1): the block of the merged task vector's leading singular directions, up to where their cumulative share of the singular values first exceeds alpha, is projected out (with every diagonal direction)"`
	Scaling string  `yaml:"scaling" allowed:"adaptive,sqrt,fixed" doc:"lambda_t: adaptive (mean task-vector norm / norm of the sum, the authors' code), sqrt (1/sqrt(t)) or fixed (lambda)"`
	Lambda  float64 `yaml:"lambda" short:"lambda" doc:"the fixed lambda_t of scaling: fixed (> 0)"`
}

// Validate returns the invalid options.
func (o OPCMOptions) Validate() []Problem {
	var out []Problem
	if !(o.Alpha >= 0 && o.Alpha < 1) {
		out = append(out, Problem{"alpha", fmt.Sprintf("must be in [0, 1), got %g", o.Alpha)})
	}
	if o.Scaling != "adaptive" && o.Scaling != "sqrt" && o.Scaling != "fixed" {
		out = append(out, Problem{"scaling", fmt.Sprintf("unknown scaling %q (want adaptive, sqrt or fixed)", o.Scaling)})
	}
	if !(o.Lambda > 0) || math.IsInf(o.Lambda, 0) {
		out = append(out, Problem{"lambda", fmt.Sprintf("must be finite and > 0, got %g", o.Lambda)})
	}
	return out
}

// opcmRule is opcm's server side. Its state (protocol.Stateful): theta_0,
// the merged model the current task started from, the sum of the
// projected task vectors and the norms of the task vectors. The bases of
// the projection are recomputed from the sum at every task's end, as the
// authors' code does, so they are not kept.
type opcmRule struct {
	BaseRule
	o      OPCMOptions
	n      int
	layers []nn.ParamView

	base  []float32 // theta_0: the model the first normal round started from; nil before it
	start []float32 // the merged model the current task started from
	sum   []float64 // S_t = sum of the projected task vectors
	norms []float64 // ||tau_i|| of the merged tasks
}

func newOPCMRule(o OPCMOptions, m *nn.Model) *opcmRule {
	return &opcmRule{o: o, n: m.NumParams(), layers: protocol.Projected(m)}
}

// AfterApply takes theta_0 (and the first task's start) from the first
// normal round: the model before it, pretrained or not.
func (r *opcmRule) AfterApply(a *server.Applied) error {
	if r.base == nil {
		r.base = append([]float32(nil), a.Before...)
		r.start = append([]float32(nil), a.Before...)
	}
	return nil
}

// EndTask merges the task (docs/ALGORITHMS.md §8): tau = after - start;
// each projected weight matrix of tau is projected off the same block of
// S (aggregator.OPCMProject; biases and per-task heads are not); S +=
// P(tau); after <- theta_0 + lambda_t S. The merged model is the global
// model from now on and the next task's start. A task that ends before
// any normal round (pretraining) is not merged.
func (r *opcmRule) EndTask(_ []*transport.Message, _, after []float32, task int, detail *results.TaskDetail) error {
	if r.base == nil {
		return nil
	}
	if len(after) != r.n {
		return fmt.Errorf("opcm: model of %d values, want %d", len(after), r.n)
	}
	tau := make([]float64, r.n)
	var tn float64
	for i, v := range after {
		tau[i] = float64(v) - float64(r.start[i])
		tn += tau[i] * tau[i]
	}
	first := r.sum == nil
	if first {
		r.sum = make([]float64, r.n)
	}
	detail.BasisDims = map[string]int{}
	detail.BasisCapacity = map[string]int{}
	detail.ProjectedFraction = map[string]float64{}
	for _, l := range r.layers {
		lo, hi := l.Offset, l.Offset+l.Rows*l.Cols
		k, removed, err := aggregator.OPCMProject(tau[lo:hi], r.sum[lo:hi], l.Rows, l.Cols, r.o.Alpha)
		if err != nil {
			return fmt.Errorf("opcm: layer %s: %w", l.Name, err)
		}
		detail.BasisDims[l.Name] = k
		detail.BasisCapacity[l.Name] = min(l.Rows, l.Cols)
		detail.ProjectedFraction[l.Name] = removed
	}
	var sn float64
	for i, v := range tau {
		r.sum[i] += v
		sn += r.sum[i] * r.sum[i]
	}
	r.norms = append(r.norms, math.Sqrt(tn))
	lambda := r.lambda(math.Sqrt(sn))
	for i, s := range r.sum {
		after[i] = float32(float64(r.base[i]) + lambda*s)
	}
	r.start = append(r.start[:0], after...)
	return nil
}

// lambda returns lambda_t for a sum of norm sn, t = len(r.norms).
func (r *opcmRule) lambda(sn float64) float64 {
	t := len(r.norms)
	switch r.o.Scaling {
	case "sqrt":
		return 1 / math.Sqrt(float64(t))
	case "fixed":
		return r.o.Lambda
	}
	if sn == 0 {
		return 1
	}
	var mean float64
	for _, v := range r.norms {
		mean += v
	}
	return mean / float64(t) / sn
}

// opcmSaved is opcmRule's state.
type opcmSaved struct {
	Base, Start []float32
	Sum, Norms  []float64
}

func (r *opcmRule) SaveState(w io.Writer) error {
	return save(w, opcmSaved{Base: r.base, Start: r.start, Sum: r.sum, Norms: r.norms})
}

func (r *opcmRule) LoadState(rd io.Reader) error {
	var s opcmSaved
	if err := load(rd, &s); err != nil {
		return fmt.Errorf("opcm state: %w", err)
	}
	for _, v := range []int{len(s.Base), len(s.Start), len(s.Sum)} {
		if v != 0 && v != r.n {
			return fmt.Errorf("opcm state has vectors of %d values, the model %d parameters", v, r.n)
		}
	}
	if (s.Base == nil) != (s.Start == nil) || (s.Sum == nil) != (s.Norms == nil) {
		return fmt.Errorf("opcm state is incomplete")
	}
	r.base, r.start, r.sum, r.norms = s.Base, s.Start, s.Sum, s.Norms
	return nil
}
