package nn

import (
	"fmt"
	"slices"
)

// Ranges is a set of half-open ranges [lo, hi) of offsets into a flat
// parameter vector (or a gradient, or a velocity of the same layout),
// sorted and disjoint:
//
//	0 <= r[k][0] <= r[k][1] <= r[k+1][0]
//
// It says which parameters a client trains: SGD.StepRanges updates only
// those, Mask zeroes a gradient outside them, and LossGradClipped clips the
// per-sample gradients of those only. The Model's helpers (AllParams,
// BaseParams, AdapterParams) and RangesOf build valid sets; every function
// taking Ranges panics on an unsorted or overlapping set or one reaching
// past the vector.
type Ranges [][2]int

// AllParams returns the whole parameter vector, [0, NumParams()).
func (m *Model) AllParams() Ranges { return Ranges{{0, m.nParams}} }

// BaseParams returns every parameter but the LoRA adapters,
// [0, NumBaseParams()).
func (m *Model) BaseParams() Ranges { return Ranges{{0, m.nBase}} }

// AdapterParams returns the LoRA adapter parameters: which is "ab" (every A
// and B), "a" (every A) or "b" (every B). Each is one range (see Adapters
// for the layout), or none without adapters. It panics on any other which.
func (m *Model) AdapterParams(which string) Ranges {
	if which != "ab" && which != "a" && which != "b" {
		panic(fmt.Sprintf("nn: adapter params %q, want ab, a or b", which))
	}
	if len(m.adapters) == 0 {
		return nil
	}
	aLo, bLo := m.adapters[0].A.Offset, m.adapters[0].B.Offset
	switch which {
	case "a":
		return Ranges{{aLo, bLo}}
	case "b":
		return Ranges{{bLo, m.nParams}}
	}
	return Ranges{{aLo, m.nParams}}
}

// RangesOf returns the parameters of views as a valid Ranges: sorted,
// with touching or overlapping views merged. For example a client that
// trains every B and the head uses
// RangesOf(append(bViews, m.Weights()[h], m.Biases()[h])...).
func RangesOf(views ...ParamView) Ranges {
	var r Ranges
	for _, v := range views {
		if n := v.Rows * v.Cols; n > 0 {
			r = append(r, [2]int{v.Offset, v.Offset + n})
		}
	}
	slices.SortFunc(r, func(a, b [2]int) int { return a[0] - b[0] })
	out := r[:0]
	for _, x := range r {
		if k := len(out) - 1; k >= 0 && x[0] <= out[k][1] {
			out[k][1] = max(out[k][1], x[1])
			continue
		}
		out = append(out, x)
	}
	return out
}

// Size returns the number of offsets in r.
func (r Ranges) Size() int {
	n := 0
	for _, x := range r {
		n += x[1] - x[0]
	}
	return n
}

// Zero sets x[i] = 0 for every i inside r. It panics if r does not fit
// len(x).
func (r Ranges) Zero(x []float32) {
	r.check(len(x))
	for _, q := range r {
		clear(x[q[0]:q[1]])
	}
}

// Mask sets x[i] = 0 for every i outside r, keeping the values inside: the
// gradient of a client that trains only r. It panics if r does not fit
// len(x).
func (r Ranges) Mask(x []float32) {
	r.check(len(x))
	lo := 0
	for _, q := range r {
		clear(x[lo:q[0]])
		lo = q[1]
	}
	clear(x[lo:])
}

// check panics unless r is sorted, disjoint and inside [0, n).
func (r Ranges) check(n int) {
	prev := 0
	for k, q := range r {
		if q[0] < prev || q[1] < q[0] || q[1] > n {
			panic(fmt.Sprintf("nn: ranges[%d] = [%d, %d) not sorted, disjoint and inside [0, %d)", k, q[0], q[1], n))
		}
		prev = q[1]
	}
}

// overlap returns how many offsets of [lo, hi) r contains.
func (r Ranges) overlap(lo, hi int) int {
	n := 0
	for _, q := range r {
		if q[0] >= hi {
			break
		}
		n += max(0, min(hi, q[1])-max(lo, q[0]))
	}
	return n
}
