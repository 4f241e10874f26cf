//go:build amd64 && !purego

#include "textflag.h"

// func sgdStepAVX(p, grad *float32, n int, lr, wd float32)
TEXT ·sgdStepAVX(SB), NOSPLIT, $0-32
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ n+16(FP), CX
	VBROADCASTSS lr+24(FP), Y0
	VBROADCASTSS wd+28(FP), Y1
	SHRQ $3, CX
	JZ   done

loop:
	VMOVUPS (DI), Y2      // p
	VMULPS  Y1, Y2, Y3    // wd*p
	VADDPS  (SI), Y3, Y3  // g + wd*p
	VMULPS  Y0, Y3, Y3    // lr*(g + wd*p)
	VSUBPS  Y3, Y2, Y2    // p - lr*(g + wd*p)
	VMOVUPS Y2, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	DECQ    CX
	JNZ     loop

done:
	VZEROUPPER
	RET

// func sgdStepMomAVX(p, grad, v *float32, n int, lr, wd, mom float32)
TEXT ·sgdStepMomAVX(SB), NOSPLIT, $0-44
	MOVQ p+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ v+16(FP), DX
	MOVQ n+24(FP), CX
	VBROADCASTSS lr+32(FP), Y0
	VBROADCASTSS wd+36(FP), Y1
	VBROADCASTSS mom+40(FP), Y2
	SHRQ $3, CX
	JZ   mdone

mloop:
	VMOVUPS (DI), Y3      // p
	VMULPS  (DX), Y2, Y4  // mom*v
	VADDPS  (SI), Y4, Y4  // mom*v + g
	VMULPS  Y1, Y3, Y5    // wd*p
	VADDPS  Y5, Y4, Y4    // (mom*v + g) + wd*p
	VMOVUPS Y4, (DX)      // v
	VMULPS  Y0, Y4, Y5    // lr*v
	VSUBPS  Y5, Y3, Y3    // p - lr*v
	VMOVUPS Y3, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, DX
	DECQ    CX
	JNZ     mloop

mdone:
	VZEROUPPER
	RET
