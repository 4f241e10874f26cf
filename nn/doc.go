// Package nn holds fotsim's float32 neural networks: a model is a layout
// over one flat parameter vector, run forward and backward by a Workspace
// that owns every buffer, so a training step allocates nothing.
//
// # Models
//
// A Spec describes a model; Build validates it and lays out its parameters:
//
//	mlp: input -> [Linear -> ReLU -> Dropout?] per Hidden -> head(s)
//	cnn: [Conv -> ReLU -> MaxPool?] per Conv -> Flatten -> as mlp
//
// With Heads == 1 every task shares one Classes-way head; with Heads == T
// each task has its own head (task-incremental learning) and passes choose
// one with their head argument.
//
// The parameters are one []float32 owned by the caller (the server's global
// model, a client's local copy, an aggregate), so averaging, projecting and
// sending a model are operations on a vector. Each layer stores its weight
// matrix then its bias; trunk layers come first in forward order, then
// head 0, head 1, ... Weights and Biases give the ParamView of each:
//
//	Linear  W is d_out x d_in, row-major (PyTorch layout), y = W x + b
//	Conv    W is C_out x (C_in*kh*kw), each row in (C_in, kh, kw) order:
//	        the convolution is this linear map applied to every im2col patch
//	        (stride, zero padding), so FOT projects conv and linear layers alike
//
// Init draws PyTorch's defaults, W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
//
// # Passes
//
// A Workspace serves one worker (it is not safe for concurrent use). It
// holds buffers for the maxBatch samples given to NewWorkspace and the
// gemm.Backend active when it was created (SetBackend, ActiveBackend;
// gemm.Default() unless set):
//
//	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 28, W: 28},
//		Hidden: []int{400, 400, 400}, Dropout: []float64{0.2, 0.5, 0.5},
//		Classes: 10, Heads: 1})
//	params := make([]float32, m.NumParams())
//	m.Init(params, rng.New(seed, "init"))
//	ws := m.NewWorkspace(64)
//	grad := make([]float32, m.NumParams())
//	opt := nn.SGD{LR: 0.01, WeightDecay: 1e-5}
//	loss := ws.LossGrad(params, grad, x, y, batch, head, dropoutRNG)
//	opt.Step(params, grad, nil)
//	ws.Predict(params, xTest, n, head, pred)
//
// LossGrad is a training-mode forward pass (inverted dropout: kept
// activations are scaled by 1/(1-p), masks drawn from the rand.Source
// passed in, one draw per activation in layer then row-major order; pass a
// *rand.PCG for the fast path), the mean
// softmax cross-entropy, computed stably as log-sum-exp minus the true
// logit, and the backward pass, which overwrites grad. Forward returns the
// logits; Backward back-propagates any logits gradient; Predict is the
// eval-mode argmax.
//
// After a pass, LayerInput(w) exposes the input of Weights()[w], one row per
// sample or per conv patch, taken before the dropout in front of the layer.
// FOT's GPSE builds its activation matrices from it.
//
// # LoRA
//
// Spec.LoRA adds LoRA adapters to some weights (default: every shared
// linear and conv weight; a conv weight in its im2col shape): the layer
// then multiplies by W = W0 + s B A, B (d_out x r) starting at 0,
// A (r x d_in) ~ U(-1/sqrt(d_in), 1/sqrt(d_in)), s = Alpha/Rank (defaults
// 8 and 8). The adapter matrices are appended to the parameter vector after
// every base parameter, all A then all B, so Weights, Biases and HeadRange
// are unchanged and Adapters locates them. Init initialises them too;
// InitAdapters re-initialises only them (FLoRA), MergeAdapters folds
// s B A into W0 and clears B, EffectiveWeight computes W0 + s B A. Every
// pass materialises W0 + s B A once per adapted layer in the workspace and
// uses it as the layer's weight. LossGrad still writes every gradient,
// W0's included:
//
//	dW0 = dL/dW,  dB = s dL/dW A^T,  dA = s B^T dL/dW
//
// # Trainable sets and DP-SGD
//
// A Ranges (sorted half-open offset ranges) says what a client trains:
// AllParams, BaseParams, AdapterParams("ab" | "a" | "b") or RangesOf any
// views. SGD.StepRanges updates only inside it, Ranges.Mask zeroes a
// gradient outside it, and LossGradRanges computes only the gradients
// inside it (skipping, for instance, every W0 gradient when only B trains):
//
//	train := m.AdapterParams("b") // FFA-LoRA, FedSVD
//	ws.LossGradRanges(params, grad, x, y, batch, head, r, train)
//	opt.StepRanges(params, grad, nil, train)
//
// LossGradClipped is DP-SGD's gradient: the sum over the batch of every
// sample's gradient (restricted to the trained set) clipped to L2 norm C,
// with the per-sample norms computed without materialising per-sample
// gradients (ghost clipping; exact for conv layers too) and returned.
// Noise and the division by the expected batch size are the caller's.
//
// # Numerics
//
// Parameters, activations and gradients are float32; loss and bias-gradient
// sums are accumulated in float64. Every dense product goes through the
// workspace's backend and runs single-threaded on the calling goroutine
// when the backend does; fotsim parallelises across clients instead. Conv
// feature maps are kept (H, W, C) internally and flattened in PyTorch's
// (C, H, W) order, so a PyTorch state dict maps onto the parameter vector
// layer by layer. The functions panic only on programmer errors: a slice
// of the wrong length, a batch above the workspace's maxBatch, a head or
// label out of range.
package nn
