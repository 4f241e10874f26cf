package aggregator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/rng"
)

// Named tolerances of the GPSE tests.
const (
	tolExact    = 1e-12 // hand-computed float64 values
	tolSketch   = 1e-5  // Sketch (float32) against the float64 reference, relative to max |Y|
	tolCosNoisy = 1e-5  // 1 - cos of the largest principal angle, noise 1e-3 (measured ~3e-7)
)

func TestThresholdFOT(t *testing.T) {
	tests := []struct {
		name   string
		ratios []float64
		ns     []int64
		eps    float64
		first  bool
		want   float64
	}{
		// first task: eps' = eps whatever the ratios.
		{"first", []float64{0.3}, []int64{10}, 0.96, true, 0.96},
		// rbar = 1: eps' = (1 - 0.04) / 1 = 0.96.
		{"no basis yet", []float64{1, 1}, []int64{3, 5}, 0.96, false, 0.96},
		// rbar = 100/400*0.5 + 300/400*0.2 = 0.125 + 0.15 = 0.275;
		// eps' = (0.275 - 0.1) / 0.275 = 0.175/0.275 = 7/11.
		{"sample weighted", []float64{0.5, 0.2}, []int64{100, 300}, 0.9, false, 7.0 / 11},
		// all n = 0: uniform weights, rbar = (0.5+0.2)/2 = 0.35;
		// eps' = (0.35 - 0.1) / 0.35 = 5/7.
		{"zero counts", []float64{0.5, 0.2}, []int64{0, 0}, 0.9, false, 5.0 / 7},
		// rbar = 0.05: eps' = (0.05 - 0.1) / 0.05 = -1 (SelectK then adds one).
		{"negative", []float64{0.05}, []int64{7}, 0.9, false, -1},
		// rbar = 0: the basis explains everything.
		{"zero ratio", []float64{0, 0}, []int64{1, 1}, 0.9, false, math.Inf(-1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ThresholdFOT(tc.ratios, tc.ns, tc.eps, tc.first)
			if got != tc.want && math.Abs(got-tc.want) > tolExact {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMeanRatios(t *testing.T) {
	// weights 1/4, 3/4: rbar = 0.25*0.6 + 0.75*0.2 = 0.15 + 0.15 = 0.3;
	// r2 = 0.25*0.36 + 0.75*0.04 = 0.09 + 0.03 = 0.12.
	ratios, ns := []float64{0.6, 0.2}, []int64{1, 3}
	if got := MeanRatio(ratios, ns); math.Abs(got-0.3) > tolExact {
		t.Errorf("MeanRatio: got %v, want 0.3", got)
	}
	if got := MeanSquaredRatio(ratios, ns); math.Abs(got-0.12) > tolExact {
		t.Errorf("MeanSquaredRatio: got %v, want 0.12", got)
	}
	if got := MeanRatio(nil, nil); got != 0 {
		t.Errorf("MeanRatio of no clients: got %v, want 0", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for 2 ratios and 1 count")
		}
	}()
	MeanRatio(ratios, ns[:1])
}

// s = {3, 2, 1, 1}: squares 9, 4, 1, 1, total 15, cumulative shares
// 9/15 = 0.6, 13/15 = 0.8667, 14/15 = 0.9333, 15/15 = 1.
var handS = []float64{3, 2, 1, 1}

const handTotal = 15

func TestSelectK(t *testing.T) {
	tests := []struct {
		name     string
		s        []float64
		total    float64
		epsPrime float64
		want     int
	}{
		{"first share enough", handS, handTotal, 0.5, 1},   // 0.6 > 0.5
		{"strict inequality", handS, handTotal, 0.6, 2},    // 0.6 is not > 0.6; 0.8667 is
		{"three", handS, handTotal, 0.9, 3},                // 0.8667 <= 0.9 < 0.9333
		{"four", handS, handTotal, 0.95, 4},                // 0.9333 <= 0.95 < 1
		{"never exceeded", handS, handTotal, 1, 4},         // 1 is not > 1: capped at len(s)
		{"eps' = 0", handS, handTotal, 0, 1},               // at least one
		{"eps' < 0", handS, handTotal, -1, 1},              // at least one
		{"eps' = -Inf", handS, handTotal, math.Inf(-1), 1}, // at least one
		{"zero energy", []float64{0, 0}, 0, 0.5, 1},        // undefined share: one
		{"empty", nil, 0, 0.5, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelectK(tc.s, tc.total, tc.epsPrime); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

func TestSelectGPM(t *testing.T) {
	tests := []struct {
		name string
		r2   float64
		eps  float64
		want int
	}{
		// r2 = 0.25: the basis explains 0.75 >= 0.7: add nothing.
		{"nothing", 0.25, 0.7, 0},
		// 0.75 >= 0.75: add nothing (>=).
		{"nothing at equality", 0.25, 0.75, 0},
		// k=1: 0.75 + 0.25*0.6 = 0.9 >= 0.88.
		{"one", 0.25, 0.88, 1},
		// k=1: 0.9 < 0.95; k=2: 0.75 + 0.25*13/15 = 0.9667 >= 0.95.
		{"two", 0.25, 0.95, 2},
		// k=3: 0.75 + 0.25*14/15 = 0.9833 < 0.99; k=4: 1 >= 0.99.
		{"four", 0.25, 0.99, 4},
		// first task, r2 = 1: shares 0.6, 0.8667, 0.9333 >= 0.9.
		{"first task", 1, 0.9, 3},
		// r2 = 1, eps 1.2: never reached, capped at len(s).
		{"unreachable", 1, 1.2, 4},
		// r2 = 0: the basis explains everything.
		{"explained", 0, 0.99, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := SelectGPM(handS, handTotal, tc.r2, tc.eps); got != tc.want {
				t.Errorf("got %d, want %d", got, tc.want)
			}
		})
	}
}

// lowRankY returns a dim x m float32 matrix with the given singular values
// along orthonormal directions u (dim x len(s)).
func lowRankY(r *rand.Rand, u *mat.Dense, s []float64, m int) []float32 {
	dim, _ := u.Dims()
	v := randOrtho(r, m, len(s))
	y := mat.NewDense(dim, m, nil)
	for j, sj := range s {
		var outer mat.Dense
		outer.Outer(sj, u.ColView(j), v.ColView(j))
		y.Add(y, &outer)
	}
	out := make([]float32, dim*m)
	for i := range dim {
		for j := range m {
			out[i*m+j] = float32(y.At(i, j))
		}
	}
	return out
}

func TestExtendSelection(t *testing.T) {
	const dim, m = 10, 12
	r := rng.New(8, "extend")
	u := randOrtho(r, dim, 4)
	y := lowRankY(r, u, handS, m) // singular values 3, 2, 1, 1 (+ float32 rounding)
	tests := []struct {
		name      string
		ratios    []float64
		ns        []int64
		eps       float64
		first     bool
		criterion string
		wantAdded int
		wantEps   float64
	}{
		// first: eps' = 0.9 -> shares 0.6, 0.867, 0.933 > 0.9: 3.
		{"fot first", []float64{1}, []int64{5}, 0.9, true, "fot", 3, 0.9},
		// rbar = 0.5: eps' = (0.5 - 0.2)/0.5 = 0.6 -> 0.867 > 0.6: 2.
		{"fot", []float64{0.5}, []int64{5}, 0.8, false, "", 2, 0.6},
		// rbar = 0.1: eps' = (0.1 - 0.2)/0.1 = -1 -> at least 1.
		{"fot at least one", []float64{0.1}, []int64{5}, 0.8, false, "fot", 1, -1},
		// r2 = 0.25: 0.75 >= 0.7 -> nothing; eps' = 1 - 0.3/0.25 = -0.2.
		{"gpm nothing", []float64{0.5}, []int64{5}, 0.7, false, "gpm", 0, -0.2},
		// r2 = 0.25, eps 0.95 -> 2 (see TestSelectGPM); eps' = 1 - 0.05/0.25 = 0.8.
		{"gpm", []float64{0.5}, []int64{5}, 0.95, false, "gpm", 2, 0.8},
		// first: r2 = 1 -> 3; eps' = eps.
		{"gpm first", []float64{0.5}, []int64{5}, 0.9, true, "gpm", 3, 0.9},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := NewBasis(dim)
			added, epsPrime, err := Extend(b, y, dim, m, tc.ratios, tc.ns, tc.eps, tc.first, tc.criterion)
			if err != nil {
				t.Fatalf("Extend: %v", err)
			}
			if added != tc.wantAdded || b.K() != tc.wantAdded {
				t.Errorf("added: got %d (K %d), want %d", added, b.K(), tc.wantAdded)
			}
			if math.Abs(epsPrime-tc.wantEps) > tolExact {
				t.Errorf("eps': got %v, want %v", epsPrime, tc.wantEps)
			}
			sv := b.LastSingularValues()
			for j, want := range handS {
				if math.Abs(sv[j]-want) > 1e-5 {
					t.Errorf("singular value %d: got %v, want %v", j, sv[j], want)
				}
			}
			if added > 0 {
				// The added directions are top singular vectors of Y: they
				// contain the (unique) first min(added, 2) and lie in span(u)
				// (s_3 = s_4, so the third one is any unit vector of span(u_3, u_4)).
				top := mat.DenseCopyOf(u.Slice(0, dim, 0, min(added, 2)))
				if cos := principalCos(b.Dense(), top); 1-cos > tolCos {
					t.Errorf("top directions: principal cosine %v, want >= 1 - %g", cos, tolCos)
				}
				if cos := principalCos(u, b.Dense()); 1-cos > tolCos {
					t.Errorf("added directions outside span(u): principal cosine %v, want >= 1 - %g", cos, tolCos)
				}
			}
		})
	}
}

func TestExtendErrors(t *testing.T) {
	b := NewBasis(3)
	y := []float32{1, 0, 0, 1, 0, 0}
	_, _, err := Extend(b, y, 3, 2, []float64{1}, []int64{1}, 0.9, true, "pca")
	if !errors.Is(err, ErrCriterion) {
		t.Errorf("unknown criterion: got %v, want ErrCriterion", err)
	}
	y[1] = float32(math.NaN())
	_, _, err = Extend(b, y, 3, 2, []float64{1}, []int64{1}, 0.9, true, "fot")
	if !errors.Is(err, ErrNonFinite) {
		t.Errorf("NaN sketch: got %v, want ErrNonFinite", err)
	}
	if b.K() != 0 {
		t.Errorf("failed Extend changed the basis: K %d", b.K())
	}
	// A zero sketch: nothing outside the basis, nothing added.
	added, _, err := Extend(b, make([]float32, 6), 3, 2, []float64{0}, []int64{1}, 0.9, false, "fot")
	if err != nil || added != 0 {
		t.Errorf("zero sketch: got added %d err %v, want 0 nil", added, err)
	}
	defer func() {
		if recover() == nil {
			t.Error("no panic for a sketch with the wrong number of rows")
		}
	}()
	Extend(b, make([]float32, 8), 4, 2, []float64{1}, []int64{1}, 0.9, true, "fot")
}

func TestExtendKeepsBasisOrthonormal(t *testing.T) {
	const dim, m = 24, 24
	r := rng.New(9, "extend-grow")
	b := NewBasis(dim)
	ratios, ns := []float64{0.7, 0.5}, []int64{30, 10}
	for step := 0; !b.Full(); step++ {
		if step > 40 {
			t.Fatalf("basis not full after %d extensions (K %d)", step, b.K())
		}
		var y []float32
		switch {
		case step == 0:
			y = lowRankY(r, randOrtho(r, dim, 6), []float64{5, 4, 3, 2, 1, 0.5}, m)
		case step%3 == 1 && b.K() > 0:
			// Mostly inside the span: leftovers of the old directions plus a
			// new one 1e-5 below them.
			old := b.Dense()
			v := nearSpan(r, old, m, 0)
			w := dense64(randF32(r, dim*m), dim, m)
			w.Scale(1e-5, w)
			v.Add(v, w)
			y = make([]float32, dim*m)
			for i := range dim {
				for j := range m {
					y[i*m+j] = float32(v.At(i, j))
				}
			}
		default:
			y = randF32(r, dim*m)
		}
		before := b.Dense()
		k0 := b.K()
		added, _, err := Extend(b, y, dim, m, ratios, ns, 0.6, step == 0, "fot")
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if added != b.K()-k0 || added > dim-k0 {
			t.Errorf("step %d: added %d, K %d -> %d", step, added, k0, b.K())
		}
		checkBasis(t, fmt.Sprintf("step %d", step), b, before)
	}
	added, _, err := Extend(b, randF32(r, dim*m), dim, m, ratios, ns, 0.99, false, "fot")
	if err != nil || added != 0 || b.K() != dim {
		t.Errorf("full basis: got added %d K %d err %v, want 0 %d nil", added, b.K(), err, dim)
	}
}

// principalCos returns the cosine of the largest principal angle between
// span(a) and span(b) (orthonormal columns): the smallest singular value
// of a^T b.
func principalCos(a, b *mat.Dense) float64 {
	var c mat.Dense
	c.Mul(a.T(), b)
	var svd mat.SVD
	if !svd.Factorize(&c, mat.SVDNone) {
		return 0
	}
	s := svd.Values(nil)
	return s[len(s)-1]
}

// topLeft returns the top-k left singular vectors of x.
func topLeft(x *mat.Dense, k int) *mat.Dense {
	var svd mat.SVD
	svd.Factorize(x, mat.SVDThinU)
	var u mat.Dense
	svd.UTo(&u)
	r, _ := u.Dims()
	return mat.DenseCopyOf(u.Slice(0, r, 0, k))
}

// clientInputs returns, for every client, its layer inputs one row per
// sample (N_k x dim float32): rows = Q z with z_j ~ N(0, scale_j^2), plus
// noise * N(0, 1) per entry.
func clientInputs(r *rand.Rand, q *mat.Dense, scales []float64, ns []int64, noise float64) [][]float32 {
	dim, rank := q.Dims()
	out := make([][]float32, len(ns))
	for c, n := range ns {
		at := make([]float32, int(n)*dim)
		z := make([]float64, rank)
		for i := range int(n) {
			for j := range rank {
				z[j] = scales[j] * r.NormFloat64()
			}
			for d := range dim {
				var v float64
				for j := range rank {
					v += q.At(d, j) * z[j]
				}
				at[i*dim+d] = float32(v + noise*r.NormFloat64())
			}
		}
		out[c] = at
	}
	return out
}

// sketchClients runs every client's Sketch in batches of 16 rows and
// returns the summed Y (float64 accumulation) and the ratios.
func sketchClients(inputs [][]float32, ns []int64, dim, m int, basis *Basis, dist SketchDist, seed uint64) ([]float32, []float64) {
	sum := make([]float64, dim*m)
	ratios := make([]float64, len(inputs))
	for c, at := range inputs {
		s := NewSketch(dim, m, 16, basis, dist, nil)
		r := rng.New(seed, "gpse-sketch", c)
		for lo := 0; lo < int(ns[c]); lo += 16 {
			hi := min(lo+16, int(ns[c]))
			s.Add(at[lo*dim:hi*dim], hi-lo, r)
		}
		for i, v := range s.Y() {
			sum[i] += float64(v)
		}
		ratios[c] = s.Ratio()
	}
	y := make([]float32, len(sum))
	for i, v := range sum {
		y[i] = float32(v)
	}
	return y, ratios
}

// stacked returns A = [A_1 ... A_K] (dim x sum N) from the clients' rows.
func stacked(inputs [][]float32, ns []int64, dim int) *mat.Dense {
	var total int
	for _, n := range ns {
		total += int(n)
	}
	a := mat.NewDense(dim, total, nil)
	col := 0
	for c, at := range inputs {
		for i := range int(ns[c]) {
			for d := range dim {
				a.Set(d, col, float64(at[i*dim+d]))
			}
			col++
		}
	}
	return a
}

func TestGPSERecoversCommonSubspace(t *testing.T) {
	const dim, rank = 20, 5
	ns := []int64{40, 57, 33, 64}
	scales := []float64{5, 4, 3, 2, 1}
	for _, dist := range []SketchDist{SketchUniform, SketchGaussian} {
		t.Run(dist.String(), func(t *testing.T) {
			r := rng.New(10, "gpse-data", int(dist))
			q := randOrtho(r, dim, rank)
			m := SketchCols(dim, 1)
			inputs := clientInputs(r, q, scales, ns, 0)
			a := stacked(inputs, ns, dim)

			// Task 0: no basis. Rank 5 with shares decreasing to 1/55 of the
			// energy, so eps = 0.999 needs all 5 directions and no more.
			b := NewBasis(dim)
			y, ratios := sketchClients(inputs, ns, dim, m, nil, dist, 11)
			added, _, err := Extend(b, y, dim, m, ratios, ns, 0.999, true, "fot")
			if err != nil {
				t.Fatal(err)
			}
			if added != rank {
				t.Fatalf("task 0: added %d, want %d", added, rank)
			}
			if cos := principalCos(b.Dense(), topLeft(a, rank)); 1-cos > tolCos {
				t.Errorf("task 0: largest principal angle cos %v, want >= 1 - %g", cos, tolCos)
			}

			// Task 1 on a basis holding two of the directions: the sketches of
			// the residual give the other three.
			b2 := basisOf(mat.DenseCopyOf(q.Slice(0, dim, 0, 2)), dim)
			y, ratios = sketchClients(inputs, ns, dim, m, b2, dist, 12)
			// ratio_k = ||R_k|| / ||A_k|| in float64.
			var u2 mat.Dense
			u2.Mul(q.Slice(0, dim, 0, 2), q.Slice(0, dim, 0, 2).T())
			for c := range inputs {
				ak := stacked(inputs[c:c+1], ns[c:c+1], dim)
				var pa, rk mat.Dense
				pa.Mul(&u2, ak)
				rk.Sub(ak, &pa)
				if want := mat.Norm(&rk, 2) / mat.Norm(ak, 2); math.Abs(ratios[c]-want) > tolSketch {
					t.Errorf("client %d ratio: got %v, want %v", c, ratios[c], want)
				}
			}
			added, _, err = Extend(b2, y, dim, m, ratios, ns, 0.999, false, "fot")
			if err != nil {
				t.Fatal(err)
			}
			if added != rank-2 {
				t.Errorf("task 1: added %d, want %d", added, rank-2)
			}
			if cos := principalCos(b2.Dense(), q); b2.K() != rank || 1-cos > tolCos {
				t.Errorf("task 1: K %d, principal cos %v, want %d and >= 1 - %g", b2.K(), cos, rank, tolCos)
			}
			if e := orthoErr(b2.Dense()); e > tolOrtho {
				t.Errorf("task 1: ||U^T U - I||_max %g, want <= %g", e, tolOrtho)
			}

			// Noisy inputs: the summed sketches' top-5 subspace is the stacked
			// activations' top-5 subspace up to the noise level.
			noisy := clientInputs(r, q, scales, ns, 1e-3)
			y, _ = sketchClients(noisy, ns, dim, m, nil, dist, 13)
			b3 := NewBasis(dim)
			if _, err := b3.Grow(y, dim, m, rank); err != nil {
				t.Fatal(err)
			}
			if cos := principalCos(b3.Dense(), topLeft(stacked(noisy, ns, dim), rank)); 1-cos > tolCosNoisy {
				t.Errorf("noisy: principal cos %v, want >= 1 - %g", cos, tolCosNoisy)
			}
		})
	}
}

// sketchReference computes the float64 reference of a whole pass, Y = Rt^T G:
// Rt = At - At U U^T (U = the basis' float32 copy), G drawn as documented.
func sketchReference(at []float32, n, dim, m int, b *Basis, dist SketchDist, r *rand.Rand) (y *mat.Dense, ratio float64) {
	a := dense64(at, n, dim)
	rt := mat.DenseCopyOf(a)
	if b != nil && b.K() > 0 {
		u := dense64(b.Float32(), dim, b.K())
		var p, pu mat.Dense
		p.Mul(a, u)
		pu.Mul(&p, u.T())
		rt.Sub(a, &pu)
	}
	g := mat.NewDense(n, m, nil)
	for i := range n {
		for j := range m {
			var v float64
			if dist == SketchGaussian {
				v = r.NormFloat64()
			} else {
				v = 2*r.Float64() - 1
			}
			g.Set(i, j, float64(float32(v)))
		}
	}
	y = new(mat.Dense)
	y.Mul(rt.T(), g)
	ratio = 1
	if b != nil && b.K() > 0 {
		ratio = mat.Norm(rt, 2) / mat.Norm(a, 2)
	}
	return y, ratio
}

func maxAbsDiff(got []float32, want *mat.Dense) (diff, scale float64) {
	raw := want.RawMatrix().Data
	for i, v := range raw {
		diff = math.Max(diff, math.Abs(float64(got[i])-v))
		scale = math.Max(scale, math.Abs(v))
	}
	return diff, scale
}

func TestSketchMatchesFloat64(t *testing.T) {
	const dim, m, n = 12, 15, 37
	batches := []int{5, 13, 19} // split further by maxBatch 8
	for _, be := range backends() {
		for _, dist := range []SketchDist{SketchUniform, SketchGaussian} {
			for _, k := range []int{0, 4, dim} {
				t.Run(fmt.Sprintf("%s/%s/k=%d", be.Name(), dist, k), func(t *testing.T) {
					r := rng.New(14, "sketch-data", k)
					b := basisOf(randOrtho(r, dim, k), dim)
					at := randF32(r, n*dim)
					s := NewSketch(dim, m, 8, b, dist, be)
					draws := rng.New(15, "sketch-g")
					lo := 0
					for _, nb := range batches {
						s.Add(at[lo*dim:(lo+nb)*dim], nb, draws)
						lo += nb
					}
					refDraws := rng.New(15, "sketch-g")
					want, wantRatio := sketchReference(at, n, dim, m, b, dist, refDraws)
					if diff, scale := maxAbsDiff(s.Y(), want); diff > tolSketch*math.Max(scale, 1) {
						t.Errorf("Y: max |got - want| %g, want <= %g", diff, tolSketch*scale)
					}
					if k == dim {
						for i, v := range s.Y() {
							if v != 0 {
								t.Fatalf("full basis: Y[%d] = %v, want 0", i, v)
							}
						}
					}
					if got := s.Ratio(); math.Abs(got-wantRatio) > tolSketch {
						t.Errorf("ratio: got %v, want %v", got, wantRatio)
					}
					if s.N() != n {
						t.Errorf("N: got %d, want %d", s.N(), n)
					}
					// Both streams were used for exactly n*m draws.
					if a, b := draws.Uint64(), refDraws.Uint64(); a != b {
						t.Errorf("stream position differs from n*m draws: next %d vs %d", a, b)
					}
					// One batch gives the same sketch up to float32 rounding.
					one := NewSketch(dim, m, n, b, dist, be)
					one.Add(at, n, rng.New(15, "sketch-g"))
					if diff, scale := maxAbsDiff(one.Y(), want); diff > tolSketch*math.Max(scale, 1) {
						t.Errorf("one batch: max |got - want| %g", diff)
					}
					s.Reset()
					if a2, r2 := s.Norms(); s.N() != 0 || a2 != 0 || r2 != 0 {
						t.Errorf("Reset: N %d norms %v %v, want zeros", s.N(), a2, r2)
					}
					for i, v := range s.Y() {
						if v != 0 {
							t.Fatalf("Reset: Y[%d] = %v", i, v)
						}
					}
				})
			}
		}
	}
}

func TestSketchRatioHandCase(t *testing.T) {
	// U = e_1 in R^2; rows (3, 4) and (0, 0): R rows (0, 4) and (0, 0).
	// ||A||^2 = 25, ||R||^2 = 16, ratio = 4/5 = 0.8; Y = R^T G has row 0
	// zero and row 1 = 4 * (first row of G).
	b := NewBasis(2)
	b.SetFloat32([]float32{1, 0}, 1)
	s := NewSketch(2, 3, 4, b, SketchUniform, naiveBackend{})
	s.Add([]float32{3, 4, 0, 0}, 2, rng.New(16, "hand"))
	if got := s.Ratio(); math.Abs(got-0.8) > tolExact {
		t.Errorf("ratio: got %v, want 0.8", got)
	}
	if a2, r2 := s.Norms(); a2 != 25 || r2 != 16 {
		t.Errorf("norms: got %v %v, want 25 16", a2, r2)
	}
	g := rng.New(16, "hand")
	y := s.Y()
	for j := range 3 {
		want := 4 * float32(2*g.Float64()-1)
		if y[j] != 0 || y[3+j] != want {
			t.Errorf("Y column %d: got (%v, %v), want (0, %v)", j, y[j], y[3+j], want)
		}
	}

	none := NewSketch(2, 3, 4, nil, SketchUniform, nil)
	none.Add([]float32{3, 4}, 1, rng.New(1, "x"))
	if got := none.Ratio(); got != 1 {
		t.Errorf("no basis: ratio %v, want 1", got)
	}
	zero := NewSketch(2, 3, 4, b, SketchUniform, nil)
	zero.Add([]float32{0, 0}, 1, rng.New(1, "x"))
	if got := zero.Ratio(); got != 0 {
		t.Errorf("A = 0: ratio %v, want 0", got)
	}
}

func TestSketchPanicsAndParse(t *testing.T) {
	for name, f := range map[string]func(){
		"dim 0":      func() { NewSketch(0, 1, 1, nil, SketchUniform, nil) },
		"basis dim":  func() { NewSketch(3, 1, 1, NewBasis(4), SketchUniform, nil) },
		"Add length": func() { NewSketch(3, 1, 1, nil, SketchUniform, nil).Add(make([]float32, 5), 2, rng.New(1, "p")) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
	for _, tc := range []struct {
		in   string
		want SketchDist
		err  error
	}{{"uniform", SketchUniform, nil}, {"", SketchUniform, nil}, {"gaussian", SketchGaussian, nil}, {"normal", 0, ErrSketchDist}} {
		got, err := ParseSketchDist(tc.in)
		if !errors.Is(err, tc.err) || (err == nil && got != tc.want) {
			t.Errorf("ParseSketchDist(%q): got %v %v, want %v %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	for _, tc := range []struct {
		dim  int
		over float64
		want int
	}{{784, 1, 784}, {27, 5, 135}, {10, 0.25, 3}, {10, 0.01, 1}} {
		if got := SketchCols(tc.dim, tc.over); got != tc.want {
			t.Errorf("SketchCols(%d, %v): got %d, want %d", tc.dim, tc.over, got, tc.want)
		}
	}
}

func TestSketchAddZeroAllocs(t *testing.T) {
	const dim, m, batch = 24, 24, 16 // small: gonum's Sgemm stays serial
	r := rng.New(17, "sketch-allocs")
	b := basisOf(randOrtho(r, dim, 7), dim)
	at := randF32(r, batch*dim)
	for _, be := range backends() {
		for _, basis := range []*Basis{nil, b} {
			s := NewSketch(dim, m, batch, basis, SketchGaussian, be)
			s.Add(at, batch, r)
			if n := testing.AllocsPerRun(20, func() { s.Add(at, batch, r) }); n != 0 {
				t.Errorf("%s basis %v: Sketch.Add allocs: got %v, want 0", be.Name(), basis != nil, n)
			}
		}
	}
}

func TestGPSEConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  GPSEConfig
		err  error
	}{
		{"paper pmnist-iid", GPSEConfig{Epsilon: 0.96, Criterion: CriterionFOT}, nil},
		{"gpm", GPSEConfig{Epsilon: 0.97, EpsInc: 0.003, Criterion: "gpm"}, nil},
		{"empty criterion", GPSEConfig{Epsilon: 0.87, EpsInc: 0.001}, nil},
		{"zero eps", GPSEConfig{Epsilon: 0}, ErrEpsilon},
		{"eps above 1", GPSEConfig{Epsilon: 1.1}, ErrEpsilon},
		{"NaN eps", GPSEConfig{Epsilon: math.NaN()}, ErrEpsilon},
		{"negative inc", GPSEConfig{Epsilon: 0.9, EpsInc: -0.1}, ErrEpsilon},
		{"criterion", GPSEConfig{Epsilon: 0.9, Criterion: "svd"}, ErrCriterion},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); !errors.Is(err, tc.err) {
				t.Errorf("got %v, want %v", err, tc.err)
			}
		})
	}
	c := GPSEConfig{Epsilon: 0.87, EpsInc: 0.001}
	// 0.87 + 3 * 0.001 = 0.873.
	if got := c.EpsilonFor(3); math.Abs(got-0.873) > tolExact {
		t.Errorf("EpsilonFor(3): got %v, want 0.873", got)
	}
	// GPSEConfig.Extend on task 0 uses eps' = eps.
	b := NewBasis(10)
	r := rng.New(18, "cfg")
	y := lowRankY(r, randOrtho(r, 10, 4), handS, 12)
	added, epsPrime, err := GPSEConfig{Epsilon: 0.9}.Extend(b, y, 10, 12, []float64{1}, []int64{1}, 0)
	if err != nil || added != 3 || epsPrime != 0.9 {
		t.Errorf("Extend task 0: got added %d eps' %v err %v, want 3 0.9 nil", added, epsPrime, err)
	}
}

func BenchmarkSketchAdd(b *testing.B) {
	const dim, batch = 784, 64
	for _, k := range []int{0, 200} {
		b.Run(fmt.Sprintf("k=%d", k), func(b *testing.B) {
			r := rng.New(19, "bench-sketch")
			basis := basisOf(randOrtho(r, dim, k), dim)
			at := randF32(r, batch*dim)
			s := NewSketch(dim, SketchCols(dim, 1), batch, basis, SketchUniform, nil)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				s.Add(at, batch, r)
			}
			b.ReportMetric(float64(batch)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

func BenchmarkExtend(b *testing.B) {
	for _, dim := range []int{100, 400} {
		b.Run(fmt.Sprintf("d=%d", dim), func(b *testing.B) {
			r := rng.New(20, "bench-extend")
			y := randF32(r, dim*dim)
			b.ReportAllocs()
			for b.Loop() {
				basis := NewBasis(dim)
				if _, _, err := Extend(basis, y, dim, dim, []float64{1}, []int64{1}, 0.5, true, "fot"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
