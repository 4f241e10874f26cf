package server

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestNorm(t *testing.T) {
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
		if got := norm(tc.v); math.Abs(got-tc.want) > 1e-12*tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		v := []float32{1, 2, 3, bad, 5}
		if n := norm(v); n <= DefaultMaxUpdateNorm {
			t.Errorf("norm with %v = %v: passes the bound", bad, n)
		}
	}
}

func BenchmarkNorm(b *testing.B) {
	v := make([]float32, 478410) // the paper MLP's update
	r := rand.New(rand.NewPCG(1, 2))
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	b.SetBytes(int64(4 * len(v)))
	for b.Loop() {
		norm(v)
	}
}
