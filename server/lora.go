package server

import (
	"context"
	"fmt"
	"math"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
)

// LoRAConfig is the server side of a LoRA method (ALGORITHMS.md §4). The
// clients train the factors Factors() names and send only those; the
// server averages them (FedAvg on the factors) and then:
//
//	fedavg-lora, ffa-lora: nothing more (ffa-lora's A never changes).
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
// p_k are the aggregation weights (Config.Weighting), B_k = B + dB_k and
// A_k = A + dA_k the factors client k ended the round with, summed in
// client-id order in float64.
type LoRAConfig struct {
	Method string // fedavg-lora, ffa-lora, fedsvd, flora or fedex-lora
	Period int    // fedsvd: refactor every Period LoRA rounds (>= 1)
	Warmup int    // fedsvd: LoRA rounds before the first refactor (>= 0)
	// FOT (fedsvd only) combines FedSVD with FOT: Config.FOT must be set;
	// GPSE runs at the end of every task and the refactor projects B A off
	// the bases of the adapted weights.
	FOT bool
}

// Factors returns the LoRA factors the method's clients train: "ab" or
// "b" (client.Trainable), "" for an unknown method.
func (c LoRAConfig) Factors() string {
	switch c.Method {
	case "fedavg-lora", "flora", "fedex-lora":
		return "ab"
	case "ffa-lora", "fedsvd":
		return "b"
	}
	return ""
}

// Validate reports an unusable LoRA configuration.
func (c LoRAConfig) Validate() error {
	if c.Factors() == "" {
		return fmt.Errorf("%w: unknown LoRA method %q", ErrConfig, c.Method)
	}
	if c.Method == "fedsvd" && (c.Period < 1 || c.Warmup < 0) {
		return fmt.Errorf("%w: fedsvd period %d (want >= 1) and warmup %d (want >= 0)", ErrConfig, c.Period, c.Warmup)
	}
	if c.FOT && c.Method != "fedsvd" {
		return fmt.Errorf("%w: FOT combines with fedsvd only, not %s", ErrConfig, c.Method)
	}
	return nil
}

// PretrainConfig makes the first Tasks tasks pretrain the base model
// (every base parameter, LoRA adapters untouched). With Central set, the
// server calls it once per such task instead of running rounds (it trains
// params in place and returns the mean training loss); when the method
// needs end-of-task information (FOT's GPSE, EWC's Fisher) the server then
// runs one round with client.FlagNoTrain to collect it. Without Central the
// tasks run their rounds as plain FedAvg with client.FlagBase: no DP, no
// LoRA aggregation, no FOT projection (GPSE and Fisher still run on each
// task's last round).
type PretrainConfig struct {
	Tasks   int
	Central func(ctx context.Context, params []float32, task int) (loss float64, err error)
}

// DPConfig is the server side of DP-SGD: the privacy accounting. Every
// accepted update that reports its sampling rate (client.ScalarDPQ) adds
// its steps, at the client's noise multiplier Sigma[client], to that
// client's RDP accountant (package dp); the run record reports each
// client's epsilon at Delta. The refactors and merges are post-processing
// and cost no privacy.
type DPConfig struct {
	Delta float64
	Sigma []float64 // per client id
}

// loraState is the server side of the LoRA methods.
type loraState struct {
	cfg       LoRAConfig
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

func newLoRAState(cfg Config, m *nn.Model) (*loraState, error) {
	ads := m.Adapters()
	if len(ads) == 0 {
		return nil, fmt.Errorf("%w: LoRA method %s on a model without adapters", ErrConfig, cfg.LoRA.Method)
	}
	l := &loraState{cfg: *cfg.LoRA, model: m, ads: ads, seed: cfg.Seed, weighting: cfg.Weighting,
		lr: cfg.ServerLR, rf: aggregator.NewRefactorer()}
	if cfg.LoRA.FOT {
		l.fot = newFOTState(*cfg.FOT, m)
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

func (l *loraState) flags(task int, last bool) uint32 {
	if l.fot != nil {
		return l.fot.flags(task, last)
	}
	return 0
}

func (l *loraState) broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if l.fot != nil {
		return l.fot.broadcast(ts, task, last)
	}
	return ts
}

func (l *loraState) check(m *transport.Message, flags uint32) error {
	if l.fot != nil {
		return l.fot.check(m, flags)
	}
	return nil
}

// beforeApply does nothing: a LoRA round applies the plain mean of the
// factors (FOT acts on the product in afterApply instead).
func (l *loraState) beforeApply([]float32, int) {}

func (l *loraState) endTask(got []*transport.Message, before, after []float32, task int, detail *results.TaskDetail) error {
	if l.fot != nil {
		return l.fot.endTask(got, before, after, task, detail)
	}
	return nil
}

// afterApply finishes a LoRA round once the mean of the factors has been
// applied to params: before is the global model the round started from,
// ups the accepted updates (compact deltas over the trained factors, in
// client-id order), round the global round number.
func (l *loraState) afterApply(params, before []float32, ups []aggregator.Update, agg []float32, round int) error {
	j := l.rounds
	l.rounds++
	switch l.cfg.Method {
	case "fedsvd":
		if j < l.cfg.Warmup || (j+1-l.cfg.Warmup)%l.cfg.Period != 0 {
			return nil
		}
		return l.refactor(params)
	case "flora":
		l.mergeClients(params, before, ups, agg, float64(l.lr), false)
		l.model.InitAdapters(params, rng.New(l.seed, "lora-reinit", round))
	case "fedex-lora":
		l.mergeClients(params, before, ups, agg, 1, true)
	}
	return nil
}

// refactor runs FedSVD's refactor on every adapter of params, in place;
// with FOT it projects each product off its layer's basis first and adds
// the removed share to the task's projected fraction.
func (l *loraState) refactor(params []float32) error {
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
			l.fot.removed[k] += removed
			projected = true
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

// dpAccounts is the per-client privacy accounting of a DP run.
type dpAccounts struct {
	cfg  DPConfig
	acct []*dp.Accountant
}

// add composes an accepted update's DP steps into its client's account.
// Updates without the sampling-rate scalar (pretraining rounds, rounds
// without training) cost nothing.
func (a *dpAccounts) add(m *transport.Message) error {
	q, ok := findScalar(m.Scalars, client.ScalarDPQ)
	if !ok {
		return nil
	}
	steps := int(math.Round(scalar(m.Scalars, client.ScalarSteps)))
	c := int(m.Client)
	if c < 0 || c >= len(a.cfg.Sigma) {
		return fmt.Errorf("client %d has no DP noise multiplier", c)
	}
	if a.acct == nil {
		a.acct = make([]*dp.Accountant, len(a.cfg.Sigma))
	}
	if a.acct[c] == nil {
		acc, err := dp.NewAccountant(nil)
		if err != nil {
			return err
		}
		a.acct[c] = acc
	}
	if steps == 0 || a.cfg.Sigma[c] == 0 {
		return nil
	}
	return a.acct[c].Compose(q, a.cfg.Sigma[c], steps)
}

// record returns the spent epsilon of every client (0 for a client that
// never took a DP step) and its maximum.
func (a *dpAccounts) record() (*results.DP, error) {
	out := &results.DP{Delta: a.cfg.Delta, Sigma: append([]float64(nil), a.cfg.Sigma...), EpsilonSpent: make([]float64, len(a.cfg.Sigma))}
	for c, acc := range a.acct {
		if acc == nil {
			continue
		}
		eps, _, err := acc.Epsilon(a.cfg.Delta)
		if err != nil {
			return nil, fmt.Errorf("server: epsilon of client %d: %w", c, err)
		}
		out.EpsilonSpent[c] = eps
		out.EpsilonSpentMax = max(out.EpsilonSpentMax, eps)
	}
	return out, nil
}
