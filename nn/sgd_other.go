//go:build !amd64 || purego

package nn

// stepSIMD does nothing without the amd64 kernels: stepGo does all.
func stepSIMD(SGD, []float32, []float32, []float32) int { return 0 }

// sgdAVX is false: there are no AVX kernels to run.
const sgdAVX = false
