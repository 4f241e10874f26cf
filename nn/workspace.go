package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/nn/gemm"
)

// Workspace owns every buffer one worker needs to run a Model on batches of
// at most MaxBatch samples, and the gemm.Backend it captured when created.
// After NewWorkspace, Forward, LossGrad, Backward and Predict allocate
// nothing. A Workspace is not safe for concurrent use and runs
// single-threaded (apart from what the backend does inside a product);
// give each worker its own.
//
// Internally, conv feature maps are stored (H, W, C) per sample, which is the
// natural output of the im2col product; Flatten reorders them to PyTorch's
// (C, H, W), so weights are laid out exactly as in PyTorch.
type Workspace struct {
	m        *Model
	be       gemm.Backend
	maxBatch int

	// state of the last pass
	batch int
	head  int
	train bool
	x     []float32   // the caller's input of the last pass
	in    [][]float32 // per hidden layer, then the head: the matrix it multiplied (after dropout)

	cols    [][]float32 // per conv: patches, (batch*outH*outW) x (C_in*k*k)
	cout    [][]float32 // per conv: ReLU(conv + bias), (batch*outH*outW) x C_out
	pout    [][]float32 // per conv with pooling: pooled map, (batch*finH*finW) x C_out
	pidx    [][]int32   // per conv with pooling: index into cout of each maximum
	flat    []float32   // cnn: batch x flatDim in (C,H,W) order
	act     [][]float32 // per hidden layer: ReLU output, before dropout
	mask    [][]float32 // per hidden layer with dropout: 0 or 1/(1-p)
	drop    [][]float32 // per hidden layer with dropout: act * mask
	logits  []float32   // batch x Classes
	dlogits []float32   // batch x Classes
	g0, g1  []float32   // ping-pong buffers for activation gradients
	acc     []float64   // column sums
}

// NewWorkspace returns a Workspace for batches of up to maxBatch samples,
// using ActiveBackend(). It panics if maxBatch < 1.
func (m *Model) NewWorkspace(maxBatch int) *Workspace {
	if maxBatch < 1 {
		panic(fmt.Sprintf("nn: maxBatch %d < 1", maxBatch))
	}
	B := maxBatch
	ws := &Workspace{m: m, be: ActiveBackend(), maxBatch: B, in: make([][]float32, len(m.hidden)+1)}
	scratch, acc := 0, 0
	grow := func(n int) {
		scratch = max(scratch, n)
	}
	for i := range m.convs {
		l := &m.convs[i]
		rows := B * l.outH * l.outW
		ws.cols = append(ws.cols, make([]float32, rows*l.din()))
		ws.cout = append(ws.cout, make([]float32, rows*l.outC))
		var pout []float32
		var pidx []int32
		if l.pool > 0 {
			n := B * l.finH * l.finW * l.outC
			pout, pidx = make([]float32, n), make([]int32, n)
		}
		ws.pout = append(ws.pout, pout)
		ws.pidx = append(ws.pidx, pidx)
		grow(rows * l.outC)
		grow(rows * l.din())
		grow(B * l.inC * l.inH * l.inW)
		acc = max(acc, l.outC)
	}
	if len(m.convs) > 0 {
		ws.flat = make([]float32, B*m.flatDim)
		grow(B * m.flatDim)
	}
	for i := range m.hidden {
		l := &m.hidden[i]
		n := B * l.dout
		ws.act = append(ws.act, make([]float32, n))
		var mask, drop []float32
		if l.drop > 0 {
			mask, drop = make([]float32, n), make([]float32, n)
		}
		ws.mask = append(ws.mask, mask)
		ws.drop = append(ws.drop, drop)
		grow(n)
		grow(B * l.din)
		acc = max(acc, l.dout)
	}
	h := &m.heads[0]
	grow(B * h.din)
	acc = max(acc, h.dout)
	ws.logits = make([]float32, B*h.dout)
	ws.dlogits = make([]float32, B*h.dout)
	ws.g0, ws.g1 = make([]float32, scratch), make([]float32, scratch)
	ws.acc = make([]float64, acc)
	return ws
}

// Model returns the model the workspace was created for.
func (ws *Workspace) Model() *Model { return ws.m }

// Backend returns the backend the workspace captured when it was created.
func (ws *Workspace) Backend() gemm.Backend { return ws.be }

// MaxBatch returns the largest batch the workspace accepts.
func (ws *Workspace) MaxBatch() int { return ws.maxBatch }

// check panics on arguments that do not fit the model or the workspace.
func (ws *Workspace) check(params, x []float32, batch, head int) {
	ws.m.checkParams("params", params)
	if batch < 1 || batch > ws.maxBatch {
		panic(fmt.Sprintf("nn: batch %d outside [1, %d]", batch, ws.maxBatch))
	}
	if len(x) < batch*ws.m.InputSize() {
		panic(fmt.Sprintf("nn: x has %d values, want %d (batch %d x input %d)", len(x), batch*ws.m.InputSize(), batch, ws.m.InputSize()))
	}
	ws.m.checkHead(head)
}

// Forward runs the model on batch samples x (batch x InputSize, row-major)
// through head and returns the logits, a batch x Classes view into the
// workspace valid until the next pass. In training mode (train) the dropout
// masks are drawn from r, one r.Float32() per activation, layer by layer in
// row-major order; r may be nil when !train. It panics on shape mismatch.
func (ws *Workspace) Forward(params, x []float32, batch, head int, train bool, r *rand.Rand) []float32 {
	ws.check(params, x, batch, head)
	ws.forward(params, x, batch, head, train, r)
	return ws.logits[:batch*ws.m.heads[head].dout]
}

// LossGrad runs a training-mode Forward (dropout masks drawn from r), and
// returns the mean softmax cross-entropy of the logits against labels y in
// [0, Classes),
//
//	L = -(1/B) sum_b log softmax(z_b)[y_b],
//
// after overwriting grad (len NumParams) with dL/dparams; the parameters
// of heads other than head get zero gradients. It panics on shape mismatch
// or a label out of range.
func (ws *Workspace) LossGrad(params, grad, x []float32, y []int32, batch, head int, r *rand.Rand) float32 {
	ws.check(params, x, batch, head)
	ws.m.checkParams("grad", grad)
	if len(y) < batch {
		panic(fmt.Sprintf("nn: y has %d labels, want %d", len(y), batch))
	}
	ws.forward(params, x, batch, head, true, r)
	c := ws.m.spec.Classes
	dz := ws.dlogits[:batch*c]
	loss := softmaxXent(dz, ws.logits[:batch*c], y, batch, c)
	ws.backward(params, grad, dz)
	return loss
}

// Backward back-propagates dlogits (batch x Classes, the gradient of some
// loss with respect to the logits of the last Forward or LossGrad) and
// overwrites grad with the gradient with respect to params, zero for the
// heads not used. params must be those of that pass. It lets callers train
// on losses other than LossGrad's (distillation, for instance).
// It panics on shape mismatch or when no pass has run yet.
func (ws *Workspace) Backward(params, grad, dlogits []float32) {
	if ws.batch == 0 {
		panic("nn: Backward before any forward pass")
	}
	ws.m.checkParams("params", params)
	ws.m.checkParams("grad", grad)
	n := ws.batch * ws.m.spec.Classes
	if len(dlogits) < n {
		panic(fmt.Sprintf("nn: dlogits has %d values, want %d", len(dlogits), n))
	}
	ws.backward(params, grad, dlogits[:n])
}

// Predict writes the eval-mode (no dropout) argmax class of each of the
// batch samples of x into dst[:batch]. It panics on shape mismatch.
func (ws *Workspace) Predict(params, x []float32, batch, head int, dst []int32) {
	ws.check(params, x, batch, head)
	if len(dst) < batch {
		panic(fmt.Sprintf("nn: dst has %d values, want %d", len(dst), batch))
	}
	ws.forward(params, x, batch, head, false, nil)
	c := ws.m.spec.Classes
	argmaxRows(dst, ws.logits[:batch*c], batch, c)
}

// LayerInput returns the input matrix of Weights()[w] in the last pass, one
// row per sample (rows = batch, cols = d_in) or, for a conv layer, one row
// per im2col patch (rows = batch*outH*outW, cols = C_in*kh*kw, rows ordered
// by sample, then output row, then output column). For a hidden or head
// layer it is the output of the preceding ReLU taken before the dropout in
// front of the layer, but after the earlier dropouts when the pass was in
// training mode. For the first layer of an mlp it is the raw input: the
// returned slice then aliases the x passed to that pass. Every head sees
// the same input. The slice is a view valid until the next pass.
// It panics if w is out of range.
func (ws *Workspace) LayerInput(w int) (data []float32, rows, cols int) {
	m := ws.m
	if w < 0 || w >= len(m.weights) {
		panic(fmt.Sprintf("nn: weight %d out of range [0, %d)", w, len(m.weights)))
	}
	b := ws.batch
	if w < len(m.convs) {
		l := &m.convs[w]
		rows, cols = b*l.outH*l.outW, l.din()
		return ws.cols[w][:rows*cols], rows, cols
	}
	l := w - len(m.convs)
	if l > len(m.hidden) {
		l = len(m.hidden) // every head sees the same input
	}
	if l > 0 {
		h := &m.hidden[l-1]
		return ws.act[l-1][:b*h.dout], b, h.dout
	}
	if len(m.convs) > 0 {
		return ws.flat[:b*m.flatDim], b, m.flatDim
	}
	if b == 0 {
		return nil, 0, m.flatDim
	}
	return ws.x[:b*m.flatDim], b, m.flatDim
}

// forward computes the logits of batch samples; arguments are checked.
func (ws *Workspace) forward(params, x []float32, batch, head int, train bool, r *rand.Rand) {
	m := ws.m
	ws.batch, ws.head, ws.train, ws.x = batch, head, train, x
	in := x[:batch*m.InputSize()]
	for i := range m.convs {
		l := &m.convs[i]
		rows, k := batch*l.outH*l.outW, l.din()
		cols := ws.cols[i][:rows*k]
		im2col(cols, in, l, batch)
		out := ws.cout[i][:rows*l.outC]
		// out = cols W^T: (rows x k) (k x C_out)
		ws.be.Sgemm(false, true, rows, l.outC, k, 1, cols, k, params[l.w:l.b], k, 0, out, l.outC)
		addBiasReLU(out, params[l.b:l.b+l.outC], rows, l.outC)
		in = out
		if l.pool > 0 {
			n := batch * l.finH * l.finW * l.outC
			maxPool(ws.pout[i][:n], ws.pidx[i][:n], out, batch, l.outH, l.outW, l.outC, l.pool)
			in = ws.pout[i][:n]
		}
	}
	if len(m.convs) > 0 {
		flat := ws.flat[:batch*m.flatDim]
		hwcToCHW(flat, in, batch, m.flatC, m.flatH, m.flatW)
		in = flat
	}
	for i := range m.hidden {
		l := &m.hidden[i]
		n := batch * l.dout
		ws.in[i] = in
		a := ws.act[i][:n]
		ws.linear(a, in, params, l, batch)
		addBiasReLU(a, params[l.b:l.b+l.dout], batch, l.dout)
		in = a
		if train && l.drop > 0 {
			if r == nil {
				panic("nn: training pass with dropout needs a *rand.Rand")
			}
			dropoutMask(ws.drop[i][:n], ws.mask[i][:n], a, l.drop, r)
			in = ws.drop[i][:n]
		}
	}
	h := &m.heads[head]
	ws.in[len(m.hidden)] = in
	z := ws.logits[:batch*h.dout]
	ws.linear(z, in, params, h, batch)
	addBias(z, params[h.b:h.b+h.dout], batch, h.dout)
}

// linear computes dst = x W^T for x (batch x din) and W (dout x din).
func (ws *Workspace) linear(dst, x, params []float32, l *linLayer, batch int) {
	ws.be.Sgemm(false, true, batch, l.dout, l.din, 1, x, l.din, params[l.w:l.b], l.din, 0, dst, l.dout)
}

// linBackward writes dW = dy^T x and db = sum_rows dy into grad and, when
// dx != nil, dx = dy W, for a linear map of rows inputs x (rows x din) to
// outputs with gradient dy (rows x dout).
func (ws *Workspace) linBackward(grad, params, x, dy, dx []float32, rows, din, dout, w, b int) {
	ws.be.Sgemm(true, false, dout, din, rows, 1, dy, dout, x, din, 0, grad[w:b], din)
	colSum(grad[b:b+dout], dy, rows, dout, ws.acc)
	if dx != nil {
		ws.be.Sgemm(false, false, rows, din, dout, 1, dy, dout, params[w:b], din, 0, dx, din)
	}
}

// backward overwrites grad with the gradient of the loss whose logits
// gradient is dz, using the activations of the last forward pass.
func (ws *Workspace) backward(params, grad, dz []float32) {
	m := ws.m
	batch := ws.batch
	for t := range m.heads {
		if t != ws.head {
			off, n := m.HeadRange(t)
			clear(grad[off : off+n])
		}
	}
	cur, other := ws.g0, ws.g1
	h := &m.heads[ws.head]
	var dx []float32
	if len(m.hidden) > 0 || len(m.convs) > 0 {
		dx = cur[:batch*h.din]
	}
	ws.linBackward(grad, params, ws.in[len(m.hidden)], dz, dx, batch, h.din, h.dout, h.w, h.b)
	// cur holds the gradient of the input of the layer just processed.
	for i := len(m.hidden) - 1; i >= 0; i-- {
		l := &m.hidden[i]
		n := batch * l.dout
		d := cur[:n]
		if ws.train && l.drop > 0 {
			mulInPlace(d, ws.mask[i][:n])
		}
		reluBackward(d, ws.act[i][:n])
		dx = nil
		if i > 0 || len(m.convs) > 0 {
			dx = other[:batch*l.din]
		}
		ws.linBackward(grad, params, ws.in[i], d, dx, batch, l.din, l.dout, l.w, l.b)
		cur, other = other, cur
	}
	if len(m.convs) == 0 {
		return
	}
	n := batch * m.flatDim
	chwToHWC(other[:n], cur[:n], batch, m.flatC, m.flatH, m.flatW)
	cur, other = other, cur
	for i := len(m.convs) - 1; i >= 0; i-- {
		l := &m.convs[i]
		rows, k := batch*l.outH*l.outW, l.din()
		nOut := rows * l.outC
		d := cur[:nOut]
		if l.pool > 0 {
			d = other[:nOut]
			unpoolReLU(d, cur, ws.pidx[i], ws.cout[i][:nOut], batch*l.finH*l.finW*l.outC)
			cur, other = other, cur
		} else {
			reluBackward(d, ws.cout[i][:nOut])
		}
		dcols := []float32(nil)
		if i > 0 {
			dcols = other[:rows*k]
		}
		ws.linBackward(grad, params, ws.cols[i][:rows*k], d, dcols, rows, k, l.outC, l.w, l.b)
		if i > 0 {
			dIn := cur[:batch*l.inC*l.inH*l.inW]
			clear(dIn)
			col2im(dIn, dcols, l, batch)
		}
	}
}
