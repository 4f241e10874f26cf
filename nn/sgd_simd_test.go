package nn

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The SGD step's vector kernel gives the bits of the plain Go loop for
// every length (tails included), with and without momentum and weight
// decay, on values that include zeros of both signs, subnormals, huge
// values (overflow to Inf) and Infs; NaNs must stay NaNs.
func TestSGDStepSIMDMatchesGo(t *testing.T) {
	if !sgdAVX {
		t.Skip("no AVX: the Go loop does every step")
	}
	r := rand.New(rand.NewPCG(1, 2))
	special := []float32{0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, 3e38, -3e38, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	value := func() float32 {
		if r.IntN(10) == 0 {
			return special[r.IntN(len(special))]
		}
		return float32(r.NormFloat64())
	}
	same := func(a, b float32) bool {
		if a != a || b != b {
			return a != a && b != b
		}
		return math.Float32bits(a) == math.Float32bits(b)
	}
	for _, o := range []SGD{{LR: 0.05}, {LR: 0.1, WeightDecay: 5e-4}, {LR: 0.01, Momentum: 0.9}, {LR: 0.3, WeightDecay: 1e-3, Momentum: 0.5}} {
		for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 1000, 1003} {
			p, g, v := make([]float32, n), make([]float32, n), make([]float32, n)
			for i := range p {
				p[i], g[i], v[i] = value(), value(), value()
			}
			wp, wv := append([]float32(nil), p...), append([]float32(nil), v...)
			stepGo(o, wp, g, wv)
			o.Step(p, g, v)
			for i := range p {
				if !same(p[i], wp[i]) || (o.Momentum != 0 && !same(v[i], wv[i])) {
					t.Fatalf("%+v n=%d: value %d: params %v velocity %v, the Go loop %v %v", o, n, i, p[i], v[i], wp[i], wv[i])
				}
			}
		}
	}
}

func BenchmarkSGDStep(b *testing.B) {
	const n = 478_410 // the paper MLP's parameters
	p, g, v := make([]float32, n), make([]float32, n), make([]float32, n)
	for i := range p {
		p[i], g[i] = float32(i%97)*0.01, float32(i%89)*0.001
	}
	for _, c := range []struct {
		name string
		f    func()
	}{
		{"simd", func() { SGD{LR: 0.01, WeightDecay: 1e-4}.step(p, g, v) }},
		{"go", func() { stepGo(SGD{LR: 0.01, WeightDecay: 1e-4}, p, g, v) }},
		{"simd-momentum", func() { SGD{LR: 0.01, Momentum: 0.9}.step(p, g, v) }},
		{"go-momentum", func() { stepGo(SGD{LR: 0.01, Momentum: 0.9}, p, g, v) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(4 * n)
			for b.Loop() {
				c.f()
			}
		})
	}
}
