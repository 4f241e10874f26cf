package data

import (
	"math"
	"slices"
	"testing"
)

// nearestCentroidAccuracy fits class means on train and returns the test
// accuracy of the nearest-mean rule: a quick proxy for "learnable".
func nearestCentroidAccuracy(train, test *Dataset) float64 {
	dim := train.Dim()
	mu := make([]float64, train.Classes*dim)
	cnt := make([]float64, train.Classes)
	for i, y := range train.Y {
		cnt[y]++
		for j, x := range train.X[i*dim : (i+1)*dim] {
			mu[int(y)*dim+j] += float64(x)
		}
	}
	for k := range cnt {
		for j := 0; j < dim; j++ {
			mu[k*dim+j] /= max(cnt[k], 1)
		}
	}
	correct := 0
	for i, y := range test.Y {
		best, bestD := -1, math.Inf(1)
		for k := 0; k < test.Classes; k++ {
			d := 0.0
			for j, x := range test.X[i*dim : (i+1)*dim] {
				e := float64(x) - mu[k*dim+j]
				d += e * e
			}
			if d < bestD {
				best, bestD = k, d
			}
		}
		if int32(best) == y {
			correct++
		}
	}
	return float64(correct) / float64(test.Len())
}

// Bounds that make the default synthetic problem "learnable but not
// trivial" for the nearest-class-mean rule, and the tolerance on the
// per-feature moments.
const (
	synthMinAcc    = 0.60
	synthMaxAcc    = 0.97
	synthMomentTol = 0.1
)

func TestSyntheticDefault(t *testing.T) {
	train, test := Synthetic(SyntheticConfig{}, 42)
	def := DefaultSyntheticConfig()
	if train.Len() != def.Train || test.Len() != def.Test || train.Shape != def.Shape || train.Classes != def.Classes {
		t.Fatalf("got %d/%d samples of %v, %d classes; want the defaults %+v", train.Len(), test.Len(), train.Shape, train.Classes, def)
	}
	if err := train.check(); err != nil {
		t.Fatal(err)
	}
	acc := nearestCentroidAccuracy(train, test)
	if acc < synthMinAcc || acc > synthMaxAcc {
		t.Errorf("nearest-centroid test accuracy: got %.3f, want in [%v, %v]", acc, synthMinAcc, synthMaxAcc)
	}
	t.Logf("nearest-centroid test accuracy %.3f", acc)
	var s, ss float64
	for _, x := range train.X {
		s += float64(x)
		ss += float64(x) * float64(x)
	}
	n := float64(len(train.X))
	if mean, v := s/n, ss/n-(s/n)*(s/n); math.Abs(mean) > synthMomentTol || math.Abs(v-1) > synthMomentTol {
		t.Errorf("feature mean, variance: got %.3f, %.3f, want 0, 1 +- %v", mean, v, synthMomentTol)
	}
}

func TestSyntheticDeterministicAndBalanced(t *testing.T) {
	cfg := SyntheticConfig{Train: 105, Test: 33, Shape: [3]int{3, 4, 5}, Classes: 7, Noise: 0.5}
	a, at := Synthetic(cfg, 9)
	b, bt := Synthetic(cfg, 9)
	c, _ := Synthetic(cfg, 10)
	if !slices.Equal(a.X, b.X) || !slices.Equal(a.Y, b.Y) || !slices.Equal(at.X, bt.X) {
		t.Error("same seed gave different data")
	}
	if slices.Equal(a.X, c.X) {
		t.Error("different seeds gave the same data")
	}
	if a.Dim() != 60 || len(a.X) != 105*60 {
		t.Errorf("got dim %d, len(X) %d, want 60, %d", a.Dim(), len(a.X), 105*60)
	}
	hist := make([]int, cfg.Classes)
	for _, y := range a.Y {
		hist[y]++
	}
	for k, h := range hist {
		if h != 15 {
			t.Errorf("class %d: got %d samples, want 15", k, h)
		}
	}
	if slices.IsSorted(a.Y) {
		t.Error("labels are sorted, want them shuffled")
	}
}

func TestSyntheticValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  SyntheticConfig
		ok   bool
	}{
		{"zero = defaults", SyntheticConfig{}, true},
		{"negative train", SyntheticConfig{Train: -1}, false},
		{"bad shape", SyntheticConfig{Shape: [3]int{1, 0, 4}}, false},
		{"negative classes", SyntheticConfig{Classes: -2}, false},
		{"negative noise", SyntheticConfig{Noise: -1}, false},
		{"nan noise", SyntheticConfig{Noise: math.NaN()}, false},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Synthetic with an invalid config did not panic")
		}
	}()
	Synthetic(SyntheticConfig{Train: -1}, 1)
}
