package nn

import (
	"math"
	"math/rand/v2"
)

// dropoutMask draws mask[i] = 0 with probability p and 1/(1-p) otherwise
// (inverted dropout) and computes dst[i] = src[i] * mask[i]. Element i is
// dropped when u < p for u = r.Float32(), one draw per element in index
// order. It computes that test without floats or branches: Float32 returns
// k/2^24 with k the low 24 bits of r.Uint32(), and k/2^24 < p exactly
// when k < ceil(p*2^24).
func dropoutMask(dst, mask, src []float32, p float32, r *rand.Rand) {
	scale := math.Float32bits(1 / (1 - p))
	thr := uint32(math.Ceil(float64(p) * (1 << 24)))
	src = src[:len(mask)]
	dst = dst[:len(mask)]
	for i := range mask {
		k := r.Uint32() << 8 >> 8
		keep := (k-thr)>>31 - 1 // k < thr: 1-1 = 0; else 0-1 = all ones
		m := math.Float32frombits(scale & keep)
		mask[i] = m
		dst[i] = src[i] * m
	}
}
