package server

import (
	"slices"

	"github.com/fotsim/fotsim/rng"
)

// Sample returns k distinct client ids out of [0, n), sorted ascending,
// drawn from the stream (seed, "sample", round): the same clients for every
// method of a scenario. It panics if k > n or k < 0.
func Sample(seed uint64, round, n, k int) []int32 {
	if k < 0 || k > n {
		panic("server: Sample k out of range")
	}
	r := rng.New(seed, "sample", round)
	ids := make([]int32, n)
	for i := range ids {
		ids[i] = int32(i)
	}
	// Partial Fisher-Yates: the first k slots end up a uniform k-subset.
	for i := 0; i < k; i++ {
		j := i + r.IntN(n-i)
		ids[i], ids[j] = ids[j], ids[i]
	}
	out := ids[:k:k]
	slices.Sort(out)
	return out
}
