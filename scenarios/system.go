package scenarios

import "fmt"

// System is the system heterogeneity of the federation (the system: block): which
// clients are online, which fail, how fast they compute and how long a round may
// take in virtual time. Every draw comes from a named stream of the run's seed, so a
// run's rounds do not depend on the workers, the transport or the wall clock. nil
// (the key absent) is today's federation: every client online, none failing, no
// virtual deadline, a quorum of 1.
type System struct {
	// Availability is the probability that a client is online in a round, in (0, 1].
	// Default: 1.
	Availability float64 `yaml:"availability"`
	// Dropout is the probability that a selected client fails before reporting, in
	// [0, 1). Default: 0.
	Dropout float64 `yaml:"dropout"`
	// Speed is the distribution of the clients' relative compute speeds.
	Speed Speed `yaml:"speed,flow"`
	// Deadline is a round's virtual time budget in epochs at speed 1: a client's
	// round takes (epochs of its local data it processes) / speed; 0 = none.
	// Default: 0.
	Deadline float64 `yaml:"deadline"`
	// Quorum is the fewest updates a round aggregates; a round with fewer leaves
	// the global model unchanged and is recorded as skipped. Default: 1.
	Quorum int `yaml:"quorum"`
}

// Speed is the distribution of a client's relative compute speed, drawn once per
// client from the stream (seed, "speed", client).
type Speed struct {
	// Dist is constant (every speed 1), lognormal (exp(sigma N(0, 1)), median 1) or
	// uniform (U[min, max]). Default: constant.
	Dist string `yaml:"dist"`
	// Sigma is the lognormal's sigma (>= 0). Default: 0.5.
	Sigma float64 `yaml:"sigma"`
	// Min and Max bound the uniform speeds (0 < min <= max). Default: 0.5 and 2.
	Min float64 `yaml:"min"`
	Max float64 `yaml:"max"`
}

// speedDists are the allowed system.speed.dist values.
var speedDists = []string{"constant", "lognormal", "uniform"}

// DefaultSystem returns the system: block that `system: {}` describes: today's
// federation.
func DefaultSystem() System {
	return System{Availability: 1, Speed: Speed{Dist: "constant", Sigma: 0.5, Min: 0.5, Max: 2}, Quorum: 1}
}

// defaults fills a system: block before decoding it (see decoder.value).
func (s *System) defaults() { *s = DefaultSystem() }

// IsDefault reports whether the block describes today's federation (nil or every
// key at its default; the speed parameters of the constant distribution are
// ignored).
func (s *System) IsDefault() bool {
	if s == nil {
		return true
	}
	return s.Availability == 1 && s.Dropout == 0 && s.Speed.Dist == "constant" && s.Deadline == 0 && s.Quorum == 1
}

// checkSystem checks the system: block.
func (s *Scenario) checkSystem(c *checker) {
	y := s.System
	if y == nil {
		return
	}
	if !(y.Availability > 0 && y.Availability <= 1) {
		c.add("system.availability", fmt.Sprintf("must be in (0, 1], got %g", y.Availability))
	}
	c.unitOpen("system.dropout", y.Dropout)
	c.allowed("system.speed.dist", "speed distribution", y.Speed.Dist, speedDists)
	switch y.Speed.Dist {
	case "lognormal":
		c.nonNegative("system.speed.sigma", y.Speed.Sigma)
	case "uniform":
		c.positive("system.speed.min", y.Speed.Min)
		if y.Speed.Min > 0 && !(y.Speed.Max >= y.Speed.Min) {
			c.add("system.speed.max", fmt.Sprintf("must be >= system.speed.min (%g), got %g", y.Speed.Min, y.Speed.Max), "system.speed.min")
		}
	}
	c.nonNegative("system.deadline", y.Deadline)
	c.atLeast("system.quorum", y.Quorum, 1)
	if y.Quorum > s.Train.ClientsPerRound && s.Train.ClientsPerRound >= 1 {
		c.add("system.quorum", fmt.Sprintf("must be at most train.clients_per_round (%d), got %d", s.Train.ClientsPerRound, y.Quorum), "train.clients_per_round")
	}
}
