package gemm

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"
)

// relTolPerK is the accepted error of one element of C relative to
// sum_p |alpha*a_ip*b_pj| + |beta*c_ij|, per term of the k-sum: float32
// rounding grows at most linearly with k, and blocked kernels sum in a
// different order than the float64 reference.
const relTolPerK = 2 * 0x1p-24

// backendsUnderTest returns every registered backend plus the simd backend
// forced to each kernel level this CPU supports, so that the assembly and
// the pure-Go paths are all exercised on this machine.
func backendsUnderTest(t testing.TB) map[string]Backend {
	out := map[string]Backend{}
	for _, name := range Names() {
		b, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	for _, lv := range SIMDLevels() {
		s, err := NewSIMD(lv)
		if err != nil {
			t.Fatal(err)
		}
		out["simd-"+lv] = s
		if s.lv.unpackA || s.lv.unpackB {
			out["simd-"+lv+"-packed"] = &SIMD{lv: s.lv, pack: packAlways}
			out["simd-"+lv+"-unpacked"] = &SIMD{lv: s.lv, pack: packNever}
		}
		if s.lv.dot != nil {
			out["simd-"+lv+"-dot"] = &SIMD{lv: s.lv, pack: forceDot}
		}
	}
	return out
}

// problem is one Sgemm call with its operands.
type problem struct {
	transA, transB bool
	m, n, k        int
	lda, ldb, ldc  int
	alpha, beta    float32
	a, b, c        []float32
	nanC           bool // C starts as NaN (only with beta == 0)

	want, scale []float64 // reference, computed once by check
}

func newProblem(r *rand.Rand, tA, tB bool, m, n, k, pad int, alpha, beta float32) *problem {
	p := &problem{transA: tA, transB: tB, m: m, n: n, k: k, alpha: alpha, beta: beta}
	ra, ca := m, k
	if tA {
		ra, ca = k, m
	}
	rb, cb := k, n
	if tB {
		rb, cb = n, k
	}
	p.lda, p.ldb, p.ldc = ca+pad, cb+pad, n+pad
	p.a = randFill(r, ra*p.lda)
	p.b = randFill(r, rb*p.ldb)
	p.c = randFill(r, m*p.ldc)
	if beta == 0 {
		p.nanC = true
		for i := range p.c {
			p.c[i] = float32(math.NaN())
		}
	}
	return p
}

func randFill(r *rand.Rand, n int) []float32 {
	s := make([]float32, max(n, 1))
	for i := range s {
		s[i] = float32(r.Float64()*2 - 1)
	}
	return s
}

// reference returns alpha*op(A)*op(B) + beta*C in float64 and the error
// scale sum_p |alpha*a*b| + |beta*c| of every element (row-major m x n).
func (p *problem) reference() (want, scale []float64) {
	want = make([]float64, p.m*p.n)
	scale = make([]float64, p.m*p.n)
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.n; j++ {
			var s, abs float64
			for l := 0; l < p.k; l++ {
				var av, bv float32
				if p.transA {
					av = p.a[l*p.lda+i]
				} else {
					av = p.a[i*p.lda+l]
				}
				if p.transB {
					bv = p.b[j*p.ldb+l]
				} else {
					bv = p.b[l*p.ldb+j]
				}
				t := float64(p.alpha) * float64(av) * float64(bv)
				s += t
				abs += math.Abs(t)
			}
			if p.beta != 0 {
				t := float64(p.beta) * float64(p.c[i*p.ldc+j])
				s += t
				abs += math.Abs(t)
			}
			want[i*p.n+j] = s
			scale[i*p.n+j] = abs
		}
	}
	return want, scale
}

// check runs be on a copy of p's C and compares with the reference; it
// also checks that the padding columns of C are untouched.
func (p *problem) check(t *testing.T, be Backend) {
	t.Helper()
	if p.want == nil {
		p.want, p.scale = p.reference()
	}
	want, scale := p.want, p.scale
	c := append([]float32(nil), p.c...)
	be.Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c, p.ldc)
	tol := relTolPerK * float64(p.k+2)
	bad := 0
	for i := 0; i < p.m; i++ {
		for j := 0; j < p.ldc; j++ {
			got := c[i*p.ldc+j]
			if j >= p.n {
				if math.Float32bits(got) != math.Float32bits(p.c[i*p.ldc+j]) {
					t.Errorf("C[%d][%d] (padding) = %v, want untouched %v", i, j, got, p.c[i*p.ldc+j])
					bad++
				}
				continue
			}
			w := want[i*p.n+j]
			if math.IsNaN(float64(got)) || math.Abs(float64(got)-w) > tol*scale[i*p.n+j]+1e-30 {
				t.Errorf("C[%d][%d] = %v, want %v (tolerance %.3g)", i, j, got, w, tol*scale[i*p.n+j])
				bad++
			}
			if bad > 5 {
				t.FailNow()
			}
		}
	}
}

func TestSgemmSmallShapes(t *testing.T) {
	dims := []int{1, 7, 10, 17, 33, 63, 64, 65}
	type ab struct {
		name        string
		alpha, beta float32
	}
	scalings := []ab{{"a1b0", 1, 0}, {"a1b1", 1, 1}, {"a-0.5b0.25", -0.5, 0.25}, {"a2b0", 2, 0}}
	backends := backendsUnderTest(t)
	r := rand.New(rand.NewPCG(7, 11))
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, m := range dims {
				for _, n := range dims {
					for _, k := range dims {
						s := scalings[(m+n+k)%len(scalings)]
						pad := (m * n) % 3 * 5 // 0, 5 or 10
						p := newProblem(r, tA, tB, m, n, k, pad, s.alpha, s.beta)
						t.Run(fmt.Sprintf("tA=%v/tB=%v/%dx%dx%d/%s/pad%d", tA, tB, m, n, k, s.name, pad), func(t *testing.T) {
							for name, be := range backends {
								t.Run(name, func(t *testing.T) { p.check(t, be) })
							}
						})
					}
				}
			}
		}
	}
}

func TestSgemmLargeShapes(t *testing.T) {
	cases := []struct {
		name        string
		tA, tB      bool
		m, n, k     int
		pad         int
		alpha, beta float32
	}{
		{"mlp-fwd", false, true, 64, 400, 784, 0, 1, 0},
		{"mlp-dX", false, false, 64, 784, 400, 0, 1, 0},
		{"mlp-dW", true, false, 400, 784, 64, 0, 1, 1},
		{"head-fwd", false, true, 64, 10, 400, 0, 1, 0},
		{"head-dX", false, false, 64, 400, 10, 0, 1, 0},
		{"head-dW", true, false, 10, 400, 64, 0, 0.5, 1},
		{"k-blocks", false, false, 37, 61, 1100, 3, 1, 0.5},
		{"k-blocks-trans", true, true, 61, 37, 1100, 1, -1, 2},
		{"k-blocks-small-n", false, false, 30, 20, 1100, 3, 1, 0},
		{"k-blocks-small-m", true, false, 10, 100, 1100, 5, 1, 1},
		{"n-blocks", false, true, 20, 700, 600, 16, 1, 0},
		{"m-blocks", true, false, 1100, 50, 20, 2, 2, -1},
		{"conv-fwd", false, true, 2304, 32, 25, 0, 1, 0},
		{"square-odd", true, true, 129, 131, 127, 9, 0.75, 0},
	}
	backends := backendsUnderTest(t)
	for _, tc := range cases {
		r := rand.New(rand.NewPCG(3, uint64(tc.m*tc.n*tc.k)))
		p := newProblem(r, tc.tA, tc.tB, tc.m, tc.n, tc.k, tc.pad, tc.alpha, tc.beta)
		t.Run(tc.name, func(t *testing.T) {
			for name, be := range backends {
				t.Run(name, func(t *testing.T) { p.check(t, be) })
			}
		})
	}
}

func TestSgemmDegenerate(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		name        string
		m, n, k     int
		alpha, beta float32
		c, want     []float32
	}{
		{"k0-beta0", 2, 2, 0, 1, 0, []float32{nan, nan, nan, nan}, []float32{0, 0, 0, 0}},
		{"k0-beta2", 2, 2, 0, 1, 2, []float32{1, 2, 3, 4}, []float32{2, 4, 6, 8}},
		{"alpha0-beta0", 2, 2, 3, 0, 0, []float32{nan, nan, nan, nan}, []float32{0, 0, 0, 0}},
		{"alpha0-beta1", 2, 2, 3, 0, 1, []float32{1, 2, 3, 4}, []float32{1, 2, 3, 4}},
		{"m0", 0, 2, 3, 1, 0, []float32{nan}, []float32{nan}},
		{"n0", 2, 0, 3, 1, 0, []float32{nan}, []float32{nan}},
	}
	for name, be := range backendsUnderTest(t) {
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				a := make([]float32, max(1, tc.m*tc.k))
				b := make([]float32, max(1, tc.k*tc.n))
				c := append([]float32(nil), tc.c...)
				be.Sgemm(false, false, tc.m, tc.n, tc.k, tc.alpha, a, max(1, tc.k), b, max(1, tc.n), tc.beta, c, max(1, tc.n))
				for i := range c {
					if math.Float32bits(c[i]) != math.Float32bits(tc.want[i]) && !(math.IsNaN(float64(c[i])) && math.IsNaN(float64(tc.want[i]))) {
						t.Errorf("c[%d] = %v, want %v", i, c[i], tc.want[i])
					}
				}
			})
		}
	}
}

func TestSgemmPanics(t *testing.T) {
	s := make([]float32, 16)
	cases := []struct {
		name          string
		m, n, k       int
		lda, ldb, ldc int
		a, b, c       []float32
		want          string
	}{
		{"negative", -1, 2, 2, 2, 2, 2, s, s, s, panicBadShape},
		{"lda", 2, 2, 3, 2, 2, 2, s, s, s, panicBadLdA},
		{"ldb", 2, 3, 2, 2, 2, 3, s, s, s, panicBadLdB},
		{"ldc", 2, 3, 2, 2, 3, 2, s, s, s, panicBadLdC},
		{"short-a", 4, 2, 4, 4, 2, 2, s[:15], s, s, panicShortA},
		{"short-b", 2, 4, 4, 4, 4, 4, s, s[:15], s, panicShortB},
		{"short-c", 4, 4, 2, 2, 4, 4, s, s, s[:15], panicShortC},
	}
	for _, name := range Names() {
		if name == "gonum" {
			continue // blas32's own messages
		}
		be, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			t.Run(name+"/"+tc.name, func(t *testing.T) {
				defer func() {
					got := recover()
					if got != tc.want {
						t.Errorf("panic = %v, want %q", got, tc.want)
					}
				}()
				be.Sgemm(false, false, tc.m, tc.n, tc.k, 1, tc.a, tc.lda, tc.b, tc.ldb, 0, tc.c, tc.ldc)
			})
		}
	}
}

func TestSgemmZeroAllocs(t *testing.T) {
	shapes := []struct {
		name    string
		tA, tB  bool
		m, n, k int
	}{
		{"fwd", false, true, 64, 400, 784},
		{"dW", true, false, 400, 400, 64},
		{"head", false, true, 64, 10, 400},
	}
	for name, be := range backendsUnderTest(t) {
		if name == "gonum" {
			continue // not ours
		}
		for _, s := range shapes {
			t.Run(name+"/"+s.name, func(t *testing.T) {
				r := rand.New(rand.NewPCG(1, 1))
				p := newProblem(r, s.tA, s.tB, s.m, s.n, s.k, 0, 1, 1)
				run := func() {
					be.Sgemm(p.transA, p.transB, p.m, p.n, p.k, 1, p.a, p.lda, p.b, p.ldb, 1, p.c, p.ldc)
				}
				run() // fill the buffer pool
				if raceEnabled {
					t.Skip("sync.Pool drops items at random under the race detector")
				}
				if got := testing.AllocsPerRun(20, run); got != 0 {
					t.Errorf("allocs per call = %v, want 0", got)
				}
			})
		}
	}
}

func TestNewSIMDUnknownLevel(t *testing.T) {
	if _, err := NewSIMD("sse9"); err == nil {
		t.Errorf("NewSIMD(%q) error = nil, want ErrLevel", "sse9")
	}
	s, err := NewSIMD("")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Level(), SIMDLevels()[0]; got != want {
		t.Errorf("default level = %q, want %q", got, want)
	}
}

func TestAliasedRows(t *testing.T) {
	cases := []struct {
		ld, rows int
		want     bool
	}{
		{1024, 12, true}, {512, 12, true}, {2048, 12, true}, {256, 12, false},
		{400, 12, false}, {784, 12, false}, {1000, 12, false}, {1024, 4, false},
	}
	for _, tc := range cases {
		if got := aliasedRows(tc.ld, tc.rows); got != tc.want {
			t.Errorf("aliasedRows(%d, %d) = %v, want %v", tc.ld, tc.rows, got, tc.want)
		}
	}
}

func TestMeasure(t *testing.T) {
	for _, name := range Names() {
		be, err := Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if got := Measure(be, 64, time.Millisecond); !(got > 0) {
			t.Errorf("Measure(%s, 64, 1ms) = %v, want > 0", name, got)
		}
	}
	if got := Measure(Gonum{}, 0, time.Millisecond); got != 0 {
		t.Errorf("Measure(gonum, 0, 1ms) = %v, want 0", got)
	}
}

// TestSgemmConcurrent shares one backend value between goroutines, as nn's
// workers do: the packing buffers must not be shared.
func TestSgemmConcurrent(t *testing.T) {
	for name, be := range backendsUnderTest(t) {
		t.Run(name, func(t *testing.T) {
			const workers = 4
			probs := make([]*problem, workers)
			wants := make([][]float32, workers)
			for w := range probs {
				r := rand.New(rand.NewPCG(5, uint64(w)))
				probs[w] = newProblem(r, w%2 == 1, w/2 == 1, 40+w, 50+3*w, 600, w, 1, 0)
				wants[w] = append([]float32(nil), probs[w].c...)
				p := probs[w]
				be.Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, wants[w], p.ldc)
			}
			done := make(chan error, workers)
			for w := range probs {
				go func() {
					p := probs[w]
					for it := 0; it < 20; it++ {
						c := append([]float32(nil), p.c...)
						be.Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, c, p.ldc)
						for i := range c {
							if math.Float32bits(c[i]) != math.Float32bits(wants[w][i]) {
								done <- fmt.Errorf("worker %d, iteration %d: c[%d] = %v, want %v", w, it, i, c[i], wants[w][i])
								return
							}
						}
					}
					done <- nil
				}()
			}
			for range probs {
				if err := <-done; err != nil {
					t.Error(err)
				}
			}
		})
	}
}

// TestMicro4x4Variants checks both full-tile generic kernels on this
// machine, whichever one its architecture uses.
func TestMicro4x4Variants(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	const kc, ldc = 37, 6
	a := randFill(r, 4*kc)
	b := randFill(r, 4*kc)
	c0 := randFill(r, 4*ldc)
	for _, variant := range []struct {
		name string
		fn   func(kc int, a, b, c []float32, ldc int, alpha, beta float32, loadC bool)
	}{{"wide", micro4x4Wide}, {"narrow", micro4x4Narrow}} {
		t.Run(variant.name, func(t *testing.T) {
			c := append([]float32(nil), c0...)
			variant.fn(kc, a, b, c, ldc, 0.5, 2, true)
			tol := relTolPerK * (kc + 2)
			for i := 0; i < 4; i++ {
				for j := 0; j < ldc; j++ {
					want, scale := float64(c0[i*ldc+j]), 0.0
					if j < 4 {
						want, scale = 2*want, math.Abs(2*want)
						for p := 0; p < kc; p++ {
							term := 0.5 * float64(a[p*4+i]) * float64(b[p*4+j])
							want += term
							scale += math.Abs(term)
						}
					}
					if got := float64(c[i*ldc+j]); math.Abs(got-want) > tol*scale {
						t.Errorf("c[%d][%d] = %v, want %v", i, j, got, want)
					}
				}
			}
		})
	}
}

// A private instance keeps its packing buffers across garbage collections,
// which empty the shared pool.
func TestPrivateAllocatesNothingAcrossGC(t *testing.T) {
	be, err := Lookup("simd")
	if err != nil {
		t.Skip(err)
	}
	p := Private(be)
	if p == be {
		t.Fatal("simd does not hand out private instances")
	}
	const m, n, k = 64, 400, 784
	a, b, c := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
	p.Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	allocs := testing.AllocsPerRun(20, func() {
		runtime.GC()
		p.Sgemm(false, true, m, n, k, 1, a, k, b, k, 0, c, n)
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per call after a GC, want 0", allocs)
	}
	if Private(Gonum{}) != (Gonum{}) {
		t.Error("Private of a backend without Privater is not the backend itself")
	}
}
