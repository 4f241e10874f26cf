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
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
)

// Tolerances of opcm's tests.
const (
	opcmTol      = 1e-5 // merged params vs the float64 reference (float32 storage)
	opcmOrthoTol = 1e-9 // |<P(tau), S>_F| / (||P(tau)|| ||S||), float64
)

// opcmAfter returns a model after a task: from plus a random step.
func opcmAfter(from []float32, task int) []float32 {
	r := rng.New(23, "opcm-step", task)
	out := slices.Clone(from)
	for i := range out {
		out[i] += float32(0.1 * r.NormFloat64())
	}
	return out
}

// opcmRefProject is the authors' procedure, literally, for one layer:
// full SVD prev = U S V^T, P = U^T tau V, zero every entry but the
// diagonal and the leading k x k block, and subtract U P V^T.
func opcmRefProject(tau, prev []float64, rows, cols int, alpha float64) []float64 {
	var svd mat.SVD
	if !svd.Factorize(mat.NewDense(rows, cols, slices.Clone(prev)), mat.SVDFull) {
		panic("svd")
	}
	var u, v mat.Dense
	svd.UTo(&u)
	svd.VTo(&v)
	s := svd.Values(nil)
	var total, c float64
	for _, x := range s {
		total += x
	}
	k := 0
	for i, x := range s {
		c += x
		if c/total > alpha {
			k = i
			break
		}
	}
	var p mat.Dense
	p.Mul(u.T(), mat.NewDense(rows, cols, slices.Clone(tau)))
	p.Mul(&p, &v)
	for i := range rows {
		for j := range cols {
			if !(i == j || (i < k && j < k)) {
				p.Set(i, j, 0)
			}
		}
	}
	var rm mat.Dense
	rm.Mul(&u, &p)
	rm.Mul(&rm, v.T())
	out := slices.Clone(tau)
	for i := range rows {
		for j := range cols {
			out[i*cols+j] -= rm.At(i, j)
		}
	}
	return out
}

func opcmDot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// TestOPCMMergesOrthogonally runs three tasks' ends through opcm and
// checks every merge against a float64 reference of docs/ALGORITHMS.md §8:
// the first task's model is kept, each later task vector is projected per
// weight matrix (the authors' full-SVD procedure) and is then orthogonal
// to the earlier merged task vector, biases are not projected, and the
// global model becomes theta_0 + lambda_t S_t with each scaling rule.
// Saving the state after task 1 and loading it into a new rule gives the
// same bits for task 2.
func TestOPCMMergesOrthogonally(t *testing.T) {
	m := servertest.Model(t, 1)
	n := m.NumParams()
	layers := protocol.Projected(m)
	base := servertest.InitParams(m, 5)
	const alpha = 0.3
	for _, scaling := range []string{"adaptive", "sqrt", "fixed"} {
		t.Run(scaling, func(t *testing.T) {
			_, rule := srvRule(t, "opcm", map[string]any{"alpha": alpha, "scaling": scaling, "lambda": 0.7}, methods.Env{Model: m})
			if err := rule.AfterApply(&server.Applied{Params: slices.Clone(base), Before: slices.Clone(base)}); err != nil {
				t.Fatal(err)
			}
			sum := make([]float64, n)
			var norms []float64
			start := slices.Clone(base)
			var saved []byte
			for task := range 3 {
				after := opcmAfter(start, task)
				tau := make([]float64, n)
				for i := range tau {
					tau[i] = float64(after[i]) - float64(start[i])
				}
				norms = append(norms, math.Sqrt(opcmDot(tau, tau)))
				proj := slices.Clone(tau)
				if task > 0 {
					for _, l := range layers {
						lo, hi := l.Offset, l.Offset+l.Rows*l.Cols
						copy(proj[lo:hi], opcmRefProject(tau[lo:hi], sum[lo:hi], l.Rows, l.Cols, alpha))
						p, s := proj[lo:hi], sum[lo:hi]
						if c := opcmDot(p, s) / math.Sqrt(opcmDot(p, p)*opcmDot(s, s)); math.Abs(c) > opcmOrthoTol {
							t.Errorf("task %d layer %s: projected task vector at cosine %g to the merged one", task, l.Name, c)
						}
					}
				}
				for i := range sum {
					sum[i] += proj[i]
				}
				var lambda float64
				switch scaling {
				case "adaptive":
					var mean float64
					for _, x := range norms {
						mean += x
					}
					lambda = mean / float64(len(norms)) / math.Sqrt(opcmDot(sum, sum))
				case "sqrt":
					lambda = 1 / math.Sqrt(float64(task+1))
				case "fixed":
					lambda = 0.7
				}
				got := slices.Clone(after)
				var detail results.TaskDetail
				if task == 2 {
					// A rule restored from the state saved after task 1
					// merges task 2 to the same bits.
					_, fresh := srvRule(t, "opcm", map[string]any{"alpha": alpha, "scaling": scaling, "lambda": 0.7}, methods.Env{Model: m})
					if err := fresh.(protocol.Stateful).LoadState(bytes.NewReader(saved)); err != nil {
						t.Fatal(err)
					}
					again := slices.Clone(after)
					if err := fresh.EndTask(nil, nil, again, task, &results.TaskDetail{}); err != nil {
						t.Fatal(err)
					}
					defer func() {
						if !slices.Equal(again, got) {
							t.Errorf("task 2 merged from the saved state differs from the uninterrupted rule")
						}
					}()
				}
				if err := rule.EndTask(nil, nil, got, task, &detail); err != nil {
					t.Fatal(err)
				}
				if task == 1 {
					var buf bytes.Buffer
					if err := rule.(protocol.Stateful).SaveState(&buf); err != nil {
						t.Fatal(err)
					}
					saved = buf.Bytes()
				}
				for i := range got {
					want := float64(base[i]) + lambda*sum[i]
					if math.Abs(float64(got[i])-want) > opcmTol*(1+math.Abs(want)) {
						t.Fatalf("task %d: param %d = %v, want %v", task, i, got[i], want)
					}
				}
				if task == 0 && scaling != "fixed" && !slices.Equal(got, after) {
					t.Errorf("task 0: the first task's model changed (lambda 1)")
				}
				if task > 0 && detail.BasisDims["fc0.weight"] == 0 {
					t.Errorf("task %d: no block projected out of fc0 (k = 0): the test does not exercise it", task)
				}
				for _, l := range layers {
					if task > 0 && detail.BasisCapacity[l.Name] != min(l.Rows, l.Cols) {
						t.Errorf("layer %s: capacity %d", l.Name, detail.BasisCapacity[l.Name])
					}
				}
				start = got
			}
		})
	}
}

// TestOPCMOptions checks the options' validation.
func TestOPCMOptions(t *testing.T) {
	meth, _ := methods.Lookup("opcm")
	for _, bad := range []map[string]any{{"alpha": 1.0}, {"alpha": -0.1}, {"scaling": "cosine"}, {"lambda": 0.0}} {
		o, err := meth.Resolve(nil, bad)
		if err != nil {
			t.Fatal(err)
		}
		if len(meth.Check(o)) == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
}
