package aggregator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/rng"
)

// Named tolerances of the FOT tests.
const (
	tolSpan    = 1e-5  // ||D u|| / ||D||_F after Project, u in span(U) (float32 maths)
	tolKeep    = 1e-5  // change of D v / ||D||_F for v orthogonal to U
	tolRemoved = 1e-5  // removed share against the float64 reference
	tolOrtho   = 1e-10 // ||U^T U - I||_max of a grown basis (float64 maths)
	tolCos     = 1e-6  // 1 - cos of the largest principal angle, exact low-rank data
)

// naiveBackend is a serial, allocation-free reference Sgemm (row-major).
type naiveBackend struct{}

func (naiveBackend) Name() string { return "naive" }

func (naiveBackend) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	for i := range m {
		for j := range n {
			var s float32
			for l := range k {
				var x, y float32
				if transA {
					x = a[l*lda+i]
				} else {
					x = a[i*lda+l]
				}
				if transB {
					y = b[j*ldb+l]
				} else {
					y = b[l*ldb+j]
				}
				s += x * y
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}

// backends lists the gemm backends every numeric test runs on.
func backends() []gemm.Backend {
	return []gemm.Backend{gemm.Default(), naiveBackend{}}
}

// randOrtho returns a d x k matrix with orthonormal columns (Q of the QR
// of a Gaussian matrix), nil when k == 0.
func randOrtho(r *rand.Rand, d, k int) *mat.Dense {
	if k == 0 {
		return nil
	}
	var qr mat.QR
	qr.Factorize(gaussDense(r, d, k))
	var q mat.Dense
	qr.QTo(&q)
	return mat.DenseCopyOf(q.Slice(0, d, 0, k))
}

// gaussDense returns a rows x cols matrix of N(0, 1) entries, drawn row by row.
func gaussDense(r *rand.Rand, rows, cols int) *mat.Dense {
	g := mat.NewDense(rows, cols, nil)
	for i := range rows {
		for j := range cols {
			g.Set(i, j, r.NormFloat64())
		}
	}
	return g
}

func randF32(r *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	return x
}

// dense64 widens a row-major float32 matrix.
func dense64(x []float32, rows, cols int) *mat.Dense {
	v := make([]float64, len(x))
	for i, f := range x {
		v[i] = float64(f)
	}
	return mat.NewDense(rows, cols, v)
}

// orthoErr returns ||U^T U - I||_max.
func orthoErr(u *mat.Dense) float64 {
	if u == nil {
		return 0
	}
	var g mat.Dense
	g.Mul(u.T(), u)
	_, k := u.Dims()
	var e float64
	for i := range k {
		for j := range k {
			want := 0.0
			if i == j {
				want = 1
			}
			e = math.Max(e, math.Abs(g.At(i, j)-want))
		}
	}
	return e
}

func basisOf(u *mat.Dense, dim int) *Basis {
	b := NewBasis(dim)
	if u != nil {
		b.Set(u)
	}
	return b
}

func TestProjectAnnihilatesSpan(t *testing.T) {
	const rows, cols = 33, 64
	for _, be := range backends() {
		for _, k := range []int{0, 1, 7, 40, 63, cols} {
			t.Run(fmt.Sprintf("%s/k=%d", be.Name(), k), func(t *testing.T) {
				r := rng.New(1, "test-project", k)
				u := randOrtho(r, cols, k)
				b := basisOf(u, cols)
				d := randF32(r, rows*cols)
				d0 := dense64(d, rows, cols)
				norm0 := mat.Norm(d0, 2)

				removed := NewProjector(be).Project(d, rows, cols, b)
				got := dense64(d, rows, cols)

				// float64 reference: Dref = D0 - D0 U U^T, removed = ||D0 U U^T|| / ||D0||.
				wantRemoved := 0.0
				ref := mat.DenseCopyOf(d0)
				if k > 0 {
					var p, puT mat.Dense
					p.Mul(d0, u)
					puT.Mul(&p, u.T())
					ref.Sub(d0, &puT)
					wantRemoved = mat.Norm(&puT, 2) / norm0
				}
				if math.Abs(removed-wantRemoved) > tolRemoved {
					t.Errorf("removed: got %v, want %v", removed, wantRemoved)
				}
				var diff mat.Dense
				diff.Sub(got, ref)
				if e := mat.Norm(&diff, 2) / norm0; e > tolSpan {
					t.Errorf("||D - Dref||_F / ||D0||_F: got %g, want <= %g", e, tolSpan)
				}
				// Every basis vector is mapped to zero.
				for j := range k {
					var du mat.VecDense
					du.MulVec(got, u.ColView(j))
					if e := mat.Norm(&du, 2) / norm0; e > tolSpan {
						t.Errorf("||D u_%d|| / ||D0||: got %g, want <= %g", j, e, tolSpan)
					}
				}
				// Vectors orthogonal to U are mapped as before.
				if k < cols {
					for trial := range 5 {
						v := mat.NewVecDense(cols, nil)
						for i := range cols {
							v.SetVec(i, r.NormFloat64())
						}
						for pass := 0; pass < 2 && k > 0; pass++ {
							var c, uc mat.VecDense
							c.MulVec(u.T(), v)
							uc.MulVec(u, &c)
							v.SubVec(v, &uc)
						}
						v.ScaleVec(1/mat.Norm(v, 2), v)
						var dv, d0v mat.VecDense
						dv.MulVec(got, v)
						d0v.MulVec(d0, v)
						dv.SubVec(&dv, &d0v)
						if e := mat.Norm(&dv, 2) / norm0; e > tolKeep {
							t.Errorf("trial %d: ||(D - D0) v|| / ||D0||: got %g, want <= %g", trial, e, tolKeep)
						}
					}
				}
				switch k {
				case 0:
					if !mat.Equal(got, d0) {
						t.Error("k=0: D changed, want untouched")
					}
				case cols:
					if removed != 1 || mat.Norm(got, 2) != 0 {
						t.Errorf("full basis: got removed %v and ||D|| %v, want 1 and 0", removed, mat.Norm(got, 2))
					}
				}
			})
		}
	}
}

// TestProjectModelSize checks the precision at the paper's largest layer.
func TestProjectModelSize(t *testing.T) {
	if testing.Short() {
		t.Skip("large projection")
	}
	const rows, cols, k = 400, 784, 200
	r := rng.New(2, "test-project-big")
	u := randOrtho(r, cols, k)
	b := basisOf(u, cols)
	d := randF32(r, rows*cols)
	d0 := dense64(d, rows, cols)
	removed := Project(d, rows, cols, b)
	var p, puT mat.Dense
	p.Mul(d0, u)
	puT.Mul(&p, u.T())
	norm0 := mat.Norm(d0, 2)
	if want := mat.Norm(&puT, 2) / norm0; math.Abs(removed-want) > tolRemoved {
		t.Errorf("removed: got %v, want %v", removed, want)
	}
	var du mat.Dense
	du.Mul(dense64(d, rows, cols), u)
	if e := mat.Norm(&du, 2) / norm0; e > tolSpan {
		t.Errorf("||D U||_F / ||D0||_F: got %g, want <= %g", e, tolSpan)
	}
	t.Logf("400x784 k=200: ||D U||_F/||D0||_F = %.2g", mat.Norm(&du, 2)/norm0)
}

func TestProjectTrivialInputs(t *testing.T) {
	b := basisOf(randOrtho(rng.New(3, "t"), 4, 2), 4)
	zero := make([]float32, 8)
	if got := Project(zero, 2, 4, b); got != 0 {
		t.Errorf("D = 0: got removed %v, want 0", got)
	}
	for i, v := range zero {
		if v != 0 {
			t.Errorf("D = 0: entry %d became %v", i, v)
		}
	}
	d := []float32{1, 2, 3, 4}
	if got := Project(d, 1, 4, nil); got != 0 || d[3] != 4 {
		t.Errorf("nil basis: got removed %v and D %v, want 0 and unchanged", got, d)
	}
	if got := Project(nil, 0, 4, b); got != 0 {
		t.Errorf("rows = 0: got removed %v, want 0", got)
	}
}

func TestProjectPanicsOnShapeMismatch(t *testing.T) {
	b := NewBasis(4)
	b.SetFloat32([]float32{1, 0, 0, 0}, 1)
	tests := []struct {
		name       string
		n          int
		rows, cols int
	}{
		{"length", 7, 2, 4},
		{"basis dimension", 6, 2, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic for %d values as %dx%d", tc.n, tc.rows, tc.cols)
				}
			}()
			Project(make([]float32, tc.n), tc.rows, tc.cols, b)
		})
	}
}

func TestProjectZeroAllocs(t *testing.T) {
	const rows, cols, k = 20, 48, 13 // small: gonum's Sgemm stays serial
	r := rng.New(4, "allocs")
	b := basisOf(randOrtho(r, cols, k), cols)
	d := randF32(r, rows*cols)
	for _, be := range backends() {
		pr := NewProjector(be)
		pr.Project(d, rows, cols, b)
		if n := testing.AllocsPerRun(20, func() { pr.Project(d, rows, cols, b) }); n != 0 {
			t.Errorf("%s: Projector.Project allocs: got %v, want 0", be.Name(), n)
		}
	}
	Project(d, rows, cols, b)
	if n := testing.AllocsPerRun(20, func() { Project(d, rows, cols, b) }); n != 0 {
		t.Errorf("Project allocs: got %v, want 0", n)
	}
}

// checkBasis verifies orthonormality, the size bound and that the first
// len(old) values (the previous columns) did not change.
func checkBasis(t *testing.T, step string, b *Basis, old *mat.Dense) {
	t.Helper()
	if b.K() > b.Dim() {
		t.Fatalf("%s: K %d exceeds d_in %d", step, b.K(), b.Dim())
	}
	u := b.Dense()
	if e := orthoErr(u); e > tolOrtho {
		t.Errorf("%s: ||U^T U - I||_max: got %g, want <= %g", step, e, tolOrtho)
	}
	if old != nil {
		_, k := old.Dims()
		if !mat.Equal(u.Slice(0, b.Dim(), 0, k), old) {
			t.Errorf("%s: old columns changed", step)
		}
	}
	f := b.Float32()
	if len(f) != b.Dim()*b.K() {
		t.Errorf("%s: float32 copy has %d values, want %d", step, len(f), b.Dim()*b.K())
	}
	for i, x := range f {
		if x != float32(u.RawMatrix().Data[i]) {
			t.Fatalf("%s: float32 copy entry %d is %v, want %v", step, i, x, float32(u.RawMatrix().Data[i]))
		}
	}
}

// nearSpan returns U C + delta * noise (d x c): directions at angle ~delta
// from span(U).
func nearSpan(r *rand.Rand, u *mat.Dense, c int, delta float64) *mat.Dense {
	d, k := u.Dims()
	var v mat.Dense
	v.Mul(u, gaussDense(r, k, c))
	for i := range d {
		for j := range c {
			v.Set(i, j, v.At(i, j)+delta*r.NormFloat64())
		}
	}
	return &v
}

func TestBasisAppendStaysOrthonormal(t *testing.T) {
	const dim = 30
	r := rng.New(5, "append")
	b := NewBasis(dim)
	steps := []struct {
		name string
		v    func() *mat.Dense
		want func(added int) bool
		desc string
	}{
		{"random 5", func() *mat.Dense { return dense64(randF32(r, dim*5), dim, 5) },
			func(a int) bool { return a == 5 }, "5"},
		{"near span 1e-4", func() *mat.Dense { return nearSpan(r, b.Dense(), 3, 1e-4) },
			func(a int) bool { return a == 3 }, "3"},
		{"near span 1e-3, dependent columns", func() *mat.Dense {
			v := nearSpan(r, b.Dense(), 2, 1e-3)
			w := mat.NewDense(dim, 4, nil)
			w.Slice(0, dim, 0, 2).(*mat.Dense).Copy(v)
			w.Slice(0, dim, 2, 4).(*mat.Dense).Copy(v) // the same two again
			return w
		}, func(a int) bool { return a == 2 }, "2"},
		{"near span 1e-9", func() *mat.Dense { return nearSpan(r, b.Dense(), 4, 1e-9) },
			func(a int) bool { return a == 0 }, "0"},
		{"inside span", func() *mat.Dense { return b.Dense() },
			func(a int) bool { return a == 0 }, "0"},
		{"zero columns", func() *mat.Dense { return mat.NewDense(dim, 3, nil) },
			func(a int) bool { return a == 0 }, "0"},
		{"more than room", func() *mat.Dense { return dense64(randF32(r, dim*40), dim, 40) },
			func(a int) bool { return a == dim-10 }, "d_in - 10 = 20"},
		{"full", func() *mat.Dense { return dense64(randF32(r, dim*3), dim, 3) },
			func(a int) bool { return a == 0 }, "0"},
	}
	for _, st := range steps {
		old := b.Dense()
		added := b.Append(st.v())
		if !st.want(added) {
			t.Errorf("%s: added %d, want %s", st.name, added, st.desc)
		}
		checkBasis(t, st.name, b, old)
	}
	if !b.Full() {
		t.Errorf("after the last steps: K = %d, want full %d", b.K(), dim)
	}
}

func TestBasisSetAndClone(t *testing.T) {
	u := randOrtho(rng.New(6, "set"), 5, 2)
	b := basisOf(u, 5)
	if b.K() != 2 || b.Dim() != 5 || b.Full() {
		t.Errorf("got K %d Dim %d Full %v, want 2 5 false", b.K(), b.Dim(), b.Full())
	}
	c := b.Clone()
	c.Append(dense64(randF32(rng.New(6, "more"), 5), 5, 1))
	if b.K() != 2 || c.K() != 3 {
		t.Errorf("clone: got K %d and %d, want 2 and 3", b.K(), c.K())
	}
	if !mat.Equal(b.Dense(), u) {
		t.Error("Dense: got a different matrix from the one Set")
	}
	e := NewBasis(5)
	e.SetFloat32(b.Float32(), 2)
	if e.K() != 2 || !mat.EqualApprox(e.Dense(), u, 1e-7) {
		t.Error("SetFloat32: basis differs from the float32 copy by more than float32 rounding")
	}
	e.SetFloat32(nil, 0)
	if e.K() != 0 || e.Dense() != nil {
		t.Errorf("SetFloat32(nil, 0): got K %d, want an empty basis", e.K())
	}
	for name, f := range map[string]func(){
		"NewBasis(0)":       func() { NewBasis(0) },
		"Set wrong rows":    func() { b.Set(mat.NewDense(4, 1, nil)) },
		"SetFloat32 len":    func() { b.SetFloat32(make([]float32, 9), 2) },
		"Append wrong rows": func() { b.Append(mat.NewDense(4, 1, nil)) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}

func BenchmarkProject(b *testing.B) {
	const rows, cols, k = 400, 784, 200
	r := rng.New(7, "bench-project")
	basis := basisOf(randOrtho(r, cols, k), cols)
	d0 := randF32(r, rows*cols)
	d := make([]float32, len(d0))
	pr := NewProjector(nil)
	copy(d, d0)
	pr.Project(d, rows, cols, basis) // size the scratch
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		copy(d, d0)
		pr.Project(d, rows, cols, basis)
	}
	b.ReportMetric(4*rows*cols*k*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func ExampleProject() {
	// The old tasks' inputs span the first coordinate axis of R^3.
	b := NewBasis(3)
	b.SetFloat32([]float32{1, 0, 0}, 1) // U = e_1 (3 x 1)
	// The aggregated update of a 1 x 3 weight matrix.
	d := []float32{1, 2, 2}
	removed := Project(d, 1, 3, b) // D <- D - D U U^T
	fmt.Printf("%v %.4f\n", d, removed)
	// Output: [0 2 2] 0.3333
}
