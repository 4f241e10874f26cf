package aggregator

import (
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/nn/gemm"
)

// spanTol is the smallest sine of the angle between a candidate direction
// and the current span for which Append still adds it. A direction closer to
// the span than that (sin < 1e-6, i.e. more than 99.99999999995% of it already
// explained) carries no information that survived the float32 arithmetic of
// the sketches, and orthonormalising it would only amplify rounding noise into
// an arbitrary new basis vector.
const spanTol = 1e-6

// Basis is the orthonormal basis U_l (d_in x k, 0 <= k <= d_in) of one
// layer's old-task input subspace (docs/ALGORITHMS.md §3).
//
// The columns are kept in float64, row-major, for the exact maths of GPSE
// (SVD, QR, orthonormality to ~1e-15), and in a float32 copy, rounded once
// whenever the basis changes, that the per-round projection and the client
// sketches use. Old columns are never modified by Append, Grow or Extend:
// a basis only grows.
//
// A Basis is not safe for concurrent use when the package-level Project is
// called on it (it owns that function's scratch); Projectors and Sketches
// only read it.
type Basis struct {
	dim  int
	k    int
	u    []float64 // dim x k, row-major
	u32  []float32 // float32 copy of u
	sv   []float64 // singular values of the last Grow/Extend
	proj *Projector
}

// NewBasis returns an empty basis (k = 0) of vectors of length dim.
// It panics if dim < 1.
func NewBasis(dim int) *Basis {
	if dim < 1 {
		panic(fmt.Sprintf("aggregator: NewBasis dim %d < 1", dim))
	}
	return &Basis{dim: dim}
}

// Dim returns d_in, the length of the basis vectors.
func (b *Basis) Dim() int { return b.dim }

// K returns the number of basis vectors.
func (b *Basis) K() int { return b.k }

// Full reports whether the basis spans the whole input space (k == d_in):
// every projection then removes the whole update.
func (b *Basis) Full() bool { return b.k == b.dim }

// Dense returns a float64 copy of U (d_in x k), or nil when k == 0.
func (b *Basis) Dense() *mat.Dense {
	if b.k == 0 {
		return nil
	}
	return mat.NewDense(b.dim, b.k, append([]float64(nil), b.u...))
}

// Float32 returns the float32 copy of U, d_in x k row-major (length
// d_in*k), as a view: it is what Project and Sketch use and what a server
// sends to clients. Callers must not modify it.
func (b *Basis) Float32() []float32 { return b.u32[:b.dim*b.k] }

// Set replaces the basis by the columns of u (d_in x k), copied exactly.
// It is meant for restoring checkpoints and for tests: the columns must be
// orthonormal, which Set does not check. It panics if u does not have d_in
// rows or has more than d_in columns.
func (b *Basis) Set(u mat.Matrix) {
	r, c := u.Dims()
	if r != b.dim || c > b.dim {
		panic(fmt.Sprintf("aggregator: Basis.Set %dx%d, want %d rows and at most %d columns", r, c, b.dim, b.dim))
	}
	v := make([]float64, r*c)
	for i := range r {
		for j := range c {
			v[i*c+j] = u.At(i, j)
		}
	}
	b.setRaw(v, c)
}

// SetFloat32 replaces the basis by u (d_in x k row-major), for example a
// basis received from the server as a float32 tensor; the float64 copy is
// the exact widening of u. k may be 0 (empty basis). It panics if
// len(u) != d_in*k or k > d_in.
func (b *Basis) SetFloat32(u []float32, k int) {
	if k < 0 || k > b.dim || len(u) != b.dim*k {
		panic(fmt.Sprintf("aggregator: Basis.SetFloat32 %d values with k=%d, want %d*k and k <= %d", len(u), k, b.dim, b.dim))
	}
	v := make([]float64, len(u))
	for i, x := range u {
		v[i] = float64(x)
	}
	b.setRaw(v, k)
}

// Clone returns a deep copy of b (without its projection scratch).
func (b *Basis) Clone() *Basis {
	c := &Basis{dim: b.dim, k: b.k}
	c.u = append([]float64(nil), b.u...)
	c.u32 = append([]float32(nil), b.u32...)
	c.sv = append([]float64(nil), b.sv...)
	return c
}

// LastSingularValues returns (a copy of) the singular values of the sketch
// Y of the last Grow or Extend, in decreasing order, for diagnostics; nil
// before the first one.
func (b *Basis) LastSingularValues() []float64 {
	if b.sv == nil {
		return nil
	}
	return append([]float64(nil), b.sv...)
}

// setRaw installs v (dim x k row-major float64) and refreshes the float32 copy.
func (b *Basis) setRaw(v []float64, k int) {
	b.u, b.k = v, k
	b.u32 = make([]float32, len(v))
	for i, x := range v {
		b.u32[i] = float32(x)
	}
}

// Append orthonormalises [U | V] and makes the result the new basis: the
// old columns are kept unchanged and the new ones span the part of span(V)
// orthogonal to span(U). It returns the number of columns added.
//
// V (d_in x c) need not be orthonormal. Its columns are scaled to unit norm,
// made orthogonal to U by two passes of block classical Gram-Schmidt
// (W = V - U (U^T V), twice: "twice is enough" gives orthogonality to
// machine precision), then W's thin SVD W = P S Q^T reveals its rank:
// the singular values of W are the sines of the angles between span(V) and
// span(U) (and V's own dependence); directions with S_i <= 1e-6 are dropped
// as already in the span. The kept P columns get one more pass against U and
// a thin Householder QR (signs fixed so that diag(R) > 0) that restores
// orthonormality to ~1e-15. At most d_in - k columns are added, so the basis
// never exceeds d_in vectors. It panics if V does not have d_in rows, and
// returns 0 without changes if a factorisation fails (which gonum's LAPACK
// only reports for non-finite input).
func (b *Basis) Append(v mat.Matrix) int {
	r, c := v.Dims()
	if r != b.dim {
		panic(fmt.Sprintf("aggregator: Basis.Append %dx%d, want %d rows", r, c, b.dim))
	}
	room := b.dim - b.k
	if c == 0 || room == 0 {
		return 0
	}
	w := mat.DenseCopyOf(v)
	for j := range c {
		col := w.ColView(j)
		if n := mat.Norm(col, 2); n > 0 {
			for i := range r {
				w.Set(i, j, w.At(i, j)/n)
			}
		}
	}
	b.orthogonalise(w)
	b.orthogonalise(w)
	var svd mat.SVD
	if !svd.Factorize(w, mat.SVDThinU) {
		return 0
	}
	s := svd.Values(nil)
	keep := 0
	for keep < len(s) && keep < room && s[keep] > spanTol {
		keep++
	}
	if keep == 0 {
		return 0
	}
	var p mat.Dense
	svd.UTo(&p)
	q := mat.DenseCopyOf(p.Slice(0, r, 0, keep))
	b.orthogonalise(q)
	if !thinQRPositive(q) {
		return 0
	}
	k := b.k + keep
	nu := make([]float64, r*k)
	for i := range r {
		copy(nu[i*k:i*k+b.k], b.u[i*b.k:(i+1)*b.k])
		for j := range keep {
			nu[i*k+b.k+j] = q.At(i, j)
		}
	}
	b.setRaw(nu, k)
	return keep
}

// orthogonalise replaces w by w - U (U^T w) (one Gram-Schmidt pass).
func (b *Basis) orthogonalise(w *mat.Dense) {
	if b.k == 0 {
		return
	}
	u := mat.NewDense(b.dim, b.k, b.u)
	var coef, corr mat.Dense
	coef.Mul(u.T(), w)
	corr.Mul(u, &coef)
	w.Sub(w, &corr)
}

// thinQRPositive overwrites q (m x n, m >= n) with the Q factor of its
// thin Householder QR (thinQR), with column signs chosen so that diag(R) >=
// 0 (so a nearly orthonormal q is changed only by rounding). It reports
// false on non-finite input.
func thinQRPositive(q *mat.Dense) bool {
	a := q.RawMatrix()
	if nonFinite(a.Data) >= 0 {
		return false
	}
	n := a.Cols
	r := make([]float64, n*n)
	thinQR(a, r, make([]float64, n), make([]float64, thinQRWork(a.Rows, n)))
	for i := range a.Rows {
		row := a.Data[i*a.Stride : i*a.Stride+n]
		for j := range row {
			if r[j*n+j] < 0 {
				row[j] = -row[j]
			}
		}
	}
	return true
}

// Projector computes FedProject (docs/ALGORITHMS.md §3.1) with a gemm backend
// and scratch it owns, so that Project allocates nothing once the scratch
// has reached its largest size (rows x k). A Projector is not safe for
// concurrent use; use one per goroutine.
type Projector struct {
	be gemm.Backend
	p  []float32
}

// NewProjector returns a Projector that multiplies with be (nil means
// gemm.Default()).
func NewProjector(be gemm.Backend) *Projector {
	if be == nil {
		be = gemm.Default()
	}
	return &Projector{be: be}
}

// Project is FedProject for one layer, in place:
//
//	D <- D - (D U) U^T
//
// where D (rows = d_out x cols = d_in, row-major) is the aggregated update
// of a weight matrix and U = b's float32 copy (d_in x k). Afterwards D maps
// span(U) to zero, so a step along D does not change the layer's response to
// any input of the old tasks' subspace, and leaves directions orthogonal to
// U unchanged. It returns the share of the update removed,
//
//	removed = ||D U U^T||_F / ||D||_F = ||D U||_F / ||D||_F  (U orthonormal),
//
// 0 when D = 0, b is nil or k = 0 (D is then left untouched), 1 when the
// basis is full (k = d_in: D is zeroed exactly, without a product).
//
// Cost: two rows x cols x k products through the gemm backend
// (2*2*rows*cols*k flops). Precision: the products run in float32 on the
// float32 copy of U, so what is left of span(U) is float32 rounding:
// ||D_after U||_F / ||D||_F is ~3e-7 at 400 x 784 with k = 200 (tests
// require <= 1e-5), and the removed share, accumulated in float64 from the
// float32 D U, agrees with a float64 computation to ~1e-7.
// It panics if len(d) != rows*cols or cols != b.Dim().
func (pr *Projector) Project(d []float32, rows, cols int, b *Basis) (removed float64) {
	if rows < 0 || cols < 0 || len(d) != rows*cols {
		panic(fmt.Sprintf("aggregator: Project %d values, want %dx%d", len(d), rows, cols))
	}
	if b == nil {
		return 0
	}
	if cols != b.dim {
		panic(fmt.Sprintf("aggregator: Project update has %d columns, basis dimension %d", cols, b.dim))
	}
	if b.k == 0 || rows == 0 {
		return 0
	}
	nd := SumSquares32(d)
	if nd == 0 {
		return 0
	}
	if b.k == b.dim {
		clear(d)
		return 1
	}
	k := b.k
	if cap(pr.p) < rows*k {
		pr.p = make([]float32, rows*k)
	}
	p := pr.p[:rows*k]
	// P = D U (rows x k); D -= P U^T.
	pr.be.Sgemm(false, false, rows, k, cols, 1, d, cols, b.u32, k, 0, p, k)
	np := SumSquares32(p)
	pr.be.Sgemm(false, true, rows, cols, k, -1, p, k, b.u32, k, 1, d, cols)
	return min(1, math.Sqrt(np/nd))
}

// Project is Projector.Project with gemm.Default() and scratch owned by b
// (so it is allocation-free in steady state but not safe for concurrent
// calls on the same Basis).
func Project(d []float32, rows, cols int, b *Basis) (removed float64) {
	if b == nil {
		if rows < 0 || cols < 0 || len(d) != rows*cols {
			panic(fmt.Sprintf("aggregator: Project %d values, want %dx%d", len(d), rows, cols))
		}
		return 0
	}
	if b.proj == nil {
		b.proj = NewProjector(nil)
	}
	return b.proj.Project(d, rows, cols, b)
}
