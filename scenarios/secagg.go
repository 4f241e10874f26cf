package scenarios

import (
	"fmt"

	"github.com/fotsim/fotsim/protocol"
)

// SecAgg turns on secure aggregation (the secagg: block; package secagg): the
// server learns only the sum of the clients' weighted deltas, and on a FOT
// task's last round the sum of their GPSE sketches, within the ring's
// fixed-point error of the plain mean. nil (the key absent) aggregates in the
// clear.
type SecAgg struct {
	// Ring is default (Z_2^64, 32 fractional bits, 8 bytes a value) or compact
	// (Z_2^32, 16 fractional bits, 4 bytes a value). Default: default.
	Ring string `yaml:"ring"`
	// Threshold is the Shamir threshold t: the fewest clients whose shares
	// remove the masks; a round survives up to k - t dropouts of its k listed
	// clients. 0 = max(2, floor(k/2) + 1). Default: 0.
	Threshold int `yaml:"threshold"`
}

// rings are the allowed secagg.ring values.
var rings = []string{protocol.RingDefault, protocol.RingCompact}

// DefaultSecAgg returns the secagg: block that `secagg: {}` describes.
func DefaultSecAgg() SecAgg { return SecAgg{Ring: protocol.RingDefault} }

// defaults fills a secagg: block before decoding it (see decoder.value).
func (a *SecAgg) defaults() { *a = DefaultSecAgg() }

// Protocol returns the setting server and client hosts share; nil for nil.
func (a *SecAgg) Protocol() *protocol.SecAgg {
	if a == nil {
		return nil
	}
	return &protocol.SecAgg{Ring: a.Ring, Threshold: a.Threshold}
}

// maxSecAggClients is the most clients a round of each ring can sum
// (secagg.Params.MaxClients).
var maxSecAggClients = map[string]int{protocol.RingDefault: 1<<15 - 1, protocol.RingCompact: 1<<7 - 1}

// checkSecAgg checks the secagg: block and what it rules out: methods whose
// server reads individual updates (methods.Spec.NoSecAgg), the centralised
// references, rounds of one client, and more system dropouts than the
// threshold leaves room for.
func (s *Scenario) checkSecAgg(c *checker) {
	a := s.SecAgg
	if a == nil {
		return
	}
	c.allowed("secagg.ring", "ring", a.Ring, rings)
	k := s.Train.ClientsPerRound
	if k < 2 {
		c.add("secagg", fmt.Sprintf("needs train.clients_per_round >= 2 (a sum of one client is that client's update), got %d", k), "train.clients_per_round")
		return
	}
	if a.Threshold != 0 && (a.Threshold < 2 || a.Threshold > k) {
		c.add("secagg.threshold", fmt.Sprintf("must be 0 (the default, max(2, k/2+1)) or in [2, train.clients_per_round = %d], got %d", k, a.Threshold), "train.clients_per_round")
	}
	if n, ok := maxSecAggClients[a.Ring]; ok && k > n {
		c.add("secagg.ring", fmt.Sprintf("the %s ring sums at most %d clients a round, train.clients_per_round is %d: use ring: default", a.Ring, n, k), "train.clients_per_round")
	}
	t := a.Protocol().ThresholdFor(k)
	if y := s.System; y != nil && t <= k && y.Dropout > float64(k-t)/float64(k) {
		c.add("system.dropout", fmt.Sprintf("%g leaves fewer than the secure aggregation threshold %d of %d clients a round on average: at most (k - t)/k = %.3g (or lower secagg.threshold)", y.Dropout, t, k, float64(k-t)/float64(k)), "secagg.threshold")
	}
	for i, m := range s.Methods {
		info, ok := LookupMethod(m.Name)
		if !ok {
			continue
		}
		if info.NoSecAgg != "" {
			c.add(fmt.Sprintf("methods[%d]", i), fmt.Sprintf("method %s cannot run with secure aggregation (secagg:): %s", m.Name, info.NoSecAgg), "secagg")
		}
	}
}
