//go:build !amd64 || purego

package nn

// dropoutSIMD does nothing without the amd64 kernel: dropoutMask's loop
// does every element.
func dropoutSIMD(dst, mask, src []float32, scale, thr uint32, s *pcg128) int { return 0 }
