package rng

import "math/rand/v2"

// mix is the splitmix64 finaliser: a bijective avalanche on 64 bits.
func mix(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// Key hashes (seed, purpose, ids...) into two 64-bit words.
func Key(seed uint64, purpose string, ids ...int) (uint64, uint64) {
	h := mix(seed)
	for i := 0; i < len(purpose); i++ {
		h = mix(h ^ uint64(purpose[i]))
	}
	h = mix(h ^ uint64(len(purpose)))
	for _, id := range ids {
		h = mix(h ^ uint64(int64(id)))
	}
	return h, mix(h ^ 0x5851f42d4c957f2d)
}

// New returns a PCG stream named by (seed, purpose, ids...).
func New(seed uint64, purpose string, ids ...int) *rand.Rand {
	return rand.New(NewSource(seed, purpose, ids...))
}

// NewSource returns the PCG source behind New, for callers that reseed a
// source they own instead of allocating a new one.
func NewSource(seed uint64, purpose string, ids ...int) *rand.PCG {
	a, b := Key(seed, purpose, ids...)
	return rand.NewPCG(a, b)
}

// Reseed points an existing PCG source at the stream (seed, purpose, ids...)
// without allocating.
func Reseed(src *rand.PCG, seed uint64, purpose string, ids ...int) {
	a, b := Key(seed, purpose, ids...)
	src.Seed(a, b)
}
