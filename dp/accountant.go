package dp

import (
	"errors"
	"fmt"
	"math"
)

// Errors of the accountant. Every error returned by this package wraps one
// of them with context.
var (
	// ErrSampleRate is returned for a sampling rate q outside (0, 1].
	ErrSampleRate = errors.New("dp: sampling rate outside (0, 1]")
	// ErrNoise is returned for a noise multiplier sigma that is not positive and finite.
	ErrNoise = errors.New("dp: noise multiplier not positive and finite")
	// ErrSteps is returned for a step count below 1 (below 0 for Accountant.Compose).
	ErrSteps = errors.New("dp: invalid step count")
	// ErrDelta is returned for a delta outside (0, 1).
	ErrDelta = errors.New("dp: delta outside (0, 1)")
	// ErrOrders is returned for an empty order grid or an order outside (1, MaxOrder].
	ErrOrders = errors.New("dp: invalid rdp orders")
	// ErrRDP is returned by EpsilonFromRDP for a negative or NaN RDP value.
	ErrRDP = errors.New("dp: invalid rdp value")
	// ErrEpsilon is returned by CalibrateSigma for a target epsilon that is not positive and finite.
	ErrEpsilon = errors.New("dp: target epsilon not positive and finite")
	// ErrUnreachable is returned by CalibrateSigma when no sigma in
	// [MinSigma, MaxSigma] meets the target.
	ErrUnreachable = errors.New("dp: target epsilon unreachable")
)

// MaxOrder is the largest RDP order accepted (the integer-order sum has
// alpha+1 terms).
const MaxOrder = 1 << 16

// defaultOrders is the immutable grid behind DefaultOrders.
var defaultOrders = func() []float64 {
	o := make([]float64, 0, 99+54+3)
	for x := 1; x <= 99; x++ {
		o = append(o, 1+float64(x)/10) // same floats as Python's 1 + x / 10.0
	}
	for a := 11; a <= 64; a++ {
		o = append(o, float64(a))
	}
	return append(o, 128, 256, 512)
}()

// DefaultOrders returns (a copy of) the RDP orders that Epsilon,
// CalibrateSigma and NewAccountant(nil) use: 1 + x/10 for x = 1..99
// (1.1 to 10.9), the integers 11..64, then 128, 256 and 512; 156 orders,
// increasing.
func DefaultOrders() []float64 { return append([]float64(nil), defaultOrders...) }

// checkMechanism validates (q, sigma).
func checkMechanism(q, sigma float64) error {
	if !(q > 0 && q <= 1) {
		return fmt.Errorf("%w: q = %v", ErrSampleRate, q)
	}
	if !(sigma > 0) || math.IsInf(sigma, 1) {
		return fmt.Errorf("%w: sigma = %v", ErrNoise, sigma)
	}
	return nil
}

func checkDelta(delta float64) error {
	if !(delta > 0 && delta < 1) {
		return fmt.Errorf("%w: delta = %v", ErrDelta, delta)
	}
	return nil
}

func checkOrders(orders []float64) error {
	if len(orders) == 0 {
		return fmt.Errorf("%w: no orders", ErrOrders)
	}
	for i, a := range orders {
		if !(a > 1 && a <= MaxOrder) {
			return fmt.Errorf("%w: order %d is %v, want (1, %d]", ErrOrders, i, a, MaxOrder)
		}
	}
	return nil
}

// RDP returns the RDP of the Poisson-subsampled Gaussian mechanism with
// sampling rate q and noise multiplier sigma composed over steps steps, at
// each of the orders (nil means DefaultOrders()):
//
//	rdp[i] = steps * log(A_alpha) / (alpha - 1),   alpha = orders[i],
//
// with A_alpha as in the package documentation (exact binomial sum for
// integer alpha, Mironov et al.'s erfc series for fractional alpha,
// alpha / (2 sigma^2) per step when q = 1). Values may be +Inf when they
// overflow float64 (tiny sigma at large orders). Errors: ErrSampleRate,
// ErrNoise, ErrSteps (steps < 1), ErrOrders.
func RDP(q, sigma float64, steps int, orders []float64) ([]float64, error) {
	if orders == nil {
		orders = defaultOrders
	}
	if err := checkMechanism(q, sigma); err != nil {
		return nil, err
	}
	if steps < 1 {
		return nil, fmt.Errorf("%w: steps = %d, want >= 1", ErrSteps, steps)
	}
	if err := checkOrders(orders); err != nil {
		return nil, err
	}
	out := make([]float64, len(orders))
	for i, a := range orders {
		out[i] = float64(steps) * rdpStep(q, sigma, a)
	}
	return out, nil
}

// rdpStep is the RDP of one step at order alpha (validated inputs).
func rdpStep(q, sigma, alpha float64) float64 {
	if alpha == math.Trunc(alpha) {
		return logAInt(q, sigma, int(alpha)) / (alpha - 1)
	}
	if q == 1 {
		return alpha / (2 * sigma * sigma)
	}
	return logAFrac(q, sigma, alpha) / (alpha - 1)
}

// logAInt returns log(A_alpha) for integer alpha >= 2 and q in (0, 1] from
// the exact binomial sum. Because sum_k C(alpha,k) (1-q)^(alpha-k) q^k = 1,
//
//	A_alpha - 1 = sum_{k=2}^{alpha} C(alpha,k) (1-q)^(alpha-k) q^k expm1((k^2-k)/(2 sigma^2)),
//
// a sum of non-negative terms without cancellation; it is accumulated as a
// streaming log-sum-exp and log(A) = log1p(A - 1) is taken stably.
func logAInt(q, sigma float64, alpha int) float64 {
	a := float64(alpha)
	logQ := math.Log(q)
	log1mQ := math.Log1p(-q) // -Inf when q == 1
	inv2s2 := 1 / (2 * sigma * sigma)
	lb := math.Log(a) // log C(alpha, 1)
	m, s := math.Inf(-1), 0.0
	for k := 2; k <= alpha; k++ {
		fk := float64(k)
		lb += math.Log((a - fk + 1) / fk) // log C(alpha, k)
		t := lb + fk*logQ + logExpm1((fk*fk-fk)*inv2s2)
		if k < alpha {
			t += (a - fk) * log1mQ
		}
		if math.IsInf(t, -1) {
			continue
		}
		if t > m {
			s = s*math.Exp(m-t) + 1
			m = t
		} else {
			s += math.Exp(t - m)
		}
	}
	if math.IsInf(m, -1) {
		return 0
	}
	return softplus(m + math.Log(s))
}

// logAFrac returns log(A_alpha) for fractional alpha > 1 and q in (0, 1),
// with the series of Mironov, Talwar and Zhang (2019) §3.3: A_alpha is split
// into the integrals over z < z0 and z >= z0, z0 = sigma^2 log(1/q - 1) + 1/2,
// each expanded as a binomial series with generalized coefficients
// C(alpha, i) and erfc weights. Terms are added (or, where C(alpha, i) < 0,
// subtracted) in log space until both fall below e^-30; past i > alpha the
// series alternate, so the truncation error is below e^-30 absolute.
func logAFrac(q, sigma, alpha float64) float64 {
	const (
		cutoff = -30
		maxIt  = 1 << 22 // a guard only: slowest seen (q = 1/2, huge sigma, alpha near 1) ~1e5 terms
	)
	logQ := math.Log(q)
	log1mQ := math.Log1p(-q)
	s2 := sigma * sigma
	z0 := s2*math.Log(1/q-1) + 0.5
	isq := 1 / (math.Sqrt2 * sigma)
	a0, a1 := math.Inf(-1), math.Inf(-1)
	logCoef, positive := 0.0, true // log|C(alpha, i)| and its sign, i = 0
	for i := 0; i < maxIt; i++ {
		fi := float64(i)
		if i > 0 {
			f := (alpha - fi + 1) / fi
			if f < 0 {
				positive = !positive
				f = -f
			}
			logCoef += math.Log(f)
		}
		j := alpha - fi
		logT0 := logCoef + fi*logQ + j*log1mQ
		logT1 := logCoef + j*logQ + fi*log1mQ
		logE0 := -math.Ln2 + logErfc((fi-z0)*isq)
		logE1 := -math.Ln2 + logErfc((z0-j)*isq)
		logS0 := logT0 + (fi*fi-fi)/(2*s2) + logE0
		logS1 := logT1 + (j*j-j)/(2*s2) + logE1
		if positive {
			a0 = logAdd(a0, logS0)
			a1 = logAdd(a1, logS1)
		} else {
			a0 = logSub(a0, logS0)
			a1 = logSub(a1, logS1)
		}
		if math.Max(logS0, logS1) < cutoff {
			break
		}
	}
	return logAdd(a0, a1)
}

// logAdd returns log(exp(x) + exp(y)).
func logAdd(x, y float64) float64 {
	if x < y {
		x, y = y, x
	}
	if math.IsInf(y, -1) {
		return x
	}
	return x + math.Log1p(math.Exp(y-x))
}

// logSub returns log(exp(x) - exp(y)) for x >= y; rounding that would make
// the difference negative gives log(0) = -Inf.
func logSub(x, y float64) float64 {
	if math.IsInf(y, -1) {
		return x
	}
	if y >= x {
		return math.Inf(-1)
	}
	return x + math.Log(-math.Expm1(y-x))
}

// logExpm1 returns log(exp(x) - 1) for x >= 0 (-Inf at 0).
func logExpm1(x float64) float64 {
	if x > 30 {
		return x + math.Log1p(-math.Exp(-x))
	}
	return math.Log(math.Expm1(x))
}

// softplus returns log(1 + exp(x)).
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

// logErfc returns log(erfc(x)), accurate also where erfc underflows: for
// x > 20 it uses the asymptotic series erfc(x) = exp(-x^2)/(x sqrt(pi)) *
// (1 - 1/(2x^2) + 3/(4x^4) - 15/(8x^6) + 105/(16x^8)), whose truncation error
// there is below 3e-12 relative.
func logErfc(x float64) float64 {
	if x <= 20 {
		return math.Log(math.Erfc(x))
	}
	u := 1 / (2 * x * x) // 1/(2x^2)
	series := 1 - u*(1-3*u*(1-5*u*(1-7*u)))
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(series)
}

// EpsilonFromRDP converts RDP guarantees rdp[i] at orders[i] into the
// smallest epsilon such that the mechanism is (epsilon, delta)-DP, with the
// conversion of Balle et al. 2020 (Theorem 21):
//
//	eps = min_i  rdp[i] - (log(delta) + log(orders[i])) / (orders[i] - 1) + log((orders[i] - 1) / orders[i]),
//
// clamped at 0. It returns eps and the order attaining the minimum (the
// first one on ties); eps = +Inf and order = 0 when every rdp is +Inf.
// Errors: ErrDelta, ErrOrders, ErrRDP (negative or NaN rdp). It panics if
// len(rdp) != len(orders).
func EpsilonFromRDP(orders, rdp []float64, delta float64) (eps, order float64, err error) {
	if len(orders) != len(rdp) {
		panic(fmt.Sprintf("dp: EpsilonFromRDP got %d orders and %d rdp values", len(orders), len(rdp)))
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	if err := checkOrders(orders); err != nil {
		return 0, 0, err
	}
	for i, r := range rdp {
		if !(r >= 0) {
			return 0, 0, fmt.Errorf("%w: rdp[%d] = %v at order %v", ErrRDP, i, r, orders[i])
		}
	}
	eps, order = minConvert(orders, rdp, math.Log(delta))
	return eps, order, nil
}

// minConvert is the conversion of EpsilonFromRDP on validated input.
func minConvert(orders, rdp []float64, logDelta float64) (eps, order float64) {
	eps = math.Inf(1)
	for i, a := range orders {
		e := convert(rdp[i], a, logDelta)
		if e < eps {
			eps, order = e, a
		}
	}
	return max(eps, 0), order
}

// convert is the Balle et al. bound at one order.
func convert(rdp, alpha, logDelta float64) float64 {
	return rdp - (logDelta+math.Log(alpha))/(alpha-1) + math.Log1p(-1/alpha)
}

// Epsilon returns the epsilon of (epsilon, delta)-DP spent by steps steps
// of the Poisson-subsampled Gaussian mechanism (sampling rate q, noise
// multiplier sigma): RDP over DefaultOrders() converted with
// EpsilonFromRDP. It also returns the optimal order. It is monotone:
// increasing in steps and q, decreasing in sigma. Errors: ErrSampleRate,
// ErrNoise, ErrSteps (steps < 1), ErrDelta.
func Epsilon(q, sigma float64, steps int, delta float64) (eps, order float64, err error) {
	if err := checkMechanism(q, sigma); err != nil {
		return 0, 0, err
	}
	if steps < 1 {
		return 0, 0, fmt.Errorf("%w: steps = %d, want >= 1", ErrSteps, steps)
	}
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	eps, order = epsilon(q, sigma, steps, math.Log(delta))
	return eps, order, nil
}

// epsilon is Epsilon on validated input, without allocating.
func epsilon(q, sigma float64, steps int, logDelta float64) (eps, order float64) {
	eps = math.Inf(1)
	for _, a := range defaultOrders {
		e := convert(float64(steps)*rdpStep(q, sigma, a), a, logDelta)
		if e < eps {
			eps, order = e, a
		}
	}
	return max(eps, 0), order
}

// Accountant accumulates the RDP of a sequence of Poisson-subsampled
// Gaussian steps whose (q, sigma) may change (for example a client whose
// data set changes with the task), at a fixed grid of orders. The zero
// value is not usable; use NewAccountant. An Accountant is not safe for
// concurrent use.
type Accountant struct {
	orders []float64
	rdp    []float64
	steps  int
}

// NewAccountant returns an empty accountant over the given orders (copied;
// nil means DefaultOrders()). Errors: ErrOrders.
func NewAccountant(orders []float64) (*Accountant, error) {
	if orders == nil {
		orders = defaultOrders
	}
	if err := checkOrders(orders); err != nil {
		return nil, err
	}
	return &Accountant{
		orders: append([]float64(nil), orders...),
		rdp:    make([]float64, len(orders)),
	}, nil
}

// Compose adds steps steps of the mechanism with sampling rate q and noise
// multiplier sigma (RDP adds at every order). steps = 0 adds nothing.
// Errors (the accountant is then unchanged): ErrSampleRate, ErrNoise,
// ErrSteps (steps < 0).
func (a *Accountant) Compose(q, sigma float64, steps int) error {
	if err := checkMechanism(q, sigma); err != nil {
		return err
	}
	if steps < 0 {
		return fmt.Errorf("%w: steps = %d, want >= 0", ErrSteps, steps)
	}
	if steps == 0 {
		return nil
	}
	for i, o := range a.orders {
		a.rdp[i] += float64(steps) * rdpStep(q, sigma, o)
	}
	a.steps += steps
	return nil
}

// Steps returns the number of steps composed so far.
func (a *Accountant) Steps() int { return a.steps }

// RDP returns a copy of the accumulated RDP, one value per order.
func (a *Accountant) RDP() []float64 { return append([]float64(nil), a.rdp...) }

// Epsilon returns the epsilon spent so far for the given delta and the
// optimal order (EpsilonFromRDP); (0, 0) before any step was composed.
// Errors: ErrDelta.
func (a *Accountant) Epsilon(delta float64) (eps, order float64, err error) {
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	if a.steps == 0 {
		return 0, 0, nil
	}
	eps, order = minConvert(a.orders, a.rdp, math.Log(delta))
	return eps, order, nil
}
