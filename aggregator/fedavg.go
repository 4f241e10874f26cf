package aggregator

import (
	"errors"
	"fmt"
)

// Weighting chooses the weights of the FedAvg mean.
type Weighting int

const (
	// Uniform weighs every update 1/K (the FOT paper's code).
	Uniform Weighting = iota
	// Samples weighs update k by n_k / sum n (the FedAvg paper).
	Samples
)

// ErrWeighting is returned by ParseWeighting for an unknown name.
var ErrWeighting = errors.New("aggregator: unknown weighting")

// ParseWeighting maps "uniform" and "samples" to a Weighting.
func ParseWeighting(s string) (Weighting, error) {
	switch s {
	case "uniform", "":
		return Uniform, nil
	case "samples":
		return Samples, nil
	}
	return 0, fmt.Errorf("%w %q (want uniform or samples)", ErrWeighting, s)
}

// String returns the scenario name of w.
func (w Weighting) String() string {
	if w == Samples {
		return "samples"
	}
	return "uniform"
}

// Update is one client's contribution to a round: the difference between its
// locally trained parameters and the global ones, and its sample count.
type Update struct {
	Client int
	N      int64
	Delta  []float32
}

// Weights returns the coefficient of every update under w, in order:
// 1/K for Uniform, n_k / sum_j n_j for Samples (falling back to 1/K when
// every n_k is zero).
func Weights(dst []float64, updates []Update, w Weighting) []float64 {
	dst = dst[:0]
	var total float64
	for _, u := range updates {
		total += float64(u.N)
	}
	for _, u := range updates {
		if w == Samples && total > 0 {
			dst = append(dst, float64(u.N)/total)
		} else {
			dst = append(dst, 1/float64(len(updates)))
		}
	}
	return dst
}

// Mean writes the weighted mean of the updates' deltas into dst:
//
//	dst[i] = sum_k c_k * delta_k[i]
//
// with c from Weights, summed in the order of updates (callers sort by
// client id), in float64 per element so the result does not depend on how
// many updates there are beyond rounding of the final store. With no updates
// dst is zeroed. It panics if a delta's length differs from len(dst).
func Mean(dst []float32, updates []Update, w Weighting) {
	if len(updates) == 0 {
		clear(dst)
		return
	}
	for _, u := range updates {
		if len(u.Delta) != len(dst) {
			panic(fmt.Sprintf("aggregator: update of client %d has %d values, want %d", u.Client, len(u.Delta), len(dst)))
		}
	}
	var cbuf [64]float64
	c := Weights(cbuf[:0], updates, w)
	const block = 1024
	var acc [block]float64
	for lo := 0; lo < len(dst); lo += block {
		hi := min(lo+block, len(dst))
		a := acc[:hi-lo]
		clear(a)
		k := 0
		// Four updates per pass over the block: each element still gets
		// ((a + c0*d0) + c1*d1) + ..., in update order, as one at a time
		// would, with a quarter of the loads and stores of a.
		for ; k+4 <= len(updates); k += 4 {
			c0, c1, c2, c3 := c[k], c[k+1], c[k+2], c[k+3]
			d0 := updates[k].Delta[lo:hi]
			d1 := updates[k+1].Delta[lo:hi]
			d2 := updates[k+2].Delta[lo:hi]
			d3 := updates[k+3].Delta[lo:hi]
			d1, d2, d3 = d1[:len(d0)], d2[:len(d0)], d3[:len(d0)]
			a := a[:len(d0)]
			for i, v := range d0 {
				a[i] = a[i] + c0*float64(v) + c1*float64(d1[i]) + c2*float64(d2[i]) + c3*float64(d3[i])
			}
		}
		for ; k < len(updates); k++ {
			ck := c[k]
			d := updates[k].Delta[lo:hi]
			for i, v := range d {
				a[i] += ck * float64(v)
			}
		}
		out := dst[lo:hi]
		for i, v := range a {
			out[i] = float32(v)
		}
	}
}

// Apply adds the aggregate to the global parameters: params += lr * agg.
// It panics on a length mismatch.
func Apply(params, agg []float32, lr float32) {
	if len(params) != len(agg) {
		panic(fmt.Sprintf("aggregator: Apply lengths %d and %d", len(params), len(agg)))
	}
	for i, v := range agg {
		params[i] += lr * v
	}
}
