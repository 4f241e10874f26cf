package aggregator

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// FedSVD (Lee et al., NeurIPS 2025; docs/ALGORITHMS.md §4): clients train only
// the B factor of a LoRA layer W = W0 + s B A; the server averages B and
// then refactors the product P = B_avg A_prev into B_new A_new = P with
// A_new having orthonormal rows and all singular values carried by B_new.
// Combined with FOT, the low-rank update is first projected off the old
// tasks' input subspace, P <- P - P U U^T (ProjectLowRank).
//
//	rf := aggregator.NewRefactorer()        // one per goroutine, reused every round
//	// after averaging the clients' B into bAvg (d_out x r), with the A (r x d_in)
//	// that was broadcast this round:
//	err := rf.Refactor(b, a, bAvg, a, dOut, dIn, r) // in place: b, a <- B_new, A_new
//	// FOT + FedSVD, U = the layer's Basis:
//	removed, err := rf.ProjectLowRank(b, a, bAvg, a, dOut, dIn, r, basis)

// ErrNonFiniteFactor is returned by Refactor and ProjectLowRank when B or A
// holds NaN or Inf; the destinations are then left untouched.
var ErrNonFiniteFactor = errors.New("aggregator: non-finite lora factor")

// refactorRankTol: a direction of A's row space (after projection) whose
// singular value is at most refactorRankTol * ||A||_F is treated as absent,
// i.e. as rounding noise of the projection (about 1e-16 sqrt(k) ||A||_F),
// and the corresponding row of A_new is chosen by completion instead.
const refactorRankTol = 1e-12

// Refactorer computes FedSVD refactors with scratch it owns, so that a
// Refactor allocates nothing once the scratch has reached the largest
// (d_out, d_in, r, k) seen, for r <= 128 (checked at d_out = d_in = 784;
// from r = 200 on, gonum's blocked LAPACK hands products to its
// multi-threaded Dgemm, which allocates). All maths is float64;
// B and A are float32 only on input and output. The zero value is ready to
// use. A Refactorer is not safe for concurrent use; use one per goroutine.
type Refactorer struct {
	dout, din, r, k int // dimensions the scratch and lwork were sized for
	lwork           int

	qb    []float64 // dout x r (stride r): B, then Q_B in the first pB columns
	qa    []float64 // din x r (stride r): A^T (projected), then Q_A in the first pA columns
	tauB  []float64
	tauA  []float64
	rb    []float64 // pB x r: R_B
	ra    []float64 // pA x r: R_A (destroyed by its SVD)
	w     []float64 // pA x pA: left singular vectors of R_A
	zt    []float64 // pA x r: first pA right singular vectors of R_A, as rows
	sa    []float64 // pA: singular values of R_A
	qh    []float64 // din x pA: orthonormal basis of A's row space (+ completion)
	rh    []float64 // pA x r: A^T = qh rh
	core  []float64 // pB x pA: R_B rh^T
	u     []float64 // pB x pB
	vt    []float64 // pA x pA
	s     []float64 // min(pB, pA)
	anew  []float64 // pA x din
	bnew  []float64 // dout x pB
	coef  []float64 // k x r: U^T A^T
	bu    []float64 // pB x k: R_B (A U)
	lev   []float64 // din: squared row norms of [U | qh[:, :c]]
	vec   []float64 // din
	gs    []float64 // max(k, pA): Gram-Schmidt coefficients
	work  []float64
	sv    []float64 // r: singular values of the last refactor
	valid bool
}

// NewRefactorer returns an empty Refactorer (equivalent to its zero value).
func NewRefactorer() *Refactorer { return &Refactorer{} }

// SingularValues returns the singular values of B_new A_new from the last
// Refactor or ProjectLowRank, in decreasing order, padded with zeros to
// length r (they are the column norms of B_new). It is a view into the
// scratch, valid until the next call; nil before the first call and after
// one that returned an error.
func (rf *Refactorer) SingularValues() []float64 {
	if !rf.valid {
		return nil
	}
	return rf.sv
}

// Refactor is FedSVD's server-side refactor of one LoRA layer. Given
// b = B (d_out x r) and a = A (r x d_in), row-major float32, it writes
// bNew = B_new (d_out x r) and aNew = A_new (r x d_in) with
//
//	B_new A_new = B A   (up to rounding; relative error ~1e-7, the float32 output),
//
// A_new with orthonormal rows and B_new = U_r S_r, i.e. the thin SVD
// B A = U S V^T with A_new = V_r^T and B_new = U_r S_r, computed without
// forming the d_out x d_in product, in O((d_out + d_in) r^2) float64 flops:
//
//	B = Q_B R_B, A^T = Q_A R_A        (thin Householder QR)
//	R_B R_A^T = U' S V'^T             (SVD of the r x r core)
//	A_new = (Q_A V')^T, B_new = Q_B U' S.
//
// The singular values are sorted in decreasing order; column i of B_new has
// norm s_i (SingularValues). Factors are unique only up to the signs of
// matching (column of B_new, row of A_new) pairs and rotations within equal
// singular values; the choice is deterministic.
//
// Rank deficiency. If B is rank-deficient (B = 0 included), the surplus
// singular values are zero, the matching columns of B_new are (numerically)
// zero and the matching rows of A_new still complete an orthonormal basis of
// A's row space: for B = 0, B_new = 0 exactly and A_new is an orthonormal
// basis of A's row space (A's right singular vectors, up to signs). If A
// itself has rank rho < r (directions with singular value <= 1e-12 ||A||_F
// count as absent; A = 0 included), its r - rho missing rows are completed
// deterministically by pivoted Gram-Schmidt on the coordinate vectors e_j
// (the j least covered by the rows so far first).
//
// Small layers. r > d_out is allowed: the rank is at most d_out and the
// last r - d_out columns of B_new are zero. r > d_in is allowed: A_new then
// has d_in orthonormal rows followed by r - d_in zero rows (no r x d_in
// matrix has more than d_in orthonormal rows), and B_new's matching columns
// are zero.
//
// bNew may be b and aNew may be a (in place): the inputs are read fully
// before any output is written. Errors: ErrNonFiniteFactor, ErrSVD (gonum
// reports non-convergence); the outputs are then left untouched. It panics
// if d_out, d_in or r < 1 or a slice length is not the product of its
// dimensions.
func (rf *Refactorer) Refactor(bNew, aNew, b, a []float32, dout, din, r int) error {
	_, err := rf.refactor(bNew, aNew, b, a, dout, din, r, nil)
	return err
}

// ProjectLowRank is FOT combined with FedSVD (docs/ALGORITHMS.md §4, last
// paragraph) for one LoRA layer: it projects the low-rank product off the
// old tasks' input subspace span(U) of basis (U = basis, d_in x k,
// orthonormal columns) and refactors the result,
//
//	P = B A,  P <- P - P U U^T,  B_new A_new = P   (as in Refactor),
//
// without forming P: P - P U U^T = B (A - (A U) U^T), so only A (r x d_in)
// is projected (in float64, with the basis's float64 columns), which keeps
// the rank <= r. Cost: Refactor's plus O(d_in k r) for the projection
// (about 2.5 ms at d_out = d_in = 784, r = 8, k = 200, against 0.3 ms for
// Refactor alone). Afterwards B_new A_new u = 0 for every u in span(U) (to
// float32 rounding of the outputs, ~1e-7 relative), and every row of A_new
// is orthogonal to span(U) as long as d_in - k >= r (rows completing a
// rank-deficient projection are drawn from the complement of span(U) first;
// only when that is exhausted do they enter span(U), paired with zero
// columns of B_new). So a client step on B alone, whose update is
// dB A_new, cannot touch span(U) either.
//
// It returns the share of the product removed, as Project does:
//
//	removed = ||P U U^T||_F / ||P||_F = ||B (A U)||_F / ||B A||_F,
//
// 0 when B A = 0 or basis is nil or empty (then it is Refactor), 1 when
// the basis is full (B_new = 0). Errors and panics as Refactor; it also
// panics if basis.Dim() != d_in.
func (rf *Refactorer) ProjectLowRank(bNew, aNew, b, a []float32, dout, din, r int, basis *Basis) (removed float64, err error) {
	if basis != nil && basis.dim != din {
		panic(fmt.Sprintf("aggregator: ProjectLowRank basis dimension %d, want d_in = %d", basis.dim, din))
	}
	return rf.refactor(bNew, aNew, b, a, dout, din, r, basis)
}

// Refactor is Refactorer.Refactor with a fresh Refactorer (it allocates its
// scratch; reuse a Refactorer in a round loop).
func Refactor(bNew, aNew, b, a []float32, dout, din, r int) error {
	return NewRefactorer().Refactor(bNew, aNew, b, a, dout, din, r)
}

// reserve sizes the scratch and the LAPACK workspace for (dout, din, r, k).
func (rf *Refactorer) reserve(dout, din, r, k int) {
	if rf.dout == dout && rf.din == din && rf.r == r && rf.k >= k && rf.work != nil {
		return
	}
	pB, pA := min(dout, r), min(din, r)
	grow := func(s []float64, n int) []float64 {
		if cap(s) < n {
			return make([]float64, n)
		}
		return s[:n]
	}
	rf.qb = grow(rf.qb, dout*r)
	rf.qa = grow(rf.qa, din*r)
	rf.tauB = grow(rf.tauB, pB)
	rf.tauA = grow(rf.tauA, pA)
	rf.rb = grow(rf.rb, pB*r)
	rf.ra = grow(rf.ra, pA*r)
	rf.w = grow(rf.w, pA*pA)
	rf.zt = grow(rf.zt, pA*r)
	rf.sa = grow(rf.sa, pA)
	rf.qh = grow(rf.qh, din*pA)
	rf.rh = grow(rf.rh, pA*r)
	rf.core = grow(rf.core, pB*pA)
	rf.u = grow(rf.u, pB*pB)
	rf.vt = grow(rf.vt, pA*pA)
	rf.s = grow(rf.s, min(pB, pA))
	rf.anew = grow(rf.anew, pA*din)
	rf.bnew = grow(rf.bnew, dout*pB)
	rf.coef = grow(rf.coef, k*r)
	rf.bu = grow(rf.bu, pB*k)
	rf.lev = grow(rf.lev, din)
	rf.vec = grow(rf.vec, din)
	rf.gs = grow(rf.gs, max(k, pA))
	rf.sv = grow(rf.sv, r)

	// Workspace queries (they do not touch the matrices).
	lw := max(thinQRWork(dout, r), thinQRWork(din, r))
	q := []float64{0}
	query := func() { lw = max(lw, int(q[0])) }
	lapack64.Gesvd(lapack.SVDStore, lapack.SVDStore,
		blas64.General{Rows: pA, Cols: r, Stride: r, Data: rf.ra},
		blas64.General{Rows: pA, Cols: pA, Stride: pA, Data: rf.w},
		blas64.General{Rows: pA, Cols: r, Stride: r, Data: rf.zt}, rf.sa, q, -1)
	query()
	lapack64.Gesvd(lapack.SVDAll, lapack.SVDAll,
		blas64.General{Rows: pB, Cols: pA, Stride: pA, Data: rf.core},
		blas64.General{Rows: pB, Cols: pB, Stride: pB, Data: rf.u},
		blas64.General{Rows: pA, Cols: pA, Stride: pA, Data: rf.vt}, rf.s, q, -1)
	query()
	rf.work = grow(rf.work, lw)
	rf.lwork = lw
	rf.dout, rf.din, rf.r, rf.k = dout, din, r, k
}

func (rf *Refactorer) refactor(bNew, aNew, b, a []float32, dout, din, r int, basis *Basis) (removed float64, err error) {
	if dout < 1 || din < 1 || r < 1 {
		panic(fmt.Sprintf("aggregator: Refactor dimensions d_out=%d d_in=%d r=%d, want >= 1", dout, din, r))
	}
	if len(b) != dout*r || len(bNew) != dout*r || len(a) != r*din || len(aNew) != r*din {
		panic(fmt.Sprintf("aggregator: Refactor lengths b=%d bNew=%d a=%d aNew=%d, want %d, %d, %d, %d",
			len(b), len(bNew), len(a), len(aNew), dout*r, dout*r, r*din, r*din))
	}
	rf.valid = false
	if i := nonFinite(b); i >= 0 {
		return 0, fmt.Errorf("%w: B[%d] = %v", ErrNonFiniteFactor, i, b[i])
	}
	if i := nonFinite(a); i >= 0 {
		return 0, fmt.Errorf("%w: A[%d] = %v", ErrNonFiniteFactor, i, a[i])
	}
	k := 0
	var U []float64 // din x k, row-major, orthonormal columns
	if basis != nil && basis.k > 0 {
		k, U = basis.k, basis.u
	}
	rf.reserve(dout, din, r, k)
	pB, pA := min(dout, r), min(din, r)
	m := min(pB, pA)

	// B and A^T in float64.
	for i, v := range b {
		rf.qb[i] = float64(v)
	}
	var normA2 float64
	for i := range r {
		row := a[i*din : (i+1)*din]
		for j, v := range row {
			x := float64(v)
			rf.qa[j*r+i] = x
			normA2 += x * x
		}
	}

	// Projection: A^T <- A^T - U (U^T A^T), keeping coef = U^T A^T = (A U)^T.
	if k > 0 {
		coef := rf.coef[:k*r]
		gemm64(true, false, k, r, din, 1, U, k, rf.qa, r, 0, coef, r)
		gemm64(false, false, din, r, k, -1, U, k, coef, r, 1, rf.qa, r)
	}

	// B = Q_B R_B and A^T = Q_A R_A.
	work := rf.work[:rf.lwork]
	thinQR(blas64.General{Rows: dout, Cols: r, Stride: r, Data: rf.qb}, rf.rb, rf.tauB, work)
	thinQR(blas64.General{Rows: din, Cols: r, Stride: r, Data: rf.qa}, rf.ra, rf.tauA, work)

	// R_A = W diag(sa) Z^T reveals A's rank; A^T = (Q_A W) (diag(sa) Z^T) = qh rh.
	if !lapack64.Gesvd(lapack.SVDStore, lapack.SVDStore,
		blas64.General{Rows: pA, Cols: r, Stride: r, Data: rf.ra},
		blas64.General{Rows: pA, Cols: pA, Stride: pA, Data: rf.w},
		blas64.General{Rows: pA, Cols: r, Stride: r, Data: rf.zt}, rf.sa, work, len(work)) {
		return 0, fmt.Errorf("%w: R_A of a %dx%d LoRA A", ErrSVD, r, din)
	}
	tol := refactorRankTol * math.Sqrt(normA2)
	rho := 0
	for rho < pA && rf.sa[rho] > tol {
		rho++
	}
	gemm64(false, false, din, pA, pA, 1, rf.qa, r, rf.w, pA, 0, rf.qh, pA)
	for i := range pA {
		for j := range r {
			if i < rho {
				rf.rh[i*r+j] = rf.sa[i] * rf.zt[i*r+j]
			} else {
				rf.rh[i*r+j] = 0
			}
		}
	}
	rf.orthonormalise(din, pA, rho, U, k)

	// Core R_B rh^T = U' S V'^T.
	gemm64(false, true, pB, pA, r, 1, rf.rb, r, rf.rh, r, 0, rf.core, pA)
	if !lapack64.Gesvd(lapack.SVDAll, lapack.SVDAll,
		blas64.General{Rows: pB, Cols: pA, Stride: pA, Data: rf.core},
		blas64.General{Rows: pB, Cols: pB, Stride: pB, Data: rf.u},
		blas64.General{Rows: pA, Cols: pA, Stride: pA, Data: rf.vt}, rf.s, work, len(work)) {
		return 0, fmt.Errorf("%w: %dx%d FedSVD core", ErrSVD, pB, pA)
	}

	// A_new = V'^T qh^T (pA x din), B_new = Q_B U' (dout x pB), scaled below.
	gemm64(false, true, pA, din, pA, 1, rf.vt, pA, rf.qh, pA, 0, rf.anew, din)
	gemm64(false, false, dout, pB, pB, 1, rf.qb, r, rf.u, pB, 0, rf.bnew, pB)

	// removed = ||B (A U)||_F / ||B A||_F, with ||B A||^2 = ||P_projected||^2 + ||B A U||^2.
	if k > 0 {
		bu := rf.bu[:pB*k]
		gemm64(false, true, pB, k, r, 1, rf.rb, r, rf.coef, r, 0, bu, k)
		x, y := sumSq64(bu), sumSq64(rf.s)
		if x+y > 0 {
			removed = min(1, math.Sqrt(x/(x+y)))
		}
	}

	// Outputs (float32), written only now so that they may alias the inputs.
	for i := range dout {
		row := bNew[i*r : (i+1)*r]
		for j := range row {
			if j < m {
				row[j] = float32(rf.bnew[i*pB+j] * rf.s[j])
			} else {
				row[j] = 0
			}
		}
	}
	for i := range r {
		row := aNew[i*din : (i+1)*din]
		if i >= pA {
			clear(row)
			continue
		}
		for j := range row {
			row[j] = float32(rf.anew[i*din+j])
		}
	}
	for i := range rf.sv {
		if i < m {
			rf.sv[i] = rf.s[i]
		} else {
			rf.sv[i] = 0
		}
	}
	rf.valid = true
	return removed, nil
}

// orthonormalise makes the columns of qh (din x pA) an orthonormal basis
// that is orthogonal to U (din x k) where possible:
//
//   - columns c < rho span A's (projected) row space. With a basis they get
//     one more Gram-Schmidt pass against U and the earlier columns and are
//     renormalised: this removes what rounding in the projection left of
//     span(U), which 1/s_c amplifies for small singular values s_c, while
//     changing qh rh only at the rounding level of A. Without a basis they
//     are orthonormal to ~1e-15 already and are left alone.
//   - columns c >= rho (A rank-deficient there) are replaced by a
//     deterministic completion: the coordinate vector e_j least covered by
//     [U | qh[:, :c]] (largest 1 - ||row j||^2, first j on ties), made
//     orthogonal to them by two Gram-Schmidt passes. When U and the columns
//     so far already span R^din, U is dropped from the criterion and the
//     completion is only orthogonal to the columns so far.
//
// A column c < rho that loses more than half its norm in the pass (impossible
// unless the projection was inaccurate) is replaced by a completion as well,
// and its row of rh is zeroed.
func (rf *Refactorer) orthonormalise(din, pA, rho int, U []float64, k int) {
	if k == 0 && rho == pA {
		return
	}
	qh, v := rf.qh, rf.vec[:din]
	useU := k > 0
	levReady := false
	for c := range pA {
		if c < rho && k > 0 {
			for j := range din {
				v[j] = qh[j*pA+c]
			}
			rf.project(v, c, pA, U, k)
			if n := norm64(v); n > 0.5 {
				for j := range din {
					x := v[j] / n
					qh[j*pA+c] = x
					if levReady {
						rf.lev[j] += x * x
					}
				}
				continue
			}
			clear(rf.rh[c*rf.r : (c+1)*rf.r])
		} else if c < rho {
			continue
		}
		// Completion.
		if !levReady {
			rf.leverage(din, pA, c, U, k, useU)
			levReady = true
		}
		for {
			best, jb := -1.0, 0
			for j, l := range rf.lev[:din] {
				if 1-l > best {
					best, jb = 1-l, j
				}
			}
			if best > 0.5/float64(din) || !useU {
				clear(v)
				v[jb] = 1
				break
			}
			useU = false // U and qh[:, :c] span R^din: complete qh alone
			rf.leverage(din, pA, c, U, k, useU)
		}
		kk := k
		if !useU {
			kk = 0
		}
		rf.project(v, c, pA, U, kk)
		rf.project(v, c, pA, U, kk)
		n := norm64(v)
		for j := range din {
			x := v[j] / n
			qh[j*pA+c] = x
			rf.lev[j] += x * x
		}
	}
}

// leverage sets lev[j] = ||row j of [U | qh[:, :c]]||^2 (U only if useU).
func (rf *Refactorer) leverage(din, pA, c int, U []float64, k int, useU bool) {
	for j := range din {
		var l float64
		if useU {
			for _, x := range U[j*k : (j+1)*k] {
				l += x * x
			}
		}
		for _, x := range rf.qh[j*pA : j*pA+c] {
			l += x * x
		}
		rf.lev[j] = l
	}
}

// project does one classical Gram-Schmidt pass v <- v - U (U^T v) -
// Q (Q^T v) with Q = qh[:, :c] (U skipped when k == 0).
func (rf *Refactorer) project(v []float64, c, pA int, U []float64, k int) {
	din := len(v)
	if k > 0 {
		g := rf.gs[:k]
		gemm64(true, false, k, 1, din, 1, U, k, v, 1, 0, g, 1)
		gemm64(false, false, din, 1, k, -1, U, k, g, 1, 1, v, 1)
	}
	if c > 0 {
		g := rf.gs[:c]
		gemm64(true, false, c, 1, din, 1, rf.qh, pA, v, 1, 0, g, 1)
		gemm64(false, false, din, 1, c, -1, rf.qh, pA, g, 1, 1, v, 1)
	}
}
