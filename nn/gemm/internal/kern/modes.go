package kern

// Operand modes of the micro-kernels: the first two indices of K512 and
// K256 (the order of aModes and bModes in asmgen.go).
const (
	APacked  = iota // packed A sliver: MR floats per k step
	ATrans          // A stored k x m: element (i, p) at a[p*lda+i]
	ANoTrans        // A stored m x k: element (i, p) at a[i*lda+p]
)

const (
	BPacked = iota // packed B sliver: nv*VW floats per k step
	BRows          // B stored k x n: element (p, j) at b[p*ldb+j]
)
