package nn

import (
	"encoding/binary"
	"math"
	"math/bits"
	"math/rand/v2"
)

// dropoutMask draws mask[i] = 0 with probability p and 1/(1-p) otherwise
// (inverted dropout) and computes dst[i] = src[i] * mask[i]. Element i is
// dropped when u < p for u = k/2^24, k the low 24 bits of the high half of
// r.Uint64() (what rand.Rand.Float32 returns for the same draw), one draw
// per element in index order. It computes that test without floats or
// branches: k/2^24 < p exactly when k < ceil(p*2^24).
//
// When r is a *rand.PCG (the training paths pass one), the generator is
// run here with math/rand/v2's PCG-DXSM arithmetic instead of through the
// interface, and 8 consecutive draws at a time with AVX-512 where the CPU
// has it; r's stream and every mask are exactly those of the plain loop
// (TestDropoutMaskPCGMatchesSource).
func dropoutMask(dst, mask, src []float32, p float32, r rand.Source) {
	scale := math.Float32bits(1 / (1 - p))
	thr := uint32(math.Ceil(float64(p) * (1 << 24)))
	src = src[:len(mask)]
	dst = dst[:len(mask)]
	pcg, ok := r.(*rand.PCG)
	if !ok {
		for i := range mask {
			mask[i], dst[i] = dropOne(src[i], r.Uint64(), scale, thr)
		}
		return
	}
	s := pcgState(pcg)
	i := dropoutSIMD(dst, mask, src, scale, thr, &s)
	for ; i < len(mask); i++ {
		s = s.next()
		mask[i], dst[i] = dropOne(src[i], s.output(), scale, thr)
	}
	setPCGState(pcg, s)
}

// dropOne is one element of dropoutMask for the draw u.
func dropOne(src float32, u uint64, scale, thr uint32) (mask, dst float32) {
	k := uint32(u>>32) << 8 >> 8
	keep := (k-thr)>>31 - 1 // k < thr: 1-1 = 0; else 0-1 = all ones
	m := math.Float32frombits(scale & keep)
	return m, src * m
}

// pcg128 is the 128-bit state of a math/rand/v2 PCG, with its step and
// output function written out (the same arithmetic as rand.PCG's).
type pcg128 struct{ hi, lo uint64 }

// PCG's LCG: state = state*mul + inc (mod 2^128).
const (
	pcgMulHi = 2549297995355413924
	pcgMulLo = 4865540595714422341
	pcgIncHi = 6364136223846793005
	pcgIncLo = 1442695040888963407
)

// mulAdd returns s*a + c (mod 2^128).
func (s pcg128) mulAdd(a, c pcg128) pcg128 {
	hi, lo := bits.Mul64(s.lo, a.lo)
	hi += s.hi*a.lo + s.lo*a.hi
	lo, carry := bits.Add64(lo, c.lo, 0)
	hi, _ = bits.Add64(hi, c.hi, carry)
	return pcg128{hi, lo}
}

// next is one step of the generator.
func (s pcg128) next() pcg128 {
	return s.mulAdd(pcg128{pcgMulHi, pcgMulLo}, pcg128{pcgIncHi, pcgIncLo})
}

// output is PCG-DXSM's output for the state s (rand.PCG.Uint64 returns it
// for the state after its step).
func (s pcg128) output() uint64 {
	const cheapMul = 0xda942042e4dd58b5
	hi := s.hi
	hi ^= hi >> 32
	hi *= cheapMul
	hi ^= hi >> 48
	hi *= s.lo | 1
	return hi
}

// pcgState reads p's state through its binary form ("pcg:", hi, lo, big
// endian), without allocating.
func pcgState(p *rand.PCG) pcg128 {
	var buf [20]byte
	b, _ := p.AppendBinary(buf[:0]) // never fails
	return pcg128{binary.BigEndian.Uint64(b[4:]), binary.BigEndian.Uint64(b[12:])}
}

// setPCGState sets p's state to s.
func setPCGState(p *rand.PCG, s pcg128) {
	var b [20]byte
	copy(b[:], "pcg:")
	binary.BigEndian.PutUint64(b[4:], s.hi)
	binary.BigEndian.PutUint64(b[12:], s.lo)
	if err := p.UnmarshalBinary(b[:]); err != nil {
		panic("nn: " + err.Error()) // the format above is rand.PCG's own
	}
}
