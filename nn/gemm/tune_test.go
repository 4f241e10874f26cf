package gemm

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// allBlockings returns the candidates the tuner tries at level lv for
// several cache sizes (every value of each parameter it can pick), some
// combinations, and extremes: one tile of rows per A block, one sliver of
// columns per B block, and everything packed.
func allBlockings(lv *level) []Blocking {
	cpus := []CPU{CPUInfo(), {L2Bytes: 2 << 20}, {L2Bytes: 1280 << 10}, {}}
	seen := map[Blocking]bool{}
	var out []Blocking
	add := func(b Blocking) {
		if !seen[b] {
			seen[b] = true
			out = append(out, b)
		}
	}
	for _, cpu := range cpus {
		// Each stage's candidates from the default, and the last stage's
		// from the winner of the others picked as something else.
		for stage := range tuneStages {
			for _, c := range candidates(lv, cpu, stage, DefaultBlocking) {
				add(c)
			}
		}
		for _, c := range candidates(lv, cpu, 2, Blocking{MC: mcMax, NCFloats: 64 << 10, PackB: true}) {
			add(c)
		}
	}
	add(Blocking{MC: lv.mr, NCFloats: 1})
	add(Blocking{MC: 1, NCFloats: 1, PackA: true, PackB: true})
	add(Blocking{MC: 2*lv.mr + 1, NCFloats: 3 * kcMax * lv.nv * lv.vw, PackB: true})
	return out
}

// TestBlockingBitIdentical checks what makes tuning safe: every blocking
// the tuner can choose gives the same bits as DefaultBlocking, for odd
// shapes (partial tiles, several k blocks, strides that alias), every
// transpose, and alpha, beta other than 0 and 1.
func TestBlockingBitIdentical(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	type tc struct {
		m, n, k, pad int
	}
	shapes := []tc{
		{1, 1, 1, 0}, {13, 33, 7, 1}, {25, 47, 517, 3}, {37, 100, 1031, 0}, {64, 400, 784, 0},
		{130, 97, 64, 5}, {400, 784, 64, 0}, {257, 10, 400, 0}, {64, 256, 256, 0}, {29, 300, 1100, 256 - 300%256},
	}
	if testing.Short() || raceEnabled {
		shapes = shapes[:5]
	}
	for _, lvName := range SIMDLevels() {
		ref, _ := NewSIMD(lvName)
		lv := ref.lv
		ref = &SIMD{lv: lv, bl: &DefaultBlocking}
		bls := allBlockings(lv)
		shs := shapes
		if lv == genericLevel {
			shs = shapes[:min(len(shapes), 6)] // scalar Go: slow
		}
		for _, sh := range shs {
			for _, tA := range []bool{false, true} {
				for _, tB := range []bool{false, true} {
					for _, ab := range [][2]float32{{1, 0}, {0.75, 1.25}} {
						p := newProblem(r, tA, tB, sh.m, sh.n, sh.k, sh.pad, ab[0], ab[1])
						want := append([]float32(nil), p.c...)
						ref.Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, want, p.ldc)
						for i := range bls {
							s := &SIMD{lv: lv, bl: &bls[i]}
							got := append([]float32(nil), p.c...)
							s.Sgemm(p.transA, p.transB, p.m, p.n, p.k, p.alpha, p.a, p.lda, p.b, p.ldb, p.beta, got, p.ldc)
							for j := range got {
								if math.Float32bits(got[j]) != math.Float32bits(want[j]) {
									t.Fatalf("%s %v: %dx%dx%d transA=%v transB=%v alpha=%v beta=%v: C[%d] = %v, default blocking gives %v",
										lvName, bls[i], p.m, p.n, p.k, tA, tB, p.alpha, p.beta, j, got[j], want[j])
								}
							}
						}
					}
				}
			}
		}
		t.Logf("%s: %d blockings bit-identical", lvName, len(bls))
	}
}

// TestTuneCache tunes into an empty cache directory, reads the result back
// from it, retunes, and falls back to tuning without a cache when the
// directory cannot be written.
func TestTuneCache(t *testing.T) {
	lv := levels()[0]
	if lv == genericLevel {
		t.Skip("nothing to tune on the generic level")
	}
	dir := filepath.Join(t.TempDir(), "fotsim")
	first := tuneOrLoad(dir, "")
	if first.Source != "tuned" || first.CacheError != "" || first.CachePath == "" || len(first.Trials) == 0 || !first.Blocking.valid() {
		t.Fatalf("first tuning: %+v", first)
	}
	t.Logf("tuned: %v from %d trials", first.Blocking, len(first.Trials))
	second := tuneOrLoad(dir, "auto")
	if second.Source != "cache" || second.Blocking != first.Blocking || second.CachePath != first.CachePath {
		t.Fatalf("second call: source %q blocking %v path %q; want cache, %v, %q", second.Source, second.Blocking, second.CachePath, first.Blocking, first.CachePath)
	}
	if re := tuneOrLoad(dir, "retune"); re.Source != "tuned" || !re.TunedAt.After(first.TunedAt.Add(-1)) {
		t.Fatalf("retune: %+v", re)
	}
	if off := tuneOrLoad(dir, "off"); off.Source != "default" || off.Blocking != DefaultBlocking {
		t.Fatalf("off: %+v", off)
	}

	// A corrupt cache file is reported and replaced.
	if err := os.WriteFile(first.CachePath, []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c := tuneOrLoad(dir, ""); c.Source != "tuned" {
		t.Fatalf("after a corrupt cache: %+v", c)
	}
	var stored Tuning
	b, _ := os.ReadFile(first.CachePath)
	if err := json.Unmarshal(b, &stored); err != nil || stored.Version != tuneVersion {
		t.Fatalf("rewritten cache: %v %+v", err, stored)
	}

	// Unwritable: a file where the directory should be.
	blocker := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	u := tuneOrLoad(filepath.Join(blocker, "fotsim"), "")
	if u.Source != "tuned" || u.CacheError == "" || !u.Blocking.valid() {
		t.Fatalf("unwritable cache dir: %+v", u)
	}
	if n := tuneOrLoad("", ""); n.Source != "tuned" || n.CacheError == "" {
		t.Fatalf("no cache dir: %+v", n)
	}
	if runtime.GOOS == "linux" {
		t.Logf("unwritable: %s", u.CacheError)
	}
}

// TestDefaultBackendTuned checks that the registered simd backend uses the
// machine's tuning.
func TestDefaultBackendTuned(t *testing.T) {
	b, err := Lookup("simd")
	if err != nil {
		t.Fatal(err)
	}
	s := b.(*SIMD)
	tu := SIMDTuning()
	if s.lv.name == tu.Level && s.blocking() != tu.Blocking {
		t.Errorf("simd blocking %v, tuning says %v", s.blocking(), tu.Blocking)
	}
	t.Logf("%s: %v (%s %s)", tu.CPU, tu.Blocking, tu.Source, tu.CachePath)
}
