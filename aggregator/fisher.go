package aggregator

import "fmt"

// FisherMean writes into dst the Fisher-weighted mean of the deltas:
//
//	dst_i = sum_k c_k max(F_k,i, eps) delta_k,i / sum_k c_k max(F_k,i, eps)
//
// summed in float64 in the order of ups, num and den being scratch of
// len(dst) (nil: allocated). With equal Fishers it is the c-weighted mean
// (aggregator.Mean's, up to rounding). It panics if the lengths differ.
func FisherMean(dst []float32, ups []Update, fisher [][]float32, c []float64, eps float64, num, den []float64) {
	n := len(dst)
	if len(fisher) != len(ups) || len(c) != len(ups) {
		panic(fmt.Sprintf("aggregator: FisherMean with %d updates, %d Fishers, %d weights", len(ups), len(fisher), len(c)))
	}
	if num == nil {
		num, den = make([]float64, n), make([]float64, n)
	}
	num, den = num[:n], den[:n]
	clear(num)
	clear(den)
	for k, u := range ups {
		f := fisher[k]
		if len(u.Delta) != n || len(f) != n {
			panic(fmt.Sprintf("aggregator: FisherMean: update %d has %d values and a Fisher of %d, want %d", k, len(u.Delta), len(f), n))
		}
		ck := c[k]
		for i, d := range u.Delta {
			w := ck * max(float64(f[i]), eps)
			num[i] += w * float64(d)
			den[i] += w
		}
	}
	for i := range dst {
		if den[i] > 0 {
			dst[i] = float32(num[i] / den[i])
		} else {
			dst[i] = 0
		}
	}
}
