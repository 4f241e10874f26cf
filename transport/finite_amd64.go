//go:build amd64 && !purego

package transport

import "golang.org/x/sys/cpu"

// hasAVX2 selects the AVX2 scan in firstNonFinite (x/sys/cpu reports AVX2
// only when the OS saves its registers).
var hasAVX2 = cpu.X86.HasAVX2

// anyNonFiniteAVX2 reports whether any of the n float32 values at p, n a
// positive multiple of 32, has all exponent bits set (NaN or ±Inf).
//
//go:noescape
func anyNonFiniteAVX2(p *float32, n int) bool
