package methods_test

import (
	"bytes"
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/mat"

	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server/servertest"
)

// Tolerances of sculpt's tests (float32 products on float32 bases).
const (
	scOrthoTol = 1e-5 // ||U^T D'||_F / ||D||_F and ||D' V||_F / ||D||_F
	scRefTol   = 1e-5 // ||D' - (I - U U^T) D (I - V V^T)||_F / ||D||_F
)

func scRandom(n int, purpose string, id int) []float32 {
	r := rng.New(29, purpose, id)
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64())
	}
	return out
}

// scRef returns the frozen U (rows x k) and V (cols x k) of w by a float64
// SVD: the fewest leading directions with at least energy of sum s^2.
func scRef(w []float32, rows, cols int, energy float64) (*mat.Dense, *mat.Dense, int) {
	a := make([]float64, len(w))
	for i, x := range w {
		a[i] = float64(x)
	}
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, a), mat.SVDThin) {
		panic("svd")
	}
	s := svd.Values(nil)
	var total, c float64
	for _, x := range s {
		total += x * x
	}
	k := len(s)
	for i, x := range s {
		c += x * x
		if c >= energy*total {
			k = i + 1
			break
		}
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	return mat.DenseCopyOf(u.Slice(0, rows, 0, k)), mat.DenseCopyOf(v.Slice(0, cols, 0, k)), k
}

// TestSculptProjectsOffFrozenSubspaces: before any task's end the
// aggregate is untouched; after it, every shared weight's update is
// (I - U U^T) D (I - V V^T) with U, V the leading singular vectors of the
// weights at the task's end (float64 reference), so U^T D' = 0 and D' V
// = 0, biases are not touched, the details give k and the removed share,
// and a rule restored from the saved state projects to the same bits.
func TestSculptProjectsOffFrozenSubspaces(t *testing.T) {
	m := servertest.Model(t, 1)
	n := m.NumParams()
	layers := protocol.Projected(m)
	const energy = 0.6
	_, rule := srvRule(t, "sculpt", map[string]any{"energy": energy}, methods.Env{Model: m})
	agg := scRandom(n, "sc-agg", 0)
	got := slices.Clone(agg)
	rule.BeforeApply(got, 0)
	if !slices.Equal(got, agg) {
		t.Fatal("the aggregate changed before anything was frozen")
	}
	w := servertest.InitParams(m, 9)
	for _, l := range layers {
		// A dominant rank-2 part, so that k is small but not 1 or full.
		a, b := scRandom(l.Rows*2, "sc-a", l.Offset), scRandom(2*l.Cols, "sc-b", l.Offset)
		for i := range l.Rows {
			for j := range l.Cols {
				w[l.Offset+i*l.Cols+j] += 3 * (a[2*i]*b[j] + a[2*i+1]*b[l.Cols+j])
			}
		}
	}
	var detail results.TaskDetail
	if err := rule.EndTask(nil, nil, w, 0, &detail); err != nil {
		t.Fatal(err)
	}
	var saved bytes.Buffer
	if err := rule.(protocol.Stateful).SaveState(&saved); err != nil {
		t.Fatal(err)
	}
	got = slices.Clone(agg)
	rule.BeforeApply(got, 1)
	inLayer := make([]bool, n)
	for _, l := range layers {
		u, v, k := scRef(w[l.Offset:l.Offset+l.Rows*l.Cols], l.Rows, l.Cols, energy)
		if detail.BasisDims[l.Name] != k || detail.BasisCapacity[l.Name] != min(l.Rows, l.Cols) {
			t.Errorf("layer %s: k %d of %d, want %d of %d", l.Name, detail.BasisDims[l.Name], detail.BasisCapacity[l.Name], k, min(l.Rows, l.Cols))
		}
		if k < 1 || k >= min(l.Rows, l.Cols) {
			t.Fatalf("layer %s: k = %d, the test needs 0 < k < %d", l.Name, k, min(l.Rows, l.Cols))
		}
		d0, d1 := mat.NewDense(l.Rows, l.Cols, nil), mat.NewDense(l.Rows, l.Cols, nil)
		for i := range l.Rows * l.Cols {
			d0.Set(i/l.Cols, i%l.Cols, float64(agg[l.Offset+i]))
			d1.Set(i/l.Cols, i%l.Cols, float64(got[l.Offset+i]))
			inLayer[l.Offset+i] = true
		}
		nd := mat.Norm(d0, 2)
		var ud, dv mat.Dense
		ud.Mul(u.T(), d1)
		dv.Mul(d1, v)
		if r := mat.Norm(&ud, 2) / nd; r > scOrthoTol {
			t.Errorf("layer %s: ||U^T D'|| / ||D|| = %g", l.Name, r)
		}
		if r := mat.Norm(&dv, 2) / nd; r > scOrthoTol {
			t.Errorf("layer %s: ||D' V|| / ||D|| = %g", l.Name, r)
		}
		// Reference: (I - U U^T) D (I - V V^T).
		var pu, pv, ref, tmp mat.Dense
		pu.Mul(u, u.T())
		pv.Mul(v, v.T())
		tmp.Mul(&pu, d0)
		ref.Sub(d0, &tmp)
		tmp.Mul(&ref, &pv)
		ref.Sub(&ref, &tmp)
		var diff mat.Dense
		diff.Sub(d1, &ref)
		if r := mat.Norm(&diff, 2) / nd; r > scRefTol {
			t.Errorf("layer %s: ||D' - reference|| / ||D|| = %g", l.Name, r)
		}
		if mat.Norm(&ref, 2) < 0.1*nd {
			t.Errorf("layer %s: the projection removed almost everything; the test is too weak", l.Name)
		}
	}
	for i := range n {
		if !inLayer[i] && got[i] != agg[i] {
			t.Fatalf("parameter %d outside the weights changed: %v -> %v", i, agg[i], got[i])
		}
	}
	// Restored from the saved state: the same bits.
	_, fresh := srvRule(t, "sculpt", map[string]any{"energy": energy}, methods.Env{Model: m})
	if err := fresh.(protocol.Stateful).LoadState(&saved); err != nil {
		t.Fatal(err)
	}
	again := slices.Clone(agg)
	fresh.BeforeApply(again, 1)
	if !slices.Equal(again, got) {
		t.Error("the restored rule projects differently")
	}
	// The next task's end reports the mean removed share.
	var d2 results.TaskDetail
	if err := rule.EndTask(nil, nil, w, 1, &d2); err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		if f := d2.ProjectedFraction[l.Name]; !(f > 0 && f < 1) || math.IsNaN(f) {
			t.Errorf("layer %s: removed share %v, want in (0, 1)", l.Name, f)
		}
	}
}

// TestSculptOptions checks the options' validation.
func TestSculptOptions(t *testing.T) {
	meth, _ := methods.Lookup("sculpt")
	for _, e := range []float64{0, 1, -0.5, 1.5} {
		o, err := meth.Resolve(nil, map[string]any{"energy": e})
		if err != nil {
			t.Fatal(err)
		}
		if len(meth.Check(o)) == 0 {
			t.Errorf("energy %v accepted", e)
		}
	}
}
