package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// clipState holds LossGradClipped's buffers.
type clipState struct {
	norm2   []float64 // per sample: squared gradient norm
	norms   []float32 // per sample: gradient norm, returned to the caller
	scratch []float32 // per-sample outer products or Gram matrices of conv layers
}

// ensureClip allocates the buffers of LossGradClipped on its first call.
func (ws *Workspace) ensureClip() {
	if ws.clip != nil {
		return
	}
	m := ws.m
	scratch := 0
	for w := range m.convs {
		per := m.rowsPerSample(w)
		v := m.weights[w]
		pairs := [][2]int{{v.Rows, v.Cols}}
		if a := m.adapterOf[w]; a >= 0 {
			r := m.adapters[a].A.Rows
			pairs = append(pairs, [2]int{v.Rows, r}, [2]int{r, v.Cols})
		}
		for _, p := range pairs {
			scratch = max(scratch, outerScratch(per, p[0], p[1]))
		}
	}
	ws.clip = &clipState{
		norm2:   make([]float64, ws.maxBatch),
		norms:   make([]float32, ws.maxBatch),
		scratch: make([]float32, scratch),
	}
}

// gramCheaper reports whether ||sum_p a_p b_p^T||_F^2 over per rows a_p
// (length da) and b_p (length db) costs less through the two Gram matrices,
// sum_{p,q} (a_p . a_q)(b_p . b_q) at 2 per^2 (da+db) flops, than through
// the da x db matrix itself at 2 per da db flops.
func gramCheaper(per, da, db int) bool { return per*(da+db) < da*db }

// outerScratch is the scratch outerNorms needs for one sample.
func outerScratch(per, da, db int) int {
	if per == 1 {
		return 0
	}
	if gramCheaper(per, da, db) {
		return 2 * per * per
	}
	return da * db
}

// outerNorms adds, for every sample i of the last pass,
//
//	scale * || A_i^T B_i ||_F^2
//
// to ws.clip.norm2[i], where A_i (per x da) and B_i (per x db) are sample
// i's per rows of a and b: the squared norm of the per-sample gradient
// A_i^T B_i of a linear map (per = 1: the rank-1 dy_i x_i^T, whose norm is
// ||dy_i|| ||x_i||) or of a convolution (per = patches per sample). For
// per > 1 it forms whichever is cheaper (gramCheaper) of the da x db
// matrix or the two per x per Gram matrices.
func (ws *Workspace) outerNorms(a []float32, da int, b []float32, db int, per int, scale float64) {
	n2 := ws.clip.norm2[:ws.batch]
	if per == 1 {
		for i := range n2 {
			n2[i] += scale * sumSq(a[i*da:i*da+da]) * sumSq(b[i*db:i*db+db])
		}
		return
	}
	gram := gramCheaper(per, da, db)
	for i := range n2 {
		ai := a[i*per*da : (i+1)*per*da]
		bi := b[i*per*db : (i+1)*per*db]
		var s float64
		if gram {
			pp := per * per
			ga, gb := ws.clip.scratch[:pp], ws.clip.scratch[pp:2*pp]
			ws.be.Sgemm(false, true, per, per, da, 1, ai, da, ai, da, 0, ga, per)
			ws.be.Sgemm(false, true, per, per, db, 1, bi, db, bi, db, 0, gb, per)
			for j, v := range ga {
				s += float64(v) * float64(gb[j])
			}
		} else {
			g := ws.clip.scratch[:da*db]
			ws.be.Sgemm(true, false, da, db, per, 1, ai, da, bi, db, 0, g, db)
			s = sumSq(g)
		}
		n2[i] += scale * s
	}
}

// biasNorms adds ||sum_p dy_{i,p}||^2, the squared norm of sample i's bias
// gradient, to ws.clip.norm2[i] for dy of per rows of dout per sample.
func (ws *Workspace) biasNorms(dy []float32, dout, per int) {
	n2 := ws.clip.norm2[:ws.batch]
	if per == 1 {
		for i := range n2 {
			n2[i] += sumSq(dy[i*dout : i*dout+dout])
		}
		return
	}
	acc := ws.acc[:dout]
	for i := range n2 {
		clear(acc)
		for p := 0; p < per; p++ {
			row := dy[(i*per+p)*dout : (i*per+p+1)*dout]
			for j, v := range row {
				acc[j] += float64(v)
			}
		}
		var s float64
		for _, v := range acc {
			s += v * v
		}
		n2[i] += s
	}
}

// sumSq returns sum_i x_i^2 accumulated in float64.
func sumSq(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

// LossGradClipped is the gradient step of DP-SGD (Abadi et al. 2016) on
// the parameters inside train. It runs a training-mode forward pass
// (dropout masks drawn from r, exactly as LossGrad draws them), and writes
//
//	grad = sum_i clip_C(g_i),   clip_C(g) = g * min(1, C / ||g||),
//
// where g_i is the gradient of sample i's own cross-entropy (not divided
// by batch) with respect to the parameters inside train, and C = clip.
// grad (len NumParams) is overwritten, zero outside train. It returns the
// mean loss of the batch, as LossGrad, and norms, the per-sample norms
// ||g_i|| before clipping: a view of batch values owned by the workspace,
// valid until the next call. Adding the noise and dividing by the
// (expected) batch size is the caller's business.
//
// train selects whole views: every weight, bias and adapter matrix (A or
// B) is either entirely inside train or entirely outside; a view cut by
// train panics, as do an invalid train, clip <= 0 or NaN (clip = +Inf sums
// the unclipped per-sample gradients) and the shape errors of LossGrad.
//
// The per-sample gradients are never materialised ("ghost clipping",
// Goodfellow 2015; Li et al. 2022). A first backward pass runs with the
// per-sample output gradients dz_i = softmax(z_i) - onehot(y_i) and, at
// every layer holding a view in train, adds the squared per-sample norms:
// for a linear layer with input x_i and output gradient dy_i the weight
// gradient is the outer product dy_i x_i^T, so
//
//	||dW_i||^2 = ||dy_i||^2 ||x_i||^2,  ||db_i||^2 = ||dy_i||^2,
//	||dB_i||^2 = s^2 ||dy_i||^2 ||A x_i||^2,  ||dA_i||^2 = s^2 ||B^T dy_i||^2 ||x_i||^2
//
// (dB_i = s dy_i (A x_i)^T, dA_i = s (B^T dy_i) x_i^T). A convolution's
// per-sample gradient sum_p dy_{i,p} x_{i,p}^T sums over its patches, so it
// is not rank 1: its norm is computed exactly, per sample, either from the
// d_out x d_in matrix itself (one product of the size of the usual weight
// gradient) or through the Gram matrices of the patches,
// sum_{p,q} (dy_p . dy_q)(x_p . x_q), whichever costs less; the bias
// gradient sums dy over the patches first. Then with c_i = min(1, C/||g_i||)
// (1 when g_i = 0) a second backward pass with the output gradients c_i dz_i
// gives the clipped sum, per-sample gradients being linear in the output
// gradient. Both passes stop at the lowest layer holding a view in train
// and compute only the gradients inside train, so training only the B
// matrices skips every d_out x d_in weight gradient.
//
// With dropout, the per-sample gradients are those of the network with the
// masks of this pass: each sample's gradient uses its own rows of the
// masks drawn for the batch, as LossGrad's batch gradient does.
//
// The first call allocates the buffers of the norms; later ones allocate
// nothing.
func (ws *Workspace) LossGradClipped(params, grad, x []float32, y []int32, batch, head int, r rand.Source, clip float32, train Ranges) (loss float32, norms []float32) {
	ws.check(params, x, batch, head)
	ws.m.checkParams("grad", grad)
	if len(y) < batch {
		panic(fmt.Sprintf("nn: y has %d labels, want %d", len(y), batch))
	}
	if !(clip > 0) {
		panic(fmt.Sprintf("nn: clip norm %v, want > 0", clip))
	}
	ws.wantRanges(train, head)
	ws.ensureClip()
	ws.forward(params, x, batch, head, true, r)
	c := ws.m.spec.Classes
	dz := ws.dlogits[:batch*c]
	loss = softmaxXentScaled(dz, ws.logits[:batch*c], y, batch, c, 1)
	n2 := ws.clip.norm2[:batch]
	clear(n2)
	ws.backward(params, grad, dz, passNorm)
	norms = ws.clip.norms[:batch]
	for i, s := range n2 {
		n := math.Sqrt(max(s, 0))
		norms[i] = float32(n)
		if f := float64(clip) / n; f < 1 {
			row := dz[i*c : i*c+c]
			for j, v := range row {
				row[j] = float32(float64(v) * f)
			}
		}
	}
	ws.backward(params, grad, dz, passGrad)
	train.Mask(grad)
	return loss, norms
}
