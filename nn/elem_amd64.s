//go:build amd64 && !purego

#include "textflag.h"

// The element-wise kernels of kernels.go. Each value gets exactly the
// operation of the Go loop, in the same operand order (a single VADDPS,
// VMULPS or VADDPD rounding; no FMA), so the results have the same bits.

// func addBiasAVX2(z, b *float32, rows, cols int)
//
// z[i][j] += b[j] for rows >= 1 rows of cols >= 8 columns. Per row: 32
// columns per step, then 8 at a time; when cols is not a multiple of 8
// the last 8 columns are computed first, from the row as it was, and
// stored last (the columns they share with the previous step get the
// same value twice).
TEXT ·addBiasAVX2(SB), NOSPLIT, $0-32
	MOVQ z+0(FP), DI
	MOVQ b+8(FP), SI
	MOVQ rows+16(FP), DX
	MOVQ cols+24(FP), CX
	LEAQ (CX*4), R8  // row stride in bytes
	LEAQ -32(R8), R9 // offset of the last 8 columns
	MOVQ CX, R10
	SHRQ $5, R10     // steps of 32 columns
	MOVQ CX, R11
	ANDQ $24, R11
	SHRQ $3, R11     // then steps of 8
	MOVQ CX, R12
	ANDQ $7, R12     // != 0: an overlapping last 8

abrow:
	TESTQ  R12, R12
	JZ     abmain
	VMOVUPS (DI)(R9*1), Y8
	VADDPS  (SI)(R9*1), Y8, Y8

abmain:
	XORQ  AX, AX
	MOVQ  R10, BX
	TESTQ BX, BX
	JZ    ab8

ab32:
	VMOVUPS (DI)(AX*1), Y0
	VMOVUPS 32(DI)(AX*1), Y1
	VMOVUPS 64(DI)(AX*1), Y2
	VMOVUPS 96(DI)(AX*1), Y3
	VADDPS  (SI)(AX*1), Y0, Y0
	VADDPS  32(SI)(AX*1), Y1, Y1
	VADDPS  64(SI)(AX*1), Y2, Y2
	VADDPS  96(SI)(AX*1), Y3, Y3
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ    $128, AX
	DECQ    BX
	JNZ     ab32

ab8:
	MOVQ  R11, BX
	TESTQ BX, BX
	JZ    abtail

ab8loop:
	VMOVUPS (DI)(AX*1), Y0
	VADDPS  (SI)(AX*1), Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    BX
	JNZ     ab8loop

abtail:
	TESTQ   R12, R12
	JZ      abnext
	VMOVUPS Y8, (DI)(R9*1)

abnext:
	ADDQ R8, DI
	DECQ DX
	JNZ  abrow
	VZEROUPPER
	RET

// func addBiasReLUAVX2(z, b *float32, rows, cols int)
//
// z[i][j] = max(z[i][j] + b[j], 0) with the rows and columns of
// addBiasAVX2. Go's max keeps NaN and gives +0 for max(-0, 0): VMAXPS with
// first source 0 and second source x gives 0 > x ? 0 : x, which is x for a
// NaN x and -0 for x = -0; adding +0 then turns -0 into +0 and leaves
// every other value (NaN included) as it is.
TEXT ·addBiasReLUAVX2(SB), NOSPLIT, $0-32
	MOVQ  z+0(FP), DI
	MOVQ  b+8(FP), SI
	MOVQ  rows+16(FP), DX
	MOVQ  cols+24(FP), CX
	VXORPS Y15, Y15, Y15 // +0
	LEAQ  (CX*4), R8
	LEAQ  -32(R8), R9
	MOVQ  CX, R10
	SHRQ  $5, R10
	MOVQ  CX, R11
	ANDQ  $24, R11
	SHRQ  $3, R11
	MOVQ  CX, R12
	ANDQ  $7, R12

rrow:
	TESTQ  R12, R12
	JZ     rmain
	VMOVUPS (DI)(R9*1), Y8
	VADDPS  (SI)(R9*1), Y8, Y8
	VMAXPS  Y8, Y15, Y8
	VADDPS  Y15, Y8, Y8

rmain:
	XORQ  AX, AX
	MOVQ  R10, BX
	TESTQ BX, BX
	JZ    r8

r32:
	VMOVUPS (DI)(AX*1), Y0
	VMOVUPS 32(DI)(AX*1), Y1
	VMOVUPS 64(DI)(AX*1), Y2
	VMOVUPS 96(DI)(AX*1), Y3
	VADDPS  (SI)(AX*1), Y0, Y0
	VADDPS  32(SI)(AX*1), Y1, Y1
	VADDPS  64(SI)(AX*1), Y2, Y2
	VADDPS  96(SI)(AX*1), Y3, Y3
	VMAXPS  Y0, Y15, Y0
	VMAXPS  Y1, Y15, Y1
	VMAXPS  Y2, Y15, Y2
	VMAXPS  Y3, Y15, Y3
	VADDPS  Y15, Y0, Y0
	VADDPS  Y15, Y1, Y1
	VADDPS  Y15, Y2, Y2
	VADDPS  Y15, Y3, Y3
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ    $128, AX
	DECQ    BX
	JNZ     r32

r8:
	MOVQ  R11, BX
	TESTQ BX, BX
	JZ    rtail

r8loop:
	VMOVUPS (DI)(AX*1), Y0
	VADDPS  (SI)(AX*1), Y0, Y0
	VMAXPS  Y0, Y15, Y0
	VADDPS  Y15, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	DECQ    BX
	JNZ     r8loop

rtail:
	TESTQ   R12, R12
	JZ      rnext
	VMOVUPS Y8, (DI)(R9*1)

rnext:
	ADDQ R8, DI
	DECQ DX
	JNZ  rrow
	VZEROUPPER
	RET

// func reluBackwardAVX2(dz, a *float32, n int)
//
// dz[i] &= (int32(bits(a[i])) > 0 ? all ones : 0) for i < n (n a multiple
// of 8): VPCMPGTD against 0, then VPAND.
TEXT ·reluBackwardAVX2(SB), NOSPLIT, $0-24
	MOVQ  dz+0(FP), DI
	MOVQ  a+8(FP), SI
	MOVQ  n+16(FP), CX
	VPXOR Y15, Y15, Y15
	MOVQ  CX, BX
	SHRQ  $5, BX
	JZ    rb8

rb32:
	VMOVDQU  (SI), Y0
	VMOVDQU  32(SI), Y1
	VMOVDQU  64(SI), Y2
	VMOVDQU  96(SI), Y3
	VPCMPGTD Y15, Y0, Y0 // a > 0 as int32
	VPCMPGTD Y15, Y1, Y1
	VPCMPGTD Y15, Y2, Y2
	VPCMPGTD Y15, Y3, Y3
	VPAND    (DI), Y0, Y0
	VPAND    32(DI), Y1, Y1
	VPAND    64(DI), Y2, Y2
	VPAND    96(DI), Y3, Y3
	VMOVDQU  Y0, (DI)
	VMOVDQU  Y1, 32(DI)
	VMOVDQU  Y2, 64(DI)
	VMOVDQU  Y3, 96(DI)
	ADDQ     $128, DI
	ADDQ     $128, SI
	DECQ     BX
	JNZ      rb32

rb8:
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   rbdone

rb8loop:
	VMOVDQU  (SI), Y0
	VPCMPGTD Y15, Y0, Y0
	VPAND    (DI), Y0, Y0
	VMOVDQU  Y0, (DI)
	ADDQ     $32, DI
	ADDQ     $32, SI
	DECQ     CX
	JNZ      rb8loop

rbdone:
	VZEROUPPER
	RET

// func mulInPlaceAVX2(d, m *float32, n int)
//
// d[i] *= m[i] for i < n (n a multiple of 8).
TEXT ·mulInPlaceAVX2(SB), NOSPLIT, $0-24
	MOVQ d+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ CX, BX
	SHRQ $5, BX
	JZ   mu8

mu32:
	VMOVUPS (DI), Y0
	VMOVUPS 32(DI), Y1
	VMOVUPS 64(DI), Y2
	VMOVUPS 96(DI), Y3
	VMULPS  (SI), Y0, Y0
	VMULPS  32(SI), Y1, Y1
	VMULPS  64(SI), Y2, Y2
	VMULPS  96(SI), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, DI
	ADDQ    $128, SI
	DECQ    BX
	JNZ     mu32

mu8:
	ANDQ $31, CX
	SHRQ $3, CX
	JZ   mudone

mu8loop:
	VMOVUPS (DI), Y0
	VMULPS  (SI), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     mu8loop

mudone:
	VZEROUPPER
	RET

// func colSumAddAVX2(acc *float64, m *float32, rows, cols, c int)
//
// acc[j] += float64(m[i][j]) for every row i in order and every column
// j < c (c a multiple of 4): 32 columns at a time in 8 float64
// accumulators (VCVTPS2PD, then VADDPD per row), then 16, 8 and 4.
TEXT ·colSumAddAVX2(SB), NOSPLIT, $0-40
	MOVQ acc+0(FP), DI
	MOVQ m+8(FP), SI
	MOVQ rows+16(FP), DX
	MOVQ cols+24(FP), CX
	MOVQ c+32(FP), R11
	LEAQ (CX*4), R8 // row stride in bytes
	MOVQ R11, R10
	SHRQ $5, R10
	JZ   cs16

cs32:
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	VMOVUPD 128(DI), Y4
	VMOVUPD 160(DI), Y5
	VMOVUPD 192(DI), Y6
	VMOVUPD 224(DI), Y7
	MOVQ    SI, AX
	MOVQ    DX, BX

cs32row:
	VCVTPS2PD (AX), Y8
	VCVTPS2PD 16(AX), Y9
	VCVTPS2PD 32(AX), Y10
	VCVTPS2PD 48(AX), Y11
	VCVTPS2PD 64(AX), Y12
	VCVTPS2PD 80(AX), Y13
	VCVTPS2PD 96(AX), Y14
	VCVTPS2PD 112(AX), Y15
	VADDPD    Y8, Y0, Y0
	VADDPD    Y9, Y1, Y1
	VADDPD    Y10, Y2, Y2
	VADDPD    Y11, Y3, Y3
	VADDPD    Y12, Y4, Y4
	VADDPD    Y13, Y5, Y5
	VADDPD    Y14, Y6, Y6
	VADDPD    Y15, Y7, Y7
	ADDQ      R8, AX
	DECQ      BX
	JNZ       cs32row
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	VMOVUPD   Y2, 64(DI)
	VMOVUPD   Y3, 96(DI)
	VMOVUPD   Y4, 128(DI)
	VMOVUPD   Y5, 160(DI)
	VMOVUPD   Y6, 192(DI)
	VMOVUPD   Y7, 224(DI)
	ADDQ      $256, DI
	ADDQ      $128, SI
	DECQ      R10
	JNZ       cs32

cs16:
	TESTQ   $16, R11
	JZ      cs8
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	VMOVUPD 64(DI), Y2
	VMOVUPD 96(DI), Y3
	MOVQ    SI, AX
	MOVQ    DX, BX

cs16row:
	VCVTPS2PD (AX), Y8
	VCVTPS2PD 16(AX), Y9
	VCVTPS2PD 32(AX), Y10
	VCVTPS2PD 48(AX), Y11
	VADDPD    Y8, Y0, Y0
	VADDPD    Y9, Y1, Y1
	VADDPD    Y10, Y2, Y2
	VADDPD    Y11, Y3, Y3
	ADDQ      R8, AX
	DECQ      BX
	JNZ       cs16row
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	VMOVUPD   Y2, 64(DI)
	VMOVUPD   Y3, 96(DI)
	ADDQ      $128, DI
	ADDQ      $64, SI

cs8:
	TESTQ   $8, R11
	JZ      cs4
	VMOVUPD (DI), Y0
	VMOVUPD 32(DI), Y1
	MOVQ    SI, AX
	MOVQ    DX, BX

cs8row:
	VCVTPS2PD (AX), Y8
	VCVTPS2PD 16(AX), Y9
	VADDPD    Y8, Y0, Y0
	VADDPD    Y9, Y1, Y1
	ADDQ      R8, AX
	DECQ      BX
	JNZ       cs8row
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	ADDQ      $64, DI
	ADDQ      $32, SI

cs4:
	TESTQ   $4, R11
	JZ      csdone
	VMOVUPD (DI), Y0
	MOVQ    SI, AX
	MOVQ    DX, BX

cs4row:
	VCVTPS2PD (AX), Y8
	VADDPD    Y8, Y0, Y0
	ADDQ      R8, AX
	DECQ      BX
	JNZ       cs4row
	VMOVUPD   Y0, (DI)

csdone:
	VZEROUPPER
	RET

// func cvtPD2PSAVX2(dst *float32, src *float64, n int)
//
// dst[i] = float32(src[i]) for i < n (n a multiple of 4): VCVTPD2PS rounds
// to nearest even like Go's conversion.
TEXT ·cvtPD2PSAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $2, CX
	JZ   cvdone

cvloop:
	VCVTPD2PSY (SI), X0
	VMOVUPS    X0, (DI)
	ADDQ       $32, SI
	ADDQ       $16, DI
	DECQ       CX
	JNZ        cvloop

cvdone:
	VZEROUPPER
	RET
