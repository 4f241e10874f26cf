package aggregator

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/nn/gemm"
)

// GPSE (global principal subspace extraction, docs/ALGORITHMS.md §3.2): clients
// sketch the residual of their layer inputs outside the current basis
// (Sketch), the server sums the sketches, picks how many new directions to
// keep (ThresholdFOT + SelectK, or the GPM criterion) and grows the basis
// (Extend, Grow).

// Errors of the GPSE code.
var (
	// ErrCriterion is returned for an unknown fot.criterion.
	ErrCriterion = errors.New("aggregator: unknown gpse criterion")
	// ErrSketchDist is returned by ParseSketchDist for an unknown name.
	ErrSketchDist = errors.New("aggregator: unknown sketch distribution")
	// ErrEpsilon is returned by GPSEConfig.Validate for a threshold out of range.
	ErrEpsilon = errors.New("aggregator: gpse epsilon out of range")
	// ErrNonFinite is returned by Extend and Grow for a sketch holding NaN or Inf.
	ErrNonFinite = errors.New("aggregator: non-finite sketch")
	// ErrSVD is returned by Extend and Grow when the SVD does not converge.
	ErrSVD = errors.New("aggregator: svd failed")
)

// Criteria for choosing how many directions GPSE adds.
const (
	// CriterionFOT is the FOT paper's rule: eps' from the mean ratio,
	// at least one direction per task (ThresholdFOT, SelectK).
	CriterionFOT = "fot"
	// CriterionGPM is GPM's rule (Saha et al. 2021) on the squared ratio;
	// it may add nothing (SelectGPM).
	CriterionGPM = "gpm"
)

func parseCriterion(s string) (string, error) {
	switch s {
	case CriterionFOT, "":
		return CriterionFOT, nil
	case CriterionGPM:
		return CriterionGPM, nil
	}
	return "", fmt.Errorf("%w %q (want fot or gpm)", ErrCriterion, s)
}

// SketchDist is the distribution of the entries of a client's private
// random matrix G.
type SketchDist int

const (
	// SketchUniform draws Uniform[-1, 1) entries (the MLP setting).
	SketchUniform SketchDist = iota
	// SketchGaussian draws N(0, 1) entries (the conv-net setting).
	SketchGaussian
)

// ParseSketchDist maps "uniform" (or "") and "gaussian" to a SketchDist.
func ParseSketchDist(s string) (SketchDist, error) {
	switch s {
	case "uniform", "":
		return SketchUniform, nil
	case "gaussian":
		return SketchGaussian, nil
	}
	return 0, fmt.Errorf("%w %q (want uniform or gaussian)", ErrSketchDist, s)
}

// String returns the scenario name of d.
func (d SketchDist) String() string {
	if d == SketchGaussian {
		return "gaussian"
	}
	return "uniform"
}

// SketchCols returns the number of sketch columns m = round(oversample *
// dim), at least 1: oversample 1 gives m = d_in (the MLP setting), 5 the
// conv-net setting.
func SketchCols(dim int, oversample float64) int {
	return max(1, int(math.Round(oversample*float64(dim))))
}

// Sketch accumulates one client's GPSE sketch of one layer:
//
//	Y = R G   (d_in x m),   R = A - U U^T A,
//
// where A (d_in x N) holds the layer's inputs, one column per sample (per
// im2col patch for a conv layer), U is the basis (R = A without one), and G
// (N x m) is private noise drawn from the caller's stream. It also
// accumulates ||A||_F^2 and ||R||_F^2 for the ratio sent with Y.
//
// The inputs arrive in batches as the nn package produces them, one ROW per
// sample (At_b = A_b^T, batch x d_in), so Add computes
//
//	Rt_b = At_b - (At_b U) U^T,   Y += Rt_b^T G_b
//
// with the gemm backend in float32 (Y accumulates in float32; the norms in
// float64). All buffers are allocated by NewSketch (and once more when the
// basis grows), so Add allocates nothing. A Sketch is not safe for
// concurrent use.
type Sketch struct {
	dim, m, maxBatch int
	dist             SketchDist
	basis            *Basis
	be               gemm.Backend

	y      []float32 // dim x m
	rt     []float32 // maxBatch x dim (only with a basis)
	p      []float32 // maxBatch x k
	g      []float32 // maxBatch x m
	a2, r2 float64
	n      int64
}

// NewSketch returns an empty sketch of a layer with d_in = dim, m sketch
// columns (see SketchCols), processing at most maxBatch rows per product
// (larger batches given to Add are split), against basis (nil or empty: no
// basis, R = A), with G entries from dist, multiplying with be (nil means
// gemm.Default()). The basis is read at every Add and must not change
// between Reset and the last Add of a sketch (give the sketch a Clone if its
// owner may grow it meanwhile). It panics if dim, m or
// maxBatch is < 1 or basis.Dim() != dim.
func NewSketch(dim, m, maxBatch int, basis *Basis, dist SketchDist, be gemm.Backend) *Sketch {
	if dim < 1 || m < 1 || maxBatch < 1 {
		panic(fmt.Sprintf("aggregator: NewSketch dim %d, m %d, maxBatch %d: all must be >= 1", dim, m, maxBatch))
	}
	if basis != nil && basis.dim != dim {
		panic(fmt.Sprintf("aggregator: NewSketch dim %d, basis dimension %d", dim, basis.dim))
	}
	if be == nil {
		be = gemm.Default()
	}
	s := &Sketch{dim: dim, m: m, maxBatch: maxBatch, dist: dist, basis: basis, be: be}
	s.y = make([]float32, dim*m)
	s.g = make([]float32, maxBatch*m)
	if basis != nil && basis.k > 0 {
		s.reserve(basis.k)
	}
	return s
}

// reserve sizes the residual scratch for a basis of k vectors.
func (s *Sketch) reserve(k int) {
	if len(s.rt) < s.maxBatch*s.dim {
		s.rt = make([]float32, s.maxBatch*s.dim)
	}
	if len(s.p) < s.maxBatch*k {
		s.p = make([]float32, s.maxBatch*k)
	}
}

// Add adds a batch of inputs, at = A_b^T (batch x d_in row-major, one row
// per sample or patch, e.g. nn's Workspace.LayerInput), to the sketch.
//
// Draw order: G_b is drawn from r row by row, one row of m entries per row
// of at, in order (entry (i, j) is the (i*m + j)-th draw of this call):
// 2*r.Float64()-1 for SketchUniform, r.NormFloat64() for SketchGaussian,
// each rounded to float32. Exactly batch*m values are drawn whatever the
// basis, so the stream afterwards and the whole G of a pass depend only on
// the rows, not on how they were split into batches.
//
// It panics if len(at) != batch*d_in.
func (s *Sketch) Add(at []float32, batch int, r *rand.Rand) {
	if batch < 0 || len(at) != batch*s.dim {
		panic(fmt.Sprintf("aggregator: Sketch.Add %d values for batch %d, want batch*%d", len(at), batch, s.dim))
	}
	for lo := 0; lo < batch; lo += s.maxBatch {
		nb := min(s.maxBatch, batch-lo)
		s.add(at[lo*s.dim:(lo+nb)*s.dim], nb, r)
	}
	s.n += int64(batch)
}

func (s *Sketch) add(at []float32, nb int, r *rand.Rand) {
	d, m := s.dim, s.m
	a2 := SumSquares32(at)
	s.a2 += a2
	rt := at
	switch b := s.basis; {
	case b == nil || b.k == 0:
		s.r2 += a2
	case b.k == b.dim:
		rt = nil // R = A - A = 0 exactly
	default:
		k := b.k
		s.reserve(k)
		p := s.p[:nb*k]
		s.be.Sgemm(false, false, nb, k, d, 1, at, d, b.u32, k, 0, p, k)
		rt = s.rt[:nb*d]
		copy(rt, at)
		s.be.Sgemm(false, true, nb, d, k, -1, p, k, b.u32, k, 1, rt, d)
		s.r2 += SumSquares32(rt)
	}
	g := s.g[:nb*m]
	if s.dist == SketchGaussian {
		for i := range g {
			g[i] = float32(r.NormFloat64())
		}
	} else {
		for i := range g {
			g[i] = float32(2*r.Float64() - 1)
		}
	}
	if rt != nil {
		s.be.Sgemm(true, false, d, m, nb, 1, rt, d, g, m, 1, s.y, m)
	}
}

// Y returns the sketch Y = R G, d_in x m row-major, as a view (valid until
// the next Add or Reset).
func (s *Sketch) Y() []float32 { return s.y }

// Dim returns d_in, the number of rows of Y.
func (s *Sketch) Dim() int { return s.dim }

// M returns m, the number of columns of Y.
func (s *Sketch) M() int { return s.m }

// N returns the number of rows (samples or patches) added since the last Reset.
func (s *Sketch) N() int64 { return s.n }

// Norms returns ||A||_F^2 and ||R||_F^2 of the rows added so far.
func (s *Sketch) Norms() (a2, r2 float64) { return s.a2, s.r2 }

// Ratio returns ||R||_F / ||A||_F (not squared), the relative norm of the
// inputs left outside the basis: exactly 1 when there is no basis, 0 when
// A = 0 (nothing was added, or only zero rows) with a basis.
func (s *Sketch) Ratio() float64 {
	if s.basis == nil || s.basis.k == 0 {
		return 1
	}
	if s.a2 == 0 {
		return 0
	}
	return math.Sqrt(s.r2 / s.a2)
}

// Reset empties the sketch for another pass (buffers are kept).
func (s *Sketch) Reset() {
	clear(s.y)
	s.a2, s.r2, s.n = 0, 0, 0
}

// weightedMean returns sum_k w_k f(ratio_k) with w_k = n_k / sum n, or 1/K
// when every n_k is zero (0 for no clients). It panics if the lengths differ.
func weightedMean(ratios []float64, ns []int64, squared bool) float64 {
	if len(ratios) != len(ns) {
		panic(fmt.Sprintf("aggregator: %d ratios for %d sample counts", len(ratios), len(ns)))
	}
	var total float64
	for _, n := range ns {
		total += float64(n)
	}
	var r float64
	for k, x := range ratios {
		w := 1 / float64(len(ns))
		if total > 0 {
			w = float64(ns[k]) / total
		}
		if squared {
			x *= x
		}
		r += w * x
	}
	return r
}

// MeanRatio returns rbar = sum_k (n_k / sum n) ratio_k (uniform weights
// when every n_k is 0; 0 for no clients). It panics if the lengths differ.
func MeanRatio(ratios []float64, ns []int64) float64 {
	return weightedMean(ratios, ns, false)
}

// MeanSquaredRatio returns r2 = sum_k (n_k / sum n) ratio_k^2, the GPM
// criterion's estimate of the share of the new task's input energy left
// outside the basis (see SelectGPM). It panics if the lengths differ.
func MeanSquaredRatio(ratios []float64, ns []int64) float64 {
	return weightedMean(ratios, ns, true)
}

// ThresholdFOT returns the FOT threshold on the sketch's energy:
//
//	rbar = sum_k (n_k / sum n) ratio_k,   eps' = (rbar - (1 - eps)) / rbar,
//
// and eps' = eps when first (the first task, no basis yet). eps' <= 0 means
// the old basis already explains enough (SelectK then adds one direction);
// -Inf when rbar = 0. It panics if the lengths differ.
func ThresholdFOT(ratios []float64, ns []int64, eps float64, first bool) (epsPrime float64) {
	rbar := MeanRatio(ratios, ns)
	if first {
		return eps
	}
	if rbar <= 0 {
		return math.Inf(-1)
	}
	return (rbar - (1 - eps)) / rbar
}

// SelectK returns FOT's number of new directions: the smallest i+1 with
//
//	sum_{j<=i} s_j^2 / totalSq > epsPrime,
//
// at least 1 (even when epsPrime <= 0) and at most len(s) (0 only when s is
// empty). s are the singular values of Y in decreasing order and totalSq =
// ||Y||_F^2 = sum of all s_j^2; with totalSq <= 0 it returns min(1, len(s)).
func SelectK(s []float64, totalSq, epsPrime float64) int {
	if len(s) == 0 {
		return 0
	}
	if totalSq <= 0 {
		return 1
	}
	var cum float64
	for i, v := range s {
		cum += v * v
		if cum/totalSq > epsPrime {
			return i + 1
		}
	}
	return len(s)
}

// SelectGPM returns GPM's number of new directions (Saha et al. 2021),
// with r2 the share of the input energy outside the basis (MeanSquaredRatio;
// 1 on the first task): the old basis explains 1 - r2 of the energy, and
// the first k directions of Y add r2 * (their share of ||Y||_F^2), so
//
//	k = the smallest k >= 0 with (1 - r2) + r2 * sum_{j<k} s_j^2 / totalSq >= eps,
//
// which is 0 (add nothing) when 1 - r2 >= eps already, and at most len(s).
//
// Choice: GPM computes r2 = ||R||_F^2 / ||A||_F^2 on the pooled data; in the
// federated setting the clients send only their ratio and n, so r2 is the
// n-weighted mean of the squared ratios (equal to the pooled value when the
// clients' inputs have the same energy per sample).
func SelectGPM(s []float64, totalSq, r2, eps float64) int {
	acc := 1 - r2
	if acc >= eps || totalSq <= 0 {
		return 0
	}
	var cum float64
	for i, v := range s {
		cum += v * v
		if acc+r2*cum/totalSq >= eps {
			return i + 1
		}
	}
	return len(s)
}

// Grow adds the top k left singular vectors of the sketch y (rows = d_in x
// cols = m, row-major) to the basis: thin SVD y = U S V^T, then
// U_l <- orthonormalise([U_l | U[:, :k]]) (see Append, which may drop
// directions already in the span). k is capped at min(d_in, m) and at
// d_in - K(). It returns the number of columns added and records S
// (LastSingularValues). It panics if rows != Dim() or len(y) != rows*cols.
func (b *Basis) Grow(y []float32, rows, cols, k int) (added int, err error) {
	u, s, err := b.sketchSVD(y, rows, cols)
	if err != nil {
		return 0, err
	}
	k = min(k, len(s), b.dim-b.k)
	if k <= 0 {
		return 0, nil
	}
	return b.Append(u.Slice(0, rows, 0, k)), nil
}

// sketchSVD computes the thin left singular vectors and the singular values
// of y (float32, widened exactly to float64) and records the values in b.
func (b *Basis) sketchSVD(y []float32, rows, cols int) (*mat.Dense, []float64, error) {
	if rows != b.dim || cols < 1 || len(y) != rows*cols {
		panic(fmt.Sprintf("aggregator: sketch %d values as %dx%d, want %d rows", len(y), rows, cols, b.dim))
	}
	if i := nonFinite(y); i >= 0 {
		return nil, nil, fmt.Errorf("%w: entry %d is %v", ErrNonFinite, i, y[i])
	}
	a := make([]float64, len(y))
	for i, v := range y {
		a[i] = float64(v)
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, a), mat.SVDThinU) {
		return nil, nil, fmt.Errorf("%w on a %dx%d sketch", ErrSVD, rows, cols)
	}
	var u mat.Dense
	svd.UTo(&u)
	s := svd.Values(nil)
	b.sv = s
	return &u, s, nil
}

// Extend is the server side of GPSE for one layer (docs/ALGORITHMS.md §3.2,
// steps 2-4): from the sum over clients of their sketches, ySum (rows =
// d_in x cols = m, row-major; any positive multiple such as their mean
// gives the same result), and the clients' (ratio, n), it
//
//  1. computes the threshold: eps' = ThresholdFOT(ratios, ns, eps, first)
//     for criterion "fot" (or ""); for "gpm", r2 = MeanSquaredRatio (1 when
//     first) and the equivalent eps' = 1 - (1 - eps)/r2 is returned;
//  2. takes the thin SVD ySum = U S V^T and k = SelectK(S, ||ySum||_F^2, eps')
//     ("fot", at least 1) or SelectGPM(S, ||ySum||_F^2, r2, eps) ("gpm", may be 0);
//  3. grows b with U[:, :k] (Append: orthonormalise([U_l | U[:, :k]]),
//     capped at d_in - K()).
//
// It adds nothing when the basis is full or ySum = 0 (no energy outside the
// basis, so there is no direction to add). It returns the number of columns
// added and eps'; S is kept in b.LastSingularValues(). Errors: ErrCriterion
// for an unknown criterion, ErrNonFinite, ErrSVD. It panics if rows !=
// b.Dim(), len(ySum) != rows*cols or len(ratios) != len(ns).
func Extend(b *Basis, ySum []float32, rows, cols int, ratios []float64, ns []int64, eps float64, first bool, criterion string) (added int, epsPrime float64, err error) {
	crit, err := parseCriterion(criterion)
	if err != nil {
		return 0, 0, err
	}
	if rows != b.dim || cols < 1 || len(ySum) != rows*cols {
		panic(fmt.Sprintf("aggregator: Extend sketch %d values as %dx%d, want %d rows", len(ySum), rows, cols, b.dim))
	}
	r2 := 1.0
	if crit == CriterionGPM {
		if r2 = MeanSquaredRatio(ratios, ns); first {
			r2 = 1
		}
		epsPrime = math.Inf(-1)
		if r2 > 0 {
			epsPrime = 1 - (1-eps)/r2
		}
	} else {
		epsPrime = ThresholdFOT(ratios, ns, eps, first)
	}
	if b.Full() {
		return 0, epsPrime, nil
	}
	u, s, err := b.sketchSVD(ySum, rows, cols)
	if err != nil {
		return 0, epsPrime, err
	}
	total := sumSq64(s)
	if total == 0 {
		return 0, epsPrime, nil
	}
	var k int
	if crit == CriterionGPM {
		k = SelectGPM(s, total, r2, eps)
	} else {
		k = SelectK(s, total, epsPrime)
	}
	k = min(k, b.dim-b.k)
	if k <= 0 {
		return 0, epsPrime, nil
	}
	return b.Append(u.Slice(0, rows, 0, k)), epsPrime, nil
}

// GPSEConfig holds the scenario's GPSE settings (fot.epsilon, fot.eps_inc,
// fot.criterion).
type GPSEConfig struct {
	// Epsilon is the energy threshold eps of the first task, in (0, 1].
	Epsilon float64
	// EpsInc is added to eps after every task (>= 0).
	EpsInc float64
	// Criterion is CriterionFOT (also when empty) or CriterionGPM.
	Criterion string
}

// Validate checks 0 < Epsilon <= 1, EpsInc >= 0 (both finite) and the criterion.
func (c GPSEConfig) Validate() error {
	if !(c.Epsilon > 0 && c.Epsilon <= 1) {
		return fmt.Errorf("%w: epsilon %v, want 0 < epsilon <= 1", ErrEpsilon, c.Epsilon)
	}
	if !(c.EpsInc >= 0) || math.IsInf(c.EpsInc, 0) {
		return fmt.Errorf("%w: eps_inc %v, want a finite value >= 0", ErrEpsilon, c.EpsInc)
	}
	if _, err := parseCriterion(c.Criterion); err != nil {
		return err
	}
	return nil
}

// EpsilonFor returns the threshold of task t (0-based): Epsilon + t*EpsInc
// (not capped: above 1, "fot" keeps every direction and "gpm" too).
func (c GPSEConfig) EpsilonFor(task int) float64 {
	return c.Epsilon + float64(task)*c.EpsInc
}

// Extend runs the package-level Extend at the end of task t (0-based) with
// eps = EpsilonFor(t) and first = (t == 0).
func (c GPSEConfig) Extend(b *Basis, ySum []float32, rows, cols int, ratios []float64, ns []int64, task int) (added int, epsPrime float64, err error) {
	return Extend(b, ySum, rows, cols, ratios, ns, c.EpsilonFor(task), task == 0, c.Criterion)
}
