// Package gemm holds the single-precision matrix-multiply backends that every
// dense product in fotsim goes through.
//
// A Backend computes C = alpha*op(A)*op(B) + beta*C on row-major float32
// matrices. The kernels are single-threaded: fotsim parallelises across
// simulated clients, one worker per core, so results never depend on the
// number of threads.
//
// Backends:
//
//	gonum     gonum's pure-Go blas32 (the reference)
//	simd      fotsim's own AVX2/AVX-512 kernels with a scalar fallback (default)
//	openblas  OpenBLAS through cgo, only in binaries built with -tags openblas
//
// Choose one with Lookup(name) and nn.SetBackend, or the FOTSIM_BACKEND
// environment variable read by Default.
package gemm
