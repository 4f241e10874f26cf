package aggregator

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/nn/gemm"
)

// The maths of the merging and subspace methods that work on a weight
// matrix's own singular vectors (docs/ALGORITHMS.md §8 and §9): OPCM's
// projection of a task vector off the merged task vector, the top
// singular subspaces of a weight matrix (sculpt), and the two-sided
// projection of an update off them.

// ErrNonFiniteMatrix is returned for a weight matrix or task vector with a
// NaN or Inf entry.
var ErrNonFiniteMatrix = errors.New("aggregator: non-finite matrix")

// thinSVD returns the thin SVD a = U diag(s) V^T of the rows x cols matrix
// a (row-major float64): U rows x r, V cols x r, r = min(rows, cols).
func thinSVD(a []float64, rows, cols int) (u, v *mat.Dense, s []float64, err error) {
	if i := nonFinite(a); i >= 0 {
		return nil, nil, nil, fmt.Errorf("%w: entry %d is %v", ErrNonFiniteMatrix, i, a[i])
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, a), mat.SVDThin) {
		return nil, nil, nil, fmt.Errorf("%w on a %dx%d matrix", ErrSVD, rows, cols)
	}
	u, v = new(mat.Dense), new(mat.Dense)
	svd.UTo(u)
	svd.VTo(v)
	return u, v, svd.Values(nil), nil
}

// OPCMSplit returns OPCM's split rank for singular values s (decreasing):
// the first index i at which the cumulative share of the singular values
// (not squared) exceeds alpha,
//
//	k = min { i : (s_0 + ... + s_i) / sum_j s_j > alpha }
//
// (0 when s is empty or all zero), as the authors' code computes it.
func OPCMSplit(s []float64, alpha float64) int {
	var total float64
	for _, v := range s {
		total += v
	}
	if !(total > 0) {
		return 0
	}
	var c float64
	for i, v := range s {
		c += v
		if c/total > alpha {
			return i
		}
	}
	return 0
}

// OPCMProject projects the task vector tau of one weight matrix (rows x
// cols, row-major float64, in place) off the merged task vector prev of
// the earlier tasks (same shape), as OPCM does (Tang et al. 2025):
// with the thin SVD prev = U S V^T, r = min(rows, cols), and k =
// OPCMSplit(S, alpha),
//
//	P = U^T tau V                                   (r x r)
//	R_ij = P_ij if i == j or (i < k and j < k), else 0
//	tau <- tau - U R V^T
//
// tau loses its components along every u_i v_i^T and along u_i v_j^T
// for i, j < k; so afterwards <tau, prev>_F = 0. It returns k and the
// share removed, ||U R V^T||_F / ||tau||_F = ||R||_F / ||tau||_F. When
// prev is zero nothing is removed (k = 0, removed = 0). Errors:
// ErrNonFinite, ErrSVD. It panics on a length mismatch.
func OPCMProject(tau, prev []float64, rows, cols int, alpha float64) (k int, removed float64, err error) {
	if rows < 1 || cols < 1 || len(tau) != rows*cols || len(prev) != rows*cols {
		panic(fmt.Sprintf("aggregator: OPCMProject %d and %d values, want %dx%d", len(tau), len(prev), rows, cols))
	}
	if sumSq64(prev) == 0 {
		return 0, 0, nil
	}
	u, v, s, err := thinSVD(append([]float64(nil), prev...), rows, cols)
	if err != nil {
		return 0, 0, err
	}
	r := len(s)
	k = OPCMSplit(s, alpha)
	ur, vr := u.RawMatrix(), v.RawMatrix()
	// T = tau V (rows x r), P = U^T T (r x r).
	t := make([]float64, rows*r)
	gemm64(false, false, rows, r, cols, 1, tau, cols, vr.Data, vr.Stride, 0, t, r)
	p := make([]float64, r*r)
	gemm64(true, false, r, r, rows, 1, ur.Data, ur.Stride, t, r, 0, p, r)
	var rr float64
	for i := range r {
		for j := range r {
			if i == j || (i < k && j < k) {
				rr += p[i*r+j] * p[i*r+j]
			} else {
				p[i*r+j] = 0
			}
		}
	}
	nt := sumSq64(tau)
	// tau -= U (R V^T): reuse t as R V^T (r x cols).
	t = t[:0]
	t = append(t, make([]float64, r*cols)...)
	gemm64(false, true, r, cols, r, 1, p, r, vr.Data, vr.Stride, 0, t, cols)
	gemm64(false, false, rows, cols, r, -1, ur.Data, ur.Stride, t, cols, 1, tau, cols)
	if nt > 0 {
		removed = min(1, math.Sqrt(rr/nt))
	}
	return k, removed, nil
}

// EnergyRank returns the smallest k >= 1 whose leading squared singular
// values hold at least the share energy of the total,
// sum_{i<k} s_i^2 >= energy sum_i s_i^2 (0 when s is all zero).
func EnergyRank(s []float64, energy float64) int {
	var total float64
	for _, v := range s {
		total += v * v
	}
	if !(total > 0) {
		return 0
	}
	var c float64
	for i, v := range s {
		c += v * v
		if c >= energy*total {
			return i + 1
		}
	}
	return len(s)
}

// TopSubspaces returns the leading left and right singular vectors of the
// weight matrix w (rows x cols, row-major float32, widened exactly): with
// the thin SVD w = U S V^T and k = EnergyRank(S, energy), U[:, :k] (rows
// x k) and V[:, :k] (cols x k), and S. k may be 0 (w = 0): both are then
// nil. Errors: ErrNonFiniteMatrix, ErrSVD. It panics on a length mismatch.
func TopSubspaces(w []float32, rows, cols int, energy float64) (u, v *mat.Dense, s []float64, err error) {
	if rows < 1 || cols < 1 || len(w) != rows*cols {
		panic(fmt.Sprintf("aggregator: TopSubspaces %d values, want %dx%d", len(w), rows, cols))
	}
	a := make([]float64, len(w))
	for i, x := range w {
		a[i] = float64(x)
	}
	uf, vf, s, err := thinSVD(a, rows, cols)
	if err != nil {
		return nil, nil, nil, err
	}
	k := EnergyRank(s, energy)
	if k == 0 {
		return nil, nil, s, nil
	}
	return mat.DenseCopyOf(uf.Slice(0, rows, 0, k)), mat.DenseCopyOf(vf.Slice(0, cols, 0, k)), s, nil
}

// TwoSidedProjector projects an update off a left and a right subspace,
// with a gemm backend and scratch it owns (allocation-free once the
// scratch has grown). Not safe for concurrent use.
type TwoSidedProjector struct {
	be   gemm.Backend
	p, d []float32
}

// NewTwoSidedProjector returns a projector that multiplies with be (nil:
// gemm.Default()).
func NewTwoSidedProjector(be gemm.Backend) *TwoSidedProjector {
	if be == nil {
		be = gemm.Default()
	}
	return &TwoSidedProjector{be: be}
}

// Project applies, in place, to the update D (rows x cols, row-major)
//
//	D <- (I - U U^T) D (I - V V^T)
//
// with U = left's float32 copy (rows x ku) and V = right's (cols x kv),
// right first: D <- D - (D V) V^T, then D <- D - U (U^T D). Afterwards
// U^T D = 0 and D V = 0 up to float32 rounding. An empty or nil basis
// leaves its side alone. It returns the share removed, ||D_before -
// D_after||_F / ||D_before||_F (0 when D = 0). It panics if len(d) !=
// rows*cols or a basis's dimension does not fit.
func (pr *TwoSidedProjector) Project(d []float32, rows, cols int, left, right *Basis) (removed float64) {
	if rows < 1 || cols < 1 || len(d) != rows*cols {
		panic(fmt.Sprintf("aggregator: TwoSidedProjector.Project %d values, want %dx%d", len(d), rows, cols))
	}
	if (left != nil && left.dim != rows) || (right != nil && right.dim != cols) {
		panic(fmt.Sprintf("aggregator: TwoSidedProjector.Project %dx%d with bases that do not fit", rows, cols))
	}
	nd := SumSquares32(d)
	if nd == 0 {
		return 0
	}
	pr.d = append(pr.d[:0], d...)
	if right != nil && right.k > 0 {
		k := right.k
		p := pr.scratch(rows * k)
		pr.be.Sgemm(false, false, rows, k, cols, 1, d, cols, right.u32, k, 0, p, k)
		pr.be.Sgemm(false, true, rows, cols, k, -1, p, k, right.u32, k, 1, d, cols)
	}
	if left != nil && left.k > 0 {
		k := left.k
		p := pr.scratch(k * cols)
		pr.be.Sgemm(true, false, k, cols, rows, 1, left.u32, k, d, cols, 0, p, cols)
		pr.be.Sgemm(false, false, rows, cols, k, -1, left.u32, k, p, cols, 1, d, cols)
	}
	var diff float64
	for i, x := range d {
		e := float64(pr.d[i]) - float64(x)
		diff += e * e
	}
	return min(1, math.Sqrt(diff/nd))
}

func (pr *TwoSidedProjector) scratch(n int) []float32 {
	if cap(pr.p) < n {
		pr.p = make([]float32, n)
	}
	return pr.p[:n]
}
