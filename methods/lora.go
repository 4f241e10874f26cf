package methods

import (
	"fmt"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// loraState is the server side of the LoRA methods (docs/ALGORITHMS.md §4).
// The clients train the factors Spec.LoRA names and send only those; the
// server averages them (FedAvg on the factors) and then calls the method's
// after hook:
//
//	fedavg-lora, ffa-lora: none (ffa-lora's A never changes).
//	fedsvd:     every Period LoRA rounds once Warmup LoRA rounds have
//	            passed, refactors every adapter B A = U S V^T into
//	            A = V_r^T (orthonormal rows), B = U_r S_r
//	            (aggregator.Refactorer); with FOT, B A is first projected
//	            off the FOT bases (aggregator's ProjectLowRank).
//	flora:      W0 += lr s sum_k p_k B_k A_k (the clients' own factors), then
//	            A is drawn anew from (seed, "lora-reinit", round) and B = 0.
//	fedex-lora: keeps the averages and adds the residual
//	            W0 += s (sum_k p_k B_k A_k - B_avg A_avg).
//
// p_k are the aggregation weights (train.weighting), B_k = B + dB_k and
// A_k = A + dA_k the factors client k ended the round with, summed in
// client-id order in float64.
type loraState struct {
	after     func(l *loraState, a *server.Applied) error // the method's hook; nil for none
	model     *nn.Model
	ads       []nn.Adapter
	seed      uint64
	weighting aggregator.Weighting
	lr        float32
	rf        *aggregator.Refactorer
	fot       *fotState // fedsvd with FOT
	fotLayer  []int     // per adapter: its layer in fot.layers, -1 if none
	rounds    int       // LoRA rounds aggregated so far
	w         []float64 // aggregation weights
	acc       []float64 // d_out x d_in accumulator
	bk, ak    []float64 // one client's B row and A
}

// newLoRAState returns the LoRA server side with the method's after hook;
// fot, when non-nil, adds FOT's GPSE and projects in the refactors.
func newLoRAState(name string, e Env, fot *FOTOptions, after func(*loraState, *server.Applied) error) (*loraState, error) {
	ads := e.Model.Adapters()
	if len(ads) == 0 {
		return nil, fmt.Errorf("%w: LoRA method %s on a model without adapters", ErrOptions, name)
	}
	l := &loraState{after: after, model: e.Model, ads: ads, seed: e.Seed, weighting: e.Weighting,
		lr: e.ServerLR, rf: aggregator.NewRefactorer()}
	if fot != nil {
		if err := fot.check(); err != nil {
			return nil, err
		}
		l.fot = newFOTState(*fot, e.Model)
		byName := map[string]int{}
		for i, v := range l.fot.layers {
			byName[v.Name] = i
		}
		for _, ad := range ads {
			i, ok := byName[ad.Name]
			if !ok {
				i = -1
			}
			l.fotLayer = append(l.fotLayer, i)
		}
	}
	return l, nil
}

// newLoRARule is the NewServer of a LoRA method with the after hook.
func newLoRARule[O any](name string, after func(*loraState, *server.Applied) error) func(O, Env) (server.Rule, error) {
	return func(_ O, e Env) (server.Rule, error) { return loraRule(newLoRAState(name, e, nil, after)) }
}

// loraRule returns l as a server.Rule, or nil (not a nil *loraState) with
// the error.
func loraRule(l *loraState, err error) (server.Rule, error) {
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *loraState) Flags(task int, last bool) uint32 {
	if l.fot != nil {
		return l.fot.Flags(task, last)
	}
	return 0
}

func (l *loraState) Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if l.fot != nil {
		return l.fot.Broadcast(ts, task, last)
	}
	return ts
}

func (l *loraState) Check(m *transport.Message, flags uint32) error {
	if l.fot != nil {
		return l.fot.Check(m, flags)
	}
	return nil
}

// BeforeApply does nothing: a LoRA round applies the plain mean of the
// factors (FOT acts on the product in the refactor instead).
func (l *loraState) BeforeApply([]float32, int) {}

// AfterApply counts the LoRA round and runs the method's hook.
func (l *loraState) AfterApply(a *server.Applied) error {
	l.rounds++
	if l.after == nil {
		return nil
	}
	return l.after(l, a)
}

func (l *loraState) EndTask(got []*transport.Message, before, after []float32, task int, detail *results.TaskDetail) error {
	if l.fot != nil {
		return l.fot.EndTask(got, before, after, task, detail)
	}
	return nil
}

// projectAdapters projects every adapter's product B A of params off its
// layer's FOT basis, in place: A <- A - (A U) U^T (aggregator's
// ProjectFactors), and adds the removed share to the task's projected
// fraction. FedSVD with FOT runs it after every LoRA round, so the global
// product stays off the old tasks' input subspaces in every round, not
// only in refactor rounds. It reports whether any basis was non-empty.
func (l *loraState) projectAdapters(params []float32) bool {
	projected := false
	for i, ad := range l.ads {
		k := l.fotLayer[i]
		if k < 0 || l.fot.bases[k].K() == 0 {
			continue
		}
		b := params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols]
		a := params[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols]
		l.fot.removed[k] += aggregator.ProjectFactors(b, a, ad.B.Rows, ad.A.Cols, ad.A.Rows, l.fot.bases[k])
		projected = true
	}
	if projected {
		l.fot.rounds++
	}
	return projected
}

// refactor runs FedSVD's refactor on every adapter of params, in place;
// with FOT it projects each product off its layer's basis first and, when
// count is set, adds the removed share to the task's projected fraction.
func (l *loraState) refactor(params []float32, count bool) error {
	projected := false
	for i, ad := range l.ads {
		b := params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols]
		a := params[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols]
		dout, din, r := ad.B.Rows, ad.A.Cols, ad.A.Rows
		if l.fot != nil && l.fotLayer[i] >= 0 {
			k := l.fotLayer[i]
			removed, err := l.rf.ProjectLowRank(b, a, b, a, dout, din, r, l.fot.bases[k])
			if err != nil {
				return fmt.Errorf("fedsvd refactor of %s: %w", ad.Name, err)
			}
			if count {
				l.fot.removed[k] += removed
				projected = true
			}
			continue
		}
		if err := l.rf.Refactor(b, a, b, a, dout, din, r); err != nil {
			return fmt.Errorf("fedsvd refactor of %s: %w", ad.Name, err)
		}
	}
	if projected {
		l.fot.rounds++
	}
	return nil
}

// mergeClients adds to every adapted W0 of params
//
//	c s sum_k p_k B_k A_k                 (residual = false)
//	s (sum_k p_k B_k A_k - B_avg A_avg)   (residual = true)
//
// with B_k = B + dB_k, A_k = A + dA_k from before and the compact deltas
// of ups (which cover every A and B, "ab"), and B_avg = B + agg_B,
// A_avg = A + agg_A the plain averages (agg is the scattered mean delta,
// before the server learning rate).
func (l *loraState) mergeClients(params, before []float32, ups []aggregator.Update, agg []float32, c float64, residual bool) {
	l.w = aggregator.Weights(l.w[:0], ups, l.weighting)
	lo := l.ads[0].A.Offset // the compact deltas start at the first A
	w0s := l.model.Weights()
	for _, ad := range l.ads {
		w := w0s[ad.Weight]
		r, din, dout := ad.A.Rows, ad.A.Cols, ad.B.Rows
		if cap(l.acc) < dout*din {
			l.acc = make([]float64, dout*din)
		}
		acc := l.acc[:dout*din]
		clear(acc)
		a0 := before[ad.A.Offset : ad.A.Offset+r*din]
		b0 := before[ad.B.Offset : ad.B.Offset+dout*r]
		for k, u := range ups {
			da := u.Delta[ad.A.Offset-lo : ad.A.Offset-lo+r*din]
			db := u.Delta[ad.B.Offset-lo : ad.B.Offset-lo+dout*r]
			l.addProduct(acc, l.w[k], b0, db, a0, da, dout, din, r)
		}
		if residual {
			ga := agg[ad.A.Offset : ad.A.Offset+r*din]
			gb := agg[ad.B.Offset : ad.B.Offset+dout*r]
			l.addProduct(acc, -1, b0, gb, a0, ga, dout, din, r)
		}
		s := c * float64(ad.Scale)
		w0 := params[w.Offset : w.Offset+dout*din]
		for i, v := range acc {
			w0[i] = float32(float64(w0[i]) + s*v)
		}
	}
}

// addProduct adds p (B0 + dB)(A0 + dA) to acc (dout x din, row-major),
// B0 + dB being dout x r and A0 + dA r x din, in float64.
func (l *loraState) addProduct(acc []float64, p float64, b0, db, a0, da []float32, dout, din, r int) {
	if cap(l.ak) < r*din || cap(l.bk) < r {
		l.ak, l.bk = make([]float64, r*din), make([]float64, r)
	}
	bk, ak := l.bk[:r], l.ak[:r*din]
	for i := range ak {
		ak[i] = float64(a0[i]) + float64(da[i])
	}
	for o := 0; o < dout; o++ {
		for j := 0; j < r; j++ {
			bk[j] = p * (float64(b0[o*r+j]) + float64(db[o*r+j]))
		}
		row := acc[o*din : (o+1)*din]
		for j, bv := range bk {
			if bv == 0 {
				continue
			}
			arow := ak[j*din : (j+1)*din]
			for i, av := range arow {
				row[i] += bv * av
			}
		}
	}
}
