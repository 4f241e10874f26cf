//go:build amd64 && !purego

package gemm

import (
	"sync"

	"golang.org/x/sys/cpu"

	"github.com/fotsim/fotsim/nn/gemm/internal/kern"
)

// levels lists the kernel levels usable on this CPU, best first. The
// AVX-512 kernels use AVX512F only (16-bit masks), and the packing routines
// of both assembly levels AVX2; x/sys/cpu reports a feature only when the
// OS saves its registers.
var levels = sync.OnceValue(func() []*level {
	var ls []*level
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ls = append(ls, avx512Level)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ls = append(ls, avx2Level)
	}
	return append(ls, genericLevel)
})

var avx512Level = &level{
	name:       "avx512",
	mr:         kern.K512MR,
	vw:         16,
	nv:         kern.K512NV,
	micro:      micro512,
	unpackA:    true,
	unpackB:    true,
	maskB:      true,
	dot:        dot512,
	dotMR:      kern.D512MR,
	dotND:      kern.D512ND,
	copyPanel:  copyPanelAsm,
	copyBlock:  copyBlockAsm,
	transPanel: transPanelAsm,
}

var avx2Level = &level{
	name:       "avx2",
	mr:         kern.K256MR,
	vw:         8,
	nv:         kern.K256NV,
	micro:      micro256,
	unpackA:    true,
	unpackB:    true,
	packBRows:  16,
	copyPanel:  copyPanelAsm,
	copyBlock:  copyBlockAsm,
	transPanel: transPanelAsm,
}

func micro512(mr, nv, kc int, a []float32, am, lda int, b []float32, bm, ldb int, c []float32, ldc int, alpha, beta float32, loadC bool, cols int) {
	lc := storeMode(alpha, beta, loadC)
	last := cols - (nv-1)*16
	kern.K512[am][bm][mr-1][nv-1](kc, &a[0], lda, &b[0], ldb, &c[0], ldc, alpha, beta, lc, 1<<last-1)
}

func dot512(mr, nd, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32, loadC bool) {
	lc := storeMode(alpha, beta, loadC)
	kern.D512[mr-1][nd-1](k, &a[0], lda, &b[0], ldb, &c[0], ldc, alpha, beta, lc, 1<<(k%16)-1)
}

func micro256(mr, nv, kc int, a []float32, am, lda int, b []float32, bm, ldb int, c []float32, ldc int, alpha, beta float32, loadC bool, cols int) {
	lc := storeMode(alpha, beta, loadC)
	last := cols - (nv-1)*8
	kern.K256[am][bm][mr-1][nv-1](kc, &a[0], lda, &b[0], ldb, &c[0], ldc, alpha, beta, lc, uint64(last))
}

// storeMode is the loadC argument of the kernels: 0 C = alpha*acc,
// 1 C = alpha*acc + beta*C, 2 C = acc, 3 C = acc + C.
func storeMode(alpha, beta float32, loadC bool) int {
	switch {
	case !loadC && alpha == 1:
		return 2
	case !loadC:
		return 0
	case alpha == 1 && beta == 1:
		return 3
	}
	return 1
}

// copyPanelAsm is copyPanelGo with AVX2 loads and stores when W is a
// multiple of 4.
func copyPanelAsm(dst, src []float32, ld, k, w, W int) {
	if W%4 != 0 || k == 0 {
		copyPanelGo(dst, src, ld, k, w, W)
		return
	}
	_ = dst[k*W-1]
	_ = src[(k-1)*ld+w-1]
	kern.CopyPanel4(&dst[0], &src[0], ld, k, w, W)
}

// copyBlockAsm is copyBlockGo with AVX2 loads and stores when nr is a
// multiple of 8.
func copyBlockAsm(dst, src []float32, ld, k, nsl, nr int) {
	if nr%8 != 0 || k == 0 || nsl == 0 {
		copyBlockGo(dst, src, ld, k, nsl, nr)
		return
	}
	_ = dst[nsl*k*nr-1]
	_ = src[(k-1)*ld+nsl*nr-1]
	kern.CopyBlock(&dst[0], &src[0], ld, k, nsl, nr)
}

// transPanelAsm is transPanelGo with 8x8 (or 4x8) AVX2 transposes for all
// but the last k%8 columns. W must be a multiple of 4.
func transPanelAsm(dst, src []float32, ld, k, w, W int) {
	kf := k &^ 7
	if W%4 != 0 || kf == 0 {
		transPanelGo(dst, src, ld, k, w, W)
		return
	}
	_ = dst[k*W-1]
	for r0 := 0; r0 < W; r0 += 8 {
		if W-r0 >= 8 {
			var rows [8]*float32
			for r := range rows {
				rows[r] = rowPtr(src, ld, r0+r, w, kf)
			}
			kern.TransPanel8(&dst[r0], &rows, kf, 4*W)
		} else {
			var rows [4]*float32
			for r := range rows {
				rows[r] = rowPtr(src, ld, r0+r, w, kf)
			}
			kern.TransPanel4(&dst[r0], &rows, kf, 4*W)
		}
	}
	for p := kf; p < k; p++ {
		d := dst[p*W : p*W+W]
		for r := 0; r < w; r++ {
			d[r] = src[r*ld+p]
		}
		clear(d[w:])
	}
}

// rowPtr returns the start of row r of src (kf elements long) or, for a
// padding row r >= w, the start of zeroRow.
func rowPtr(src []float32, ld, r, w, kf int) *float32 {
	if r >= w {
		return &zeroRow[0]
	}
	_ = src[r*ld+kf-1]
	return &src[r*ld]
}
