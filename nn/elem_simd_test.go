package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// elemSame reports whether a and b have the same bits, or are both NaN.
func elemSame(a, b float32) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float32bits(a) == math.Float32bits(b)
}

// elemSame64 is elemSame for float64.
func elemSame64(a, b float64) bool {
	if a != a || b != b {
		return a != a && b != b
	}
	return math.Float64bits(a) == math.Float64bits(b)
}

// elemValues returns a generator of float32 values: normal values and,
// with probability 1/every, one of zeros of both signs, subnormals, huge
// values (their sums overflow to Inf), Infs and NaN.
func elemValues(r *rand.Rand, every int) func() float32 {
	negZero := float32(math.Copysign(0, -1))
	special := []float32{0, negZero, 1e-40, -1e-40, 1e-45, -1e-45, 3e38, -3e38, math.MaxFloat32, float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())}
	return func() float32 {
		if r.IntN(every) == 0 {
			return special[r.IntN(len(special))]
		}
		if r.IntN(8) == 0 {
			return float32(r.NormFloat64()) * 1e-38 // around the subnormal range
		}
		return float32(r.NormFloat64())
	}
}

// The vector kernels of addBias, addBiasReLU, reluBackward, colSum and
// mulInPlace give the bits of their Go loops (addBiasGo, ...) for every
// shape, tails and empty matrices included, on values that include zeros
// of both signs, subnormals, huge values, Infs and NaN (a NaN must stay a
// NaN; reluBackward, a bit mask, must give exactly the same bits), and
// write nothing past the matrix.
func TestElemSIMDMatchesGo(t *testing.T) {
	if !elemAVX2 {
		t.Skip("no AVX2 kernels: the Go loops do every value")
	}
	const guard = 9 // values past the end that must stay as they are
	r := rand.New(rand.NewPCG(3, 4))
	type shape struct{ rows, cols int }
	var shapes []shape
	for _, rows := range []int{0, 1, 3, 64} {
		for _, cols := range []int{1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 15, 16, 17, 20, 24, 28, 31, 32, 33, 36, 48, 60, 63, 64, 65, 100, 400} {
			shapes = append(shapes, shape{rows, cols})
		}
	}
	// colSum sums several row chunks per call (colSumChunk) for these.
	shapes = append(shapes, shape{2000, 9}, shape{1500, 33}, shape{700, 64}, shape{300, 400}, shape{5000, 5})
	for _, every := range []int{2, 10, 200} {
		value := elemValues(r, every)
		fill := func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = value()
			}
			return v
		}
		for _, s := range shapes {
			rows, cols, n := s.rows, s.cols, s.rows*s.cols
			name := fmt.Sprintf("1/%d specials %dx%d", every, rows, cols)
			check := func(kernel string, got, want []float32, exact bool) {
				t.Helper()
				for i := range got {
					ok := elemSame(got[i], want[i])
					if exact {
						ok = math.Float32bits(got[i]) == math.Float32bits(want[i])
					}
					if !ok {
						t.Fatalf("%s %s: value %d of %d: got %v (%#x), the Go loop %v (%#x)", kernel, name, i, len(got), got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
					}
				}
			}

			z, b := fill(n+guard), fill(cols)
			wz := append([]float32(nil), z...)
			addBias(z, b, rows, cols)
			addBiasGo(wz, b, rows, cols)
			check("addBias", z, wz, false)

			z = fill(n + guard)
			wz = append([]float32(nil), z...)
			addBiasReLU(z, b, rows, cols)
			addBiasReLUGo(wz, b, rows, cols)
			check("addBiasReLU", z, wz, false)

			dz, a := fill(n+guard), fill(n+guard)
			wdz := append([]float32(nil), dz...)
			reluBackward(dz[:n], a)
			reluBackwardGo(wdz[:n], a)
			check("reluBackward", dz, wdz, true)

			d, m := fill(n+guard), fill(n+guard)
			wd := append([]float32(nil), d...)
			mulInPlace(d[:n], m)
			mulInPlaceGo(wd[:n], m)
			check("mulInPlace", d, wd, false)

			mat := fill(n + guard)
			dst, acc := fill(cols+guard), make([]float64, cols+guard)
			for i := range acc {
				acc[i] = float64(value())
			}
			wdst, wacc := append([]float32(nil), dst...), append([]float64(nil), acc...)
			colSum(dst, mat, rows, cols, acc)
			colSumGo(wdst, mat, rows, cols, wacc)
			check("colSum", dst, wdst, false)
			for j := range acc {
				if !elemSame64(acc[j], wacc[j]) {
					t.Fatalf("colSum %s: acc[%d] = %v, the Go loop %v", name, j, acc[j], wacc[j])
				}
			}
		}
	}
}

// addBiasReLU's vector kernel keeps Go's max semantics on the values
// VMAXPS alone would get wrong: z+b = -0 gives +0 (VMAXPS keeps -0, the
// +0.0 added after it clears the sign), NaN stays NaN, and nothing else
// changes (subnormals included).
func TestAddBiasReLUSIMDZerosAndNaN(t *testing.T) {
	if !elemAVX2 {
		t.Skip("no AVX2 kernels: the Go loops do every value")
	}
	negZero := float32(math.Copysign(0, -1))
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	cases := []struct{ z, b, want float32 }{
		{negZero, negZero, 0}, // -0 + -0 = -0: VMAXPS gives -0, Go's max +0
		{negZero, 0, 0},
		{0, negZero, 0},
		{nan, 1, nan},
		{1, nan, nan},
		{-inf, 0, 0},
		{inf, 0, inf},
		{1e-40, 0, 1e-40}, // subnormals are kept
		{-1e-40, 0, 0},
		{negZero, 1e-45, 1e-45},
		{3e38, 3e38, inf}, // overflow
		{-3e38, -3e38, 0},
		{-1, 0, 0},
		{2, 0.5, 2.5},
		{1e30, 0, 1e30},
		{negZero, negZero, 0}, // the 16th and 17th columns: the tail of 8
		{-2, 1, 0},
	}
	cols := len(cases)
	z, wz, b := make([]float32, cols), make([]float32, cols), make([]float32, cols)
	for j, c := range cases {
		z[j], wz[j], b[j] = c.z, c.z, c.b
	}
	if !addBiasReLUSIMD(z, b, 1, cols) {
		t.Fatal("the vector kernel did not run")
	}
	addBiasReLUGo(wz, b, 1, cols)
	for j, c := range cases {
		if !elemSame(z[j], c.want) {
			t.Errorf("max(%v + %v, 0): got %v (%#x), want %v (%#x)", c.z, c.b, z[j], math.Float32bits(z[j]), c.want, math.Float32bits(c.want))
		}
		if !elemSame(wz[j], c.want) {
			t.Errorf("Go loop: max(%v + %v, 0): got %v, want %v", c.z, c.b, wz[j], c.want)
		}
	}
}

// elemShapes are the benchmarked matrices: a hidden layer of the paper
// MLP, its head, and the second conv layer of the small CNN.
var elemShapes = []struct{ rows, cols int }{{64, 400}, {64, 10}, {4096, 64}}

// benchElem runs simd and goLoop on every shape of elemShapes.
func benchElem(b *testing.B, simd, goLoop func(rows, cols int)) {
	for _, s := range elemShapes {
		for _, c := range []struct {
			name string
			f    func(rows, cols int)
		}{{"simd", simd}, {"go", goLoop}} {
			b.Run(fmt.Sprintf("%dx%d/%s", s.rows, s.cols, c.name), func(b *testing.B) {
				b.SetBytes(int64(4 * s.rows * s.cols))
				b.ReportAllocs()
				for b.Loop() {
					c.f(s.rows, s.cols)
				}
			})
		}
	}
}

// elemBenchData returns a matrix for the largest shape of elemShapes with
// values in [-1, 1), and one of 0s and 1s (a dropout mask).
func elemBenchData() (x, mask []float32) {
	n := 0
	for _, s := range elemShapes {
		n = max(n, s.rows*s.cols)
	}
	r := rand.New(rand.NewPCG(5, 6))
	x, mask = make([]float32, n), make([]float32, n)
	for i := range x {
		x[i] = 2*r.Float32() - 1
		mask[i] = float32(r.IntN(2))
	}
	return x, mask
}

func BenchmarkAddBias(b *testing.B) {
	z, bias := elemBenchData()
	benchElem(b, func(rows, cols int) { addBias(z, bias, rows, cols) },
		func(rows, cols int) { addBiasGo(z, bias, rows, cols) })
}

func BenchmarkAddBiasReLU(b *testing.B) {
	z, _ := elemBenchData()
	bias := make([]float32, 400)
	for j := range bias {
		bias[j] = float32(j%7) * 1e-3
	}
	benchElem(b, func(rows, cols int) { addBiasReLU(z, bias, rows, cols) },
		func(rows, cols int) { addBiasReLUGo(z, bias, rows, cols) })
}

func BenchmarkReLUBackward(b *testing.B) {
	dz, a := elemBenchData()
	for i := range a {
		a[i] -= 0.5 // half positive
	}
	benchElem(b, func(rows, cols int) { reluBackward(dz[:rows*cols], a) },
		func(rows, cols int) { reluBackwardGo(dz[:rows*cols], a) })
}

func BenchmarkColSum(b *testing.B) {
	m, _ := elemBenchData()
	dst, acc := make([]float32, 400), make([]float64, 400)
	benchElem(b, func(rows, cols int) { colSum(dst, m, rows, cols, acc) },
		func(rows, cols int) { colSumGo(dst, m, rows, cols, acc) })
}

func BenchmarkMulInPlace(b *testing.B) {
	d, m := elemBenchData() // m of 0s and 1s: d stays put, no subnormals
	benchElem(b, func(rows, cols int) { mulInPlace(d[:rows*cols], m) },
		func(rows, cols int) { mulInPlaceGo(d[:rows*cols], m) })
}

// BenchmarkElemTrainStep times LossGrad + SGD.Step of the paper MLP and the
// small CNN (batch 64) with the vector kernels of this file's ops (simd)
// and with their Go loops (go), in one run.
func BenchmarkElemTrainStep(b *testing.B) {
	on := elemAVX2
	defer func() { elemAVX2 = on }()
	for _, c := range []struct {
		name string
		spec Spec
	}{{"mlp", paperMLP}, {"cnn", smallCNN}} {
		const batch = 64
		m, params, x, y, r := benchModel(b, c.spec, batch)
		grad := make([]float32, m.NumParams())
		vel := make([]float32, m.NumParams())
		opt := SGD{LR: 0.01, WeightDecay: 1e-5, Momentum: 0.9}
		for _, k := range []struct {
			name string
			simd bool
		}{{"simd", on}, {"go", false}} {
			b.Run(c.name+"/"+k.name, func(b *testing.B) {
				elemAVX2 = k.simd
				ws := m.NewWorkspace(batch)
				b.ReportAllocs()
				for b.Loop() {
					ws.LossGrad(params, grad, x, y, batch, 0, r)
					opt.Step(params, grad, vel)
				}
				elemAVX2 = on
			})
		}
	}
}
