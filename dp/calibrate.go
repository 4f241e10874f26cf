package dp

import (
	"fmt"
	"math"
)

// Bounds and precision of CalibrateSigma.
const (
	// CalibrateTol is the relative precision of CalibrateSigma: the epsilon
	// at the returned sigma lies in [(1-CalibrateTol) target, target].
	CalibrateTol = 1e-3
	// MinSigma and MaxSigma bound the noise multipliers CalibrateSigma tries.
	MinSigma = 1e-3
	MaxSigma = 1e6
)

// CalibrateSigma returns the noise multiplier sigma for which steps steps
// of the Poisson-subsampled Gaussian mechanism with sampling rate q are
// (targetEps, delta)-DP by Epsilon (RDP over DefaultOrders(), Balle et al.
// conversion), as small as the search precision allows:
//
//	(1 - CalibrateTol) * targetEps <= Epsilon(q, sigma, steps, delta) <= targetEps.
//
// Epsilon is continuous and strictly decreasing in sigma, so the search is
// a bracketing (doubling or halving sigma from 1) followed by bisection on
// log(sigma), about 15-40 evaluations of Epsilon; it is deterministic.
// Errors: ErrSampleRate, ErrSteps (steps < 1), ErrDelta, ErrEpsilon
// (targetEps not positive and finite), ErrUnreachable (targetEps at or
// below the floor of the conversion, min over the orders of
// -(log(delta) + log(alpha))/(alpha-1) + log(1 - 1/alpha), about 0.0084 at
// delta = 1e-5; or even sigma = MaxSigma spends more than targetEps; or
// sigma = MinSigma already spends less than (1-CalibrateTol) targetEps).
//
// Cost: each evaluation of Epsilon takes about 0.1-1 ms for q <= 0.1 and a
// few ms for q near 1/2, where the fractional-order series converge slowly.
func CalibrateSigma(q float64, steps int, targetEps, delta float64) (sigma float64, err error) {
	if err := checkMechanism(q, 1); err != nil {
		return 0, err
	}
	if steps < 1 {
		return 0, fmt.Errorf("%w: steps = %d, want >= 1", ErrSteps, steps)
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	if !(targetEps > 0) || math.IsInf(targetEps, 1) {
		return 0, fmt.Errorf("%w: %v", ErrEpsilon, targetEps)
	}
	logDelta := math.Log(delta)
	// With no privacy loss at all (RDP = 0) the conversion still charges
	// min_alpha -(log(delta) + log(alpha))/(alpha-1) + log(1 - 1/alpha);
	// no sigma gets below that floor.
	floor := math.Inf(1)
	for _, a := range defaultOrders {
		floor = min(floor, convert(0, a, logDelta))
	}
	if targetEps <= floor {
		return 0, fmt.Errorf("%w: target %g is not above the conversion floor %.4g at delta = %g",
			ErrUnreachable, targetEps, floor, delta)
	}
	eps := func(s float64) float64 {
		e, _ := epsilon(q, s, steps, logDelta)
		return e
	}
	low := (1 - CalibrateTol) * targetEps
	// Bracket: eps(lo) > target >= eps(hi).
	lo, hi := 1.0, 1.0
	eHi := eps(hi)
	if eHi > targetEps {
		for eHi > targetEps {
			if hi >= MaxSigma {
				return 0, fmt.Errorf("%w: epsilon %.4g at sigma = %g > target %g (q = %g, %d steps, delta = %g)",
					ErrUnreachable, eHi, hi, targetEps, q, steps, delta)
			}
			lo, hi = hi, min(2*hi, MaxSigma)
			eHi = eps(hi)
		}
	} else {
		for {
			if eHi >= low {
				return hi, nil
			}
			if lo <= MinSigma {
				return 0, fmt.Errorf("%w: epsilon %.4g at sigma = %g is already below target %g (q = %g, %d steps, delta = %g)",
					ErrUnreachable, eHi, lo, targetEps, q, steps, delta)
			}
			lo = max(lo/2, MinSigma)
			e := eps(lo)
			if e > targetEps {
				break
			}
			hi, eHi = lo, e
		}
	}
	// Bisect in log(sigma) until eps(hi) is within the tolerance.
	for range 200 {
		if eHi >= low {
			break
		}
		mid := math.Sqrt(lo * hi)
		if mid <= lo || mid >= hi {
			break // sigma resolution exhausted
		}
		if e := eps(mid); e > targetEps {
			lo = mid
		} else {
			hi, eHi = mid, e
		}
	}
	return hi, nil
}
