//go:build amd64 && !purego

package nn

import "golang.org/x/sys/cpu"

// sgdAVX reports whether the AVX kernels of the SGD step can run.
var sgdAVX = cpu.X86.HasAVX

// stepSIMD runs the SGD step on the longest multiple of 8 values with AVX
// and returns how many it did (0 without AVX). Every value gets exactly
// the operations of stepGo, in its order, each rounded once (VMULPS,
// VADDPS, VSUBPS; no FMA), so the results have the same bits.
func stepSIMD(o SGD, params, grad, velocity []float32) int {
	n := len(params) &^ 7
	if !sgdAVX || n == 0 {
		return 0
	}
	if o.Momentum == 0 {
		sgdStepAVX(&params[0], &grad[0], n, o.LR, o.WeightDecay)
	} else {
		sgdStepMomAVX(&params[0], &grad[0], &velocity[0], n, o.LR, o.WeightDecay, o.Momentum)
	}
	return n
}

// sgdStepAVX does p[i] = p[i] - lr*(g[i] + wd*p[i]) for i < n (n a
// multiple of 8).
//
//go:noescape
func sgdStepAVX(p, grad *float32, n int, lr, wd float32)

// sgdStepMomAVX does v[i] = (mom*v[i] + g[i]) + wd*p[i]; p[i] = p[i] -
// lr*v[i] for i < n (n a multiple of 8).
//
//go:noescape
func sgdStepMomAVX(p, grad, v *float32, n int, lr, wd, mom float32)
