package aggregator

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestSumSquares32 checks the norm the server bounds updates with:
// sqrt(SumSquares32(v)).
func TestSumSquares32(t *testing.T) {
	for _, tc := range []struct {
		name string
		v    []float32
		want float64
	}{
		{"empty", nil, 0},
		{"3-4-5", []float32{3, 4}, 5},
		{"odd length", []float32{1, 1, 1, 1, 1, 1, 1, 1, 1}, 3},
		{"float32 max, no overflow", []float32{math.MaxFloat32, math.MaxFloat32}, math.MaxFloat32 * math.Sqrt2},
	} {
		if got := math.Sqrt(SumSquares32(tc.v)); math.Abs(got-tc.want) > 1e-12*tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		v := []float32{1, 2, 3, bad, 5}
		if n := math.Sqrt(SumSquares32(v)); n <= 1e30 {
			t.Errorf("norm with %v = %v: a finite bound would pass it", bad, n)
		}
	}
}

func BenchmarkSumSquares32(b *testing.B) {
	v := make([]float32, 478410) // the paper MLP's update
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		SumSquares32(v)
	}
}
