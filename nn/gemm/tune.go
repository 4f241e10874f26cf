package gemm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Blocking is the part of the simd backend's blocking that is tuned per
// machine. None of it changes a result: every value of C is still the sum
// of the same products in the same order (one register accumulator per
// element, swept along k in blocks of the fixed kcMax, the blocks added
// into C in order), so the same inputs give the same bits whatever the
// blocking. What it changes is the order in which the register tiles of C
// are computed and whether an operand is read in place or from a packed
// copy, which is what differs between CPUs: cache sizes and associativity,
// how well the hardware prefetchers follow strided rows, the cost of a
// packing pass. Not tuned, because they would change results: kcMax, the
// kernel level (AVX-512, AVX2, generic), the tile shape's summation, and the
// choice between the dot-product kernels and the packed path for C = A*B^T
// (dotWins), which sum in different orders.
type Blocking struct {
	MC       int  `json:"mc"`        // rows of A per block (a packed A block holds MC x kc floats)
	NCFloats int  `json:"nc_floats"` // floats of the B block swept by each A sliver (kc x nc, kept in L2)
	PackA    bool `json:"pack_a"`    // always pack A (else only when its stride aliases in the caches)
	PackB    bool `json:"pack_b"`    // always pack B (else only when transposed or aliased)
}

// DefaultBlocking is the blocking measured best on AMD Zen 4 (1 MiB L2):
// the simd backend's blocking before tuning existed, and its blocking when
// tuning is off.
var DefaultBlocking = Blocking{MC: mcMax, NCFloats: l2Floats}

func (b Blocking) String() string {
	pack := "auto"
	switch {
	case b.PackA && b.PackB:
		pack = "A+B"
	case b.PackA:
		pack = "A"
	case b.PackB:
		pack = "B"
	}
	return fmt.Sprintf("mc %d, nc %dK floats, pack %s", b.MC, b.NCFloats>>10, pack)
}

// valid reports whether b can be used (a cache file could hold anything).
func (b Blocking) valid() bool {
	return b.MC >= 1 && b.MC <= 1<<16 && b.NCFloats >= 1 && b.NCFloats <= 1<<26
}

// Tuning is the blocking the default simd backend uses on this machine and
// where it came from.
type Tuning struct {
	CPU      CPU      `json:"cpu"`
	Level    string   `json:"level"`    // kernel level tuned for
	Blocking Blocking `json:"blocking"` // the chosen blocking
	// Source is "cache" (read from CachePath), "tuned" (measured now),
	// or "default" (DefaultBlocking: tuning is off, FOTSIM_GEMM_TUNE=off,
	// or the level has nothing to tune).
	Source    string `json:"source"`
	CachePath string `json:"cache_path,omitempty"`
	// CacheError says why the cache could not be read or written (then
	// the process tunes on every start); empty when it worked.
	CacheError string `json:"cache_error,omitempty"`
	// Trials are the candidates measured, in order, with the best time of
	// one pass over the tuning workload.
	Trials  []Trial   `json:"trials,omitempty"`
	TunedAt time.Time `json:"tuned_at"`
	Version int       `json:"version"`
}

// Trial is one candidate blocking and its measured time.
type Trial struct {
	Blocking Blocking `json:"blocking"`
	Seconds  float64  `json:"seconds"` // fastest pass over the tuning workload
}

// tuneVersion names the tuner (candidates and workload): a cache written by
// another version is ignored.
const tuneVersion = 1

// TuneEnv is the environment variable that controls tuning: "off" uses
// DefaultBlocking without measuring or reading the cache, "retune"
// measures again at start-up and rewrites the cache; unset or "auto" reads
// the cache and tunes only when there is none for this CPU.
const TuneEnv = "FOTSIM_GEMM_TUNE"

var tuning struct {
	once sync.Once
	cur  atomic.Pointer[Tuning]
}

// currentTuning returns the tuning of the default simd level, tuning or
// reading the cache at the first call.
func currentTuning() *Tuning {
	tuning.once.Do(func() {
		mode := strings.ToLower(os.Getenv(TuneEnv))
		t := tuneOrLoad(cacheDir(), mode)
		tuning.cur.Store(&t)
	})
	return tuning.cur.Load()
}

// SIMDTuning returns the blocking the default simd backend uses on this
// machine (read from the per-machine cache, or measured at the first use of
// the backend) and where it came from.
func SIMDTuning() Tuning { return *currentTuning() }

// Retune measures the candidate blockings again, stores the result in the
// per-machine cache and makes it the default simd backend's blocking for
// the calls that follow (results do not change: see Blocking).
func Retune() Tuning {
	currentTuning()
	t := tuneOrLoad(cacheDir(), "retune")
	tuning.cur.Store(&t)
	return t
}

// cacheDir returns the directory of the tuning cache: fotsim/ in the
// user's cache directory ($XDG_CACHE_HOME or ~/.cache on Linux), or "" with
// none.
func cacheDir() string {
	d, err := os.UserCacheDir()
	if err != nil || d == "" {
		return ""
	}
	return filepath.Join(d, "fotsim")
}

// cacheKey identifies the machine and tuner a cache file is valid for.
func cacheKey(c CPU, level string) string {
	h := sha256.Sum256([]byte(fmt.Sprintf("v%d|%s|%s|%s|%d|%d|%d|%d|%d|%d|%s",
		tuneVersion, c.Arch, c.Vendor, c.Model, c.Family, c.ModelID, c.Stepping,
		c.L1DBytes, c.L2Bytes, c.L3Bytes, level)))
	return hex.EncodeToString(h[:6])
}

// tuneOrLoad returns the tuning for this machine's best level: from the
// cache in dir when mode allows and it holds one, else measured (and
// written to the cache when dir is usable).
func tuneOrLoad(dir, mode string) Tuning {
	lv := levels()[0]
	cpu := CPUInfo()
	t := Tuning{CPU: cpu, Level: lv.name, Blocking: DefaultBlocking, Source: "default", Version: tuneVersion}
	if mode == "off" || mode == "0" || mode == "false" || lv == genericLevel {
		return t
	}
	var path string
	if dir == "" {
		t.CacheError = "no user cache directory"
	} else {
		path = filepath.Join(dir, "gemm-"+cacheKey(cpu, lv.name)+".json")
		t.CachePath = path
	}
	if path != "" && mode != "retune" {
		c, err := readTuning(path)
		if err == nil && c.Version == tuneVersion && c.Level == lv.name && c.Blocking.valid() {
			c.Source, c.CachePath, c.CacheError = "cache", path, ""
			c.CPU = cpu
			return c
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.CacheError = err.Error()
		}
	}
	t.Blocking, t.Trials = tune(lv, cpu)
	t.Source, t.TunedAt = "tuned", time.Now().UTC().Truncate(time.Second)
	if path != "" {
		if err := writeTuning(dir, path, t); err != nil {
			t.CacheError = err.Error()
		} else {
			t.CacheError = ""
		}
	}
	return t
}

func readTuning(path string) (Tuning, error) {
	var t Tuning
	b, err := os.ReadFile(path)
	if err != nil {
		return t, err
	}
	if err := json.Unmarshal(b, &t); err != nil {
		return t, fmt.Errorf("gemm: tuning cache %s: %w", path, err)
	}
	return t, nil
}

// writeTuning writes t to path atomically (a temporary file renamed), so
// that processes starting together never read half a file.
func writeTuning(dir, path string, t Tuning) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".gemm-*.tmp")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// shape is one product of the tuning workload.
type shape struct {
	transA, transB bool
	m, n, k        int
}

// tuneShapes are the products of a training step of the paper MLP
// (784-400-400-400-10, batch 64) as package nn calls them, forward
// (X*W^T), weight gradient (dY^T*X) and input gradient (dY*W), and one
// im2col convolution of the small CNN at a quarter of its rows. Products
// that take the dot-product kernels (no blocking) are left out when timed.
var tuneShapes = []shape{
	{false, true, 64, 400, 784}, {false, true, 64, 400, 400}, {false, true, 64, 400, 400}, {false, true, 64, 10, 400},
	{true, false, 400, 784, 64}, {true, false, 400, 400, 64}, {true, false, 400, 400, 64}, {true, false, 10, 400, 64},
	{false, false, 64, 400, 400}, {false, false, 64, 400, 400}, {false, false, 64, 400, 10},
	{false, true, 1024, 64, 800},
}

// candidates returns the blockings tried at each stage of the search: the
// packing policy first, then the B block size, then the A block size, each
// stage keeping the best of the one before. The sizes are derived from the
// CPU's caches where it reports them.
func candidates(lv *level, cpu CPU, stage int, best Blocking) []Blocking {
	var out []Blocking
	add := func(b Blocking) {
		for _, o := range out {
			if o == b {
				return
			}
		}
		out = append(out, b)
	}
	add(best)
	switch stage {
	case 0:
		for _, p := range [][2]bool{{true, false}, {false, true}, {true, true}} {
			b := best
			b.PackA, b.PackB = p[0], p[1]
			add(b)
		}
	case 1:
		sizes := []int{64 << 10, l2Floats}
		if l2 := cpu.L2Bytes; l2 >= 256<<10 {
			// Half and three quarters of L2 for the B block, the rest
			// for A slivers, C and what else the core touches.
			sizes = append(sizes, l2/8, l2*3/16)
		}
		for _, nc := range sizes {
			b := best
			b.NCFloats = nc
			add(b)
		}
	case 2:
		// A block in half of L2 at kcMax, or a small one in L1-sized rows.
		mcs := []int{mcMax, 8 * lv.mr}
		if l2 := cpu.L2Bytes; l2 >= 256<<10 {
			mcs = append(mcs, max(lv.mr, l2/2/4/kcMax/lv.mr*lv.mr))
		}
		for _, mc := range mcs {
			b := best
			b.MC = mc
			add(b)
		}
	}
	return out
}

// tuneStages is the number of stages of candidates.
const tuneStages = 3

// tune measures the candidate blockings on the tuning workload and
// returns the fastest and every trial. A candidate replaces the current
// best only when it is more than minGain faster, so that noise on a busy
// machine does not move the blocking away from the default for nothing.
func tune(lv *level, cpu CPU) (Blocking, []Trial) {
	const (
		passes  = 15   // timed passes per candidate, interleaved
		minGain = 0.03 // a candidate must be 3% faster to win
	)
	w := newWorkload(lv)
	best := DefaultBlocking
	var trials []Trial
	for stage := range tuneStages {
		cands := candidates(lv, cpu, stage, best)
		insts := make([]*SIMD, len(cands))
		for i := range cands {
			insts[i] = &SIMD{lv: lv, bl: &cands[i], own: new(workspace)}
			w.run(insts[i]) // warm-up: buffers, caches
		}
		times := make([]time.Duration, len(cands))
		for range passes {
			for i, s := range insts {
				start := time.Now()
				w.run(s)
				if d := time.Since(start); times[i] == 0 || d < times[i] {
					times[i] = d
				}
			}
		}
		bi := 0 // cands[0] is best
		for i := range cands {
			trials = append(trials, Trial{Blocking: cands[i], Seconds: times[i].Seconds()})
			if float64(times[i]) < float64(times[bi])*(1-minGain) {
				bi = i
			}
		}
		best = cands[bi]
	}
	return best, trials
}

// workload holds the operands of the tuning shapes.
type workload struct {
	shapes  []shape
	a, b, c [][]float32
}

func newWorkload(lv *level) *workload {
	w := new(workload)
	r := rand.New(rand.NewPCG(7, 11))
	fill := func(n int) []float32 {
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(r.NormFloat64())
		}
		return x
	}
	for _, s := range tuneShapes {
		if !s.transA && s.transB && lv.dot != nil && dotWins(lv, s.m, s.n, s.k) {
			continue
		}
		w.shapes = append(w.shapes, s)
		w.a = append(w.a, fill(s.m*s.k))
		w.b = append(w.b, fill(s.k*s.n))
		w.c = append(w.c, make([]float32, s.m*s.n))
	}
	return w
}

// run computes every product of the workload once with s.
func (w *workload) run(s *SIMD) {
	for i, sh := range w.shapes {
		lda, ldb := sh.k, sh.n
		if sh.transA {
			lda = sh.m
		}
		if sh.transB {
			ldb = sh.k
		}
		s.Sgemm(sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, w.a[i], lda, w.b[i], ldb, 0, w.c[i], sh.n)
	}
}
