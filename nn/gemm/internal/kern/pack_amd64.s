//go:build amd64 && !purego

#include "textflag.h"

// Packing routines of the simd backend (AVX2; used by the AVX2 and the
// AVX-512 levels). Declared in pack_amd64.go.

// maskTbl8<> holds 8 all-ones lanes then 8 zero lanes: loading 8 lanes
// from byte offset 4*(8-n) gives a mask of n leading ones.
DATA maskTbl8<>+0(SB)/8, $0xffffffffffffffff
DATA maskTbl8<>+8(SB)/8, $0xffffffffffffffff
DATA maskTbl8<>+16(SB)/8, $0xffffffffffffffff
DATA maskTbl8<>+24(SB)/8, $0xffffffffffffffff
DATA maskTbl8<>+32(SB)/8, $0
DATA maskTbl8<>+40(SB)/8, $0
DATA maskTbl8<>+48(SB)/8, $0
DATA maskTbl8<>+56(SB)/8, $0
GLOBL maskTbl8<>(SB), RODATA|NOPTR, $64

// func TransPanel8(dst *float32, rows *[8]*float32, kb int, dstride int)
//
// dst[p*dstride/4 + r] = rows[r][p] for r < 8, p < kb; kb is a multiple of 8.
TEXT ·TransPanel8(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DX
	MOVQ rows+8(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), DI
	MOVQ 16(AX), R8
	MOVQ 24(AX), R9
	MOVQ 32(AX), R10
	MOVQ 40(AX), R11
	MOVQ 48(AX), R12
	MOVQ 56(AX), R13
	MOVQ kb+16(FP), CX
	SHRQ $3, CX
	JZ   done8
	MOVQ dstride+24(FP), BX
	XORQ AX, AX

loop8:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS (DI)(AX*1), Y1
	VMOVUPS (R8)(AX*1), Y2
	VMOVUPS (R9)(AX*1), Y3
	VMOVUPS (R10)(AX*1), Y4
	VMOVUPS (R11)(AX*1), Y5
	VMOVUPS (R12)(AX*1), Y6
	VMOVUPS (R13)(AX*1), Y7
	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15
	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7
	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15
	VMOVUPS Y8, (DX)
	ADDQ    BX, DX
	VMOVUPS Y9, (DX)
	ADDQ    BX, DX
	VMOVUPS Y10, (DX)
	ADDQ    BX, DX
	VMOVUPS Y11, (DX)
	ADDQ    BX, DX
	VMOVUPS Y12, (DX)
	ADDQ    BX, DX
	VMOVUPS Y13, (DX)
	ADDQ    BX, DX
	VMOVUPS Y14, (DX)
	ADDQ    BX, DX
	VMOVUPS Y15, (DX)
	ADDQ    BX, DX
	ADDQ    $32, AX
	DECQ    CX
	JNZ     loop8

done8:
	VZEROUPPER
	RET

// func TransPanel4(dst *float32, rows *[4]*float32, kb int, dstride int)
//
// dst[p*dstride/4 + r] = rows[r][p] for r < 4, p < kb; kb is a multiple of 8.
TEXT ·TransPanel4(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DX
	MOVQ rows+8(FP), AX
	MOVQ 0(AX), SI
	MOVQ 8(AX), DI
	MOVQ 16(AX), R8
	MOVQ 24(AX), R9
	MOVQ kb+16(FP), CX
	SHRQ $3, CX
	JZ   done4
	MOVQ dstride+24(FP), BX
	XORQ AX, AX

loop4:
	VMOVUPS   (SI)(AX*1), Y0
	VMOVUPS   (DI)(AX*1), Y1
	VMOVUPS   (R8)(AX*1), Y2
	VMOVUPS   (R9)(AX*1), Y3
	VUNPCKLPS Y1, Y0, Y4
	VUNPCKHPS Y1, Y0, Y5
	VUNPCKLPS Y3, Y2, Y6
	VUNPCKHPS Y3, Y2, Y7
	VSHUFPS   $0x44, Y6, Y4, Y0
	VSHUFPS   $0xEE, Y6, Y4, Y1
	VSHUFPS   $0x44, Y7, Y5, Y2
	VSHUFPS   $0xEE, Y7, Y5, Y3
	VMOVUPS   X0, (DX)
	ADDQ      BX, DX
	VMOVUPS   X1, (DX)
	ADDQ      BX, DX
	VMOVUPS   X2, (DX)
	ADDQ      BX, DX
	VMOVUPS   X3, (DX)
	ADDQ      BX, DX
	VEXTRACTF128 $1, Y0, (DX)
	ADDQ      BX, DX
	VEXTRACTF128 $1, Y1, (DX)
	ADDQ      BX, DX
	VEXTRACTF128 $1, Y2, (DX)
	ADDQ      BX, DX
	VEXTRACTF128 $1, Y3, (DX)
	ADDQ      BX, DX
	ADDQ      $32, AX
	DECQ      CX
	JNZ       loop4

done4:
	VZEROUPPER
	RET

// func CopyPanel4(dst, src *float32, ld, k, w, W int)
//
// dst[p*W + j] = src[p*ld + j] for j < w and 0 for w <= j < W, p < k.
// W is a multiple of 4 and w <= W. Lanes past w are never read.
TEXT ·CopyPanel4(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R8
	SHLQ  $2, R8
	MOVQ  k+24(FP), CX
	MOVQ  w+32(FP), R9
	MOVQ  W+40(FP), R10
	SHLQ  $2, R10          // dst row bytes
	TESTQ CX, CX
	JZ    donec
	MOVQ  R9, R11
	SHRQ  $3, R11          // R11: ymm copies
	MOVQ  R9, R12
	ANDQ  $4, R12          // R12: 4 if one xmm copy follows
	MOVQ  R9, BX
	ANDQ  $3, BX           // BX: lanes of the masked xmm copy
	LEAQ  maskTbl8<>(SB), R13
	MOVQ  $8, AX
	SUBQ  BX, AX
	VMOVDQU (R13)(AX*4), X15
	// R13: xmm zero stores = (W - ceil4(w))/4
	LEAQ  3(R9), R13
	ANDQ  $-4, R13
	SHLQ  $2, R13
	NEGQ  R13
	ADDQ  R10, R13
	SHRQ  $4, R13
	VXORPS X14, X14, X14

rowc:
	XORQ  AX, AX
	MOVQ  R11, DX
	TESTQ DX, DX
	JZ    xmmc

ymmc:
	VMOVUPS (SI)(AX*1), Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ  $32, AX
	DECQ  DX
	JNZ   ymmc

xmmc:
	TESTQ R12, R12
	JZ    partc
	VMOVUPS (SI)(AX*1), X0
	VMOVUPS X0, (DI)(AX*1)
	ADDQ  $16, AX

partc:
	TESTQ BX, BX
	JZ    zeroc
	VMASKMOVPS (SI)(AX*1), X15, X0
	VMOVUPS X0, (DI)(AX*1)
	ADDQ  $16, AX

zeroc:
	MOVQ  R13, DX
	TESTQ DX, DX
	JZ    nextc

zloop:
	VMOVUPS X14, (DI)(AX*1)
	ADDQ  $16, AX
	DECQ  DX
	JNZ   zloop

nextc:
	ADDQ  R8, SI
	ADDQ  R10, DI
	DECQ  CX
	JNZ   rowc

donec:
	VZEROUPPER
	RET

// func CopyBlock(dst, src *float32, ld, k, nsl, nr int)
//
// Packs nsl full slivers of nr columns (nr a multiple of 8), reading src
// row by row: dst[s*k*nr + p*nr + j] = src[p*ld + s*nr + j].
TEXT ·CopyBlock(SB), NOSPLIT, $0-48
	MOVQ  dst+0(FP), DI
	MOVQ  src+8(FP), SI
	MOVQ  ld+16(FP), R8
	SHLQ  $2, R8
	MOVQ  k+24(FP), CX
	MOVQ  nsl+32(FP), R9
	MOVQ  nr+40(FP), R10
	SHLQ  $2, R10          // bytes per sliver row
	MOVQ  CX, R11
	IMULQ R10, R11         // bytes per sliver
	TESTQ CX, CX
	JZ    doneb
	TESTQ R9, R9
	JZ    doneb

rowb:
	MOVQ  SI, AX
	MOVQ  DI, BX
	MOVQ  R9, DX

slb:
	XORQ  R12, R12

cpb:
	VMOVUPS (AX)(R12*1), Y0
	VMOVUPS Y0, (BX)(R12*1)
	ADDQ  $32, R12
	CMPQ  R12, R10
	JLT   cpb
	ADDQ  R10, AX
	ADDQ  R11, BX
	DECQ  DX
	JNZ   slb
	ADDQ  R8, SI
	ADDQ  R10, DI
	DECQ  CX
	JNZ   rowb

doneb:
	VZEROUPPER
	RET
