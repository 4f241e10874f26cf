//go:build openblas && cgo

package gemm

/*
#cgo LDFLAGS: -lopenblas
#include <cblas.h>
*/
import "C"

import (
	"sync"
	"unsafe"
)

// OpenBLAS is the backend that calls cblas_sgemm of the system OpenBLAS
// (Debian: libopenblas-dev) through cgo. It exists only in binaries built
// with -tags openblas. OpenBLAS is limited to one thread on first use,
// because fotsim already runs one worker per core; OPENBLAS_CORETYPE, when
// set, is left to OpenBLAS itself.
type OpenBLAS struct{}

// oneThread limits OpenBLAS to one thread, once per process.
var oneThread = sync.OnceFunc(func() { C.openblas_set_num_threads(1) })

func init() { Register("openblas", func() Backend { return OpenBLAS{} }) }

// Name implements Backend.
func (OpenBLAS) Name() string { return "openblas" }

// Sgemm implements Backend.
func (OpenBLAS) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	oneThread()
	ta, tb := C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans), C.enum_CBLAS_TRANSPOSE(C.CblasNoTrans)
	if transA {
		ta = C.CblasTrans
	}
	if transB {
		tb = C.CblasTrans
	}
	var pa, pb *float32
	if k > 0 {
		pa, pb = &a[0], &b[0]
	}
	C.cblas_sgemm(C.CblasRowMajor, ta, tb, C.blasint(m), C.blasint(n), C.blasint(k),
		C.float(alpha), (*C.float)(unsafe.Pointer(pa)), C.blasint(lda),
		(*C.float)(unsafe.Pointer(pb)), C.blasint(ldb), C.float(beta),
		(*C.float)(unsafe.Pointer(&c[0])), C.blasint(ldc))
}
