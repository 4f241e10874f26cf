package aggregator

import "math"

// ProjectFactors projects the low-rank product P = B A off span(U), U the
// basis's vectors, by projecting the rows of A alone:
//
//	P - P U U^T = B (A - A U U^T),   A <- A - (A U) U^T,
//
// with B d_out x r and A r x d_in row-major (d_in = basis.Dim()), in
// float64 and rounded once to float32. It returns the share of the
// product removed, ||B (A U)||_F / ||B A||_F (0 when B A = 0 or the basis
// is empty), and leaves A unchanged for an empty basis. It panics if the
// sizes do not fit.
func ProjectFactors(b, a []float32, dout, din, r int, basis *Basis) (removed float64) {
	if len(b) != dout*r || len(a) != r*din || basis.Dim() != din {
		panic("aggregator: ProjectFactors: sizes do not fit")
	}
	k := basis.K()
	if k == 0 {
		return 0
	}
	u := basis.u // din x k
	au := make([]float64, r*k)
	for i := range r {
		row := a[i*din : (i+1)*din]
		out := au[i*k : (i+1)*k]
		for j, x := range row {
			if x == 0 {
				continue
			}
			uj := u[j*k : (j+1)*k]
			for c, v := range uj {
				out[c] += float64(x) * v
			}
		}
	}
	// ||B A||_F^2 = sum_ij (B^T B)_ij (A A^T)_ij and ||B (A U)||_F^2 =
	// sum_ij (B^T B)_ij ((A U)(A U)^T)_ij: r x r Gram matrices only.
	btb := make([]float64, r*r)
	for o := range dout {
		row := b[o*r : (o+1)*r]
		for i, x := range row {
			for j, y := range row {
				btb[i*r+j] += float64(x) * float64(y)
			}
		}
	}
	var total, gone float64
	for i := range r {
		for j := range r {
			var aa, uu float64
			ai, aj := a[i*din:(i+1)*din], a[j*din:(j+1)*din]
			for c := range ai {
				aa += float64(ai[c]) * float64(aj[c])
			}
			for c := range k {
				uu += au[i*k+c] * au[j*k+c]
			}
			total += btb[i*r+j] * aa
			gone += btb[i*r+j] * uu
		}
	}
	for i := range r {
		row := a[i*din : (i+1)*din]
		ar := au[i*k : (i+1)*k]
		for j := range row {
			var s float64
			uj := u[j*k : (j+1)*k]
			for c, v := range uj {
				s += ar[c] * v
			}
			row[j] = float32(float64(row[j]) - s)
		}
	}
	if total <= 0 {
		return 0
	}
	return math.Sqrt(max(gone, 0) / total)
}
