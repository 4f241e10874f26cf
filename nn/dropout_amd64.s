//go:build amd64 && !purego

#include "textflag.h"

// func dropoutAVX512Kernel(dst, mask, src *float32, blocks int, scale, thr uint32, lanes *[16]uint64, jump *[4]uint64)
//
// Z0/Z1 hold the 8 lanes' generator states (hi/lo). Per block: the DXSM
// output of each lane gives k (24 bits) and the mask scale or 0, stored
// with src*mask; then every lane steps 8 draws: (hi:lo) = (hi:lo)*A + C
// mod 2^128, the low 64x64 product built from 32-bit products (VPMULUDQ)
// and the cross terms from 64-bit low products (VPMULLQ).
TEXT ·dropoutAVX512Kernel(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ mask+8(FP), SI
	MOVQ src+16(FP), DX
	MOVQ blocks+24(FP), CX
	MOVL scale+32(FP), AX
	MOVL thr+36(FP), BX
	MOVQ lanes+40(FP), R8
	MOVQ jump+48(FP), R9

	VMOVDQU64 (R8), Z0  // lane hi
	VMOVDQU64 64(R8), Z1 // lane lo

	VPBROADCASTQ 8(R9), Z2 // A.lo
	VPSRLQ $32, Z2, Z3     // A.lo >> 32
	VPBROADCASTQ 0(R9), Z4 // A.hi
	VPBROADCASTQ 24(R9), Z5 // C.lo
	VPBROADCASTQ 16(R9), Z6 // C.hi
	MOVQ $0xda942042e4dd58b5, R10
	VPBROADCASTQ R10, Z7 // DXSM multiplier
	MOVQ $0xffffffff, R10
	VPBROADCASTQ R10, Z8 // low 32 bits of a qword
	MOVQ $1, R10
	VPBROADCASTQ R10, Z9
	VPBROADCASTD AX, Y10 // mask value kept
	VPBROADCASTD BX, Y11 // threshold on k

loop:
	// h = DXSM(hi, lo); k = (h >> 32) & (2^24 - 1)
	VPSRLQ $32, Z0, Z12
	VPXORQ Z12, Z0, Z12
	VPMULLQ Z7, Z12, Z12
	VPSRLQ $48, Z12, Z13
	VPXORQ Z13, Z12, Z12
	VPORQ Z9, Z1, Z13
	VPMULLQ Z13, Z12, Z12
	VPSRLQ $32, Z12, Z12
	VPMOVQD Z12, Y12
	VPSLLD $8, Y12, Y12
	VPSRLD $8, Y12, Y12

	// keep where k >= thr (unsigned): mask = scale, else +0
	VPCMPUD $5, Y11, Y12, K1
	VMOVDQU32.Z Y10, K1, Y13
	VMOVUPS Y13, (SI)
	VMULPS (DX), Y13, Y14
	VMOVUPS Y14, (DI)
	ADDQ $32, SI
	ADDQ $32, DI
	ADDQ $32, DX
	DECQ CX
	JZ done

	// (hi:lo) = (hi:lo) * A + C, mod 2^128
	VPMULUDQ Z2, Z1, Z12   // p00 = lo0 * a0
	VPMULUDQ Z3, Z1, Z13   // p01 = lo0 * a1
	VPSRLQ $32, Z1, Z14    // lo1
	VPMULUDQ Z2, Z14, Z15  // p10 = lo1 * a0
	VPMULUDQ Z3, Z14, Z16  // p11 = lo1 * a1
	VPSRLQ $32, Z12, Z17
	VPANDQ Z8, Z13, Z18
	VPADDQ Z18, Z17, Z17
	VPANDQ Z8, Z15, Z18
	VPADDQ Z18, Z17, Z17   // mid = p00>>32 + low(p01) + low(p10)
	VPANDQ Z8, Z12, Z12
	VPSLLQ $32, Z17, Z18
	VPORQ Z18, Z12, Z12    // low 64 bits of lo*A.lo
	VPSRLQ $32, Z13, Z13
	VPSRLQ $32, Z15, Z15
	VPSRLQ $32, Z17, Z17
	VPADDQ Z13, Z16, Z16
	VPADDQ Z15, Z16, Z16
	VPADDQ Z17, Z16, Z16   // high 64 bits of lo*A.lo
	VPMULLQ Z2, Z0, Z13    // hi*A.lo
	VPMULLQ Z4, Z1, Z14    // lo*A.hi
	VPADDQ Z13, Z16, Z16
	VPADDQ Z14, Z16, Z16
	VPADDQ Z5, Z12, Z1     // lo = low + C.lo
	VPCMPUQ $1, Z5, Z1, K2 // carry where lo < C.lo
	VPADDQ Z6, Z16, Z0     // hi = high + C.hi
	VPADDQ Z9, Z0, K2, Z0  // + carry
	JMP loop

done:
	VMOVDQU64 Z0, (R8)
	VMOVDQU64 Z1, 64(R8)
	VZEROUPPER
	RET
