//go:build !amd64 || purego

package nn

// elemAVX2 is false without the amd64 kernels: the Go loops of
// kernels.go do every value.
var elemAVX2 = false

func addBiasSIMD(z, b []float32, rows, cols int) bool     { return false }
func addBiasReLUSIMD(z, b []float32, rows, cols int) bool { return false }
func reluBackwardSIMD(dz, a []float32) int                { return 0 }
func mulInPlaceSIMD(d, m []float32) int                   { return 0 }
func colSumSIMD(acc []float64, m []float32, rows, cols int) int {
	return 0
}
func cvtSIMD(dst []float32, src []float64) int { return 0 }
