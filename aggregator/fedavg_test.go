package aggregator

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestMean(t *testing.T) {
	ups := []Update{
		{Client: 0, N: 1, Delta: []float32{1, 0, 2}},
		{Client: 3, N: 3, Delta: []float32{3, 4, -2}},
	}
	tests := []struct {
		name string
		w    Weighting
		want []float32
	}{
		{"uniform", Uniform, []float32{2, 2, 0}},
		{"samples", Samples, []float32{2.5, 3, -1}},
	}
	const tol = 1e-6
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]float32, 3)
			Mean(got, ups, tc.w)
			for i := range got {
				if math.Abs(float64(got[i]-tc.want[i])) > tol {
					t.Errorf("dst[%d]: got %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

// TestMeanMatchesSequentialSum checks Mean bit for bit against the plain
// float64 sum over updates in order, for update counts around the unrolled
// pass's width and lengths around the block size.
func TestMeanMatchesSequentialSum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, k := range []int{1, 3, 4, 5, 8, 9, 64} {
		for _, n := range []int{1, 7, 1023, 1024, 1025, 3000} {
			for _, w := range []Weighting{Uniform, Samples} {
				ups := make([]Update, k)
				for j := range ups {
					d := make([]float32, n)
					for i := range d {
						d[i] = float32(r.NormFloat64())
					}
					ups[j] = Update{Client: j, N: int64(1 + r.IntN(500)), Delta: d}
				}
				c := Weights(nil, ups, w)
				got := make([]float32, n)
				Mean(got, ups, w)
				for i := range got {
					var want float64
					for j, u := range ups {
						want += c[j] * float64(u.Delta[i])
					}
					if got[i] != float32(want) {
						t.Fatalf("%d updates of %d values, %v: dst[%d] = %v, want %v", k, n, w, i, got[i], float32(want))
					}
				}
			}
		}
	}
}

func TestMeanSamplesAllZeroFallsBackToUniform(t *testing.T) {
	ups := []Update{{N: 0, Delta: []float32{2}}, {N: 0, Delta: []float32{4}}}
	got := []float32{0}
	Mean(got, ups, Samples)
	if got[0] != 3 {
		t.Errorf("got %v, want 3", got[0])
	}
}

func TestMeanEmptyZeroes(t *testing.T) {
	got := []float32{5, 6}
	Mean(got, nil, Uniform)
	if got[0] != 0 || got[1] != 0 {
		t.Errorf("got %v, want zeros", got)
	}
}

func TestMeanLengthMismatchPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("no panic on length mismatch")
		}
	}()
	Mean(make([]float32, 2), []Update{{Delta: []float32{1}}}, Uniform)
}

func TestApplyAndParse(t *testing.T) {
	p := []float32{1, 1}
	Apply(p, []float32{2, -4}, 0.5)
	if p[0] != 2 || p[1] != -1 {
		t.Errorf("got %v, want [2 -1]", p)
	}
	for _, tc := range []struct {
		in   string
		want Weighting
		ok   bool
	}{{"uniform", Uniform, true}, {"samples", Samples, true}, {"median", 0, false}} {
		w, err := ParseWeighting(tc.in)
		if (err == nil) != tc.ok || (tc.ok && w != tc.want) {
			t.Errorf("ParseWeighting(%q) = %v, %v", tc.in, w, err)
		}
	}
}

func BenchmarkMeanPaperMLP64(b *testing.B) {
	const n = 478410
	ups := make([]Update, 64)
	for k := range ups {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(i%7) * 0.01
		}
		ups[k] = Update{Client: k, N: 480, Delta: d}
	}
	dst := make([]float32, n)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Mean(dst, ups, Uniform)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rounds/s")
}
