package data

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

const normTol = 1e-6

func TestNormApply(t *testing.T) {
	tests := []struct {
		norm  Norm
		pixel uint8
		want  float32
	}{
		{Norm{}, 0, 0},
		{Norm{}, 255, 1},
		{Norm{Mean: 0.7}, 51, 0.2}, // zero Std: Mean ignored
		{Norm{Mean: 0.5, Std: 0.5}, 0, -1},
		{Norm{Mean: 0.5, Std: 0.5}, 255, 1},
		{Norm{Mean: MNISTMean, Std: MNISTStd}, 0, -0.1307 / 0.3081},
	}
	for _, tc := range tests {
		got := tc.norm.Apply(tc.pixel)
		if d := got - tc.want; d > normTol || d < -normTol {
			t.Errorf("%+v.Apply(%d): got %v, want %v", tc.norm, tc.pixel, got, tc.want)
		}
	}
}

// tinyDataset has 4 samples of 1x2x3 with X[i][j] = 10*i + j and labels 3,1,2,0.
func tinyDataset() *Dataset {
	d := &Dataset{Name: "tiny", Shape: [3]int{1, 2, 3}, Classes: 4, Y: []int32{3, 1, 2, 0}}
	for i := 0; i < 4; i++ {
		for j := 0; j < 6; j++ {
			d.X = append(d.X, float32(10*i+j))
		}
	}
	return d
}

func TestViewGather(t *testing.T) {
	d := tinyDataset()
	perm := []int32{5, 4, 3, 2, 1, 0}
	remap := []int32{30, 31, 32, 33}
	tests := []struct {
		name  string
		view  View
		rows  []int32
		wantX []float32
		wantY []int32
	}{
		{"identity", View{Base: d}, []int32{2, 0}, []float32{20, 21, 22, 23, 24, 25, 0, 1, 2, 3, 4, 5}, []int32{2, 3}},
		{"idx", View{Base: d, Idx: []int32{3, 1}}, []int32{1, 0}, []float32{10, 11, 12, 13, 14, 15, 30, 31, 32, 33, 34, 35}, []int32{1, 0}},
		{"perm", View{Base: d, Perm: perm}, []int32{1}, []float32{15, 14, 13, 12, 11, 10}, []int32{1}},
		{"label remap", View{Base: d, LabelMap: remap}, []int32{0, 3}, []float32{0, 1, 2, 3, 4, 5, 30, 31, 32, 33, 34, 35}, []int32{33, 30}},
		{"all three", View{Base: d, Idx: []int32{2, 3}, Perm: []int32{1, 0, 2, 3, 4, 5}, LabelMap: remap}, []int32{1}, []float32{31, 30, 32, 33, 34, 35}, []int32{30}},
		{"no rows", View{Base: d}, nil, []float32{}, []int32{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, len(tc.rows)*d.Dim())
			y := make([]int32, len(tc.rows))
			tc.view.Gather(x, y, tc.rows)
			if !slices.Equal(x, tc.wantX) {
				t.Errorf("X: got %v, want %v", x, tc.wantX)
			}
			if !slices.Equal(y, tc.wantY) {
				t.Errorf("Y: got %v, want %v", y, tc.wantY)
			}
			for k, r := range tc.rows {
				if got := tc.view.Label(int(r)); got != tc.wantY[k] {
					t.Errorf("Label(%d): got %d, want %d", r, got, tc.wantY[k])
				}
			}
		})
	}
	if got, want := (View{Base: d, Idx: []int32{1}}).Len(), 1; got != want {
		t.Errorf("Len with Idx: got %d, want %d", got, want)
	}
	if got, want := (View{Base: d}).Len(), 4; got != want {
		t.Errorf("Len without Idx: got %d, want %d", got, want)
	}
	// Nil destinations are skipped.
	y := make([]int32, 1)
	View{Base: d}.Gather(nil, y, []int32{0})
	if y[0] != 3 {
		t.Errorf("Gather(nil, y): got %d, want 3", y[0])
	}
}

func TestGatherPanicsOnShortDst(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "len(dstX)") {
			t.Errorf("got panic %v, want one about len(dstX)", r)
		}
	}()
	View{Base: tinyDataset()}.Gather(make([]float32, 5), nil, []int32{0})
}

func TestGatherZeroAlloc(t *testing.T) {
	train, _ := Synthetic(SyntheticConfig{Train: 256, Test: 1}, 1)
	perm := TaskPermutation(train.Dim(), 1, 3)
	v := View{Base: train, Idx: []int32{5, 9, 100, 3, 7}, Perm: perm, LabelMap: []int32{9, 8, 7, 6, 5, 4, 3, 2, 1, 0}}
	rows := []int32{4, 0, 2, 1}
	x := make([]float32, len(rows)*train.Dim())
	y := make([]int32, len(rows))
	if n := testing.AllocsPerRun(100, func() { v.Gather(x, y, rows) }); n != 0 {
		t.Errorf("Gather: got %v allocations per run, want 0", n)
	}
}

func TestLoadFashionMNISTDefaultMissing(t *testing.T) {
	for _, d := range FashionMNISTDirs() {
		if hasIdxSet(d) {
			t.Skipf("Fashion-MNIST is installed in %s", d)
		}
	}
	_, _, err := LoadFashionMNIST("", Norm{})
	if !errors.Is(err, ErrNoFashionMNIST) {
		t.Fatalf("got %v, want ErrNoFashionMNIST", err)
	}
	for _, want := range append(FashionMNISTDirs(), "apt-get install dataset-fashion-mnist", "data.dir") {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("got %q, want it to contain %q", err, want)
		}
	}
}

func BenchmarkGather(b *testing.B) {
	train, _ := Synthetic(SyntheticConfig{Train: 4096, Test: 1, Shape: [3]int{1, 28, 28}}, 1)
	rows := make([]int32, 64)
	for i := range rows {
		rows[i] = int32(i * 61 % train.Len())
	}
	x := make([]float32, len(rows)*train.Dim())
	y := make([]int32, len(rows))
	for _, bc := range []struct {
		name string
		v    View
	}{
		{"identity", View{Base: train}},
		{"permuted", View{Base: train, Perm: TaskPermutation(train.Dim(), 1, 1)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bc.v.Gather(x, y, rows)
			}
			b.ReportMetric(float64(b.N*len(rows))/b.Elapsed().Seconds(), "samples/s")
		})
	}
}

// permute matches the plain loop for every length, the tail included.
func TestPermuteMatchesLoop(t *testing.T) {
	for n := range 11 {
		src := make([]float32, n)
		for i := range src {
			src[i] = float32(i*7 + 1)
		}
		perm := TaskPermutation(n, 3, 1)
		if n == 0 {
			perm = nil
		}
		got := make([]float32, n+1) // one more: must stay untouched
		got[n] = -1
		permute(got, src, perm)
		for j := range n {
			if got[j] != src[perm[j]] {
				t.Fatalf("n=%d: dst[%d] = %v, want src[%d] = %v", n, j, got[j], perm[j], src[perm[j]])
			}
		}
		if got[n] != -1 {
			t.Errorf("n=%d: wrote past the permutation", n)
		}
	}
}
