package gemm

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchShape is one product timed by BenchmarkSgemm.
type benchShape struct {
	name           string
	transA, transB bool
	m, n, k        int
}

// benchShapes are the products of an MLP training step at batch 64
// (784-400-400-10), two im2col convolutions and square sizes.
var benchShapes = []benchShape{
	{"mlp784x400/fwd", false, true, 64, 400, 784},
	{"mlp784x400/dX", false, false, 64, 784, 400},
	{"mlp784x400/dW", true, false, 400, 784, 64},
	{"mlp400x400/fwd", false, true, 64, 400, 400},
	{"mlp400x400/dX", false, false, 64, 400, 400},
	{"mlp400x400/dW", true, false, 400, 400, 64},
	{"mlp400x10/fwd", false, true, 64, 10, 400},
	{"mlp400x10/dX", false, false, 64, 400, 10},
	{"mlp400x10/dW", true, false, 10, 400, 64},
	{"conv1/fwd", false, true, 64 * 24 * 24, 32, 25},
	{"conv2/fwd", false, true, 64 * 8 * 8, 64, 800},
	{"conv2/dW", true, false, 64, 800, 64 * 8 * 8},
	{"conv2/dcols", false, false, 64 * 8 * 8, 800, 64},
	{"square256", false, false, 256, 256, 256},
	{"square512", false, false, 512, 512, 512},
	{"square1024", false, false, 1024, 1024, 1024},
	{"square1024/tn", true, false, 1024, 1024, 1024},
	{"square1024/nt", false, true, 1024, 1024, 1024},
}

func randSlice(r *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(r.NormFloat64())
	}
	return s
}

// BenchmarkSgemm times every registered backend, and the simd backend at
// each kernel level below the default one ("simd-avx2", "simd-generic"), on
// benchShapes. Note that gonum runs large products on GOMAXPROCS
// goroutines; the other backends use one thread (compare with -cpu 1).
func BenchmarkSgemm(b *testing.B) {
	type named struct {
		name string
		be   Backend
	}
	var bes []named
	for _, name := range Names() {
		be, err := Lookup(name)
		if err != nil {
			b.Fatal(err)
		}
		bes = append(bes, named{name, be})
	}
	for _, lv := range SIMDLevels()[1:] {
		s, err := NewSIMD(lv)
		if err != nil {
			b.Fatal(err)
		}
		bes = append(bes, named{"simd-" + lv, s})
	}
	for _, nb := range bes {
		name, be := nb.name, nb.be
		for _, s := range benchShapes {
			b.Run(fmt.Sprintf("%s/%s", name, s.name), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				lda, ldb := s.k, s.n
				if s.transA {
					lda = s.m
				}
				if s.transB {
					ldb = s.k
				}
				a := randSlice(r, s.m*s.k)
				bb := randSlice(r, s.k*s.n)
				c := randSlice(r, s.m*s.n)
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					be.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
				}
				flops := 2 * float64(s.m) * float64(s.n) * float64(s.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
