package gemm

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

func TestZZPerf(t *testing.T) {
	if os.Getenv("GEMM_PERF") == "" {
		t.Skip()
	}
	names := strings.Split(os.Getenv("GEMM_PERF"), ",")
	var bes []Backend
	for _, n := range names {
		if strings.HasPrefix(n, "simd-") {
			lvl, mode, _ := strings.Cut(n[5:], "-")
			s, err := NewSIMD(lvl)
			switch mode {
			case "packed":
				s.pack = packAlways
			case "unpacked":
				s.pack = packNever
			case "dot":
				s.pack = forceDot
			case "pA":
				s.pack = 3
			case "pB":
				s.pack = 4
			}
			if err != nil {
				t.Fatal(err)
			}
			bes = append(bes, s)
			continue
		}
		b, err := Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		bes = append(bes, b)
	}
	filter := os.Getenv("GEMM_SHAPES")
	fmt.Printf("%-18s", "shape")
	for _, n := range names {
		fmt.Printf("%10s", n)
	}
	fmt.Println()
	for _, s := range benchShapes {
		if filter != "" && !strings.Contains(s.name, filter) {
			continue
		}
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
		best := make([]float64, len(bes))
		flop := 2 * float64(s.m) * float64(s.n) * float64(s.k)
		for trial := 0; trial < 7; trial++ {
			for i, be := range bes {
				be.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
				n := 0
				start := time.Now()
				for time.Since(start) < 20*time.Millisecond {
					for j := 0; j < 4; j++ {
						be.Sgemm(s.transA, s.transB, s.m, s.n, s.k, 1, a, lda, bb, ldb, 0, c, s.n)
					}
					n += 4
				}
				g := flop * float64(n) / time.Since(start).Seconds() / 1e9
				best[i] = max(best[i], g)
			}
		}
		fmt.Printf("%-18s", s.name)
		for _, g := range best {
			fmt.Printf("%10.1f", g)
		}
		fmt.Println()
	}
}
