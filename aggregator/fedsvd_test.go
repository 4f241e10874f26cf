package aggregator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/rng"
)

// Named tolerances of the FedSVD tests (outputs are float32, so ~6e-8 is
// the floor).
const (
	tolProduct   = 1e-5 // ||B_new A_new - P||_F / ||P||_F
	tolRowOrtho  = 1e-5 // ||A_new A_new^T - I||_max
	tolSV        = 1e-6 // |s_i - s_i(dense SVD)| / s_1, and |col norm of B_new - s_i| / s_1
	tolFactor    = 1e-5 // factors against the dense SVD, up to sign
	tolSpanZero  = 1e-5 // ||B_new A_new u|| / (||B A||_F ||u||) for u in span(U)
	tolRowPerp   = 1e-5 // |A_new U|_max when d_in - k >= r
	tolRemovedLR = 1e-6 // removed share against the float64 reference
	tolRowSpan   = 1e-5 // ||A - (A A_new^T) A_new||_F / ||A||_F when B = 0
)

// lowRank returns a rows x cols float32 matrix of rank <= rank (product of
// Gaussian factors, rounded to float32, so the rank is exact only up to
// float32 rounding).
func lowRank(r *rand.Rand, rows, cols, rank int) []float32 {
	out := make([]float32, rows*cols)
	if rank == 0 {
		return out
	}
	x := gaussDense(r, rows, rank)
	y := gaussDense(r, rank, cols)
	var p mat.Dense
	p.Mul(x, y)
	for i := range rows {
		for j := range cols {
			out[i*cols+j] = float32(p.At(i, j))
		}
	}
	return out
}

// sameFactors fails unless (b, a) equal (wantB, wantA) exactly.
func sameFactors(t *testing.T, what string, b, a, wantB, wantA []float32) {
	t.Helper()
	for i := range wantB {
		if b[i] != wantB[i] {
			t.Fatalf("%s: B_new[%d] = %v, want %v", what, i, b[i], wantB[i])
		}
	}
	for i := range wantA {
		if a[i] != wantA[i] {
			t.Fatalf("%s: A_new[%d] = %v, want %v", what, i, a[i], wantA[i])
		}
	}
}

// product returns B A in float64 (dout x din).
func product(b, a []float32, dout, din, r int) *mat.Dense {
	var p mat.Dense
	p.Mul(dense64(b, dout, r), dense64(a, r, din))
	return &p
}

// relDiffF returns ||got - want||_F / scale (scale = ||want||_F when 0 is passed
// and want != 0).
func relDiffF(got, want mat.Matrix, scale float64) float64 {
	var d mat.Dense
	d.Sub(got, want)
	if scale == 0 {
		scale = mat.Norm(want, 2)
	}
	if scale == 0 {
		return mat.Norm(&d, 2)
	}
	return mat.Norm(&d, 2) / scale
}

// rowOrthoErr returns ||A A^T - I||_max over the first n rows of a (rows of length din).
func rowOrthoErr(a []float32, n, din int) float64 {
	return orthoErr(mat.DenseCopyOf(dense64(a[:n*din], n, din).T()))
}

// colNorm returns the norm of column j of b (dout x r).
func colNorm(b []float32, dout, r, j int) float64 {
	var s float64
	for i := range dout {
		x := float64(b[i*r+j])
		s += x * x
	}
	return math.Sqrt(s)
}

// refactorCase is one input of the Refactor tests.
type refactorCase struct {
	name         string
	dout, din, r int
	b, a         []float32
}

func refactorCases() []refactorCase {
	r := rng.New(11, "fedsvd-cases")
	var cs []refactorCase
	add := func(name string, dout, din, rk int, b, a []float32) {
		cs = append(cs, refactorCase{name, dout, din, rk, b, a})
	}
	for _, sh := range []struct{ dout, din, r int }{{20, 30, 4}, {64, 48, 8}, {5, 200, 5}, {300, 7, 3}, {1, 9, 1}, {33, 33, 16}} {
		n := fmt.Sprintf("%dx%dr%d", sh.dout, sh.din, sh.r)
		add(n+"/random", sh.dout, sh.din, sh.r, randF32(r, sh.dout*sh.r), randF32(r, sh.r*sh.din))
		add(n+"/B=0", sh.dout, sh.din, sh.r, make([]float32, sh.dout*sh.r), randF32(r, sh.r*sh.din))
		if sh.r > 1 {
			add(n+"/B rank 1", sh.dout, sh.din, sh.r, lowRank(r, sh.dout, sh.r, 1), randF32(r, sh.r*sh.din))
			add(n+"/A rank 1", sh.dout, sh.din, sh.r, randF32(r, sh.dout*sh.r), lowRank(r, sh.r, sh.din, 1))
		}
	}
	// Exactly rank-deficient B: zero and duplicated columns.
	{
		b := randF32(r, 40*6)
		for i := range 40 {
			b[i*6+2] = 0
			b[i*6+4] = b[i*6+1]
			b[i*6+5] = -2 * b[i*6+1]
		}
		add("40x50r6/B zero+duplicate columns", 40, 50, 6, b, randF32(r, 6*50))
	}
	// Exactly rank-deficient A: duplicated rows, and A = 0.
	{
		a := randF32(r, 5*60)
		copy(a[3*60:4*60], a[0:60])
		copy(a[4*60:5*60], a[60:120])
		add("30x60r5/A duplicate rows", 30, 60, 5, randF32(r, 30*5), a)
		add("30x60r5/A=0", 30, 60, 5, randF32(r, 30*5), make([]float32, 5*60))
		add("30x60r5/A=0,B=0", 30, 60, 5, make([]float32, 30*5), make([]float32, 5*60))
	}
	// Steady state: A with orthonormal rows (the previous refactor's output).
	{
		q := randOrtho(r, 784, 8)
		a := make([]float32, 8*784)
		for i := range 8 {
			for j := range 784 {
				a[i*784+j] = float32(q.At(j, i))
			}
		}
		add("100x784r8/A orthonormal", 100, 784, 8, randF32(r, 100*8), a)
	}
	// Small layers: r > d_out, r > d_in, r > both.
	add("3x40r8/r>dout", 3, 40, 8, randF32(r, 3*8), randF32(r, 8*40))
	add("40x3r8/r>din", 40, 3, 8, randF32(r, 40*8), randF32(r, 8*3))
	add("2x3r5/r>both", 2, 3, 5, randF32(r, 2*5), randF32(r, 5*3))
	// Scale: tiny and huge entries.
	{
		b, a := randF32(r, 16*4), randF32(r, 4*24)
		for i := range b {
			b[i] *= 1e-20
		}
		add("16x24r4/tiny B", 16, 24, 4, b, a)
		b2, a2 := randF32(r, 16*4), randF32(r, 4*24)
		for i := range a2 {
			a2[i] *= 1e15
		}
		add("16x24r4/huge A", 16, 24, 4, b2, a2)
	}
	return cs
}

// checkFactors checks the FedSVD invariants of (bNew, aNew) for input (b, a).
func checkFactors(t *testing.T, c refactorCase, bNew, aNew []float32, sv []float64) {
	t.Helper()
	p := product(c.b, c.a, c.dout, c.din, c.r)
	pNew := product(bNew, aNew, c.dout, c.din, c.r)
	bZero := true
	for _, v := range c.b {
		bZero = bZero && v == 0
	}
	if bZero {
		for i, v := range bNew {
			if v != 0 {
				t.Fatalf("B = 0 but B_new[%d] = %g, want exactly 0", i, v)
			}
		}
	} else if e := relDiffF(pNew, p, 0); !(e <= tolProduct) {
		t.Errorf("||B_new A_new - B A||_F / ||B A||_F = %.3g, want <= %g", e, tolProduct)
	}
	pA := min(c.din, c.r)
	if e := rowOrthoErr(aNew, pA, c.din); !(e <= tolRowOrtho) {
		t.Errorf("||A_new A_new^T - I||_max = %.3g over the first %d rows, want <= %g", e, pA, tolRowOrtho)
	}
	for i := pA; i < c.r; i++ {
		for j := range c.din {
			if aNew[i*c.din+j] != 0 {
				t.Fatalf("A_new[%d][%d] = %g, want 0 (row beyond d_in = %d)", i, j, aNew[i*c.din+j], c.din)
			}
		}
	}
	if len(sv) != c.r {
		t.Fatalf("len(SingularValues()) = %d, want r = %d", len(sv), c.r)
	}
	s1 := sv[0]
	for j := range c.r {
		if j > 0 && sv[j] > sv[j-1] {
			t.Errorf("singular values not decreasing: s[%d] = %g > s[%d] = %g", j, sv[j], j-1, sv[j-1])
		}
		if n := colNorm(bNew, c.dout, c.r, j); math.Abs(n-sv[j]) > tolSV*max(s1, math.SmallestNonzeroFloat64)+1e-7*sv[j] {
			t.Errorf("||B_new[:, %d]|| = %.9g, want s_%d = %.9g", j, n, j, sv[j])
		}
	}
}

func TestRefactorPreservesProduct(t *testing.T) {
	rf := NewRefactorer() // shared across shapes: scratch must resize correctly
	for _, c := range refactorCases() {
		t.Run(c.name, func(t *testing.T) {
			bNew := make([]float32, len(c.b))
			aNew := make([]float32, len(c.a))
			if err := rf.Refactor(bNew, aNew, c.b, c.a, c.dout, c.din, c.r); err != nil {
				t.Fatal(err)
			}
			checkFactors(t, c, bNew, aNew, rf.SingularValues())

			// A fresh Refactorer gives bit-identical output (no state leaks
			// between shapes), and so does the in-place form.
			b2 := append([]float32(nil), c.b...)
			a2 := append([]float32(nil), c.a...)
			if err := Refactor(b2, a2, b2, a2, c.dout, c.din, c.r); err != nil {
				t.Fatal(err)
			}
			sameFactors(t, "in place/fresh", b2, a2, bNew, aNew)
		})
	}
}

// TestRefactorRandomShapes: random (d_out, d_in, r), including r above
// d_out or d_in, with B and A of random (possibly deficient, possibly zero) rank.
func TestRefactorRandomShapes(t *testing.T) {
	r := rng.New(21, "fedsvd-random-shapes")
	rf := NewRefactorer()
	var worstProd, worstOrtho float64
	for trial := range 200 {
		c := refactorCase{dout: 1 + r.IntN(60), din: 1 + r.IntN(60), r: 1 + r.IntN(12)}
		c.name = fmt.Sprintf("trial %d: %dx%d r=%d", trial, c.dout, c.din, c.r)
		c.b = lowRank(r, c.dout, c.r, r.IntN(c.r+1))
		c.a = lowRank(r, c.r, c.din, r.IntN(c.r+1))
		if r.IntN(4) == 0 { // full-rank factors as well
			c.b, c.a = randF32(r, c.dout*c.r), randF32(r, c.r*c.din)
		}
		bNew, aNew := make([]float32, len(c.b)), make([]float32, len(c.a))
		if err := rf.Refactor(bNew, aNew, c.b, c.a, c.dout, c.din, c.r); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		t.Run(c.name, func(t *testing.T) { checkFactors(t, c, bNew, aNew, rf.SingularValues()) })
		p := product(c.b, c.a, c.dout, c.din, c.r)
		if mat.Norm(p, 2) > 0 {
			worstProd = max(worstProd, relDiffF(product(bNew, aNew, c.dout, c.din, c.r), p, 0))
		}
		worstOrtho = max(worstOrtho, rowOrthoErr(aNew, min(c.din, c.r), c.din))
	}
	t.Logf("worst product rel err %.2g, worst row orthonormality err %.2g", worstProd, worstOrtho)
}

// TestRefactorIsIdempotent: refactoring a refactored pair keeps the
// product and the singular values (FedSVD runs it every round).
func TestRefactorIsIdempotent(t *testing.T) {
	r := rng.New(12, "fedsvd-idem")
	const dout, din, rk = 50, 70, 6
	b, a := randF32(r, dout*rk), randF32(r, rk*din)
	p := product(b, a, dout, din, rk)
	rf := NewRefactorer()
	var first []float64
	for round := range 5 {
		if err := rf.Refactor(b, a, b, a, dout, din, rk); err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			first = append([]float64(nil), rf.SingularValues()...)
		}
		if e := relDiffF(product(b, a, dout, din, rk), p, 0); !(e <= tolProduct) {
			t.Errorf("round %d: product drifted by %.3g, want <= %g", round, e, tolProduct)
		}
		for i, s := range rf.SingularValues() {
			if math.Abs(s-first[i]) > tolSV*first[0] {
				t.Errorf("round %d: s_%d = %.9g, want %.9g", round, i, s, first[i])
			}
		}
	}
}

// TestRefactorMatchesDenseSVD compares with an explicit SVD of the dense
// product on small sizes: singular values, product and factors up to sign.
func TestRefactorMatchesDenseSVD(t *testing.T) {
	r := rng.New(13, "fedsvd-dense")
	for _, sh := range []struct{ dout, din, r int }{{12, 9, 3}, {9, 12, 4}, {30, 25, 8}, {6, 6, 6}, {40, 10, 2}} {
		t.Run(fmt.Sprintf("%dx%dr%d", sh.dout, sh.din, sh.r), func(t *testing.T) {
			b, a := randF32(r, sh.dout*sh.r), randF32(r, sh.r*sh.din)
			bNew := make([]float32, len(b))
			aNew := make([]float32, len(a))
			rf := NewRefactorer()
			if err := rf.Refactor(bNew, aNew, b, a, sh.dout, sh.din, sh.r); err != nil {
				t.Fatal(err)
			}
			p := product(b, a, sh.dout, sh.din, sh.r)
			var svd mat.SVD
			if !svd.Factorize(p, mat.SVDThin) {
				t.Fatal("dense SVD failed")
			}
			s := svd.Values(nil)
			var u, v mat.Dense
			svd.UTo(&u)
			svd.VTo(&v)
			got := rf.SingularValues()
			for i := range sh.r {
				if math.Abs(got[i]-s[i]) > tolSV*s[0] {
					t.Errorf("s_%d = %.12g, want %.12g (dense SVD)", i, got[i], s[i])
				}
			}
			if e := relDiffF(product(bNew, aNew, sh.dout, sh.din, sh.r), p, 0); !(e <= tolProduct) {
				t.Errorf("product rel err %.3g, want <= %g", e, tolProduct)
			}
			for i := range sh.r {
				// Singular vectors are defined up to sign when s_i is simple.
				var dot float64
				for j := range sh.din {
					dot += float64(aNew[i*sh.din+j]) * v.At(j, i)
				}
				sign := math.Copysign(1, dot)
				if math.Abs(math.Abs(dot)-1) > tolFactor {
					t.Errorf("|<A_new row %d, v_%d>| = %.9f, want 1", i, i, math.Abs(dot))
				}
				var d float64
				for j := range sh.dout {
					x := float64(bNew[j*sh.r+i]) - sign*s[i]*u.At(j, i)
					d += x * x
				}
				if math.Sqrt(d) > tolFactor*s[0] {
					t.Errorf("||B_new[:, %d] - (%+g) s_%d u_%d|| = %.3g, want <= %g s_1", i, sign, i, i, math.Sqrt(d), tolFactor)
				}
			}
		})
	}
}

// TestRefactorBZeroKeepsRowSpace: with B = 0 the new A spans A's row space.
func TestRefactorBZeroKeepsRowSpace(t *testing.T) {
	r := rng.New(14, "fedsvd-b0")
	const dout, din, rk = 10, 40, 5
	a := randF32(r, rk*din)
	bNew := make([]float32, dout*rk)
	aNew := make([]float32, rk*din)
	if err := Refactor(bNew, aNew, make([]float32, dout*rk), a, dout, din, rk); err != nil {
		t.Fatal(err)
	}
	ad, an := dense64(a, rk, din), dense64(aNew, rk, din)
	var c, back mat.Dense
	c.Mul(ad, an.T())
	back.Mul(&c, an)
	if e := relDiffF(&back, ad, 0); !(e <= tolRowSpan) {
		t.Errorf("||A - (A A_new^T) A_new||_F / ||A||_F = %.3g, want <= %g", e, tolRowSpan)
	}
}

// projectCase builds B, A and an orthonormal basis U (d_in x k).
func projectCase(r *rand.Rand, dout, din, rk, k int) (b, a []float32, basis *Basis) {
	return randF32(r, dout*rk), randF32(r, rk*din), basisOf(randOrtho(r, din, k), din)
}

func TestProjectLowRank(t *testing.T) {
	r := rng.New(15, "fedsvd-project")
	cases := []struct {
		name             string
		dout, din, rk, k int
		alignRows        int  // rows of A placed inside span(U)
		coord            bool // U = the first k coordinate vectors, so that aligned rows are exact in float32
	}{
		{"no basis", 30, 40, 5, 0, 0, false},
		{"small basis", 30, 40, 5, 3, 0, false},
		{"half", 64, 100, 8, 50, 0, false},
		{"d_in-k = r", 20, 30, 6, 24, 0, false},
		{"d_in-k < r", 20, 30, 6, 27, 0, false},
		{"k = d_in-1", 20, 30, 6, 29, 0, false},
		{"full", 20, 30, 6, 30, 0, false},
		{"A rows near span(U)", 25, 60, 6, 20, 2, false},
		{"A near span(U)", 25, 60, 6, 20, 6, false},
		{"A rows inside coordinate span(U)", 25, 60, 6, 20, 2, true},
		{"A inside coordinate span(U)", 25, 60, 6, 20, 6, true},
		{"A inside coordinate span(U), d_in-k = r", 25, 26, 6, 20, 6, true},
		{"A inside coordinate span(U), d_in-k < r", 25, 24, 6, 20, 6, true},
		{"layer size", 100, 784, 8, 200, 1, false},
	}
	rf := NewRefactorer()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, a, basis := projectCase(r, c.dout, c.din, c.rk, c.k)
			if c.coord {
				e := make([]float32, c.din*c.k)
				for j := range c.k {
					e[j*c.k+j] = 1
				}
				basis.SetFloat32(e, c.k)
				for i := range c.alignRows {
					clear(a[i*c.din+c.k : (i+1)*c.din])
				}
			}
			// Put some rows of A (close to) span(U): A_i = U x_i, rounded to float32.
			for i := range c.alignRows {
				if c.coord {
					break
				}
				for j := range c.din {
					var s float64
					for l := range c.k {
						s += basis.u[j*c.k+l] * float64(l+1+i)
					}
					a[i*c.din+j] = float32(s)
				}
			}
			bNew := make([]float32, len(b))
			aNew := make([]float32, len(a))
			removed, err := rf.ProjectLowRank(bNew, aNew, b, a, c.dout, c.din, c.rk, basis)
			if err != nil {
				t.Fatal(err)
			}
			p := product(b, a, c.dout, c.din, c.rk)
			pNew := product(bNew, aNew, c.dout, c.din, c.rk)
			pn := mat.Norm(p, 2)
			// Reference: P - P U U^T in float64, and the removed share.
			want := mat.DenseCopyOf(p)
			wantRemoved := 0.0
			if c.k > 0 {
				u := basis.Dense()
				var pu, puu mat.Dense
				pu.Mul(p, u)
				puu.Mul(&pu, u.T())
				want.Sub(want, &puu)
				wantRemoved = mat.Norm(&pu, 2) / pn
			}
			if e := relDiffF(pNew, want, pn); !(e <= tolProduct) {
				t.Errorf("||B_new A_new - (P - P U U^T)||_F / ||P||_F = %.3g, want <= %g", e, tolProduct)
			}
			if math.Abs(removed-wantRemoved) > tolRemovedLR {
				t.Errorf("removed = %.9f, want %.9f", removed, wantRemoved)
			}
			if e := rowOrthoErr(aNew, c.rk, c.din); !(e <= tolRowOrtho) {
				t.Errorf("||A_new A_new^T - I||_max = %.3g, want <= %g", e, tolRowOrtho)
			}
			if c.k == 0 {
				return
			}
			// Any vector of span(U) is mapped to ~0 by the new product.
			u := basis.Dense()
			for trial := range 5 {
				coef := mat.NewVecDense(c.k, nil)
				for i := range c.k {
					coef.SetVec(i, r.NormFloat64())
				}
				var x, y mat.VecDense
				x.MulVec(u, coef)
				y.MulVec(pNew, &x)
				if e := mat.Norm(&y, 2) / (pn * mat.Norm(&x, 2)); !(e <= tolSpanZero) {
					t.Errorf("trial %d: ||B_new A_new u|| / (||P||_F ||u||) = %.3g, want <= %g", trial, e, tolSpanZero)
				}
			}
			// Rows of A_new avoid span(U) whenever there is room.
			if c.din-c.k >= c.rk {
				var au mat.Dense
				au.Mul(dense64(aNew, c.rk, c.din), u)
				var maxAbs float64
				for i := range c.rk {
					for j := range c.k {
						maxAbs = math.Max(maxAbs, math.Abs(au.At(i, j)))
					}
				}
				if maxAbs > tolRowPerp {
					t.Errorf("max |A_new U| = %.3g, want <= %g", maxAbs, tolRowPerp)
				}
			}
			if c.k == c.din {
				for i, v := range bNew {
					if math.Abs(float64(v)) > 1e-12*pn {
						t.Fatalf("full basis: B_new[%d] = %g, want ~0", i, v)
					}
				}
				if removed != 1 {
					t.Errorf("full basis: removed = %v, want 1", removed)
				}
			}
		})
	}
}

// TestProjectLowRankNilBasisIsRefactor: nil and empty bases change nothing.
func TestProjectLowRankNilBasisIsRefactor(t *testing.T) {
	r := rng.New(16, "fedsvd-nil")
	const dout, din, rk = 12, 20, 4
	b, a := randF32(r, dout*rk), randF32(r, rk*din)
	b1, a1 := make([]float32, len(b)), make([]float32, len(a))
	if err := Refactor(b1, a1, b, a, dout, din, rk); err != nil {
		t.Fatal(err)
	}
	for _, basis := range []*Basis{nil, NewBasis(din)} {
		b2, a2 := make([]float32, len(b)), make([]float32, len(a))
		removed, err := NewRefactorer().ProjectLowRank(b2, a2, b, a, dout, din, rk, basis)
		if err != nil || removed != 0 {
			t.Fatalf("got removed %v, err %v; want 0, nil", removed, err)
		}
		sameFactors(t, "ProjectLowRank/Refactor", b2, a2, b1, a1)
	}
}

func TestRefactorNonFinite(t *testing.T) {
	r := rng.New(17, "fedsvd-nan")
	const dout, din, rk = 6, 8, 2
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		for _, inB := range []bool{true, false} {
			b, a := randF32(r, dout*rk), randF32(r, rk*din)
			if inB {
				b[3] = bad
			} else {
				a[5] = bad
			}
			bNew := []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
			aNew := make([]float32, rk*din)
			rf := NewRefactorer()
			// A successful call first, so that the error must clear its state.
			if err := rf.Refactor(make([]float32, dout*rk), make([]float32, rk*din), randF32(r, dout*rk), randF32(r, rk*din), dout, din, rk); err != nil {
				t.Fatal(err)
			}
			err := rf.Refactor(bNew, aNew, b, a, dout, din, rk)
			if !errors.Is(err, ErrNonFiniteFactor) {
				t.Errorf("%v in B=%v: got %v, want ErrNonFiniteFactor", bad, inB, err)
			}
			if bNew[0] != 1 || bNew[11] != 12 {
				t.Errorf("%v in B=%v: outputs modified on error", bad, inB)
			}
			if rf.SingularValues() != nil {
				t.Errorf("SingularValues after an error = %v, want nil", rf.SingularValues())
			}
		}
	}
}

func TestRefactorPanicsOnShapeMismatch(t *testing.T) {
	mk := func(n int) []float32 { return make([]float32, n) }
	cases := []struct {
		name string
		f    func()
	}{
		{"r=0", func() { _ = Refactor(mk(0), mk(0), mk(0), mk(0), 3, 4, 0) }},
		{"short b", func() { _ = Refactor(mk(6), mk(8), mk(5), mk(8), 3, 4, 2) }},
		{"short bNew", func() { _ = Refactor(mk(5), mk(8), mk(6), mk(8), 3, 4, 2) }},
		{"short a", func() { _ = Refactor(mk(6), mk(8), mk(6), mk(7), 3, 4, 2) }},
		{"long aNew", func() { _ = Refactor(mk(6), mk(9), mk(6), mk(8), 3, 4, 2) }},
		{"basis dim", func() { _, _ = NewRefactorer().ProjectLowRank(mk(6), mk(8), mk(6), mk(8), 3, 4, 2, NewBasis(5)) }},
	}
	for _, c := range cases {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", c.name)
				}
			}()
			c.f()
		}()
	}
}

func TestRefactorZeroAllocs(t *testing.T) {
	r := rng.New(18, "fedsvd-allocs")
	const dout, din, rk, k = 784, 784, 8, 100
	b, a, basis := projectCase(r, dout, din, rk, k)
	bNew, aNew := make([]float32, len(b)), make([]float32, len(a))
	rf := NewRefactorer()
	if err := rf.Refactor(bNew, aNew, b, a, dout, din, rk); err != nil { // size the scratch
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() { _ = rf.Refactor(bNew, aNew, b, a, dout, din, rk) }); n != 0 {
		t.Errorf("Refactor: %v allocs per run, want 0", n)
	}
	if _, err := rf.ProjectLowRank(bNew, aNew, b, a, dout, din, rk, basis); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(5, func() { _, _ = rf.ProjectLowRank(bNew, aNew, b, a, dout, din, rk, basis) }); n != 0 {
		t.Errorf("ProjectLowRank: %v allocs per run, want 0", n)
	}
}

func BenchmarkRefactor(b *testing.B) {
	const dout, din, rk = 784, 784, 8
	r := rng.New(19, "bench-refactor")
	bb, a := randF32(r, dout*rk), randF32(r, rk*din)
	bNew, aNew := make([]float32, len(bb)), make([]float32, len(a))
	rf := NewRefactorer()
	if err := rf.Refactor(bNew, aNew, bb, a, dout, din, rk); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := rf.Refactor(bNew, aNew, bb, a, dout, din, rk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refactors/s")
}

func BenchmarkProjectLowRank(b *testing.B) {
	const dout, din, rk, k = 784, 784, 8, 200
	r := rng.New(20, "bench-project-lowrank")
	bb, a, basis := projectCase(r, dout, din, rk, k)
	bNew, aNew := make([]float32, len(bb)), make([]float32, len(a))
	rf := NewRefactorer()
	if _, err := rf.ProjectLowRank(bNew, aNew, bb, a, dout, din, rk, basis); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := rf.ProjectLowRank(bNew, aNew, bb, a, dout, din, rk, basis); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "refactors/s")
}

func ExampleRefactor() {
	// A LoRA pair B (3 x 2) and A (2 x 2), refactored in place.
	b := []float32{
		1, 0,
		0, 2,
		0, 0,
	}
	a := []float32{
		0, 1, // row 0 of A
		2, 0, // row 1 of A
	}
	// B A = [[0 1] [4 0] [0 0]]: singular values 4 and 1.
	if err := Refactor(b, a, b, a, 3, 2, 2); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("B_new:", b)
	fmt.Println("A_new:", a)
	// Output:
	// B_new: [0 1 4 0 0 0]
	// A_new: [1 0 0 1]
}
