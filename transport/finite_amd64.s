//go:build amd64 && !purego

#include "textflag.h"

// func anyNonFiniteAVX2(p *float32, n int) bool
//
// 32 values (four 256-bit loads) per iteration: a value is non-finite iff
// (bits & 0x7f800000) == 0x7f800000; the compare masks are ORed into Y1,
// which is tested once at the end.
TEXT ·anyNonFiniteAVX2(SB), NOSPLIT, $0-17
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVL $0x7f800000, AX
	MOVQ AX, X0
	VPBROADCASTD X0, Y0
	VPXOR Y1, Y1, Y1

loop:
	VPAND   (SI), Y0, Y2
	VPAND   32(SI), Y0, Y3
	VPAND   64(SI), Y0, Y4
	VPAND   96(SI), Y0, Y5
	VPCMPEQD Y0, Y2, Y2
	VPCMPEQD Y0, Y3, Y3
	VPCMPEQD Y0, Y4, Y4
	VPCMPEQD Y0, Y5, Y5
	VPOR    Y2, Y3, Y3
	VPOR    Y4, Y5, Y5
	VPOR    Y3, Y1, Y1
	VPOR    Y5, Y1, Y1
	ADDQ    $128, SI
	SUBQ    $32, CX
	JNZ     loop

	VPTEST  Y1, Y1
	SETNE   ret+16(FP)
	VZEROUPPER
	RET
