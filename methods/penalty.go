package methods

import (
	"fmt"
	"sync"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

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
	curv     bool      // FedCurv's sums (else EWC's)
	accepted []float32 // fedcurv: clients of the last endTask, announced once
	u, v     []float32
	u64      []float64
	v64      []float64
	active   bool
}

func newPenaltyState(curv bool, n int) *penaltyState {
	return &penaltyState{curv: curv, u: make([]float32, n), v: make([]float32, n), u64: make([]float64, n), v64: make([]float64, n)}
}

// Flags asks for the clients' Fisher on the last round of every task.
func (p *penaltyState) Flags(task int, last bool) uint32 {
	if last {
		return protocol.FlagFisher
	}
	return 0
}

// Broadcast sends the penalty once a task has ended.
func (p *penaltyState) Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if !p.active {
		return ts
	}
	if p.accepted != nil {
		// Tell the hosts which clients' terms are in the sums, so that each
		// can leave out exactly its own (FedCurv).
		ts = append(ts, transport.Tensor{Name: protocol.TensorCurvAccepted, Rows: 1, Cols: len(p.accepted), Data: p.accepted})
		p.accepted = nil
	}
	return append(ts,
		transport.Tensor{Name: protocol.TensorQuadU, Rows: 1, Cols: len(p.u), Data: p.u},
		transport.Tensor{Name: protocol.TensorQuadV, Rows: 1, Cols: len(p.v), Data: p.v})
}

// Check verifies the Fisher of a Fisher round.
func (p *penaltyState) Check(m *transport.Message, flags uint32) error {
	if flags&protocol.FlagFisher == 0 {
		return nil
	}
	f := m.Tensor(protocol.TensorFisher)
	if f == nil || len(f.Data) != len(p.u) {
		return fmt.Errorf("no %q tensor of %d values", protocol.TensorFisher, len(p.u))
	}
	for _, v := range f.Data {
		if v < 0 {
			return fmt.Errorf("%q has a negative entry", protocol.TensorFisher)
		}
	}
	return nil
}

// BeforeApply and AfterApply do nothing: the penalty acts on the clients.
func (p *penaltyState) BeforeApply([]float32, int)       {}
func (p *penaltyState) AfterApply(*server.Applied) error { return nil }

// EndTask adds the task's Fisher terms to the sums.
func (p *penaltyState) EndTask(got []*transport.Message, before, after []float32, task int, _ *results.TaskDetail) error {
	if len(got) == 0 {
		return nil
	}
	var total float64
	for _, m := range got {
		total += float64(m.N)
	}
	for _, m := range got {
		f := m.Tensor(protocol.TensorFisher).Data
		if !p.curv {
			c := float64(m.N) / total
			for i, v := range f {
				w := c * float64(v)
				p.u64[i] += w
				p.v64[i] += w * float64(after[i])
			}
			continue
		}
		p.accepted = append(p.accepted, float32(m.Client))
		c := 1 / float64(len(got))
		d := m.Tensor(protocol.TensorDelta).Data
		for i, v := range f {
			w := c * float64(v)
			p.u64[i] += w
			p.v64[i] += w * float64(before[i]+d[i])
		}
	}
	for i := range p.u {
		p.u[i], p.v[i] = float32(p.u64[i]), float32(p.v64[i])
	}
	p.active = true
	return nil
}

// PenaltyOptions are the options of the Fisher-penalty methods (ewc,
// fedcurv).
type PenaltyOptions struct {
	Lambda        float64 `yaml:"lambda" short:"lambda" doc:"penalty strength (>= 0)"`
	FisherSamples int     `yaml:"fisher_samples" doc:"samples per client for the diagonal Fisher at the end of a task (0 = all)"`
}

func defaultPenalty() PenaltyOptions { return PenaltyOptions{Lambda: 100, FisherSamples: 256} }

// Validate returns the invalid options.
func (o PenaltyOptions) Validate() []Problem {
	var out []Problem
	if !(o.Lambda >= 0) {
		out = append(out, Problem{"lambda", fmt.Sprintf("must be >= 0, got %g", o.Lambda)})
	}
	if o.FisherSamples < 0 {
		out = append(out, Problem{"fisher_samples", fmt.Sprintf("must be 0 (all) or more, got %d", o.FisherSamples)})
	}
	return out
}

// penaltyClient is the client side of EWC (curv false) and FedCurv: local
// SGD with the broadcast penalty lambda (U w - V) and, on a Fisher round,
// the diagonal Fisher of the local model in the update. FedCurv's clients
// leave their own accumulated terms out of U and V, so the host keeps each
// client's term, committed when the server announces whose Fisher it used.
type penaltyClient struct {
	curv    bool
	lambda  float32
	samples int

	mu      sync.Mutex
	own     map[int]*curvTerm // fedcurv: each client's own accumulated term
	pending map[int]*curvTerm // fedcurv: F and F*w of the last Fisher round, unscaled
}

// curvTerm is one client's share of FedCurv's U and V sums.
type curvTerm struct{ u, v []float32 }

// penaltyWorker is a worker's buffers.
type penaltyWorker struct {
	fisher []float32
	u, v   []float32 // fedcurv: U and V without the client's own term
}

func newPenaltyClient(curv bool, o PenaltyOptions) *penaltyClient {
	return &penaltyClient{curv: curv, lambda: float32(o.Lambda), samples: o.FisherSamples}
}

// Round commits the pending FedCurv terms the server announces it used.
func (c *penaltyClient) Round(m *transport.Message) error {
	if t := m.Tensor(protocol.TensorCurvAccepted); t != nil {
		c.commit(t.Data)
	}
	return nil
}

// Extras adds the penalty once the server broadcasts one.
func (c *penaltyClient) Extras(w *client.Work) (*client.Extras, error) {
	u, v := w.Msg.Tensor(protocol.TensorQuadU), w.Msg.Tensor(protocol.TensorQuadV)
	if u == nil || v == nil {
		return nil, nil // no old task yet
	}
	if len(u.Data) != len(w.Global) || len(v.Data) != len(w.Global) {
		return nil, fmt.Errorf("penalty tensors have %d and %d values, want %d", len(u.Data), len(v.Data), len(w.Global))
	}
	ex := &w.Extras
	*ex = client.Extras{Lambda: c.lambda, U: u.Data, V: v.Data}
	if !c.curv {
		return ex, nil
	}
	c.mu.Lock()
	own := c.own[w.Client]
	c.mu.Unlock()
	if own != nil {
		pw := c.worker(w)
		pw.u = append(pw.u[:0], u.Data...)
		pw.v = append(pw.v[:0], v.Data...)
		for i := range pw.u {
			pw.u[i] -= own.u[i]
			pw.v[i] -= own.v[i]
		}
		ex.U, ex.V = pw.u, pw.v
	}
	return ex, nil
}

func (c *penaltyClient) worker(w *client.Work) *penaltyWorker {
	pw, ok := w.State.(*penaltyWorker)
	if !ok {
		pw = &penaltyWorker{}
		w.State = pw
	}
	return pw
}

// Finish computes, on a Fisher round, the client's diagonal Fisher on its
// current-task data and adds it to the update. For FedCurv it also keeps
// the client's F and F*w (w its local model) until the server says whether
// it used them.
func (c *penaltyClient) Finish(w *client.Work) error {
	if w.Msg.Flags&protocol.FlagFisher == 0 {
		return nil
	}
	pw := c.worker(w)
	if len(pw.fisher) != len(w.Local) {
		pw.fisher = make([]float32, len(w.Local))
	}
	w.Trainer.Fisher(pw.fisher, w.Local, w.Segments[len(w.Segments)-1], c.samples, w.Config.Seed, w.Client, w.Round)
	w.Update.Flags |= protocol.FlagFisher
	w.Update.Tensors = append(w.Update.Tensors, transport.Tensor{Name: protocol.TensorFisher, Rows: 1, Cols: len(pw.fisher), Data: pw.fisher})
	if !c.curv {
		return nil
	}
	t := &curvTerm{u: append([]float32(nil), pw.fisher...), v: make([]float32, len(w.Local))}
	for i, f := range pw.fisher {
		t.v[i] = f * w.Local[i]
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		c.pending = map[int]*curvTerm{}
	}
	c.pending[w.Client] = t
	return nil
}

// commit adds to each accepted client's own FedCurv term its pending F and
// F*w scaled by 1/K, K = the number of accepted clients, exactly as the
// server added them to its sums; terms of clients the server did not
// accept are dropped.
func (c *penaltyClient) commit(ids []float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(ids) == 0 || len(c.pending) == 0 {
		clear(c.pending)
		return
	}
	if c.own == nil {
		c.own = map[int]*curvTerm{}
	}
	inv := 1 / float32(len(ids))
	for _, id := range ids {
		k := int(id)
		p := c.pending[k]
		if p == nil {
			continue
		}
		o := c.own[k]
		if o == nil {
			o = &curvTerm{u: make([]float32, len(p.u)), v: make([]float32, len(p.v))}
			c.own[k] = o
		}
		for i := range p.u {
			o.u[i] += p.u[i] * inv
			o.v[i] += p.v[i] * inv
		}
	}
	clear(c.pending)
}
