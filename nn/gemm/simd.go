package gemm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fotsim/fotsim/nn/gemm/internal/kern"
)

// ErrLevel is returned by NewSIMD for a kernel level this CPU or build
// cannot run.
var ErrLevel = errors.New("gemm: unsupported simd level")

// Blocking. A packed A panel of kcMax columns and MR rows stays in L1 while
// the kernel sweeps the packed B block (at most Blocking.NCFloats floats,
// kept in L2); the packed A block holds at most Blocking.MC rows. kcMax is
// fixed: it decides how the partial sums of a product are added (one sum
// per k block, added into C), so changing it would change results. The
// other parameters change only the order in which tiles are computed and
// where operands are read from, never a value (tune.go).
const (
	kcMax    = 512
	mcMax    = 1024      // DefaultBlocking's MC
	l2Floats = 160 << 10 // DefaultBlocking's NCFloats
)

// level is one implementation of the packed micro-kernel scheme: its tile
// shape, its kernels and its packing routines.
type level struct {
	name string
	mr   int // rows of a packed A sliver (the full tile height)
	vw   int // floats per vector; B slivers are a multiple of vw wide
	nv   int // vectors of a full B sliver: NR = nv*vw

	// micro computes the mr' x (nv'*vw) tile at c[0], ldc. A is a packed
	// sliver (am == kern.APacked, stride mr) or the unpacked matrix at the
	// tile's first element (kern.ATrans or kern.ANoTrans, stride lda); B
	// a packed sliver (bm == kern.BPacked, stride nv'*vw) or unpacked rows
	// (kern.BRows, stride ldb). Only the first cols columns of the tile are
	// read from unpacked B and written to C (cols > (nv'-1)*vw).
	micro func(mr, nv, kc int, a []float32, am, lda int, b []float32, bm, ldb int, c []float32, ldc int, alpha, beta float32, loadC bool, cols int)

	// unpackA: micro takes unpacked A. unpackB: micro takes unpacked B
	// rows; maskB: also for a partial last vector.
	unpackA, unpackB, maskB bool
	// dot, if not nil, computes an mr x nd tile (mr <= dotMR, nd <= dotND,
	// mr*nd <= 16) of C = alpha*A*B^T + beta*C with A stored m x k and B
	// stored n x k, reading both in place: see kern.D512.
	dot          func(mr, nd, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32, loadC bool)
	dotMR, dotND int

	// packBRows > 0 packs B anyway when m > packBRows (B is re-read by
	// every A sliver; narrow tiles re-read it too often in place).
	packBRows int

	// copyPanel sets dst[p*W+j] = src[p*ld+j] for j < w, 0 for w <= j < W.
	copyPanel func(dst, src []float32, ld, k, w, W int)
	// copyBlock packs nsl full slivers of nr columns:
	// dst[s*k*nr+p*nr+j] = src[p*ld+s*nr+j].
	copyBlock func(dst, src []float32, ld, k, nsl, nr int)
	// transPanel sets dst[p*W+r] = src[r*ld+p] for r < w, 0 for w <= r < W.
	transPanel func(dst, src []float32, ld, k, w, W int)
}

// SIMD is the backend of fotsim's own packed, register-blocked kernels:
// AVX-512 or AVX2+FMA Go assembly on amd64, chosen at run time, and a
// pure-Go kernel elsewhere. It is safe for concurrent use; packing buffers
// come from a sync.Pool, so a call allocates nothing in steady state.
type SIMD struct {
	lv *level
	// pack overrides the packing heuristic in tests: packAuto, packAlways
	// or packNever (as far as the level allows).
	pack int
	// own, when set (Private), holds this instance's packing buffers
	// instead of the shared pool.
	own *workspace
	// bl, when set, is this instance's blocking; else tuned says whether
	// it uses the machine's tuned blocking (Tuning) or DefaultBlocking.
	bl    *Blocking
	tuned bool
}

// blocking returns the blocking s computes with.
func (s *SIMD) blocking() Blocking {
	switch {
	case s.bl != nil:
		return *s.bl
	case s.tuned:
		return currentTuning().Blocking
	}
	return DefaultBlocking
}

// Private implements Privater: a copy of s that owns its packing buffers,
// so that no garbage collection can empty them (a sync.Pool is cleared by
// every collection). It is not safe for concurrent use.
func (s *SIMD) Private() Backend {
	c := *s
	c.own = new(workspace)
	return &c
}

const (
	packAuto = iota
	packAlways
	packNever
	forceDot // the dot-product kernels whenever the level has them
)

func init() { Register("simd", func() Backend { return newTunedSIMD(levels()[0]) }) }

// newTunedSIMD returns the backend at level lv with the machine's tuned
// blocking when lv is the level tuned for (the best one), else with
// DefaultBlocking. Tuning (or reading the cached tuning) happens here, at
// the first such call.
func newTunedSIMD(lv *level) *SIMD {
	s := &SIMD{lv: lv, tuned: lv == levels()[0]}
	if s.tuned {
		currentTuning()
	}
	return s
}

// NewSIMD returns the simd backend forced to one kernel level: "avx512",
// "avx2" or "generic"; "" picks the best level this CPU supports.
func NewSIMD(level string) (*SIMD, error) {
	ls := levels()
	if level == "" {
		return newTunedSIMD(ls[0]), nil
	}
	for _, l := range ls {
		if l.name == level {
			return newTunedSIMD(l), nil
		}
	}
	return nil, fmt.Errorf("%w %q (this CPU: %v)", ErrLevel, level, SIMDLevels())
}

// SIMDLevels lists the kernel levels usable here, best first.
func SIMDLevels() []string {
	var names []string
	for _, l := range levels() {
		names = append(names, l.name)
	}
	return names
}

// Name implements Backend.
func (*SIMD) Name() string { return "simd" }

// Level reports the kernel level in use, e.g. "avx512".
func (s *SIMD) Level() string { return s.lv.name }

// workspace holds the packing buffers of one Sgemm call.
type workspace struct{ a, b []float32 }

var wsPool = sync.Pool{New: func() any { return new(workspace) }}

// zeroRow pads transposed panels; it is never written.
var zeroRow [kcMax]float32

// Sgemm implements Backend.
func (s *SIMD) Sgemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkArgs(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 || alpha == 0 {
		scaleC(m, n, beta, c, ldc)
		return
	}
	lv := s.lv
	nr := lv.nv * lv.vw
	bl := s.blocking()
	if !transA && transB && lv.dot != nil && (s.pack == forceDot || s.pack == packAuto && dotWins(lv, m, n, k)) {
		sgemmDot(lv, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}

	// Balanced k blocks, each a multiple of 8 but the last.
	nkb := (k + kcMax - 1) / kcMax
	kc := ceilTo((k+nkb-1)/nkb, 8)
	// Row blocks of A.
	nmb := (m + bl.MC - 1) / bl.MC
	mc := ceilTo((m+nmb-1)/nmb, lv.mr)
	// Column blocks of B sized for L2.
	ncMax := max(nr, bl.NCFloats/kc/nr*nr)
	nnb := (n + ncMax - 1) / ncMax
	nc := ceilTo((n+nnb-1)/nnb, nr)

	// Packing costs a pass over the operand; the kernels can read A and
	// non-transposed B in place instead, which on the measured CPU (Zen 4)
	// is as fast or faster unless the stride makes the rows alias in the
	// caches: the mr rows of an m x k A are read in parallel and must not
	// crowd one L1 set, and an operand re-read by many micro-kernel calls
	// (A by every B sliver, B by every A sliver) must not crowd the L2 sets.
	// B stored n x k (transB) is always packed: the kernels read B along n.
	packA := !lv.unpackA ||
		(!transA && aliasedRows(lda, lv.mr)) ||
		(n > nr && aliasedStride(lda))
	packB := transB || !lv.unpackB || (m > lv.mr && aliasedStride(ldb)) ||
		(lv.packBRows > 0 && m > lv.packBRows)
	packA = packA || bl.PackA
	packB = packB || bl.PackB
	switch s.pack {
	case packAlways:
		packA, packB = true, true
	case packNever:
		packA, packB = !lv.unpackA, transB || !lv.unpackB
	}

	// Packing buffers, only for what is packed (with AVX2's unmasked
	// in-place B reads, a partial last B sliver is packed too).
	var ws *workspace
	var pa, pb []float32
	if packA || packB || !lv.maskB {
		if ws = s.own; ws == nil {
			ws = wsPool.Get().(*workspace)
		}
		if need := mc * kc; packA && len(ws.a) < need {
			ws.a = make([]float32, need)
		}
		if need := kc * nc; len(ws.b) < need {
			ws.b = make([]float32, need)
		}
		pa, pb = ws.a, ws.b
	}

	for pc := 0; pc < k; pc += kc {
		kb := min(kc, k-pc)
		loadC, bet := beta != 0, beta
		if pc > 0 {
			loadC, bet = true, 1
		}
		for ic := 0; ic < m; ic += mc {
			mb := min(mc, m-ic)
			if packA {
				// Pack A[ic:ic+mb, pc:pc+kb] into slivers of mr rows.
				for ir := 0; ir < mb; ir += lv.mr {
					w := min(lv.mr, mb-ir)
					dst := pa[ir*kb : (ir+lv.mr)*kb]
					if transA { // A is k x m: row p of the sliver is contiguous
						lv.copyPanel(dst, a[pc*lda+ic+ir:], lda, kb, w, lv.mr)
					} else {
						lv.transPanel(dst, a[(ic+ir)*lda+pc:], lda, kb, w, lv.mr)
					}
				}
			}
			for jc := 0; jc < n; jc += nc {
				nb := min(nc, n-jc)
				// Pack B[pc:pc+kb, jc:jc+nb] into slivers of nr columns; the
				// last one is only as wide as the vectors it needs.
				jr := 0
				switch {
				case !packB:
					// Unpacked rows; a partial last vector needs masked
					// loads, else that sliver is packed.
					jr = nb
					if !lv.maskB && nb%lv.vw != 0 {
						jr = nb / nr * nr
					}
				case !transB && nb >= nr:
					// Full slivers in one row-major sweep of B.
					nsl := nb / nr
					lv.copyBlock(pb, b[pc*ldb+jc:], ldb, kb, nsl, nr)
					jr = nsl * nr
				}
				for ; jr < nb; jr += nr {
					w := min(nr, nb-jr)
					W := ceilTo(w, lv.vw)
					dst := pb[jr*kb : jr*kb+W*kb]
					if transB { // B is n x k
						lv.transPanel(dst, b[(jc+jr)*ldb+pc:], ldb, kb, w, W)
					} else {
						lv.copyPanel(dst, b[pc*ldb+jc+jr:], ldb, kb, w, W)
					}
				}
				packedFrom := 0 // first column of the packed slivers
				if !packB {
					packedFrom = nb
					if !lv.maskB && nb%lv.vw != 0 {
						packedFrom = nb / nr * nr
					}
				}
				for ir := 0; ir < mb; ir += lv.mr {
					rows := min(lv.mr, mb-ir)
					var am int
					var ap []float32
					switch {
					case packA:
						am, ap = kern.APacked, pa[ir*kb:]
					case transA:
						am, ap = kern.ATrans, a[pc*lda+ic+ir:]
					default:
						am, ap = kern.ANoTrans, a[(ic+ir)*lda+pc:]
					}
					crow := (ic + ir) * ldc
					for jr := 0; jr < nb; jr += nr {
						w := min(nr, nb-jr)
						nv := (w + lv.vw - 1) / lv.vw
						var bm int
						var bp []float32
						if jr < packedFrom {
							bm, bp = kern.BRows, b[pc*ldb+jc+jr:]
						} else {
							bm, bp = kern.BPacked, pb[jr*kb:]
						}
						lv.micro(rows, nv, kb, ap, am, lda, bp, bm, ldb, c[crow+jc+jr:], ldc, alpha, bet, loadC, w)
					}
				}
			}
		}
	}
	if ws != nil && s.own == nil {
		wsPool.Put(ws)
	}
}

// dotWins estimates, in vector-FMA cycles, whether the dot-product kernels
// beat the packed path for C = A*B^T. They waste no lanes when n is not a
// multiple of the vector width and pack nothing, but pay a horizontal
// reduction and a call per tile (about dotTileCost). The packed path
// transposes B into panels (about packTransCost per element). Both
// constants were fitted on Zen 4 to the MLP and conv shapes of
// BenchmarkSgemm.
func dotWins(lv *level, m, n, k int) bool {
	const (
		dotTileCost   = 140
		packTransCost = 1.5
	)
	nd, rows := dotTile(lv, n)
	tiles := float64((m+rows-1)/rows) * float64((n+nd-1)/nd)
	dot := float64(m)*float64(n)*float64((k+lv.vw-1)/lv.vw) + tiles*dotTileCost
	packed := float64(m)*float64((n+lv.vw-1)/lv.vw)*float64(k) + packTransCost*float64(n)*float64(k)
	return dot < packed
}

// dotTile picks the dot-product tile: nd columns (a divisor of n when one
// of dotND, dotND-1 is) and as many rows as fit 16 accumulators.
func dotTile(lv *level, n int) (nd, rows int) {
	nd = lv.dotND - 1
	if n%lv.dotND == 0 || n < nd {
		nd = min(lv.dotND, n)
	}
	return nd, min(lv.dotMR, 16/nd)
}

// sgemmDot computes C = alpha*A*B^T + beta*C (A m x k, B n x k) with the
// dot-product kernels; B's nd-row tile stays in L1 while A streams by.
func sgemmDot(lv *level, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	nd, rows := dotTile(lv, n)
	for j := 0; j < n; j += nd {
		jn := min(nd, n-j)
		for i := 0; i < m; i += rows {
			lv.dot(min(rows, m-i), jn, k, a[i*lda:], lda, b[j*ldb:], ldb, c[i*ldc+j:], ldc, alpha, beta, beta != 0)
		}
	}
}

// scaleC sets C = beta*C, without reading C when beta == 0.
func scaleC(m, n int, beta float32, c []float32, ldc int) {
	for i := 0; i < m; i++ {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		if beta != 1 {
			for j := range row {
				row[j] *= beta
			}
		}
	}
}

// aliasedRows reports whether rows rows of stride ld floats fall into so
// few 64-byte sets of a 4 KiB-periodic, 8-way L1 that more than 4 share one.
func aliasedRows(ld, rows int) bool {
	g := 4096
	for b := 4 * ld % 4096; b != 0; g, b = b, g%b {
	}
	sets := max(1, 4096/max(g, 64))
	return (rows+sets-1)/sets > 4
}

// aliasedStride reports whether a stride of ld floats maps a panel of
// kcMax rows onto so few sets of a 1 MiB, 8-way L2 (128 KiB period) that
// the panel cannot stay cached: ld a multiple of 256 floats.
func aliasedStride(ld int) bool { return ld%256 == 0 }

func ceilTo(x, q int) int { return (x + q - 1) / q * q }
