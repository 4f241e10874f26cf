package server

import (
	"fmt"
	"math"

	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/rng"
)

// System is the system heterogeneity of the federation (scenario system:).
// The server decides from named streams of the seed which clients are
// online ((seed, "available", round, client)), which selected ones fail
// ((seed, "dropout", round, client)) and how fast each computes ((seed,
// "speed", client)); only the clients left are listed in the round's
// message, so the outcome does not depend on the workers, the transport or
// the wall clock.
type System struct {
	// Availability is the probability in (0, 1] that a client is online.
	Availability float64
	// Dropout is the probability in [0, 1) that a selected client fails.
	Dropout float64
	// Speed is the distribution of the clients' relative speeds.
	Speed SpeedDist
	// Deadline > 0 is a round's virtual time budget in epochs at speed 1:
	// a selected client with Work(task, client) / speed > Deadline is late.
	Deadline float64
	// Work returns the epochs of its local data a client processes in a
	// round of task; nil is 1.
	Work func(task, client int) float64
	// Quorum is the fewest updates a round aggregates (0 is 1): a round
	// with fewer leaves the model unchanged and is recorded as skipped.
	Quorum int
}

// SpeedDist is a distribution of relative compute speeds: "constant" (or
// ""): 1; "lognormal": exp(Sigma N(0, 1)); "uniform": U[Min, Max].
type SpeedDist struct {
	Dist            string
	Sigma, Min, Max float64
}

// Speed returns client's speed under d, drawn from (seed, "speed", client).
func (d SpeedDist) Speed(seed uint64, client int) float64 {
	switch d.Dist {
	case "lognormal":
		return math.Exp(d.Sigma * rng.New(seed, "speed", client).NormFloat64())
	case "uniform":
		return d.Min + (d.Max-d.Min)*rng.New(seed, "speed", client).Float64()
	}
	return 1
}

func (y *System) validate(perRound int) error {
	switch {
	case !(y.Availability > 0 && y.Availability <= 1):
		return fmt.Errorf("%w: availability %v not in (0, 1]", ErrConfig, y.Availability)
	case !(y.Dropout >= 0 && y.Dropout < 1):
		return fmt.Errorf("%w: dropout %v not in [0, 1)", ErrConfig, y.Dropout)
	case !(y.Deadline >= 0):
		return fmt.Errorf("%w: virtual deadline %v < 0", ErrConfig, y.Deadline)
	case y.Quorum < 0 || y.Quorum > perRound:
		return fmt.Errorf("%w: quorum %d not in [1, %d]", ErrConfig, y.Quorum, perRound)
	}
	switch d := y.Speed; d.Dist {
	case "", "constant":
	case "lognormal":
		if !(d.Sigma >= 0) {
			return fmt.Errorf("%w: lognormal speed sigma %v < 0", ErrConfig, d.Sigma)
		}
	case "uniform":
		if !(d.Min > 0 && d.Max >= d.Min) {
			return fmt.Errorf("%w: uniform speeds in [%v, %v] (want 0 < min <= max)", ErrConfig, d.Min, d.Max)
		}
	default:
		return fmt.Errorf("%w: unknown speed distribution %q", ErrConfig, d.Dist)
	}
	return nil
}

// Plan decides round of task under y for a federation of clients sampling
// perRound: the online clients, the sample among them, and who of those
// drops out, misses the virtual deadline, or will report (in client-id
// order). The detail's Aggregated and Skipped are left to the round.
func (y *System) Plan(seed uint64, task, round, clients, perRound int) (report []int32, d results.RoundDetail) {
	report, _, d = y.plan(seed, task, round, clients, perRound)
	return report, d
}

// plan is Plan that also returns the selected clients that drop out.
func (y *System) plan(seed uint64, task, round, clients, perRound int) (report, dropped []int32, d results.RoundDetail) {
	d = results.RoundDetail{Round: round, Task: task}
	avail := make([]int32, 0, clients)
	for c := range clients {
		if y.Availability >= 1 || rng.New(seed, "available", round, c).Float64() < y.Availability {
			avail = append(avail, int32(c))
		}
	}
	d.Available = len(avail)
	idx := Sample(seed, round, len(avail), min(perRound, len(avail)))
	d.Selected = len(idx)
	for _, i := range idx {
		c := avail[i]
		if y.Dropout > 0 && rng.New(seed, "dropout", round, int(c)).Float64() < y.Dropout {
			d.Dropped++
			dropped = append(dropped, c)
			continue
		}
		if y.Deadline > 0 {
			work := 1.0
			if y.Work != nil {
				work = y.Work(task, int(c))
			}
			if work/y.Speed.Speed(seed, int(c)) > y.Deadline {
				d.Late++
				continue
			}
		}
		report = append(report, c)
	}
	return report, dropped, d
}

// quorum returns the fewest updates a round aggregates.
func (y *System) quorum() int { return max(y.Quorum, 1) }
