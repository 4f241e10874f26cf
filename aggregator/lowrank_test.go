package aggregator

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ProjectFactors against the float64 reference: the product B A_new
// equals P - P U U^T with P = B A formed explicitly, A_new's rows are
// orthogonal to U, the removed share is ||P U U^T||_F / ||P||_F, a second
// projection removes nothing, and an empty basis leaves A alone.
func TestProjectFactors(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, c := range []struct{ dout, din, rank, k int }{{5, 9, 3, 2}, {2, 7, 4, 5}, {6, 6, 2, 6}} {
		b := make([]float32, c.dout*c.rank)
		a := make([]float32, c.rank*c.din)
		for i := range b {
			b[i] = float32(r.NormFloat64())
		}
		for i := range a {
			a[i] = float32(r.NormFloat64())
		}
		basis := NewBasis(c.din)
		basis.Set(randOrtho(r, c.din, c.k))
		u := basis.Dense()
		// P and P - P U U^T in float64.
		p := make([]float64, c.dout*c.din)
		for o := range c.dout {
			for j := range c.din {
				for q := range c.rank {
					p[o*c.din+j] += float64(b[o*c.rank+q]) * float64(a[q*c.din+j])
				}
			}
		}
		want := append([]float64(nil), p...)
		var gone, total float64
		for o := range c.dout {
			for j := range c.din {
				var s float64 // (P U U^T)_oj
				for m := range c.k {
					var pu float64
					for l := range c.din {
						pu += p[o*c.din+l] * u.At(l, m)
					}
					s += pu * u.At(j, m)
				}
				want[o*c.din+j] -= s
				gone += s * s
				total += p[o*c.din+j] * p[o*c.din+j]
			}
		}
		removed := ProjectFactors(b, a, c.dout, c.din, c.rank, basis)
		if wantShare := math.Sqrt(gone / total); math.Abs(removed-wantShare) > 1e-9 {
			t.Errorf("%+v: removed %v, want %v", c, removed, wantShare)
		}
		var errSum, norm float64
		for o := range c.dout {
			for j := range c.din {
				var got float64
				for q := range c.rank {
					got += float64(b[o*c.rank+q]) * float64(a[q*c.din+j])
				}
				errSum += (got - want[o*c.din+j]) * (got - want[o*c.din+j])
				norm += p[o*c.din+j] * p[o*c.din+j]
			}
		}
		if e := math.Sqrt(errSum / norm); e > 1e-6 {
			t.Errorf("%+v: B A_new differs from P - P U U^T by %v (relative)", c, e)
		}
		if again := ProjectFactors(b, a, c.dout, c.din, c.rank, basis); c.k < c.din && again > 1e-6 { // (a full basis leaves a product of rounding residue only)
			t.Errorf("%+v: a second projection removed %v", c, again)
		}
		before := append([]float32(nil), a...)
		if got := ProjectFactors(b, a, c.dout, c.din, c.rank, NewBasis(c.din)); got != 0 {
			t.Errorf("empty basis removed %v", got)
		}
		for i := range a {
			if a[i] != before[i] {
				t.Fatalf("an empty basis changed A")
			}
		}
	}
}
