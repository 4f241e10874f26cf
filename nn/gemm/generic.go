package gemm

import "github.com/fotsim/fotsim/nn/gemm/internal/kern"

// genericLevel is the pure-Go kernel level: 4x4 tiles of scalar code on
// packed operands. It runs everywhere; it is the simd backend on CPUs and
// architectures without the assembly levels.
var genericLevel = &level{
	name:       "generic",
	mr:         4,
	vw:         4,
	nv:         1,
	micro:      microGo,
	copyPanel:  copyPanelGo,
	copyBlock:  copyBlockGo,
	transPanel: transPanelGo,
}

// microGo is the generic micro-kernel (see level.micro). The packed A
// sliver has stride 4; the packed B sliver has stride nv*4.
func microGo(mr, nv, kc int, a []float32, am, _ int, b []float32, bm, _ int, c []float32, ldc int, alpha, beta float32, loadC bool, cols int) {
	if am != kern.APacked || bm != kern.BPacked {
		panic("gemm: generic kernel needs packed operands")
	}
	if mr == 4 && nv == 1 && cols == 4 {
		if fewFPRegs {
			micro4x4Narrow(kc, a, b, c, ldc, alpha, beta, loadC)
		} else {
			micro4x4Wide(kc, a, b, c, ldc, alpha, beta, loadC)
		}
		return
	}
	nrs := nv * 4
	var acc [4 * 4]float32
	for p := 0; p < kc; p++ {
		ap := a[p*4 : p*4+mr]
		bp := b[p*nrs : p*nrs+cols]
		for i, av := range ap {
			row := acc[i*4 : i*4+cols]
			for j, bv := range bp {
				row[j] += av * bv
			}
		}
	}
	storeTile(c, ldc, &acc, mr, cols, alpha, beta, loadC)
}

// storeTile writes the rows x cols tile acc (stride 4) to c:
// c[i*ldc+j] = alpha*acc[i*4+j] (+ beta*c[i*ldc+j] when loadC).
func storeTile(c []float32, ldc int, acc *[16]float32, rows, cols int, alpha, beta float32, loadC bool) {
	for i := 0; i < rows; i++ {
		cr := c[i*ldc : i*ldc+cols]
		for j := range cr {
			v := alpha * acc[i*4+j]
			if loadC {
				v += beta * cr[j]
			}
			cr[j] = v
		}
	}
}

// micro4x4Wide is the full-tile case of microGo for targets with 32
// floating-point registers (arm64 and most others), with the 16 accumulators in
// locals so the compiler can keep them in registers (on arm64 it compiles
// to fused multiply-adds with no spills).
func micro4x4Wide(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	var c00, c01, c02, c03, c10, c11, c12, c13 float32
	var c20, c21, c22, c23, c30, c31, c32, c33 float32
	a = a[:kc*4]
	b = b[:kc*4]
	for len(a) >= 4 && len(b) >= 4 {
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		a0 := a[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := a[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		a2 := a[2]
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		a3 := a[3]
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
		a, b = a[4:], b[4:]
	}
	acc := [16]float32{c00, c01, c02, c03, c10, c11, c12, c13, c20, c21, c22, c23, c30, c31, c32, c33}
	storeTile(c, ldc, &acc, 4, 4, alpha, beta, loadC)
}

// micro4x4Narrow is the full-tile case of microGo for targets with 16 or fewer
// floating-point registers (only the purego build or CPUs without AVX2
// use it): two passes of 2x4 tiles, whose 8 accumulators, 2 A and 4 B
// values fit in registers.
func micro4x4Narrow(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool) {
	var acc [16]float32
	for r := 0; r < 4; r += 2 {
		var c00, c01, c02, c03, c10, c11, c12, c13 float32
		ap := a[:kc*4]
		bp := b[:kc*4]
		for len(ap) >= 4 && len(bp) >= 4 {
			b0, b1, b2, b3 := bp[0], bp[1], bp[2], bp[3]
			a0, a1 := ap[r], ap[r+1]
			c00 += a0 * b0
			c01 += a0 * b1
			c02 += a0 * b2
			c03 += a0 * b3
			c10 += a1 * b0
			c11 += a1 * b1
			c12 += a1 * b2
			c13 += a1 * b3
			ap, bp = ap[4:], bp[4:]
		}
		acc[r*4+0], acc[r*4+1], acc[r*4+2], acc[r*4+3] = c00, c01, c02, c03
		acc[r*4+4], acc[r*4+5], acc[r*4+6], acc[r*4+7] = c10, c11, c12, c13
	}
	storeTile(c, ldc, &acc, 4, 4, alpha, beta, loadC)
}

// copyPanelGo sets dst[p*W+j] = src[p*ld+j] for j < w and 0 for w <= j < W.
func copyPanelGo(dst, src []float32, ld, k, w, W int) {
	for p := 0; p < k; p++ {
		d := dst[p*W : p*W+W]
		copy(d[:w], src[p*ld:p*ld+w])
		clear(d[w:])
	}
}

// copyBlockGo packs nsl full slivers of nr columns:
// dst[s*k*nr+p*nr+j] = src[p*ld+s*nr+j].
func copyBlockGo(dst, src []float32, ld, k, nsl, nr int) {
	for s := 0; s < nsl; s++ {
		copyPanelGo(dst[s*k*nr:], src[s*nr:], ld, k, nr, nr)
	}
}

// transPanelGo sets dst[p*W+r] = src[r*ld+p] for r < w and 0 for w <= r < W.
func transPanelGo(dst, src []float32, ld, k, w, W int) {
	for r := 0; r < w; r++ {
		s := src[r*ld : r*ld+k]
		for p, v := range s {
			dst[p*W+r] = v
		}
	}
	for p := 0; p < k; p++ {
		clear(dst[p*W+w : p*W+W])
	}
}
