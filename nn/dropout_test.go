package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// dropoutMaskRef is dropoutMask as it was written first: one
// rand.Rand.Float32-equivalent draw per element through the interface.
func dropoutMaskRef(dst, mask, src []float32, p float32, r *rand.Rand) {
	scale := 1 / (1 - p)
	for i := range mask {
		m := scale
		if r.Float32() < p {
			m = 0
		}
		mask[i] = m
		dst[i] = src[i] * m
	}
}

// checkDropoutMatchesRef runs dropoutMask on a *rand.PCG and the reference
// on a rand.Rand over an identically seeded PCG, several calls in a row,
// and wants the same bits of mask and dst and the same generator state.
func checkDropoutMatchesRef(t *testing.T, label string) {
	t.Helper()
	r := rand.New(rand.NewPCG(5, 6))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, 3e38, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	same := func(a, b float32) bool {
		if a != a || b != b {
			return a != a && b != b
		}
		return math.Float32bits(a) == math.Float32bits(b)
	}
	for _, p := range []float32{0.2, 0.5, 1e-7, 0.999999} {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 400, 1003, 25600} {
			src := make([]float32, n)
			for i := range src {
				if r.IntN(8) == 0 {
					src[i] = special[r.IntN(len(special))]
				} else {
					src[i] = float32(r.NormFloat64())
				}
			}
			want, wantMask := make([]float32, n), make([]float32, n)
			got, gotMask := make([]float32, n), make([]float32, n)
			seed := r.Uint64()
			ref := rand.New(rand.NewPCG(seed, 9))
			pcg := rand.NewPCG(seed, 9)
			viaRand := rand.New(rand.NewPCG(seed, 9))
			gotR, gotRMask := make([]float32, n), make([]float32, n)
			for call := 0; call < 3; call++ {
				dropoutMaskRef(want, wantMask, src, p, ref)
				dropoutMask(got, gotMask, src, p, pcg)
				dropoutMask(gotR, gotRMask, src, p, viaRand) // not a *rand.PCG: the interface loop
				for i := range want {
					if !same(got[i], want[i]) || math.Float32bits(gotMask[i]) != math.Float32bits(wantMask[i]) {
						t.Fatalf("%s: p %g, n %d, call %d, element %d: got mask %v dst %v, want %v %v", label, p, n, call, i, gotMask[i], got[i], wantMask[i], want[i])
					}
					if !same(gotR[i], want[i]) || math.Float32bits(gotRMask[i]) != math.Float32bits(wantMask[i]) {
						t.Fatalf("%s: rand.Rand source: p %g, n %d, call %d, element %d: got mask %v dst %v, want %v %v", label, p, n, call, i, gotRMask[i], gotR[i], wantMask[i], want[i])
					}
				}
			}
			if a, b, c := ref.Uint64(), pcg.Uint64(), viaRand.Uint64(); a != b || a != c {
				t.Fatalf("%s: p %g, n %d: generators part after the masks: next draws %x (reference), %x (PCG), %x (rand.Rand)", label, p, n, a, b, c)
			}
		}
	}
}

// dropoutMask on a *rand.PCG (run here, 8 lanes at a time with AVX-512)
// gives the masks, products and generator state of the plain loop.
func TestDropoutMaskPCGMatchesSource(t *testing.T) {
	checkDropoutMatchesRef(t, "default")
}

// The PCG arithmetic written out in pcg128 is math/rand/v2's, and the
// state moves in and out of a rand.PCG unchanged.
func TestPCG128MatchesRandPCG(t *testing.T) {
	p := rand.NewPCG(0x0123456789abcdef, 0xfedcba9876543210)
	s := pcgState(p)
	for i := 0; i < 10000; i++ {
		s = s.next()
		if got, want := s.output(), p.Uint64(); got != want {
			t.Fatalf("draw %d: got %x, want %x", i, got, want)
		}
	}
	if got := pcgState(p); got != s {
		t.Fatalf("state: got %x, want %x", got, s)
	}
	q := rand.NewPCG(1, 2)
	setPCGState(q, s)
	if a, b := p.Uint64(), q.Uint64(); a != b {
		t.Fatalf("after setPCGState: got %x, want %x", b, a)
	}
}

// The training step's dropout masks allocate nothing.
func TestDropoutMaskAllocs(t *testing.T) {
	src, dst, mask := make([]float32, 1000), make([]float32, 1000), make([]float32, 1000)
	p := rand.NewPCG(1, 2)
	if a := testing.AllocsPerRun(50, func() { dropoutMask(dst, mask, src, 0.5, p) }); a != 0 {
		t.Fatalf("got %v allocs per call, want 0", a)
	}
}

func BenchmarkDropoutMask(b *testing.B) {
	const n = 64 * 400
	src, dst, mask := make([]float32, n), make([]float32, n), make([]float32, n)
	b.Run("rand.Rand", func(b *testing.B) {
		r := rand.New(rand.NewPCG(1, 2))
		b.SetBytes(4 * n)
		for b.Loop() {
			dropoutMask(dst, mask, src, 0.5, r)
		}
	})
	b.Run("PCG", func(b *testing.B) {
		r := rand.NewPCG(1, 2)
		b.SetBytes(4 * n)
		for b.Loop() {
			dropoutMask(dst, mask, src, 0.5, r)
		}
	})
}
