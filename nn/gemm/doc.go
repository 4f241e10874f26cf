// Package gemm holds the single-precision matrix-multiply backends that every
// dense product in fotsim goes through.
//
// A Backend computes C = alpha*op(A)*op(B) + beta*C on row-major float32
// matrices. The kernels are single-threaded: fotsim parallelises across
// simulated clients, one worker per core, so results never depend on the
// number of threads. Backends are safe for concurrent use.
//
// Backends:
//
//	gonum     gonum's pure-Go blas32 (the reference)
//	simd      fotsim's own AVX-512 / AVX2+FMA kernels with a pure-Go fallback
//	openblas  OpenBLAS (cblas_sgemm) through cgo, only in binaries built with
//	          -tags openblas (needs Debian's libopenblas-dev); one thread
//
// Choose one with Lookup(name) and nn.SetBackend, or the FOTSIM_BACKEND
// environment variable read by Default. Measure times n x n x n products
// on a backend (the sgemm_gflops figure of fotsim bench).
//
// # The simd backend
//
// SIMD follows the BLIS/GotoBLAS scheme: C is computed in register tiles
// by micro-kernels that sweep k, over blocks of at most 512 k steps. The
// AVX-512 tile is 12 rows x 32 columns (24 zmm accumulators); AVX2's is
// 4 x 24 (12 ymm). Each kernel reads A and B either from packed panels or
// in place (A in either storage order, B as k x n rows): on Zen 4 the
// in-place reads are as fast, so only B stored n x k (transB) is always
// packed, by 8x8 register transposes, and A or B only when its stride
// aliases in the caches. Edge tiles run kernels generated for every row
// count and vector count, with masked (AVX-512) or VMASKMOVPS (AVX2) access
// to the last vector, so narrow outputs waste no rows and no out-of-range
// memory is touched. Products C = A*B^T with few columns (a classifier head:
// n = 10) use AVX-512 dot-product kernels instead, which read both operands
// along k and reduce with a shuffle tree. NewSIMD forces a level ("avx512",
// "avx2", "generic"), e.g. to compare them; the default is the best one the
// CPU supports (golang.org/x/sys/cpu). Packing buffers come from a
// sync.Pool: a call allocates nothing in steady state.
//
// # Tuning per machine
//
// The simd backend's cache blocking (rows of A and columns of B per block,
// and whether to pack operands that the kernels could read in place) is
// tuned for the CPU at the backend's first use: a short measurement (about
// half a second) of a few candidates on the products of a training step,
// cached per CPU model and cache sizes in the user's cache directory
// (os.UserCacheDir()/fotsim/gemm-<hash>.json) and read from there
// afterwards. When the directory cannot be written, each process tunes
// again. FOTSIM_GEMM_TUNE=off uses DefaultBlocking (measured on Zen 4),
// FOTSIM_GEMM_TUNE=retune measures again; Retune does it from code (fotsim
// bench --retune). No tuned parameter changes a result: the k blocking,
// which decides how partial sums are added, the kernel level and the
// choice of the dot-product kernels are fixed (see Blocking), and a test
// checks that every candidate gives bit-identical products. CPUInfo
// reports the CPU (vendor, model, cache sizes) tuned for.
//
// The assembly lives in internal/kern (Go forbids .s files in a package
// that uses cgo, as the openblas backend does); its kernels are generated
// by internal/kern/asmgen.go. The build tag purego drops it, leaving the
// pure-Go level.
package gemm
