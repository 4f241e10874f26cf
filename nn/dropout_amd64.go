//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// dropoutAVX512 reports whether the 8-lane generator can run: it needs
// 64-bit lane multiplies (AVX-512 DQ) and masked 256-bit moves (VL).
var dropoutAVX512 = cpu.X86.HasAVX512F && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512VL

// dropoutJump8 is the generator's step taken 8 times: s_{i+8} = a*s_i + c,
// as a.hi, a.lo, c.hi, c.lo.
var dropoutJump8 = func() [4]uint64 {
	a, c := pcg128{0, 1}, pcg128{} // the identity step
	for range 8 {
		// (a, c) followed by one step: s -> (s*a + c)*mul + inc.
		a = a.mulAdd(pcg128{pcgMulHi, pcgMulLo}, pcg128{})
		c = c.mulAdd(pcg128{pcgMulHi, pcgMulLo}, pcg128{pcgIncHi, pcgIncLo})
	}
	return [4]uint64{a.hi, a.lo, c.hi, c.lo}
}()

// dropoutSIMD runs dropoutMask on the longest multiple of 8 elements with
// AVX-512 and returns how many it did (0 without it), leaving *s at the
// state of the last draw. Lane j of the kernel holds the state of element
// 8b+j and steps 8 draws at a time (dropoutJump8), so every element gets
// the draw the sequential generator gives it.
func dropoutSIMD(dst, mask, src []float32, scale, thr uint32, s *pcg128) int {
	n := len(mask) &^ 7
	if !dropoutAVX512 || n == 0 {
		return 0
	}
	var lanes [16]uint64 // hi of lanes 0-7, then lo
	t := *s
	for j := range 8 {
		t = t.next()
		lanes[j], lanes[8+j] = t.hi, t.lo
	}
	dropoutAVX512Kernel(&dst[0], &mask[0], &src[0], n/8, scale, thr, &lanes, &dropoutJump8)
	*s = pcg128{lanes[7], lanes[15]}
	return n
}

// dropoutAVX512Kernel does blocks blocks of 8 elements of dropoutMask,
// starting from the lane states in lanes (hi of lanes 0-7, then lo), and
// leaves there the states of the last block's 8 draws.
//
//go:noescape
func dropoutAVX512Kernel(dst, mask, src *float32, blocks int, scale, thr uint32, lanes *[16]uint64, jump *[4]uint64)
