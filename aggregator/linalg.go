package aggregator

import (
	"math"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas64"
	"gonum.org/v1/gonum/lapack/lapack64"
)

// The float helpers shared by Basis, Projector, Sketch and Refactorer: one
// thin QR, one serial float64 matrix product and the sums of squares.

// thinQRWork returns the length of the LAPACK workspace thinQR needs for a
// rows x cols matrix: the larger of Geqrf's and Orgqr's optimal sizes (at
// least 1). With at least that much, both use their optimal block size, so
// the result does not depend on how much more workspace is given.
func thinQRWork(rows, cols int) int {
	p := min(rows, cols)
	q := []float64{0}
	lapack64.Geqrf(blas64.General{Rows: rows, Cols: cols, Stride: cols}, nil, q, -1)
	lw := max(1, int(q[0]))
	lapack64.Orgqr(blas64.General{Rows: rows, Cols: p, Stride: cols}, make([]float64, p), q, -1)
	return max(lw, int(q[0]))
}

// thinQR factors the rows x cols matrix a (row-major, stride a.Stride) as
// a = Q R by Householder QR (LAPACK Geqrf, then Orgqr), in place: on return
// the first p = min(rows, cols) columns of a hold Q's orthonormal columns
// (any further columns hold leftovers of the factorisation) and, when r is
// not nil, r (p x cols, stride cols) holds the upper-triangular R. tau
// (length >= p) and work (length >= thinQRWork(rows, cols)) are scratch.
// a must be finite.
func thinQR(a blas64.General, r, tau, work []float64) {
	p := min(a.Rows, a.Cols)
	tau = tau[:p]
	lapack64.Geqrf(a, tau, work, len(work))
	if r != nil {
		for i := range p {
			for j := range a.Cols {
				if j >= i {
					r[i*a.Cols+j] = a.Data[i*a.Stride+j]
				} else {
					r[i*a.Cols+j] = 0
				}
			}
		}
	}
	lapack64.Orgqr(blas64.General{Rows: a.Rows, Cols: p, Stride: a.Stride, Data: a.Data}, tau, work, len(work))
}

// gemm64 computes C = alpha op(A) op(B) + beta C for row-major float64
// matrices (op(A) m x k, op(B) k x n), beta 0 or 1, serially and without
// allocating. gonum's blas64.Gemm would split the tall products here across
// goroutines (this keeps the refactor single-threaded, as docs/DESIGN.md asks)
// and computes A B^T as dot products, which rounds differently from the
// row updates here. Matrix-vector products (n = 1, B not transposed) go to
// blas64.Gemv, which is serial.
func gemm64(tA, tB bool, m, n, k int, alpha float64, a []float64, lda int, b []float64, ldb int, beta float64, c []float64, ldc int) {
	if n == 1 && !tB {
		ta, ar, ac := blas.NoTrans, m, k
		if tA {
			ta, ar, ac = blas.Trans, k, m
		}
		blas64.Gemv(ta, alpha,
			blas64.General{Rows: ar, Cols: ac, Stride: lda, Data: a[:(ar-1)*lda+ac]},
			blas64.Vector{N: k, Inc: ldb, Data: b[:(k-1)*ldb+1]}, beta,
			blas64.Vector{N: m, Inc: ldc, Data: c[:(m-1)*ldc+1]})
		return
	}
	if beta == 0 {
		for i := range m {
			clear(c[i*ldc : i*ldc+n])
		}
	}
	if tA {
		// A is stored k x m: accumulate rank-1 updates row by row of A and B.
		for l := range k {
			arow := a[l*lda : l*lda+m]
			for i, x := range arow {
				if x == 0 {
					continue
				}
				addScaledRowOfB(c[i*ldc:i*ldc+n], alpha*x, b, ldb, l, tB)
			}
		}
		return
	}
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		arow := a[i*lda : i*lda+k]
		for l, x := range arow {
			if x == 0 {
				continue
			}
			addScaledRowOfB(row, alpha*x, b, ldb, l, tB)
		}
	}
}

// addScaledRowOfB adds x times row l of op(B) to row: B[l, :] when !tB,
// B[:, l] (B stored n x k) when tB.
func addScaledRowOfB(row []float64, x float64, b []float64, ldb, l int, tB bool) {
	if tB {
		for j := range row {
			row[j] += x * b[j*ldb+l]
		}
		return
	}
	br := b[l*ldb : l*ldb+len(row)]
	for j := range row {
		row[j] += x * br[j]
	}
}

// nonFinite returns the index of the first NaN or Inf in x, or -1.
func nonFinite[T float32 | float64](x []T) int {
	for i, v := range x {
		if v-v != 0 { // NaN - NaN and Inf - Inf are NaN
			return i
		}
	}
	return -1
}

// sumSq64 returns sum x_i^2, accumulated in order.
func sumSq64(x []float64) float64 {
	var s float64
	for _, v := range x {
		s += v * v
	}
	return s
}

// norm64 returns the Euclidean norm sqrt(sum x_i^2) (without scaling: the
// vectors here are far from overflow).
func norm64(x []float64) float64 { return math.Sqrt(sumSq64(x)) }

// SumSquares32 returns sum x_i^2 accumulated in float64 (four partial
// sums, a fixed order: the same bits on every machine); +Inf or NaN when x
// holds a non-finite value. No float32 input overflows it.
func SumSquares32(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}
