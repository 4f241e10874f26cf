package nn

import (
	"fmt"
	"math/rand/v2"

	"github.com/fotsim/fotsim/nn/gemm"
)

// Workspace owns every buffer one worker needs to run a Model on batches of
// at most maxBatch samples (the argument of NewWorkspace), and the
// gemm.Backend it captured when created.
// After NewWorkspace, Forward, LossGrad, LossGradRanges, Backward and
// Predict allocate nothing; LossGradClipped allocates its buffers on its
// first call only. A Workspace is not safe for concurrent use and runs
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

	// LoRA
	weff   [][]float32 // per adapter: W0 + s B A of the last pass (adapters of unused heads: stale)
	lu, lv []float32   // per adapted layer in backward: x A^T and dy B, rows x r

	// which gradients backward computes (see want and wantRanges)
	needW, needBias []bool // per weight: the gradient of the weight / of its bias
	needA, needB    []bool // per adapter: the gradient of A / of B
	low             int    // depth of the lowest layer with a wanted gradient; > depth of the heads: none

	clip *clipState // LossGradClipped's buffers, allocated by its first call
}

// NewWorkspace returns a Workspace for batches of up to maxBatch samples,
// using a private instance (gemm.Private) of ActiveBackend(). It panics if maxBatch < 1.
func (m *Model) NewWorkspace(maxBatch int) *Workspace {
	if maxBatch < 1 {
		panic(fmt.Sprintf("nn: maxBatch %d < 1", maxBatch))
	}
	B := maxBatch
	ws := &Workspace{m: m, be: gemm.Private(ActiveBackend()), maxBatch: B, in: make([][]float32, len(m.hidden)+1)}
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
	lrows := 0
	for _, ad := range m.adapters {
		w := m.weights[ad.Weight]
		ws.weff = append(ws.weff, make([]float32, w.Rows*w.Cols))
		lrows = max(lrows, B*m.rowsPerSample(ad.Weight)*ad.A.Rows)
	}
	ws.lu, ws.lv = make([]float32, lrows), make([]float32, lrows)
	ws.needW, ws.needBias = make([]bool, len(m.weights)), make([]bool, len(m.weights))
	ws.needA, ws.needB = make([]bool, len(m.adapters)), make([]bool, len(m.adapters))
	return ws
}

// rowsPerSample returns how many rows one sample contributes to the input
// of Weights()[w]: outH*outW patches for a conv, 1 for a linear layer.
func (m *Model) rowsPerSample(w int) int {
	if w < len(m.convs) {
		return m.convs[w].outH * m.convs[w].outW
	}
	return 1
}

// depth returns the position of Weights()[w] in the forward order of
// layers: conv i is i, hidden layer i is len(convs)+i, every head is
// len(convs)+len(hidden).
func (m *Model) depth(w int) int { return min(w, len(m.convs)+len(m.hidden)) }

// Model returns the model the workspace was created for.
func (ws *Workspace) Model() *Model { return ws.m }

// Backend returns the backend the workspace captured when it was created.
func (ws *Workspace) Backend() gemm.Backend { return ws.be }

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
// masks are drawn from r, one r.Uint64() per activation (the draw
// rand.Rand.Float32 would make), layer by layer in row-major order; r may
// be nil when !train. A *rand.PCG, the sources fotsim trains with, is run
// in nn directly (8 draws at a time with AVX-512), giving the same stream
// much faster than through a rand.Rand. It panics on shape mismatch.
func (ws *Workspace) Forward(params, x []float32, batch, head int, train bool, r rand.Source) []float32 {
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
// of heads other than head (and their adapters) get zero gradients. It
// panics on shape mismatch or a label out of range.
//
// With LoRA adapters every gradient is written, that of the frozen W0
// included: it is dL/dW for W = W0 + s B A, and then dL/dB = s dL/dW A^T
// and dL/dA = s B^T dL/dW (computed as s dy^T (x A^T) and s (dy B)^T x,
// never forming dL/dW twice). Callers choose what they train with
// SGD.StepRanges or Ranges.Mask (AdapterParams, BaseParams).
func (ws *Workspace) LossGrad(params, grad, x []float32, y []int32, batch, head int, r rand.Source) float32 {
	ws.check(params, x, batch, head)
	ws.m.checkParams("grad", grad)
	if len(y) < batch {
		panic(fmt.Sprintf("nn: y has %d labels, want %d", len(y), batch))
	}
	ws.forward(params, x, batch, head, true, r)
	c := ws.m.spec.Classes
	dz := ws.dlogits[:batch*c]
	loss := softmaxXent(dz, ws.logits[:batch*c], y, batch, c)
	ws.wantAll()
	ws.backward(params, grad, dz, passGrad)
	return loss
}

// LossGradRanges is LossGrad computing only the gradients of the
// parameters inside train, which must select whole views (weights, biases,
// adapter matrices) as in LossGradClipped; grad is overwritten and zero
// outside train. The backward pass skips every other weight gradient and
// stops at the lowest layer holding a view in train, so a client training
// only its LoRA B matrices (or only a head) never forms a d_out x d_in
// weight gradient. The loss, the dropout draws and the gradients inside
// train are those of LossGrad. It panics like LossGrad, and on an invalid
// train or one that cuts a view.
func (ws *Workspace) LossGradRanges(params, grad, x []float32, y []int32, batch, head int, r rand.Source, train Ranges) float32 {
	ws.check(params, x, batch, head)
	ws.m.checkParams("grad", grad)
	if len(y) < batch {
		panic(fmt.Sprintf("nn: y has %d labels, want %d", len(y), batch))
	}
	ws.wantRanges(train, head)
	ws.forward(params, x, batch, head, true, r)
	c := ws.m.spec.Classes
	dz := ws.dlogits[:batch*c]
	loss := softmaxXent(dz, ws.logits[:batch*c], y, batch, c)
	ws.backward(params, grad, dz, passGrad)
	train.Mask(grad)
	return loss
}

// Backward back-propagates dlogits (batch x Classes, the gradient of some
// loss with respect to the logits of the last Forward or LossGrad) and
// overwrites grad with the gradient with respect to params, zero for the
// heads not used. params must be those of that pass. It lets callers train
// on losses other than LossGrad's (distillation, for instance). Adapted
// layers use the effective weights W0 + s B A materialised by that pass.
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
	ws.wantAll()
	ws.backward(params, grad, dlogits[:n], passGrad)
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
func (ws *Workspace) forward(params, x []float32, batch, head int, train bool, r rand.Source) {
	m := ws.m
	ws.batch, ws.head, ws.train, ws.x = batch, head, train, x
	ws.materialise(params, head)
	in := x[:batch*m.InputSize()]
	for i := range m.convs {
		l := &m.convs[i]
		rows, k := batch*l.outH*l.outW, l.din()
		cols := ws.cols[i][:rows*k]
		im2col(cols, in, l, batch)
		out := ws.cout[i][:rows*l.outC]
		// out = cols W^T: (rows x k) (k x C_out)
		ws.be.Sgemm(false, true, rows, l.outC, k, 1, cols, k, ws.weight(params, l.wi), k, 0, out, l.outC)
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
				panic("nn: training pass with dropout needs a random source")
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

// materialise writes W_eff = W0 + s B A of every adapter of the trunk and
// of head into ws.weff: per adapter one copy and one d_out x d_in x r
// product.
func (ws *Workspace) materialise(params []float32, head int) {
	m := ws.m
	for a := range m.adapters {
		ad := &m.adapters[a]
		if ad.A.Head >= 0 && ad.A.Head != head {
			continue
		}
		w := m.weights[ad.Weight]
		dst := ws.weff[a]
		copy(dst, params[w.Offset:w.Offset+w.Rows*w.Cols])
		r := ad.A.Rows
		ws.be.Sgemm(false, false, w.Rows, w.Cols, r, ad.Scale, params[ad.B.Offset:ad.B.Offset+w.Rows*r], r,
			params[ad.A.Offset:ad.A.Offset+r*w.Cols], w.Cols, 1, dst, w.Cols)
	}
}

// weight returns the matrix that Weights()[w] multiplies by: its effective
// weight of the last pass when adapted, else its slice of params.
func (ws *Workspace) weight(params []float32, w int) []float32 {
	if a := ws.m.adapterOf[w]; a >= 0 {
		return ws.weff[a]
	}
	v := &ws.m.weights[w]
	return params[v.Offset : v.Offset+v.Rows*v.Cols]
}

// linear computes dst = x W^T for x (batch x din) and the weight of l.
func (ws *Workspace) linear(dst, x, params []float32, l *linLayer, batch int) {
	ws.be.Sgemm(false, true, batch, l.dout, l.din, 1, x, l.din, ws.weight(params, l.wi), l.din, 0, dst, l.dout)
}

// passMode selects what backward computes from the wanted views.
type passMode int

const (
	passGrad passMode = iota // write the wanted gradients into grad
	passNorm                 // add each sample's squared gradient norm over the wanted views to ws.clip.norm2
)

// wantAll makes backward compute every gradient.
func (ws *Workspace) wantAll() {
	for _, n := range [][]bool{ws.needW, ws.needBias, ws.needA, ws.needB} {
		for i := range n {
			n[i] = true
		}
	}
	ws.low = 0
}

// wantRanges makes backward compute the gradients of the views (weights,
// biases, adapter matrices) inside train, for a pass through head. It
// panics if train is not valid or covers part of a view.
func (ws *Workspace) wantRanges(train Ranges, head int) {
	m := ws.m
	train.check(m.nParams)
	in := func(v ParamView) bool {
		n := v.Rows * v.Cols
		k := train.overlap(v.Offset, v.Offset+n)
		if k != 0 && k != n {
			panic(fmt.Sprintf("nn: train ranges cover %d of the %d values of %s, want all or none", k, n, v.Name))
		}
		return n > 0 && k == n
	}
	ws.low = len(m.convs) + len(m.hidden) + 1
	for w := range m.weights {
		ws.needW[w] = in(m.weights[w])
		ws.needBias[w] = in(m.biases[w])
		want := ws.needW[w] || ws.needBias[w]
		if a := m.adapterOf[w]; a >= 0 {
			ws.needA[a] = in(m.adapters[a].A)
			ws.needB[a] = in(m.adapters[a].B)
			want = want || ws.needA[a] || ws.needB[a]
		}
		if h := m.weights[w].Head; want && (h < 0 || h == head) {
			ws.low = min(ws.low, m.depth(w))
		}
	}
}

// backward runs the backward pass of the loss whose logits gradient is dz,
// using the activations of the last forward pass, through the layers down
// to the lowest one with a wanted gradient (ws.low). In passGrad mode it
// overwrites the wanted gradients in grad and clears the gradients of the
// heads not used (and their adapters); other gradients are left as they
// were. In passNorm mode it adds each sample's squared gradient norm over
// the wanted views to ws.clip.norm2 and leaves grad alone.
func (ws *Workspace) backward(params, grad, dz []float32, mode passMode) {
	m := ws.m
	batch := ws.batch
	nc, nh := len(m.convs), len(m.hidden)
	if mode == passGrad {
		for t := range m.heads {
			if t == ws.head {
				continue
			}
			off, n := m.HeadRange(t)
			clear(grad[off : off+n])
			if a := m.adapterOf[m.heads[t].wi]; a >= 0 {
				ad := &m.adapters[a]
				clear(grad[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols])
				clear(grad[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols])
			}
		}
	}
	low := ws.low
	if low > nc+nh {
		return // nothing wanted
	}
	cur, other := ws.g0, ws.g1
	h := &m.heads[ws.head]
	var dx []float32
	if low < nc+nh {
		dx = cur[:batch*h.din]
	}
	ws.weightBackward(h.wi, params, grad, ws.in[nh], dz, dx, batch, mode)
	// cur holds the gradient of the input of the layer just processed.
	for i := nh - 1; i >= 0 && low <= nc+i; i-- {
		l := &m.hidden[i]
		n := batch * l.dout
		d := cur[:n]
		if ws.train && l.drop > 0 {
			mulInPlace(d, ws.mask[i][:n])
		}
		reluBackward(d, ws.act[i][:n])
		dx = nil
		if low < nc+i {
			dx = other[:batch*l.din]
		}
		ws.weightBackward(l.wi, params, grad, ws.in[i], d, dx, batch, mode)
		cur, other = other, cur
	}
	if low >= nc {
		return
	}
	n := batch * m.flatDim
	chwToHWC(other[:n], cur[:n], batch, m.flatC, m.flatH, m.flatW)
	cur, other = other, cur
	for i := nc - 1; i >= low; i-- {
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
		if i > low {
			dcols = other[:rows*k]
		}
		ws.weightBackward(l.wi, params, grad, ws.cols[i][:rows*k], d, dcols, rows, mode)
		if i > low {
			dIn := cur[:batch*l.inC*l.inH*l.inW]
			clear(dIn)
			col2im(dIn, dcols, l, batch)
		}
	}
}

// weightBackward handles Weights()[w], its bias and its adapter for rows
// inputs x (rows x d_in) and output gradients dy (rows x d_out): in
// passGrad mode it writes the wanted gradients,
//
//	dW = dy^T x,  db = sum_rows dy,  dB = s dy^T (x A^T),  dA = s (dy B)^T x,
//
// in passNorm mode it adds the squared per-sample norms of the wanted ones
// to ws.clip.norm2; in both, when dx != nil, it computes dx = dy W (the
// effective W of an adapted layer).
func (ws *Workspace) weightBackward(w int, params, grad, x, dy, dx []float32, rows int, mode passMode) {
	m := ws.m
	v := &m.weights[w]
	din, dout := v.Cols, v.Rows
	wo, bo := v.Offset, m.biases[w].Offset
	per := m.rowsPerSample(w)
	switch mode {
	case passGrad:
		if ws.needW[w] {
			ws.be.Sgemm(true, false, dout, din, rows, 1, dy, dout, x, din, 0, grad[wo:wo+dout*din], din)
		}
		if ws.needBias[w] {
			colSum(grad[bo:bo+dout], dy, rows, dout, ws.acc)
		}
	case passNorm:
		if ws.needW[w] {
			ws.outerNorms(dy, dout, x, din, per, 1)
		}
		if ws.needBias[w] {
			ws.biasNorms(dy, dout, per)
		}
	}
	if a := m.adapterOf[w]; a >= 0 && (ws.needA[a] || ws.needB[a]) {
		ad := &m.adapters[a]
		r, s := ad.A.Rows, ad.Scale
		ao, bbo := ad.A.Offset, ad.B.Offset
		if ws.needB[a] {
			u := ws.lu[:rows*r]
			ws.be.Sgemm(false, true, rows, r, din, 1, x, din, params[ao:ao+r*din], din, 0, u, r)
			if mode == passGrad {
				ws.be.Sgemm(true, false, dout, r, rows, s, dy, dout, u, r, 0, grad[bbo:bbo+dout*r], r)
			} else {
				ws.outerNorms(dy, dout, u, r, per, float64(s)*float64(s))
			}
		}
		if ws.needA[a] {
			u := ws.lv[:rows*r]
			ws.be.Sgemm(false, false, rows, r, dout, 1, dy, dout, params[bbo:bbo+dout*r], r, 0, u, r)
			if mode == passGrad {
				ws.be.Sgemm(true, false, r, din, rows, s, u, r, x, din, 0, grad[ao:ao+r*din], din)
			} else {
				ws.outerNorms(u, r, x, din, per, float64(s)*float64(s))
			}
		}
	}
	if dx != nil {
		ws.be.Sgemm(false, false, rows, din, dout, 1, dy, dout, ws.weight(params, w), din, 0, dx, din)
	}
}
