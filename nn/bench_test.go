package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/nn/gemm"
)

// benchModel builds spec and returns the model, parameters initialised
// from PCG(1, 2), a batch of random inputs drawn next, and a dropout
// stream: a *rand.PCG, as the training paths pass.
func benchModel(b *testing.B, spec Spec, batch int) (m *Model, params, x []float32, y []int32, drop *rand.PCG) {
	m, err := Build(spec)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	params = make([]float32, m.NumParams())
	m.Init(params, r)
	x, y = randInput(m, batch, r)
	return m, params, x, y, rand.NewPCG(3, 4)
}

// benchBackends runs step as sub-benchmark prefix+name under every
// compiled-in backend, with a fresh workspace for batch samples, and
// reports samples/s and, when flops > 0 (per step), GFLOP/s.
func benchBackends(b *testing.B, m *Model, prefix string, batch int, flops float64, step func(ws *Workspace)) {
	defer SetBackend(nil)
	for _, name := range gemm.Names() {
		be, _ := gemm.Lookup(name)
		b.Run(prefix+name, func(b *testing.B) {
			SetBackend(be)
			ws := m.NewWorkspace(batch)
			b.ReportAllocs()
			for b.Loop() {
				step(ws)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(batch*b.N)/sec, "samples/s")
			if flops > 0 {
				b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOP/s")
			}
		})
	}
}

// benchTrainStep times LossGrad + SGD.Step at the given batch, once per
// compiled-in backend.
func benchTrainStep(b *testing.B, spec Spec, batch int) {
	m, params, x, y, r := benchModel(b, spec, batch)
	grad := make([]float32, m.NumParams())
	vel := make([]float32, m.NumParams())
	opt := SGD{LR: 0.01, WeightDecay: 1e-5, Momentum: 0.9}
	benchBackends(b, m, "", batch, m.TrainFLOPs(batch), func(ws *Workspace) {
		ws.LossGrad(params, grad, x, y, batch, 0, r)
		opt.Step(params, grad, vel)
	})
}

// BenchmarkMLPTrainStep: the paper's 784-400-400-400-10 MLP, batch 64.
func BenchmarkMLPTrainStep(b *testing.B) { benchTrainStep(b, paperMLP, 64) }

// BenchmarkCNNTrainStep: conv 1->32 k5 pool2, conv 32->64 k5 pool2, fc 256, 10 classes on 28x28, batch 64.
func BenchmarkCNNTrainStep(b *testing.B) { benchTrainStep(b, smallCNN, 64) }

// BenchmarkMLPPredict: eval-mode forward of the paper MLP, batch 256.
func BenchmarkMLPPredict(b *testing.B) {
	const batch = 256
	m, params, x, _, _ := benchModel(b, paperMLP, batch)
	ws := m.NewWorkspace(batch)
	dst := make([]int32, batch)
	b.ReportAllocs()
	for b.Loop() {
		ws.Predict(params, x, batch, 0, dst)
	}
	b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "samples/s")
}

// paperMLPLoRA is the paper MLP with the default rank-8 adapters on every layer.
var paperMLPLoRA = withLoRA(paperMLP, DefaultLoRARank, DefaultLoRAAlpha)

// BenchmarkMLPTrainStepLoRA: the paper MLP with rank-8 adapters, batch 64,
// training A and B (FedAvg-LoRA): LossGrad + SGD.StepRanges.
func BenchmarkMLPTrainStepLoRA(b *testing.B) {
	const batch = 64
	m, params, x, y, r := benchModel(b, paperMLPLoRA, batch)
	grad := make([]float32, m.NumParams())
	train := m.AdapterParams("ab")
	opt := SGD{LR: 0.01, WeightDecay: 1e-5}
	benchBackends(b, m, "", batch, 0, func(ws *Workspace) {
		ws.LossGrad(params, grad, x, y, batch, 0, r)
		opt.StepRanges(params, grad, nil, train)
	})
}

// BenchmarkLossGradClipped: one DP-SGD gradient (ghost clipping) at batch
// 64 on the paper MLP: with rank-8 adapters training B only (FedSVD) or A
// and B, and without adapters training everything.
func BenchmarkLossGradClipped(b *testing.B) {
	for _, tc := range []struct {
		name string
		spec Spec
		mask string
	}{
		{"lora-b", paperMLPLoRA, "b"},
		{"lora-ab", paperMLPLoRA, "ab"},
		{"full", paperMLP, "all"},
	} {
		const batch = 64
		m, params, x, y, r := benchModel(b, tc.spec, batch)
		grad := make([]float32, m.NumParams())
		train := trainRanges(m, tc.mask, 0)
		benchBackends(b, m, tc.name+"/", batch, 0, func(ws *Workspace) {
			ws.LossGradClipped(params, grad, x, y, batch, 0, r, 2, train)
		})
	}
}
