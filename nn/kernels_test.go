package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestReLUKernels(t *testing.T) {
	negZero := float32(math.Copysign(0, -1))
	z := []float32{-1, negZero, 0, 2, -3, 0.5}
	addBiasReLU(z, []float32{0, 0, 0}, 2, 3)
	want := []float32{0, 0, 0, 2, 0, 0.5}
	for i := range z {
		if z[i] != want[i] || math.Signbit(float64(z[i])) {
			t.Errorf("addBiasReLU[%d]: got %v, want %v", i, z[i], want[i])
		}
	}
	dz := []float32{1, 2, 3, 4, 5, 6}
	reluBackward(dz, []float32{0, negZero, 1e-30, 2, float32(math.Inf(1)), 0})
	wantD := []float32{0, 0, 3, 4, 5, 0}
	for i := range dz {
		if dz[i] != wantD[i] {
			t.Errorf("reluBackward[%d]: got %v, want %v", i, dz[i], wantD[i])
		}
	}
}

func TestMaxPoolKernel(t *testing.T) {
	// one 4x4 map with 2 channels, (H,W,C); channel 1 is all ties.
	in := make([]float32, 4*4*2)
	for i := 0; i < 16; i++ {
		in[2*i] = float32((i * 7) % 16)
		in[2*i+1] = 1
	}
	dst := make([]float32, 2*2*2)
	idx := make([]int32, 8)
	maxPool(dst, idx, in, 1, 4, 4, 2, 2)
	// channel 0 at position p = 4y+x is 7p mod 16: the windows hold
	// {0 7 12 3} {14 5 10 1} {8 15 4 11} {6 13 2 9}, maxima at p = 4, 2, 9, 11;
	// channel 1 ties pick the window's first position p = 0, 2, 8, 10.
	wantV := []float32{12, 1, 14, 1, 15, 1, 13, 1}
	wantI := []int32{2 * 4, 2*0 + 1, 2 * 2, 2*2 + 1, 2 * 9, 2*8 + 1, 2 * 11, 2*10 + 1}
	for i := range dst {
		if dst[i] != wantV[i] || idx[i] != wantI[i] {
			t.Errorf("maxPool[%d]: got (%v, %d), want (%v, %d)", i, dst[i], idx[i], wantV[i], wantI[i])
		}
	}
}

// TestDropoutMaskMatchesFloat32Draws checks the integer test against the
// definition: drop when r.Float32() < p.
func TestDropoutMaskMatchesFloat32Draws(t *testing.T) {
	const n = 20000
	for _, p := range []float32{0.1, 0.2, 0.5, 0.75, 1.0 / 3} {
		mask, dst, src := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range src {
			src[i] = float32(i%7) - 3
		}
		dropoutMask(dst, mask, src, p, rand.New(rand.NewPCG(1, 2)))
		r := rand.New(rand.NewPCG(1, 2))
		scale := 1 / (1 - p)
		dropped := 0
		for i := range mask {
			want := scale
			if r.Float32() < p {
				want = 0
				dropped++
			}
			if mask[i] != want || dst[i] != src[i]*want {
				t.Fatalf("p=%v element %d: got mask %v dst %v, want %v and %v", p, i, mask[i], dst[i], want, src[i]*want)
			}
		}
		if frac := float64(dropped) / n; math.Abs(frac-float64(p)) > 0.02 {
			t.Errorf("p=%v: dropped fraction %v", p, frac)
		}
	}
}
