package dp

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// Named tolerances of the accountant tests.
const (
	tolClosed  = 1e-12 // relative, q = 1 against alpha/(2 sigma^2)
	tolNumeric = 1e-7  // relative, RDP against numerical integration of A_alpha
	tolLinear  = 1e-14 // relative, RDP(T steps) against T * RDP(1 step)
	tolTF      = 5e-6  // absolute, TF-Privacy's assertAlmostEqual(places=5) / delta=1e-5 checks
	tolPlaces7 = 5e-8  // absolute, Python's assertAlmostEqual default (7 places)
	tolDoc     = 5e-4  // absolute, a value printed with 3 decimals
)

// opacusOrders is Opacus's RDPAccountant.DEFAULT_ALPHAS:
// [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64)).
func opacusOrders() []float64 {
	var o []float64
	for x := 1; x < 100; x++ {
		o = append(o, 1+float64(x)/10)
	}
	for a := 12; a < 64; a++ {
		o = append(o, float64(a))
	}
	return o
}

func intOrders(lo, hi int) []float64 {
	var o []float64
	for a := lo; a <= hi; a++ {
		o = append(o, float64(a))
	}
	return o
}

func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	return math.Abs(got-want) / math.Abs(want)
}

// numericLogA computes log(A_alpha) = log E_{z~N(0,sigma^2)}[(mu(z)/mu0(z))^alpha],
// mu = (1-q) N(0,sigma^2) + q N(1,sigma^2), mu0 = N(0,sigma^2), by the
// trapezoidal rule in log space on a fine grid, independently of the
// package's series. The integrand is analytic with singularities at
// distance pi sigma^2 from the real axis and Gaussian tails around 0 and
// alpha, so with h <= min(sigma, sigma^2)/100 the rule is exact to rounding.
func numericLogA(q, sigma, alpha float64) float64 {
	s2 := sigma * sigma
	lo, hi := -40*sigma-1, alpha+40*sigma+1
	h := min(sigma, s2) / 100
	n := int(math.Ceil((hi - lo) / h))
	h = (hi - lo) / float64(n)
	logNorm := -math.Log(sigma * math.Sqrt(2*math.Pi))
	logf := func(z float64) float64 {
		t := (2*z - 1) / (2 * s2) // log(mu1(z)/mu0(z))
		var lr float64            // log((1-q) + q e^t)
		if t > 0 {
			lr = t + math.Log(q+(1-q)*math.Exp(-t))
		} else {
			lr = math.Log((1 - q) + q*math.Exp(t))
		}
		return -z*z/(2*s2) + logNorm + alpha*lr
	}
	vals := make([]float64, n+1)
	m := math.Inf(-1)
	for i := range vals {
		vals[i] = logf(lo + float64(i)*h)
		m = max(m, vals[i])
	}
	// Neumaier-compensated sum of the trapezoid weights.
	var sum, c float64
	for i, v := range vals {
		x := math.Exp(v - m)
		if i == 0 || i == n {
			x /= 2
		}
		t := sum + x
		if math.Abs(sum) >= math.Abs(x) {
			c += (sum - t) + x
		} else {
			c += (x - t) + sum
		}
		sum = t
	}
	return m + math.Log((sum+c)*h)
}

func TestRDPMatchesNumericalIntegration(t *testing.T) {
	cases := []struct{ q, sigma, alpha float64 }{
		{0.01, 2.5, 1.5},
		{0.01, 2.5, 2.5},
		{0.01, 2.5, 5},
		{0.01, 2.5, 50},
		{0.1, 2, 5},
		{0.04, 1.5, 1.1},
		{0.04, 1.5, 3.3},
		{0.04, 1.5, 12},
		{256.0 / 60000, 1.1, 8.5},
		{256.0 / 60000, 1.1, 32},
		{0.5, 1, 1.7},
		{0.5, 1, 4},
		{0.2, 0.8, 7},
		{0.2, 0.8, 6.6},
		{0.9, 3, 2.2},
		{0.99, 2, 3.5},
		{1e-3, 0.7, 20},
		{1e-3, 0.7, 10.9},
		{0.05, 5, 64},
		{0.3, 0.6, 2},
		{0.3, 0.6, 2.05},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("q=%g/sigma=%g/alpha=%g", c.q, c.sigma, c.alpha), func(t *testing.T) {
			got, err := RDP(c.q, c.sigma, 1, []float64{c.alpha})
			if err != nil {
				t.Fatal(err)
			}
			want := numericLogA(c.q, c.sigma, c.alpha) / (c.alpha - 1)
			if e := relErr(got[0], want); !(e <= tolNumeric) {
				t.Errorf("RDP = %.12g, want %.12g (numerical integral), rel err %.2g > %g", got[0], want, e, tolNumeric)
			}
		})
	}
}

func TestRDPGaussianClosedForm(t *testing.T) {
	orders := append(DefaultOrders(), 2.5, 100, 1000)
	for _, sigma := range []float64{0.3, 1, 1.1, 4.530877117, 30} {
		for _, steps := range []int{1, 7, 1000} {
			got, err := RDP(1, sigma, steps, orders)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range orders {
				want := float64(steps) * a / (2 * sigma * sigma)
				if e := relErr(got[i], want); !(e <= tolClosed) {
					t.Errorf("sigma=%g steps=%d alpha=%g: RDP = %.15g, want alpha/(2 sigma^2)*steps = %.15g (rel err %.2g)",
						sigma, steps, a, got[i], want, e)
				}
			}
		}
	}
}

// TestRDPReferenceValues reproduces TF-Privacy's rdp_accountant_test
// (test_compute_rdp_scalar, test_compute_rdp_sequence, test_compute_rdp_no_sampling).
func TestRDPReferenceValues(t *testing.T) {
	cases := []struct {
		name     string
		q, sigma float64
		steps    int
		orders   []float64
		want     []float64
	}{
		{"scalar", 0.1, 2, 10, []float64{5}, []float64{0.07737}},
		{"sequence", 0.01, 2.5, 50, []float64{1.5, 2.5, 5, 50, 100},
			[]float64{0.00065, 0.001085, 0.00218075, 0.023846, 167.416307}},
		{"no sampling", 1, 10, 1, []float64{20}, []float64{0.1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := RDP(c.q, c.sigma, c.steps, c.orders)
			if err != nil {
				t.Fatal(err)
			}
			for i := range got {
				if math.Abs(got[i]-c.want[i]) > tolTF {
					t.Errorf("order %g: RDP = %.8g, want %.8g (+-%g)", c.orders[i], got[i], c.want[i], tolTF)
				}
			}
		})
	}
}

// TestRDPSmallQClosedForm checks the regime where A_alpha - 1 is far below
// float64 resolution of 1 against the exact expansions
//
//	A_2 - 1 = q^2 expm1(1/sigma^2)
//	A_3 - 1 = 3 q^2 (1-q) expm1(1/sigma^2) + q^3 expm1(3/sigma^2)
//
// (a naive log-sum-exp of the binomial terms returns 0 there).
func TestRDPSmallQClosedForm(t *testing.T) {
	for _, c := range []struct{ q, sigma float64 }{{1e-4, 4}, {1e-6, 1}, {1e-8, 2}, {1e-3, 50}, {0.3, 0.9}} {
		e1, e3 := math.Expm1(1/(c.sigma*c.sigma)), math.Expm1(3/(c.sigma*c.sigma))
		want := []float64{
			math.Log1p(c.q * c.q * e1),
			math.Log1p(3*c.q*c.q*(1-c.q)*e1+c.q*c.q*c.q*e3) / 2,
		}
		got, err := RDP(c.q, c.sigma, 1, []float64{2, 3})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if e := relErr(got[i], want[i]); !(e <= tolClosed) {
				t.Errorf("q=%g sigma=%g alpha=%d: RDP = %.15g, want %.15g (rel err %.2g)", c.q, c.sigma, i+2, got[i], want[i], e)
			}
		}
	}
}

func TestRDPLinearInSteps(t *testing.T) {
	one, err := RDP(0.02, 1.3, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, steps := range []int{2, 17, 12345} {
		got, err := RDP(0.02, 1.3, steps, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if e := relErr(got[i], float64(steps)*one[i]); !(e <= tolLinear) {
				t.Errorf("steps=%d order %g: RDP = %g, want %d * %g (rel err %.2g)", steps, defaultOrders[i], got[i], steps, one[i], e)
			}
		}
	}
}

func TestRDPMonotoneInOrder(t *testing.T) {
	// The RDP curve of a mechanism is non-decreasing in alpha.
	for _, c := range []struct{ q, sigma float64 }{{0.004, 1.1}, {0.04, 1.5}, {0.3, 0.8}, {0.9, 3}} {
		rdp, err := RDP(c.q, c.sigma, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(rdp); i++ {
			if rdp[i] < rdp[i-1]*(1-1e-12) {
				t.Errorf("q=%g sigma=%g: RDP(%g) = %g < RDP(%g) = %g", c.q, c.sigma,
					defaultOrders[i], rdp[i], defaultOrders[i-1], rdp[i-1])
			}
		}
	}
}

func TestEpsilonMonotone(t *testing.T) {
	const delta = 1e-5
	t.Run("steps", func(t *testing.T) {
		prev := 0.0
		for _, steps := range []int{1, 2, 5, 10, 100, 1000, 10000, 100000} {
			eps, _, err := Epsilon(0.01, 1.0, steps, delta)
			if err != nil {
				t.Fatal(err)
			}
			if !(eps > prev) {
				t.Errorf("steps=%d: eps = %g, want > %g (eps at fewer steps)", steps, eps, prev)
			}
			prev = eps
		}
	})
	t.Run("sigma", func(t *testing.T) {
		prev := math.Inf(1)
		for _, sigma := range []float64{0.4, 0.5, 0.7, 0.9, 1, 1.1, 1.5, 2, 4, 8, 20} {
			eps, _, err := Epsilon(0.01, sigma, 1000, delta)
			if err != nil {
				t.Fatal(err)
			}
			if !(eps < prev) {
				t.Errorf("sigma=%g: eps = %g, want < %g (eps at smaller sigma)", sigma, eps, prev)
			}
			prev = eps
		}
	})
	t.Run("q", func(t *testing.T) {
		prev := 0.0
		for _, q := range []float64{1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.9, 1} {
			eps, _, err := Epsilon(q, 1.5, 100, delta)
			if err != nil {
				t.Fatal(err)
			}
			if !(eps > prev) {
				t.Errorf("q=%g: eps = %g, want > %g (eps at smaller q)", q, eps, prev)
			}
			prev = eps
		}
	})
	t.Run("rdp per order decreasing in sigma", func(t *testing.T) {
		prev, _ := RDP(0.05, 0.6, 1, nil)
		for _, sigma := range []float64{0.8, 1, 1.3, 2, 5} {
			cur, err := RDP(0.05, sigma, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range cur {
				if !(cur[i] < prev[i]) {
					t.Errorf("sigma=%g order %g: RDP = %g, want < %g", sigma, defaultOrders[i], cur[i], prev[i])
				}
			}
			prev = cur
		}
	})
}

// TestEpsilonFromRDPReference reproduces TF-Privacy's
// test_get_privacy_spent_check_target_delta (improved conversion).
func TestEpsilonFromRDPReference(t *testing.T) {
	t.Run("constant rdp", func(t *testing.T) {
		orders := intOrders(2, 32)
		rdp := make([]float64, len(orders))
		for i := range rdp {
			rdp[i] = 1.1
		}
		eps, order, err := EpsilonFromRDP(orders, rdp, 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		if order != 32 || math.Abs(eps-1.32783806176) > tolPlaces7 {
			t.Errorf("got eps %.11f at order %g, want 1.32783806176 at order 32", eps, order)
		}
	})
	t.Run("gaussian exactly (1, 1e-6)", func(t *testing.T) {
		var orders []float64
		for i := 1001; i < 100000; i++ {
			orders = append(orders, 0.001*float64(i))
		}
		rdp, err := RDP(1, 4.530877117, 1, orders)
		if err != nil {
			t.Fatal(err)
		}
		eps, _, err := EpsilonFromRDP(orders, rdp, 1e-6)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eps-1) > tolPlaces7 {
			t.Errorf("eps = %.10f, want 1", eps)
		}
	})
	t.Run("clamped at zero", func(t *testing.T) {
		eps, _, err := EpsilonFromRDP([]float64{512}, []float64{0}, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if eps != 0 {
			t.Errorf("eps = %g, want 0", eps)
		}
	})
	t.Run("all infinite", func(t *testing.T) {
		eps, order, err := EpsilonFromRDP([]float64{2, 3}, []float64{math.Inf(1), math.Inf(1)}, 1e-5)
		if err != nil || !math.IsInf(eps, 1) || order != 0 {
			t.Errorf("got (%g, %g, %v), want (+Inf, 0, nil)", eps, order, err)
		}
	})
}

// TestAccountantOpacusReference reproduces Opacus: accountants_test.py
// test_rdp_accountant (sigma 1.5, q 0.04, int(90/0.04) steps, delta 1e-5,
// DEFAULT_ALPHAS: eps 7.32911117143) and the docstring example of
// opacus/accountants/analysis/rdp.py (two phases, orders 2..32: 0.336 at 23).
func TestAccountantOpacusReference(t *testing.T) {
	t.Run("test_rdp_accountant", func(t *testing.T) {
		acc, err := NewAccountant(opacusOrders())
		if err != nil {
			t.Fatal(err)
		}
		steps := int(90 / 0.04)
		if err := acc.Compose(0.04, 1.5, steps); err != nil {
			t.Fatal(err)
		}
		eps, _, err := acc.Epsilon(1e-5)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eps-7.32911117143) > tolPlaces7 {
			t.Errorf("eps = %.11f, want 7.32911117143", eps)
		}
	})
	t.Run("docstring", func(t *testing.T) {
		acc, err := NewAccountant(intOrders(2, 32))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct {
			q, sigma float64
			steps    int
		}{{1e-5, 1.0, 10}, {1e-4, 3.0, 4}} {
			if err := acc.Compose(p.q, p.sigma, p.steps); err != nil {
				t.Fatal(err)
			}
		}
		eps, order, err := acc.Epsilon(1e-5)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(eps-0.336) > tolDoc || order != 23 {
			t.Errorf("got eps %.5f at order %g, want 0.336 at order 23", eps, order)
		}
	})
}

// TestTFPrivacyMNISTExample reproduces the example of TF-Privacy's
// compute_dp_sgd_privacy.py (N = 60000, batch 256, noise 1.12, 60 epochs,
// delta = 1e-5: "satisfies (2.92, 1e-5)-DP"), which used its grid
// [1 + x/10 for x in 1..99] + [12..63], steps = ceil(epochs N / batch) and
// the classical conversion eps = min rdp - log(delta)/(alpha - 1). The
// package's improved conversion must give a smaller epsilon.
func TestTFPrivacyMNISTExample(t *testing.T) {
	q := 256.0 / 60000
	steps := int(math.Ceil(60 * 60000 / 256.0))
	orders := opacusOrders()
	rdp, err := RDP(q, 1.12, steps, orders)
	if err != nil {
		t.Fatal(err)
	}
	classic := math.Inf(1)
	for i, a := range orders {
		classic = min(classic, rdp[i]-math.Log(1e-5)/(a-1))
	}
	if math.Abs(classic-2.92) > 0.005 {
		t.Errorf("classical conversion: eps = %.4f, want 2.92", classic)
	}
	improved, _, err := EpsilonFromRDP(orders, rdp, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if !(improved < classic) {
		t.Errorf("improved conversion eps = %.4f, want < classical %.4f", improved, classic)
	}
}

func TestAccountantComposition(t *testing.T) {
	const delta = 1e-5
	acc, err := NewAccountant(nil)
	if err != nil {
		t.Fatal(err)
	}
	if eps, order, err := acc.Epsilon(delta); eps != 0 || order != 0 || err != nil {
		t.Errorf("empty accountant: got (%g, %g, %v), want (0, 0, nil)", eps, order, err)
	}
	// Same mechanism in pieces = one Epsilon call over all steps.
	for _, s := range []int{300, 0, 700} {
		if err := acc.Compose(0.01, 1.2, s); err != nil {
			t.Fatal(err)
		}
	}
	got, gotOrder, err := acc.Epsilon(delta)
	if err != nil {
		t.Fatal(err)
	}
	want, wantOrder, err := Epsilon(0.01, 1.2, 1000, delta)
	if err != nil {
		t.Fatal(err)
	}
	if relErr(got, want) > tolLinear || gotOrder != wantOrder || acc.Steps() != 1000 {
		t.Errorf("composed 300+0+700 steps: eps %.15g at %g after %d steps, want %.15g at %g after 1000",
			got, gotOrder, acc.Steps(), want, wantOrder)
	}
	// Heterogeneous steps: RDP adds order by order.
	if err := acc.Compose(0.1, 3, 50); err != nil {
		t.Fatal(err)
	}
	r1, _ := RDP(0.01, 1.2, 1000, nil)
	r2, _ := RDP(0.1, 3, 50, nil)
	sum := acc.RDP()
	for i := range sum {
		if e := relErr(sum[i], r1[i]+r2[i]); e > tolLinear {
			t.Errorf("order %g: accumulated RDP %g, want %g + %g", defaultOrders[i], sum[i], r1[i], r2[i])
		}
	}
	eps2, _, _ := acc.Epsilon(delta)
	if !(eps2 > got) {
		t.Errorf("eps after more steps = %g, want > %g", eps2, got)
	}
	// A failed Compose leaves the accountant unchanged.
	if err := acc.Compose(0, 1, 10); !errors.Is(err, ErrSampleRate) {
		t.Errorf("Compose(q=0): got %v, want ErrSampleRate", err)
	}
	if eps3, _, _ := acc.Epsilon(delta); eps3 != eps2 || acc.Steps() != 1050 {
		t.Errorf("after a failed Compose: eps %g (steps %d), want %g (1050)", eps3, acc.Steps(), eps2)
	}
}

func TestInvalidInputs(t *testing.T) {
	nan := math.NaN()
	inf := math.Inf(1)
	rdpErr := func(q, sigma float64, steps int, orders []float64) error {
		_, err := RDP(q, sigma, steps, orders)
		return err
	}
	epsErr := func(q, sigma float64, steps int, delta float64) error {
		_, _, err := Epsilon(q, sigma, steps, delta)
		return err
	}
	convErr := func(orders, rdp []float64, delta float64) error {
		_, _, err := EpsilonFromRDP(orders, rdp, delta)
		return err
	}
	accErr := func(orders []float64) error {
		_, err := NewAccountant(orders)
		return err
	}
	cases := []struct {
		name string
		err  error
		want error
	}{
		{"RDP q=0", rdpErr(0, 1, 1, nil), ErrSampleRate},
		{"RDP q>1", rdpErr(1.5, 1, 1, nil), ErrSampleRate},
		{"RDP q=NaN", rdpErr(nan, 1, 1, nil), ErrSampleRate},
		{"RDP sigma=0", rdpErr(0.1, 0, 1, nil), ErrNoise},
		{"RDP sigma<0", rdpErr(0.1, -1, 1, nil), ErrNoise},
		{"RDP sigma=Inf", rdpErr(0.1, inf, 1, nil), ErrNoise},
		{"RDP sigma=NaN", rdpErr(0.1, nan, 1, nil), ErrNoise},
		{"RDP steps=0", rdpErr(0.1, 1, 0, nil), ErrSteps},
		{"RDP order=1", rdpErr(0.1, 1, 1, []float64{1}), ErrOrders},
		{"RDP order=0.5", rdpErr(0.1, 1, 1, []float64{2, 0.5}), ErrOrders},
		{"RDP order=Inf", rdpErr(0.1, 1, 1, []float64{inf}), ErrOrders},
		{"RDP order too large", rdpErr(0.1, 1, 1, []float64{MaxOrder + 1}), ErrOrders},
		{"RDP no orders", rdpErr(0.1, 1, 1, []float64{}), ErrOrders},
		{"Epsilon delta=0", epsErr(0.1, 1, 1, 0), ErrDelta},
		{"Epsilon delta=1", epsErr(0.1, 1, 1, 1), ErrDelta},
		{"Epsilon delta=NaN", epsErr(0.1, 1, 1, nan), ErrDelta},
		{"Epsilon steps<0", epsErr(0.1, 1, -3, 1e-5), ErrSteps},
		{"Epsilon q=0", epsErr(0, 1, 1, 1e-5), ErrSampleRate},
		{"Epsilon sigma=0", epsErr(0.1, 0, 1, 1e-5), ErrNoise},
		{"EpsilonFromRDP negative rdp", convErr([]float64{2}, []float64{-1}, 1e-5), ErrRDP},
		{"EpsilonFromRDP NaN rdp", convErr([]float64{2}, []float64{nan}, 1e-5), ErrRDP},
		{"EpsilonFromRDP delta", convErr([]float64{2}, []float64{1}, 2), ErrDelta},
		{"EpsilonFromRDP order", convErr([]float64{1}, []float64{1}, 1e-5), ErrOrders},
		{"NewAccountant empty", accErr([]float64{}), ErrOrders},
		{"Accountant steps<0", func() error { a, _ := NewAccountant(nil); return a.Compose(0.1, 1, -1) }(), ErrSteps},
		{"Accountant delta", func() error { a, _ := NewAccountant(nil); _, _, err := a.Epsilon(0); return err }(), ErrDelta},
	}
	for _, c := range cases {
		if !errors.Is(c.err, c.want) {
			t.Errorf("%s: got error %v, want %v", c.name, c.err, c.want)
		}
	}
}

func TestEpsilonFromRDPPanicsOnLengthMismatch(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("EpsilonFromRDP with 2 orders and 1 value did not panic")
		}
	}()
	_, _, _ = EpsilonFromRDP([]float64{2, 3}, []float64{1}, 1e-5)
}

func TestDefaultOrders(t *testing.T) {
	o := DefaultOrders()
	if len(o) != 156 || o[0] != 1.1 || o[98] != 10.9 || o[99] != 11 || o[152] != 64 || o[155] != 512 {
		t.Errorf("DefaultOrders: len %d, o[0]=%g o[98]=%g o[99]=%g o[152]=%g o[155]=%g; want 156, 1.1, 10.9, 11, 64, 512",
			len(o), o[0], o[98], o[99], o[152], o[155])
	}
	for i := 1; i < len(o); i++ {
		if !(o[i] > o[i-1]) {
			t.Errorf("DefaultOrders not increasing at %d: %g after %g", i, o[i], o[i-1])
		}
	}
	o[0] = 99
	if DefaultOrders()[0] != 1.1 {
		t.Error("DefaultOrders returned shared storage")
	}
}

func BenchmarkEpsilon(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Epsilon(256.0/60000, 1.1, 14063, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRDPFractional(b *testing.B) {
	orders := []float64{1.1, 1.5, 2.5, 4.5, 8.5}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := RDP(0.01, 1.0, 1, orders); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleEpsilon() {
	// DP-SGD on MNIST: batch 256 of 60000 (Poisson rate q), noise
	// multiplier 1.1, 60 epochs.
	q := 256.0 / 60000
	steps := int(math.Ceil(60 / q))
	eps, order, err := Epsilon(q, 1.1, steps, 1e-5)
	fmt.Printf("%d steps: eps = %.2f at order %g, err %v\n", steps, eps, order, err)
	// Output: 14063 steps: eps = 2.60 at order 8.1, err <nil>
}

func ExampleAccountant() {
	// A client whose data set changes with the task: 2 tasks with
	// different sampling rates, the same noise multiplier.
	acc, err := NewAccountant(nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	_ = acc.Compose(64.0/3000, 1.0, 400) // task 0: 3000 examples, 400 steps
	_ = acc.Compose(64.0/1500, 1.0, 200) // task 1: 1500 examples, 200 steps
	eps, order, err := acc.Epsilon(1e-5)
	fmt.Printf("%d steps: eps = %.3f at order %g, err %v\n", acc.Steps(), eps, order, err)
	// Output: 600 steps: eps = 5.362 at order 4.2, err <nil>
}
