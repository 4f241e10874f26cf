package server

import (
	"fmt"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// PenaltyConfig is the server side of the Fisher-weighted baselines
// (ALGORITHMS.md §6).
type PenaltyConfig struct {
	// Kind is "ewc" (FL+EWC: the clients' Fisher averaged, anchored at the
	// global model that ended each task) or "fedcurv" (each client's Fisher
	// anchored at its own local model; every client's penalty leaves out
	// its own terms).
	Kind string
}

// Validate reports an unknown kind.
func (c PenaltyConfig) Validate() error {
	if c.Kind != "ewc" && c.Kind != "fedcurv" {
		return fmt.Errorf("%w: penalty kind %q (want ewc or fedcurv)", ErrConfig, c.Kind)
	}
	return nil
}

// penaltyState accumulates, over finished tasks, the quadratic penalty
// sum_t sum_i F_t,i (w_i - a_t,i)^2 as U = sum_t F_t and V = sum_t F_t a_t,
// whose gradient (up to the client's lambda) is U w - V.
//
//	ewc:     F_t = sum_k (n_k / sum n) F_k,  a_t = the global model after task t
//	fedcurv: U += (1/K) sum_k F_k,  V += (1/K) sum_k F_k w_k  (w_k = client k's local model)
//
// The FedCurv sums are means over the K clients of the task's last round,
// so lambda has the same scale as EWC's.
type penaltyState struct {
	kind     string
	accepted []float32 // fedcurv: clients of the last endTask, announced once
	u, v     []float32
	u64      []float64
	v64      []float64
	active   bool
}

func newPenaltyState(c PenaltyConfig, n int) *penaltyState {
	return &penaltyState{kind: c.Kind, u: make([]float32, n), v: make([]float32, n), u64: make([]float64, n), v64: make([]float64, n)}
}

func (p *penaltyState) flags(task int, last bool) uint32 {
	if last {
		return client.FlagFisher
	}
	return 0
}

func (p *penaltyState) broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if !p.active {
		return ts
	}
	if p.accepted != nil {
		// Tell the hosts which clients' terms are in the sums, so that each
		// can leave out exactly its own (FedCurv).
		ts = append(ts, transport.Tensor{Name: client.TensorCurvAccepted, Rows: 1, Cols: len(p.accepted), Data: p.accepted})
		p.accepted = nil
	}
	return append(ts,
		transport.Tensor{Name: client.TensorQuadU, Rows: 1, Cols: len(p.u), Data: p.u},
		transport.Tensor{Name: client.TensorQuadV, Rows: 1, Cols: len(p.v), Data: p.v})
}

func (p *penaltyState) check(m *transport.Message, flags uint32) error {
	if flags&client.FlagFisher == 0 {
		return nil
	}
	f := findTensor(m.Tensors, client.TensorFisher)
	if f == nil || len(f.Data) != len(p.u) {
		return fmt.Errorf("no %q tensor of %d values", client.TensorFisher, len(p.u))
	}
	for _, v := range f.Data {
		if v < 0 {
			return fmt.Errorf("%q has a negative entry", client.TensorFisher)
		}
	}
	return nil
}

func (p *penaltyState) beforeApply([]float32, int) {}

func (p *penaltyState) endTask(got []*transport.Message, before, after []float32, task int, _ *results.TaskDetail) error {
	if len(got) == 0 {
		return nil
	}
	var total float64
	for _, m := range got {
		total += float64(m.N)
	}
	for _, m := range got {
		f := findTensor(m.Tensors, client.TensorFisher).Data
		switch p.kind {
		case "ewc":
			c := float64(m.N) / total
			for i, v := range f {
				w := c * float64(v)
				p.u64[i] += w
				p.v64[i] += w * float64(after[i])
			}
		case "fedcurv":
			p.accepted = append(p.accepted, float32(m.Client))
			c := 1 / float64(len(got))
			d := findTensor(m.Tensors, client.TensorDelta).Data
			for i, v := range f {
				w := c * float64(v)
				p.u64[i] += w
				p.v64[i] += w * float64(before[i]+d[i])
			}
		}
	}
	for i := range p.u {
		p.u[i], p.v[i] = float32(p.u64[i]), float32(p.v64[i])
	}
	p.active = true
	return nil
}
