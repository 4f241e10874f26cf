package gemm

import "time"

// Measure times repeated n x n x n products C = A*B on b (single-threaded,
// no transposes, beta = 0) for at least dur, after one warm-up call, and
// returns the rate in GFLOP/s (2*n^3 flops per product). The operands are
// filled deterministically; Measure allocates them on each call. It
// returns 0 for n < 1.
func Measure(b Backend, n int, dur time.Duration) (gflops float64) {
	if n < 1 {
		return 0
	}
	x := make([]float32, n*n)
	y := make([]float32, n*n)
	z := make([]float32, n*n)
	for i := range x {
		x[i] = float32(i*7%13-6) / 8
		y[i] = float32(i*5%11-5) / 8
	}
	b.Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
	calls := 0
	start := time.Now()
	for {
		b.Sgemm(false, false, n, n, n, 1, x, n, y, n, 0, z, n)
		calls++
		if el := time.Since(start); el >= dur {
			return 2 * float64(n) * float64(n) * float64(n) * float64(calls) / el.Seconds() / 1e9
		}
	}
}
