package results

import (
	"math"
	"testing"
)

// metricTol bounds the rounding error of sums of a handful of percentages.
const metricTol = 1e-12

var nan = math.NaN()

// sameFloat reports whether got equals want within tol, treating NaN as
// equal to NaN.
func sameFloat(got, want, tol float64) bool {
	if math.IsNaN(want) {
		return math.IsNaN(got)
	}
	return math.Abs(got-want) <= tol
}

func TestMetrics(t *testing.T) {
	tests := []struct {
		name                  string
		m                     Matrix
		acc, fgt, bwt, maxFGT float64
	}{
		{
			name: "empty",
			m:    nil,
			acc:  nan, fgt: nan, bwt: nan, maxFGT: nan,
		},
		{
			name: "one task",
			m:    Matrix{{93}},
			acc:  93, fgt: 0, bwt: 0, maxFGT: 0,
		},
		{
			// ACC = (85.25+91+95.5)/3; FGT = ((97.5-85.25)+(96-91))/2 = 8.625;
			// max over i of column 0 is 97.5 = m[0][0], so MaxFGT = FGT.
			name: "lower triangular, peak right after learning",
			m:    Matrix{{97.5, nan, nan}, {90, 96, nan}, {85.25, 91, 95.5}},
			acc:  271.75 / 3, fgt: 8.625, bwt: -8.625, maxFGT: 8.625,
		},
		{
			// FGT = ((80-70)+(90-85))/2 = 7.5; column 0 peaks at 88 after
			// task 1: MaxFGT = ((88-70)+(90-85))/2 = 11.5.
			name: "peak after a later task",
			m:    Matrix{{80, nan, nan}, {88, 90, nan}, {70, 85, 92}},
			acc:  247.0 / 3, fgt: 7.5, bwt: -7.5, maxFGT: 11.5,
		},
		{
			// Positive backward transfer: task 0 improves from 60 to 70.
			name: "positive backward transfer",
			m:    Matrix{{60}, {70, 80}},
			acc:  75, fgt: -10, bwt: 10, maxFGT: -10,
		},
		{
			// Ragged rows (only seen tasks stored) read like NaN cells.
			name: "ragged rows",
			m:    Matrix{{90}, {85, 95}},
			acc:  90, fgt: 5, bwt: -5, maxFGT: 5,
		},
		{
			// Zero-shot accuracies above the diagonal (99 on task 1 before it
			// was learnt) do not count as something forgotten:
			// MaxFGT = ((90-80)+(95-90))/2 = 7.5.
			name: "upper triangle evaluated",
			m:    Matrix{{90, 99, 10}, {85, 95, 12}, {80, 90, 97}},
			acc:  89, fgt: 7.5, bwt: -7.5, maxFGT: 7.5,
		},
		{
			// A NaN inside the history is skipped by the maximum only.
			name: "NaN in history",
			m:    Matrix{{80, nan, nan}, {nan, 90, nan}, {70, 85, 92}},
			acc:  247.0 / 3, fgt: 7.5, bwt: -7.5, maxFGT: 7.5,
		},
		{
			name: "final accuracy missing",
			m:    Matrix{{90, nan}, {nan, 80}},
			acc:  nan, fgt: nan, bwt: nan, maxFGT: nan,
		},
		{
			name: "just-learnt accuracy missing",
			m:    Matrix{{nan, nan}, {70, 80}},
			acc:  75, fgt: nan, bwt: nan, maxFGT: nan,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range []struct {
				metric    string
				got, want float64
			}{
				{"ACC", ACC(tc.m), tc.acc},
				{"FGT", FGT(tc.m), tc.fgt},
				{"BWT", BWT(tc.m), tc.bwt},
				{"MaxFGT", MaxFGT(tc.m), tc.maxFGT},
			} {
				if !sameFloat(c.got, c.want, metricTol) {
					t.Errorf("%s: got %v, want %v", c.metric, c.got, c.want)
				}
			}
			if f, mf := FGT(tc.m), MaxFGT(tc.m); !math.IsNaN(f) && !math.IsNaN(mf) && mf < f-metricTol {
				t.Errorf("MaxFGT %v < FGT %v", mf, f)
			}
		})
	}
}

func TestBWTIsNeverNegativeZero(t *testing.T) {
	for _, m := range []Matrix{{{50}}, {{80}, {80, 90}}} {
		if got := BWT(m); got != 0 || math.Signbit(got) {
			t.Errorf("BWT(%v): got %v (signbit %v), want +0", m, got, math.Signbit(got))
		}
	}
}

func TestNewMatrixAndAt(t *testing.T) {
	m := NewMatrix(3)
	if len(m) != 3 || m.Cols() != 3 {
		t.Fatalf("NewMatrix(3): got %d x %d, want 3 x 3", len(m), m.Cols())
	}
	for i := range 3 {
		for j := range 3 {
			if !math.IsNaN(m[i][j]) {
				t.Errorf("NewMatrix(3)[%d][%d]: got %v, want NaN", i, j, m[i][j])
			}
		}
	}
	m[1][0] = 42
	for _, c := range []struct {
		i, j int
		want float64
	}{{1, 0, 42}, {-1, 0, nan}, {0, 3, nan}, {3, 0, nan}} {
		if got := m.At(c.i, c.j); !sameFloat(got, c.want, 0) {
			t.Errorf("At(%d, %d): got %v, want %v", c.i, c.j, got, c.want)
		}
	}
}

func TestMeanStd(t *testing.T) {
	tests := []struct {
		xs        []float64
		mean, std float64
	}{
		{nil, nan, nan},
		{[]float64{5}, 5, 0},
		{[]float64{2, 4}, 3, math.Sqrt2},
		{[]float64{1, 2, 3, 4}, 2.5, math.Sqrt(5.0 / 3)},             // sample variance: 5/(4-1)
		{[]float64{85.1, 86.2, 85.74}, 85.68, math.Sqrt(0.6104 / 2)}, // deviations -0.58, 0.52, 0.06
		{[]float64{1, nan}, nan, nan},
		{[]float64{nan}, nan, nan},
	}
	const stdTol = 1e-12 // decimal inputs are not exact in binary
	for _, tc := range tests {
		m, s := MeanStd(tc.xs)
		if !sameFloat(m, tc.mean, metricTol) || !sameFloat(s, tc.std, stdTol) {
			t.Errorf("MeanStd(%v): got (%v, %v), want (%v, %v)", tc.xs, m, s, tc.mean, tc.std)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{-1023, "-1023 B"},
		{1024, "1.0 KiB"},
		{1536, "1.5 KiB"},
		{-2048, "-2.0 KiB"},
		{1048524, "1023.9 KiB"}, // 1023.949 KiB
		{1048525, "1.0 MiB"},    // 1023.950 KiB would print as 1024.0 KiB
		{123456789, "117.7 MiB"},
		{5 << 30, "5.0 GiB"},
		{3 << 40, "3.0 TiB"},
		{math.MaxInt64, "8.0 EiB"},
		{math.MinInt64, "-8.0 EiB"},
	}
	for _, tc := range tests {
		if got := HumanBytes(tc.n); got != tc.want {
			t.Errorf("HumanBytes(%d): got %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestHumanSeconds(t *testing.T) {
	tests := []struct {
		s    float64
		want string
	}{
		{0, "0.0s"},
		{0.44, "0.4s"},
		{12.34, "12.3s"},
		{59.94, "59.9s"},
		{59.96, "1m00s"},
		{245, "4m05s"},
		{3599.4, "59m59s"},
		{3599.6, "1h00m"},
		{3720, "1h02m"},
		{90000, "25h00m"},
		{-1, "n/a"},
		{nan, "n/a"},
		{math.Inf(1), "n/a"},
	}
	for _, tc := range tests {
		if got := humanSeconds(tc.s); got != tc.want {
			t.Errorf("humanSeconds(%v): got %q, want %q", tc.s, got, tc.want)
		}
	}
}

func benchMatrix(tasks int) Matrix {
	m := NewMatrix(tasks)
	for i := range tasks {
		for j := 0; j <= i; j++ {
			m[i][j] = 95 - float64(i-j)
		}
	}
	return m
}

func BenchmarkMetrics(b *testing.B) {
	m := benchMatrix(20)
	b.ReportAllocs()
	var s float64
	for b.Loop() {
		s += ACC(m) + FGT(m) + BWT(m) + MaxFGT(m)
	}
	_ = s
}
