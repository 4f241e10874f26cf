package server

import (
	"context"
	"fmt"
	"math"

	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// PretrainConfig makes the first Tasks tasks pretrain the base model
// (every base parameter, LoRA adapters untouched). With Central set, the
// server calls it once per such task instead of running rounds (it trains
// params in place and returns the mean training loss); when the method
// needs end-of-task information (FOT's GPSE, EWC's Fisher) the server then
// runs one round with protocol.FlagNoTrain to collect it. Without Central the
// tasks run their rounds as plain FedAvg with protocol.FlagBase: no DP, no
// LoRA aggregation, no FOT projection (GPSE and Fisher still run on each
// task's last round).
type PretrainConfig struct {
	Tasks   int
	Central func(ctx context.Context, params []float32, task int) (loss float64, err error)
}

// DPConfig is the server side of DP-SGD: the privacy accounting. Every
// accepted update that reports its sampling rate (protocol.ScalarDPQ) adds
// its steps, at the client's noise multiplier Sigma[client], to that
// client's RDP accountant (package dp); the run record reports each
// client's epsilon at Delta. The refactors and merges are post-processing
// and cost no privacy.
type DPConfig struct {
	Delta float64
	Sigma []float64 // per client id
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
	q, ok := m.Scalar(protocol.ScalarDPQ)
	if !ok {
		return nil
	}
	steps := int(math.Round(scalar(m, protocol.ScalarSteps)))
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
