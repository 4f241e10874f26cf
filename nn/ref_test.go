package nn

import (
	"math"
	"math/rand/v2"
)

// This file holds a float64 re-implementation of the models, written
// directly from PyTorch's definitions (direct convolution on (C,H,W) maps,
// no im2col, no gemm), used as the reference of the gradient checks.

// naive is a test backend: a triple loop with float64 accumulation. It is
// single-threaded and allocates nothing.
type naive struct{ calls *int }

func (naive) Name() string { return "naive" }

func (n naive) Sgemm(transA, transB bool, m, nn, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	if n.calls != nil {
		*n.calls++
	}
	for i := 0; i < m; i++ {
		for j := 0; j < nn; j++ {
			var s float64
			for p := 0; p < k; p++ {
				var av, bv float32
				if transA {
					av = a[p*lda+i]
				} else {
					av = a[i*lda+p]
				}
				if transB {
					bv = b[j*ldb+p]
				} else {
					bv = b[p*ldb+j]
				}
				s += float64(av) * float64(bv)
			}
			v := alpha * float32(s)
			if beta != 0 {
				v += beta * c[i*ldc+j]
			}
			c[i*ldc+j] = v
		}
	}
}

// refPass is what the reference computes for one batch.
type refPass struct {
	loss   float64
	logits []float64   // batch x Classes
	inputs [][]float64 // per weight matrix (trunk, then the used head): its input, per sample concatenated; conv: the (C,H,W) map
}

// refForward runs the model in float64. masks[i] (batch x width, may be
// nil) is the dropout multiplier of hidden layer i.
func refForward(m *Model, p []float64, x []float32, y []int32, batch, head int, masks [][]float32) refPass {
	s := m.spec
	var out refPass
	out.inputs = make([][]float64, len(m.convs)+len(m.hidden)+1)
	var loss float64
	for b := 0; b < batch; b++ {
		c, h, w := s.In.C, s.In.H, s.In.W
		cur := make([]float64, c*h*w)
		for i := range cur {
			cur[i] = float64(x[b*len(cur)+i])
		}
		for i := range m.convs {
			l := &m.convs[i]
			out.inputs[i] = append(out.inputs[i], cur...)
			oh, ow := l.outH, l.outW
			conv := make([]float64, l.outC*oh*ow)
			for co := 0; co < l.outC; co++ {
				for oy := 0; oy < oh; oy++ {
					for ox := 0; ox < ow; ox++ {
						v := p[l.b+co]
						for ci := 0; ci < c; ci++ {
							for ki := 0; ki < l.k; ki++ {
								for kj := 0; kj < l.k; kj++ {
									iy, ix := oy*l.stride-l.pad+ki, ox*l.stride-l.pad+kj
									if iy < 0 || iy >= h || ix < 0 || ix >= w {
										continue
									}
									v += p[l.w+co*l.din()+(ci*l.k+ki)*l.k+kj] * cur[(ci*h+iy)*w+ix]
								}
							}
						}
						conv[(co*oh+oy)*ow+ox] = math.Max(v, 0)
					}
				}
			}
			c, h, w, cur = l.outC, oh, ow, conv
			if l.pool > 0 {
				ph, pw := h/l.pool, w/l.pool
				pooled := make([]float64, c*ph*pw)
				for ch := 0; ch < c; ch++ {
					for py := 0; py < ph; py++ {
						for px := 0; px < pw; px++ {
							best := math.Inf(-1)
							for dy := 0; dy < l.pool; dy++ {
								for dx := 0; dx < l.pool; dx++ {
									best = math.Max(best, cur[(ch*h+py*l.pool+dy)*w+px*l.pool+dx])
								}
							}
							pooled[(ch*ph+py)*pw+px] = best
						}
					}
				}
				h, w, cur = ph, pw, pooled
			}
		}
		lin := func(l *linLayer, in []float64) []float64 {
			z := make([]float64, l.dout)
			for o := range z {
				v := p[l.b+o]
				for j, a := range in {
					v += p[l.w+o*l.din+j] * a
				}
				z[o] = v
			}
			return z
		}
		// rec is the layer input LayerInput reports: the ReLU output
		// before the dropout in front of the layer.
		rec := cur
		for i := range m.hidden {
			l := &m.hidden[i]
			out.inputs[len(m.convs)+i] = append(out.inputs[len(m.convs)+i], rec...)
			z := lin(l, cur)
			for o := range z {
				z[o] = math.Max(z[o], 0)
			}
			rec = z
			if i < len(masks) && masks[i] != nil {
				d := make([]float64, len(z))
				for o := range z {
					d[o] = z[o] * float64(masks[i][b*l.dout+o])
				}
				z = d
			}
			cur = z
		}
		hi := len(m.convs) + len(m.hidden)
		out.inputs[hi] = append(out.inputs[hi], rec...)
		z := lin(&m.heads[head], cur)
		out.logits = append(out.logits, z...)
		if y != nil {
			mx := z[0]
			for _, v := range z {
				mx = math.Max(mx, v)
			}
			var se float64
			for _, v := range z {
				se += math.Exp(v - mx)
			}
			loss += math.Log(se) + mx - z[y[b]]
		}
	}
	out.loss = loss / float64(batch)
	return out
}

// refIm2col builds the patch matrix of a conv layer from (C,H,W) maps with
// direct loops: one row per (sample, oy, ox), columns in (C_in, kh, kw) order.
func refIm2col(l *convLayer, maps []float64, batch int) []float64 {
	var cols []float64
	size := l.inC * l.inH * l.inW
	for b := 0; b < batch; b++ {
		for oy := 0; oy < l.outH; oy++ {
			for ox := 0; ox < l.outW; ox++ {
				for ci := 0; ci < l.inC; ci++ {
					for ki := 0; ki < l.k; ki++ {
						for kj := 0; kj < l.k; kj++ {
							iy, ix := oy*l.stride-l.pad+ki, ox*l.stride-l.pad+kj
							v := 0.0
							if iy >= 0 && iy < l.inH && ix >= 0 && ix < l.inW {
								v = maps[b*size+(ci*l.inH+iy)*l.inW+ix]
							}
							cols = append(cols, v)
						}
					}
				}
			}
		}
	}
	return cols
}

// randInput returns batch random inputs in [-1, 1) and labels.
func randInput(m *Model, batch int, r *rand.Rand) ([]float32, []int32) {
	x := make([]float32, batch*m.InputSize())
	for i := range x {
		x[i] = float32(2*r.Float64() - 1)
	}
	y := make([]int32, batch)
	for i := range y {
		y[i] = int32(r.IntN(m.spec.Classes))
	}
	return x, y
}
