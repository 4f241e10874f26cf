package gemm

// Shape-check panics, shared by the backends that do not delegate to gonum.
// The messages follow blas32's wording so a caller sees the same text
// whichever backend is active.
const (
	panicBadShape = "gemm: negative dimension"
	panicBadLdA   = "gemm: bad lda"
	panicBadLdB   = "gemm: bad ldb"
	panicBadLdC   = "gemm: bad ldc"
	panicShortA   = "gemm: insufficient length of a"
	panicShortB   = "gemm: insufficient length of b"
	panicShortC   = "gemm: insufficient length of c"
)

// checkArgs panics when the arguments of Sgemm are inconsistent: negative
// sizes, a leading dimension smaller than a row, or a slice too short to
// hold the matrix it describes.
func checkArgs(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(panicBadShape)
	}
	rowA, colA := m, k // stored shape of a
	if transA {
		rowA, colA = k, m
	}
	rowB, colB := k, n
	if transB {
		rowB, colB = n, k
	}
	if lda < max(1, colA) {
		panic(panicBadLdA)
	}
	if ldb < max(1, colB) {
		panic(panicBadLdB)
	}
	if ldc < max(1, n) {
		panic(panicBadLdC)
	}
	if m == 0 || n == 0 {
		return
	}
	if k > 0 {
		if len(a) < lda*(rowA-1)+colA {
			panic(panicShortA)
		}
		if len(b) < ldb*(rowB-1)+colB {
			panic(panicShortB)
		}
	}
	if len(c) < ldc*(m-1)+n {
		panic(panicShortC)
	}
}
