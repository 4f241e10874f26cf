package nn

import (
	"math"
)

// The kernels below work on row-major float32 matrices owned by a
// Workspace. They write into the destination passed first and allocate
// nothing. Feature maps between conv blocks are stored (H, W, C) per sample
// ("NHWC"): one row per spatial position, one column per channel, which is
// exactly the output layout of the im2col product.

// addBias computes z[i][j] += b[j] for a rows x cols matrix z.
func addBias(z, b []float32, rows, cols int) {
	if !addBiasSIMD(z, b, rows, cols) {
		addBiasGo(z, b, rows, cols)
	}
}

// addBiasGo is addBias's Go loop: the reference of the vector kernel and
// the fallback without it.
func addBiasGo(z, b []float32, rows, cols int) {
	b = b[:cols]
	for i := 0; i < rows; i++ {
		row := z[i*cols : i*cols+cols]
		for j := range row {
			row[j] += b[j]
		}
	}
}

// addBiasReLU computes z[i][j] = max(0, z[i][j] + b[j]) for a rows x cols matrix z.
func addBiasReLU(z, b []float32, rows, cols int) {
	if !addBiasReLUSIMD(z, b, rows, cols) {
		addBiasReLUGo(z, b, rows, cols)
	}
}

// addBiasReLUGo is addBiasReLU's Go loop: the reference of the vector
// kernel and the fallback without it.
func addBiasReLUGo(z, b []float32, rows, cols int) {
	b = b[:cols]
	for i := 0; i < rows; i++ {
		row := z[i*cols : i*cols+cols]
		for j := range row {
			row[j] = max(row[j]+b[j], 0) // branch-free; max(-0, 0) = 0
		}
	}
}

// reluBackward computes dz[i] = 0 where a[i] <= 0 (a = ReLU output), in
// place. It is branch-free (signs are unpredictable): a > 0 exactly when
// the int32 of its IEEE bits is > 0 (a positive NaN counts as positive),
// and the sign of that value negated in int64 gives an all-ones or
// all-zeros mask.
func reluBackward(dz, a []float32) {
	a = a[:len(dz)]
	n := reluBackwardSIMD(dz, a)
	reluBackwardGo(dz[n:], a[n:])
}

// reluBackwardGo is reluBackward's Go loop: the reference of the vector
// kernel, its tail and the fallback without it.
func reluBackwardGo(dz, a []float32) {
	a = a[:len(dz)]
	for i, v := range a {
		keep := uint32(-int64(int32(math.Float32bits(v))) >> 63)
		dz[i] = math.Float32frombits(math.Float32bits(dz[i]) & keep)
	}
}

// colSum computes dst[j] = sum_i m[i][j] for a rows x cols matrix m (the
// gradient of a bias broadcast over rows), accumulating in float64 in acc
// (len >= cols).
func colSum(dst, m []float32, rows, cols int, acc []float64) {
	acc = acc[:cols]
	clear(acc)
	// The vector kernel sums the first c columns, 4 per register, each
	// in row order like the loop below does the rest.
	c := colSumSIMD(acc, m, rows, cols)
	if c < cols {
		for i := 0; i < rows; i++ {
			row := m[i*cols+c : i*cols+cols]
			for j, v := range row {
				acc[c+j] += float64(v)
			}
		}
	}
	dst = dst[:cols]
	k := cvtSIMD(dst, acc)
	for j, v := range acc[k:] {
		dst[k+j] = float32(v)
	}
}

// colSumGo is colSum's Go loop: the reference of the vector kernel.
func colSumGo(dst, m []float32, rows, cols int, acc []float64) {
	acc = acc[:cols]
	clear(acc)
	for i := 0; i < rows; i++ {
		row := m[i*cols : i*cols+cols]
		for j, v := range row {
			acc[j] += float64(v)
		}
	}
	dst = dst[:cols]
	for j, v := range acc {
		dst[j] = float32(v)
	}
}

// mulInPlace computes d[i] *= m[i].
func mulInPlace(d, m []float32) {
	m = m[:len(d)]
	n := mulInPlaceSIMD(d, m)
	mulInPlaceGo(d[n:], m[n:])
}

// mulInPlaceGo is mulInPlace's Go loop: the reference of the vector
// kernel, its tail and the fallback without it.
func mulInPlaceGo(d, m []float32) {
	m = m[:len(d)]
	for i := range d {
		d[i] *= m[i]
	}
}

// softmaxXent computes the mean softmax cross-entropy of a batch x classes
// matrix of logits z against labels y,
//
//	L = (1/B) sum_b [ log sum_j exp(z_bj - m_b) + m_b - z_{b,y_b} ],  m_b = max_j z_bj,
//
// and writes its gradient dz = (softmax(z) - onehot(y)) / B into dz.
// Sums run in float64. It panics on a label outside [0, classes).
func softmaxXent(dz, z []float32, y []int32, batch, classes int) float32 {
	return softmaxXentScaled(dz, z, y, batch, classes, 1/float64(batch))
}

// softmaxXentScaled is softmaxXent with the gradient scaled by g instead
// of 1/B: dz = g (softmax(z) - onehot(y)). The loss is still the mean.
func softmaxXentScaled(dz, z []float32, y []int32, batch, classes int, g float64) float32 {
	var loss float64
	inv := 1 / float64(batch)
	for b := 0; b < batch; b++ {
		row := z[b*classes : b*classes+classes]
		drow := dz[b*classes : b*classes+classes]
		lab := int(y[b])
		if lab < 0 || lab >= classes {
			panic("nn: label out of range [0, Classes)")
		}
		m := row[0]
		for _, v := range row[1:] {
			if v > m {
				m = v
			}
		}
		var s float64
		for j, v := range row {
			e := math.Exp(float64(v - m))
			drow[j] = float32(e)
			s += e
		}
		loss += math.Log(s) + float64(m) - float64(row[lab])
		f := g / s
		for j := range drow {
			drow[j] = float32(float64(drow[j]) * f)
		}
		drow[lab] -= float32(g)
	}
	return float32(loss * inv)
}

// argmaxRows writes the index of the largest value of each row of a
// batch x classes matrix z into dst (the first one on ties).
func argmaxRows(dst []int32, z []float32, batch, classes int) {
	for b := 0; b < batch; b++ {
		row := z[b*classes : b*classes+classes]
		best := 0
		for j, v := range row {
			if v > row[best] {
				best = j
			}
		}
		dst[b] = int32(best)
	}
}

// strides returns the element strides of channel, row and column of a
// feature map of c x h x w stored (C,H,W) when chw, else (H,W,C).
func strides(c, h, w int, chw bool) (cs, hs, ws int) {
	if chw {
		return h * w, w, 1
	}
	return 1, w * c, c
}

// kRange returns the kernel offsets [lo, hi) whose input coordinate
// o*s - pad + kk falls inside [0, n).
func kRange(o, s, pad, k, n int) (lo, hi int) {
	start := o*s - pad
	lo, hi = max(0, -start), min(k, n-start)
	if hi < lo {
		hi = lo
	}
	return lo, hi
}

// im2col writes the convolution patches of batch input maps into cols, one
// row per output position (b, oy, ox) in that order, each row
// (C_in, kh, kw)-ordered:
//
//	cols[(b*outH+oy)*outW+ox][(c*k+ki)*k+kj] = in_b[c, oy*s-pad+ki, ox*s-pad+kj]
//
// with zeros outside the map. The input layout is given by l.inCHW.
func im2col(cols, in []float32, l *convLayer, batch int) {
	k, s, p, din := l.k, l.stride, l.pad, l.din()
	cs, hs, ws := strides(l.inC, l.inH, l.inW, l.inCHW)
	size := l.inC * l.inH * l.inW
	row := 0
	for b := 0; b < batch; b++ {
		src := in[b*size : b*size+size]
		for oy := 0; oy < l.outH; oy++ {
			kiLo, kiHi := kRange(oy, s, p, k, l.inH)
			for ox := 0; ox < l.outW; ox++ {
				kjLo, kjHi := kRange(ox, s, p, k, l.inW)
				x0 := ox*s - p
				dst := cols[row : row+din]
				row += din
				if kiLo > 0 || kiHi < k || kjLo > 0 || kjHi < k {
					clear(dst) // border patch: zero padding
				}
				for c := 0; c < l.inC; c++ {
					for ki := kiLo; ki < kiHi; ki++ {
						base := c*cs + (oy*s-p+ki)*hs
						d := dst[(c*k+ki)*k : (c*k+ki)*k+k]
						if ws == 1 {
							copy(d[kjLo:kjHi], src[base+x0+kjLo:base+x0+kjHi])
							continue
						}
						for kj := kjLo; kj < kjHi; kj++ {
							d[kj] = src[base+(x0+kj)*ws]
						}
					}
				}
			}
		}
	}
}

// col2im is the adjoint of im2col: it accumulates every patch value of
// dcols back onto the input position it was read from, dst[...] += dcols[...].
// dst is not cleared.
func col2im(dst, dcols []float32, l *convLayer, batch int) {
	k, s, p, din := l.k, l.stride, l.pad, l.din()
	cs, hs, ws := strides(l.inC, l.inH, l.inW, l.inCHW)
	size := l.inC * l.inH * l.inW
	row := 0
	for b := 0; b < batch; b++ {
		d := dst[b*size : b*size+size]
		for oy := 0; oy < l.outH; oy++ {
			kiLo, kiHi := kRange(oy, s, p, k, l.inH)
			for ox := 0; ox < l.outW; ox++ {
				kjLo, kjHi := kRange(ox, s, p, k, l.inW)
				x0 := ox*s - p
				src := dcols[row : row+din]
				row += din
				for c := 0; c < l.inC; c++ {
					for ki := kiLo; ki < kiHi; ki++ {
						base := c*cs + (oy*s-p+ki)*hs
						g := src[(c*k+ki)*k : (c*k+ki)*k+k]
						for kj := kjLo; kj < kjHi; kj++ {
							d[base+(x0+kj)*ws] += g[kj]
						}
					}
				}
			}
		}
	}
}

// maxPool computes the p x p, stride p max-pool (floor mode) of batch
// (H,W,C) maps in into dst (each (H/p, W/p, C)), recording in idx the
// index into in of every selected maximum (the first one in row-major
// window order on ties).
//
// in holds ReLU outputs (>= 0). For those, comparing the IEEE bits as
// int32 orders like the floats do, and lets the compiler use conditional
// moves instead of unpredictable branches.
func maxPool(dst []float32, idx []int32, in []float32, batch, h, w, c, p int) {
	ph, pw := h/p, w/p
	o := 0
	for b := 0; b < batch; b++ {
		base := b * h * w * c
		for py := 0; py < ph; py++ {
			for px := 0; px < pw; px++ {
				d, di := dst[o:o+c], idx[o:o+c]
				o += c
				for dy := 0; dy < p; dy++ {
					for dx := 0; dx < p; dx++ {
						j := base + ((py*p+dy)*w+px*p+dx)*c
						v := in[j : j+c]
						if dy == 0 && dx == 0 {
							copy(d, v)
							for ch := range di {
								di[ch] = int32(j + ch)
							}
							continue
						}
						for ch, x := range v {
							xb, mb, id := int32(math.Float32bits(x)), int32(math.Float32bits(d[ch])), di[ch]
							if xb > mb {
								mb, id = xb, int32(j+ch)
							}
							d[ch], di[ch] = math.Float32frombits(uint32(mb)), id
						}
					}
				}
			}
		}
	}
}

// unpoolReLU is the backward pass of ReLU followed by max-pooling: it
// clears dst and scatters dst[idx[i]] = dy[i] for the first n entries where
// the ReLU output a[idx[i]] > 0 (the windows do not overlap).
func unpoolReLU(dst, dy []float32, idx []int32, a []float32, n int) {
	clear(dst)
	idx = idx[:n]
	for i, j := range idx {
		if a[j] > 0 {
			dst[j] = dy[i]
		}
	}
}

// hwcToCHW flattens batch (H,W,C) maps into PyTorch's (C,H,W) order:
// dst[b][(c*h+y)*w+x] = src[b][(y*w+x)*c+ch].
func hwcToCHW(dst, src []float32, batch, c, h, w int) {
	size := c * h * w
	for b := 0; b < batch; b++ {
		s := src[b*size : b*size+size]
		d := dst[b*size : b*size+size]
		for pos := 0; pos < h*w; pos++ {
			for ch := 0; ch < c; ch++ {
				d[ch*h*w+pos] = s[pos*c+ch]
			}
		}
	}
}

// chwToHWC is the inverse of hwcToCHW.
func chwToHWC(dst, src []float32, batch, c, h, w int) {
	size := c * h * w
	for b := 0; b < batch; b++ {
		s := src[b*size : b*size+size]
		d := dst[b*size : b*size+size]
		for pos := 0; pos < h*w; pos++ {
			for ch := 0; ch < c; ch++ {
				d[pos*c+ch] = s[ch*h*w+pos]
			}
		}
	}
}
