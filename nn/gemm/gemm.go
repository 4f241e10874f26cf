package gemm

import (
	"errors"
	"fmt"
	"sort"
	"sync"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Backend computes single-precision matrix products.
type Backend interface {
	// Name is the short name used by Lookup, e.g. "gonum".
	Name() string
	// Sgemm computes C = alpha*op(A)*op(B) + beta*C, all row-major.
	// op(A) is m x k (A is stored m x k with stride lda, or k x m when
	// transA), op(B) is k x n (B is k x n with stride ldb, or n x k when
	// transB), C is m x n with stride ldc. When beta == 0, C is not read.
	// It panics on inconsistent shapes, like blas32.
	Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
}

// Privater is implemented by backends that can hand out an instance for
// one goroutine with buffers of its own: faster and allocation-free even
// across garbage collections, but not safe for concurrent use.
type Privater interface {
	Private() Backend
}

// Private returns b.Private() when b implements Privater, else b itself.
func Private(b Backend) Backend {
	if p, ok := b.(Privater); ok {
		return p.Private()
	}
	return b
}

// ErrUnknown is returned by Lookup for a backend that is not compiled in.
var ErrUnknown = errors.New("gemm: unknown backend")

var (
	mu       sync.Mutex
	registry = map[string]func() Backend{}
	// preference lists backend names from fastest to slowest; Default
	// picks the first registered one.
	preference = []string{"openblas", "simd", "gonum"}
)

// Register makes a backend available to Lookup. Backends register
// themselves from init functions.
func Register(name string, f func() Backend) {
	mu.Lock()
	defer mu.Unlock()
	registry[name] = f
}

// Lookup returns the backend with the given name.
func Lookup(name string) (Backend, error) {
	mu.Lock()
	f, ok := registry[name]
	mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %q (available: %v)", ErrUnknown, name, Names())
	}
	return f(), nil
}

// Names lists the compiled-in backends, sorted.
func Names() []string {
	mu.Lock()
	defer mu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Gonum is the reference backend: gonum's pure-Go blas32 implementation.
type Gonum struct{ impl gonum.Implementation }

func init() { Register("gonum", func() Backend { return Gonum{} }) }

// Name implements Backend.
func (Gonum) Name() string { return "gonum" }

// Sgemm implements Backend.
func (g Gonum) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	ta, tb := blas.NoTrans, blas.NoTrans
	if transA {
		ta = blas.Trans
	}
	if transB {
		tb = blas.Trans
	}
	g.impl.Sgemm(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}
