package dp

import (
	"errors"
	"fmt"
	"math"
	"testing"
)

// Named tolerances of the calibration tests.
const (
	tolTarget   = 0.01 // the brief's contract: 0.99 target <= eps(sigma) <= target
	tolOpacus   = 3e-3 // relative, sigma against Opacus's get_noise_multiplier (its own 0.01 eps tolerance)
	sigmaMargin = 0.99 // 1% less noise must overshoot the target
)

func TestCalibrateSigmaHitsTarget(t *testing.T) {
	cases := []struct {
		q      float64
		steps  int
		target float64
		delta  float64
	}{
		{0.04, 2250, 8, 1e-5},
		{0.04, 2000, 8, 1e-5},
		{256.0 / 60000, 14063, 3, 1e-5},
		{0.01, 1000, 1, 1e-5},
		{0.01, 100, 0.5, 1e-5},
		{0.1, 50, 2, 1e-5},
		{0.05, 10000, 0.3, 1e-6},
		{1, 1, 1, 1e-5},
		{1, 100, 10, 1e-5},
		{0.001, 100000, 6, 1e-5},
		{0.3, 30, 4, 1e-3},
		{0.02, 500, 50, 1e-5}, // sigma < 1: the halving branch
		{0.5, 10, 2, 1e-5},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("q=%g/T=%d/eps=%g/delta=%g", c.q, c.steps, c.target, c.delta), func(t *testing.T) {
			sigma, err := CalibrateSigma(c.q, c.steps, c.target, c.delta)
			if err != nil {
				t.Fatal(err)
			}
			eps, _, err := Epsilon(c.q, sigma, c.steps, c.delta)
			if err != nil {
				t.Fatal(err)
			}
			if !(eps <= c.target && eps >= (1-tolTarget)*c.target) {
				t.Errorf("sigma = %g gives eps = %.6g, want in [%.6g, %g]", sigma, eps, (1-tolTarget)*c.target, c.target)
			}
			if !(eps >= (1-CalibrateTol)*c.target) {
				t.Errorf("sigma = %g gives eps = %.6g, want >= (1-CalibrateTol) target = %.6g", sigma, eps, (1-CalibrateTol)*c.target)
			}
			// Not wastefully noisy: 1% less noise must exceed the target.
			if e, _, _ := Epsilon(c.q, sigmaMargin*sigma, c.steps, c.delta); !(e > c.target) {
				t.Errorf("sigma*%g = %g gives eps = %.6g, want > target %g (sigma not minimal)", sigmaMargin, sigmaMargin*sigma, e, c.target)
			}
			again, _ := CalibrateSigma(c.q, c.steps, c.target, c.delta)
			if again != sigma {
				t.Errorf("second call returned %v, want %v (deterministic)", again, sigma)
			}
		})
	}
}

// TestCalibrateSigmaMatchesOpacus compares with Opacus's
// get_noise_multiplier (accountants_test.py: q 0.04, eps 8, delta 1e-5:
// 1.416 over int(90/0.04) steps, 1.3562 over 2000 steps), which stops
// within 0.01 of the target epsilon on a nearly identical order grid.
func TestCalibrateSigmaMatchesOpacus(t *testing.T) {
	for _, c := range []struct {
		steps int
		want  float64
	}{{int(90 / 0.04), 1.416}, {2000, 1.3562}} {
		sigma, err := CalibrateSigma(0.04, c.steps, 8, 1e-5)
		if err != nil {
			t.Fatal(err)
		}
		if e := relErr(sigma, c.want); e > tolOpacus {
			t.Errorf("%d steps: sigma = %.5f, want %.5f (Opacus) within %g relative (got %.2g)", c.steps, sigma, c.want, tolOpacus, e)
		}
	}
}

func TestCalibrateSigmaErrors(t *testing.T) {
	cases := []struct {
		name          string
		q             float64
		steps         int
		target, delta float64
		want          error
	}{
		{"q=0", 0, 10, 1, 1e-5, ErrSampleRate},
		{"q>1", 2, 10, 1, 1e-5, ErrSampleRate},
		{"steps=0", 0.1, 0, 1, 1e-5, ErrSteps},
		{"delta=0", 0.1, 10, 1, 0, ErrDelta},
		{"delta=1", 0.1, 10, 1, 1, ErrDelta},
		{"target=0", 0.1, 10, 0, 1e-5, ErrEpsilon},
		{"target<0", 0.1, 10, -1, 1e-5, ErrEpsilon},
		{"target=Inf", 0.1, 10, math.Inf(1), 1e-5, ErrEpsilon},
		{"target=NaN", 0.1, 10, math.NaN(), 1e-5, ErrEpsilon},
		{"below conversion floor", 0.1, 10, 0.005, 1e-5, ErrUnreachable},
		{"needs sigma > MaxSigma", 1, 1 << 30, 0.01, 1e-5, ErrUnreachable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sigma, err := CalibrateSigma(c.q, c.steps, c.target, c.delta)
			if !errors.Is(err, c.want) {
				t.Errorf("got (%g, %v), want error %v", sigma, err, c.want)
			}
		})
	}
}

func BenchmarkCalibrateSigma(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CalibrateSigma(256.0/60000, 14063, 3, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleCalibrateSigma() {
	// A FedSVD client: 2000 examples, expected batch 64, 300 steps over
	// the run, target (4, 1e-5)-DP.
	q := 64.0 / 2000
	sigma, err := CalibrateSigma(q, 300, 4, 1e-5)
	if err != nil {
		fmt.Println(err)
		return
	}
	eps, _, _ := Epsilon(q, sigma, 300, 1e-5)
	fmt.Printf("sigma = %.3f spends eps = %.3f\n", sigma, eps)
	// Output: sigma = 1.009 spends eps = 3.997
}
