package nn

import (
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/nn/gemm"
)

// benchTrainStep times LossGrad + SGD.Step at the given batch, once per
// compiled-in backend.
func benchTrainStep(b *testing.B, spec Spec, batch int) {
	defer SetBackend(nil)
	m, err := Build(spec)
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	x, y := randInput(m, batch, r)
	grad := make([]float32, m.NumParams())
	vel := make([]float32, m.NumParams())
	opt := SGD{LR: 0.01, WeightDecay: 1e-5, Momentum: 0.9}
	flops := m.TrainFLOPs(batch)
	for _, name := range gemm.Names() {
		be, _ := gemm.Lookup(name)
		b.Run(name, func(b *testing.B) {
			SetBackend(be)
			ws := m.NewWorkspace(batch)
			b.ReportAllocs()
			for b.Loop() {
				ws.LossGrad(params, grad, x, y, batch, 0, r)
				opt.Step(params, grad, vel)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(batch*b.N)/sec, "samples/s")
			b.ReportMetric(flops*float64(b.N)/sec/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkMLPTrainStep: the paper's 784-400-400-400-10 MLP, batch 64.
func BenchmarkMLPTrainStep(b *testing.B) { benchTrainStep(b, paperMLP, 64) }

// BenchmarkCNNTrainStep: conv 1->32 k5 pool2, conv 32->64 k5 pool2, fc 256, 10 classes on 28x28, batch 64.
func BenchmarkCNNTrainStep(b *testing.B) { benchTrainStep(b, smallCNN, 64) }

// BenchmarkMLPPredict: eval-mode forward of the paper MLP, batch 256.
func BenchmarkMLPPredict(b *testing.B) {
	m, _ := Build(paperMLP)
	r := rand.New(rand.NewPCG(1, 2))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	const batch = 256
	x, _ := randInput(m, batch, r)
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
	defer SetBackend(nil)
	m, err := Build(paperMLPLoRA)
	if err != nil {
		b.Fatal(err)
	}
	const batch = 64
	r := rand.New(rand.NewPCG(1, 2))
	params := make([]float32, m.NumParams())
	m.Init(params, r)
	x, y := randInput(m, batch, r)
	grad := make([]float32, m.NumParams())
	train := m.AdapterParams("ab")
	opt := SGD{LR: 0.01, WeightDecay: 1e-5}
	for _, name := range gemm.Names() {
		be, _ := gemm.Lookup(name)
		b.Run(name, func(b *testing.B) {
			SetBackend(be)
			ws := m.NewWorkspace(batch)
			b.ReportAllocs()
			for b.Loop() {
				ws.LossGrad(params, grad, x, y, batch, 0, r)
				opt.StepRanges(params, grad, nil, train)
			}
			b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// BenchmarkLossGradClipped: one DP-SGD gradient (ghost clipping) at batch
// 64 on the paper MLP: with rank-8 adapters training B only (FedSVD) or A
// and B, and without adapters training everything.
func BenchmarkLossGradClipped(b *testing.B) {
	defer SetBackend(nil)
	for _, tc := range []struct {
		name string
		spec Spec
		mask string
	}{
		{"lora-b", paperMLPLoRA, "b"},
		{"lora-ab", paperMLPLoRA, "ab"},
		{"full", paperMLP, "all"},
	} {
		m, err := Build(tc.spec)
		if err != nil {
			b.Fatal(err)
		}
		const batch = 64
		r := rand.New(rand.NewPCG(1, 2))
		params := make([]float32, m.NumParams())
		m.Init(params, r)
		x, y := randInput(m, batch, r)
		grad := make([]float32, m.NumParams())
		train := trainRanges(m, tc.mask, 0)
		for _, name := range gemm.Names() {
			be, _ := gemm.Lookup(name)
			b.Run(tc.name+"/"+name, func(b *testing.B) {
				SetBackend(be)
				ws := m.NewWorkspace(batch)
				b.ReportAllocs()
				for b.Loop() {
					ws.LossGradClipped(params, grad, x, y, batch, 0, r, 2, train)
				}
				b.ReportMetric(float64(batch*b.N)/b.Elapsed().Seconds(), "samples/s")
			})
		}
	}
}
