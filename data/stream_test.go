package data

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func smallSynthetic() (train, test *Dataset) {
	return Synthetic(SyntheticConfig{Train: 200, Test: 50, Shape: [3]int{1, 6, 6}, Classes: 10, Noise: 1}, 3)
}

func isPermutation(p []int32) bool {
	seen := make([]bool, len(p))
	for _, v := range p {
		if v < 0 || int(v) >= len(p) || seen[v] {
			return false
		}
		seen[v] = true
	}
	return true
}

func TestPermutedStream(t *testing.T) {
	train, test := smallSynthetic()
	tasks, err := BuildStream(train, test, StreamConfig{Kind: KindPermuted, Tasks: 3}, 11)
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) != 3 {
		t.Fatalf("got %d tasks, want 3", len(tasks))
	}
	if tasks[0].Train.Perm != nil || tasks[0].Test.Perm != nil {
		t.Error("task 0: got a permutation, want the identity (nil)")
	}
	for i, task := range tasks {
		if task.ID != i || task.Head != 0 || task.Train.Base != train || task.Test.Base != test {
			t.Errorf("task %d: got ID %d, head %d, bases %p %p", i, task.ID, task.Head, task.Train.Base, task.Test.Base)
		}
		if !slices.Equal(task.Classes, allClasses(10)) {
			t.Errorf("task %d classes: got %v, want 0..9", i, task.Classes)
		}
		if i == 0 {
			continue
		}
		if !isPermutation(task.Train.Perm) || len(task.Train.Perm) != train.Dim() {
			t.Errorf("task %d: perm %v is not a permutation of %d pixels", i, task.Train.Perm, train.Dim())
		}
		if !slices.Equal(task.Train.Perm, task.Test.Perm) {
			t.Errorf("task %d: train and test permutations differ", i)
		}
	}
	if slices.Equal(tasks[1].Train.Perm, tasks[2].Train.Perm) {
		t.Error("tasks 1 and 2 have the same permutation")
	}
	// More tasks leave the earlier ones unchanged; the same seed repeats.
	longer, err := BuildStream(train, test, StreamConfig{Kind: KindPermuted, Tasks: 5, Mode: ModeTask}, 11)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tasks {
		if !slices.Equal(tasks[i].Train.Perm, longer[i].Train.Perm) {
			t.Errorf("task %d: permutation changed when the stream grew", i)
		}
		if longer[i].Head != i {
			t.Errorf("task mode: task %d head: got %d, want %d", i, longer[i].Head, i)
		}
	}
	if want := TaskPermutation(train.Dim(), 11, 2); !slices.Equal(tasks[2].Train.Perm, want) {
		t.Error("task 2 permutation differs from TaskPermutation(dim, seed, 2)")
	}
	other, _ := BuildStream(train, test, StreamConfig{Kind: KindPermuted, Tasks: 2}, 12)
	if slices.Equal(tasks[1].Train.Perm, other[1].Train.Perm) {
		t.Error("different seeds gave the same permutation")
	}
}

// rotTol is the tolerance of rotated pixel values (float32 bilinear sums).
const rotTol = 1e-5

func TestRotateRightAngles(t *testing.T) {
	for _, w := range []int{3, 4} {
		d := &Dataset{Name: "sq", Shape: [3]int{2, w, w}, Classes: 1, Y: []int32{0}, Background: -7}
		for i := 0; i < 2*w*w; i++ {
			d.X = append(d.X, float32(i))
		}
		// Hand rotation: 90 degrees counter-clockwise moves the top-right
		// corner to the top-left: dst[r][c] = src[c][w-1-r].
		want90 := make([]float32, len(d.X))
		for ch := 0; ch < 2; ch++ {
			for r := 0; r < w; r++ {
				for c := 0; c < w; c++ {
					want90[ch*w*w+r*w+c] = d.X[ch*w*w+c*w+(w-1-r)]
				}
			}
		}
		got := Rotate(d, 90)
		for i := range want90 {
			if math.Abs(float64(got.X[i]-want90[i])) > rotTol {
				t.Fatalf("w=%d: 90 degrees: got %v, want %v", w, got.X, want90)
			}
		}
		// 180 reverses each channel; -90 undoes 90; 360 is d itself.
		r180 := Rotate(d, 180)
		for ch := 0; ch < 2; ch++ {
			for i := 0; i < w*w; i++ {
				if g, want := r180.X[ch*w*w+i], d.X[ch*w*w+w*w-1-i]; g != want {
					t.Fatalf("w=%d: 180 degrees pixel %d: got %v, want %v", w, i, g, want)
				}
			}
		}
		if back := Rotate(got, -90); !slices.Equal(back.X, d.X) {
			t.Errorf("w=%d: -90 after 90: got %v, want %v", w, back.X, d.X)
		}
		if Rotate(d, 360) != d || Rotate(d, -720) != d || Rotate(d, 0) != d {
			t.Error("a multiple of 360 degrees copied the dataset")
		}
	}
}

func TestRotateBilinear(t *testing.T) {
	// Bilinear interpolation reproduces a linear ramp exactly wherever the
	// source point is inside the image.
	const w = 7
	ramp := func(x, y float64) float64 { return 2*x + 3*y + 1 }
	d := &Dataset{Name: "ramp", Shape: [3]int{1, w, w}, Classes: 1, Y: []int32{0}, Background: 0}
	for y := 0; y < w; y++ {
		for x := 0; x < w; x++ {
			d.X = append(d.X, float32(ramp(float64(x), float64(y))))
		}
	}
	const deg = 30
	got := Rotate(d, deg)
	sin, cos := math.Sincos(deg * math.Pi / 180)
	c := float64(w-1) / 2
	inside := 0
	for y := 0; y < w; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x)-c, float64(y)-c
			sx, sy := dx*cos-dy*sin+c, dx*sin+dy*cos+c
			if sx < 0 || sy < 0 || sx > w-1 || sy > w-1 {
				continue
			}
			inside++
			if g, want := float64(got.X[y*w+x]), ramp(sx, sy); math.Abs(g-want) > 1e-4 {
				t.Errorf("pixel (%d,%d): got %v, want %v", x, y, g, want)
			}
		}
	}
	if inside < w*w/2 {
		t.Fatalf("only %d pixels checked", inside)
	}
	// A uniform image keeps its value where covered and fades to the
	// background at the corners.
	u := &Dataset{Name: "u", Shape: [3]int{1, 5, 5}, Classes: 1, Y: []int32{0}, X: slices.Repeat([]float32{1}, 25), Background: -1}
	r := Rotate(u, 45)
	if r.X[12] != 1 {
		t.Errorf("centre: got %v, want 1", r.X[12])
	}
	if r.X[0] >= 1 || r.X[0] < -1 {
		t.Errorf("corner: got %v, want in [-1, 1)", r.X[0])
	}
	if &r.Y[0] != &u.Y[0] || r.Name != "u-rot45" {
		t.Errorf("rotated set: got name %q and copied labels, want u-rot45 sharing Y", r.Name)
	}
}

func TestRotatedStream(t *testing.T) {
	train, test := smallSynthetic()
	tasks, err := BuildStream(train, test, StreamConfig{Kind: KindRotated, Tasks: 4}, 1)
	if err != nil {
		t.Fatal(err)
	}
	wantAngles := []float64{0, 45, 90, 135}
	if len(tasks) != len(wantAngles) {
		t.Fatalf("got %d tasks, want %d", len(tasks), len(wantAngles))
	}
	if tasks[0].Train.Base != train || tasks[0].Test.Base != test {
		t.Error("angle 0: got a copy, want the original datasets")
	}
	for i, a := range wantAngles[1:] {
		if want := Rotate(train, a); !slices.Equal(tasks[i+1].Train.Base.X, want.X) {
			t.Errorf("task %d: train is not rotated by %v degrees", i+1, a)
		}
		if want := Rotate(test, a); !slices.Equal(tasks[i+1].Test.Base.X, want.X) {
			t.Errorf("task %d: test is not rotated by %v degrees", i+1, a)
		}
	}
	explicit, err := BuildStream(train, test, StreamConfig{Kind: KindRotated, Angles: []float64{10, 0}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(explicit) != 2 || explicit[1].Train.Base != train || explicit[0].Train.Base.Name != "synthetic-train-rot10" {
		t.Errorf("explicit angles: got %d tasks, task 0 base %q", len(explicit), explicit[0].Train.Base.Name)
	}
}

func TestSplitStream(t *testing.T) {
	train, test := smallSynthetic()
	for _, mode := range []string{"", ModeClass, ModeTask} {
		tasks, err := BuildStream(train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 2, Mode: mode}, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(tasks) != 5 {
			t.Fatalf("mode %q: got %d tasks, want 5", mode, len(tasks))
		}
		covered := 0
		for ti, task := range tasks {
			lo := int32(2 * ti)
			if !slices.Equal(task.Classes, []int32{lo, lo + 1}) {
				t.Errorf("mode %q task %d: classes %v, want [%d %d]", mode, ti, task.Classes, lo, lo+1)
			}
			wantHead := 0
			if mode == ModeTask {
				wantHead = ti
			}
			if task.Head != wantHead {
				t.Errorf("mode %q task %d: head %d, want %d", mode, ti, task.Head, wantHead)
			}
			for _, v := range []View{task.Train, task.Test} {
				rows := make([]int32, v.Len())
				for i := range rows {
					rows[i] = int32(i)
				}
				y := make([]int32, len(rows))
				v.Gather(nil, y, rows)
				for i, got := range y {
					orig := v.Base.Y[v.Idx[i]]
					if orig != lo && orig != lo+1 {
						t.Fatalf("mode %q task %d: row of class %d", mode, ti, orig)
					}
					want := orig
					if mode == ModeTask {
						want = orig - lo
					}
					if got != want || v.Label(i) != want {
						t.Fatalf("mode %q task %d: label of class %d: got %d (Label %d), want %d", mode, ti, orig, got, v.Label(i), want)
					}
				}
			}
			if !slices.IsSorted(task.Train.Idx) {
				t.Errorf("task %d: Idx not ascending", ti)
			}
			covered += task.Train.Len()
		}
		if covered != train.Len() {
			t.Errorf("mode %q: tasks cover %d of %d training rows", mode, covered, train.Len())
		}
	}
	three, err := BuildStream(train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 2, Tasks: 3}, 1)
	if err != nil || len(three) != 3 {
		t.Errorf("tasks 3: got %d tasks, %v", len(three), err)
	}
}

func TestBuildStreamErrors(t *testing.T) {
	train, test := smallSynthetic()
	other, _ := Synthetic(SyntheticConfig{Train: 10, Test: 10, Shape: [3]int{1, 5, 5}}, 1)
	tests := []struct {
		name        string
		train, test *Dataset
		cfg         StreamConfig
		want        string
	}{
		{"unknown kind", train, test, StreamConfig{Kind: "shuffled", Tasks: 2}, `unknown kind "shuffled"`},
		{"empty kind", train, test, StreamConfig{Tasks: 2}, `unknown kind ""`},
		{"unknown mode", train, test, StreamConfig{Kind: KindPermuted, Tasks: 2, Mode: "domain"}, `unknown mode "domain"`},
		{"permuted zero tasks", train, test, StreamConfig{Kind: KindPermuted}, "tasks = 0"},
		{"permuted negative tasks", train, test, StreamConfig{Kind: KindPermuted, Tasks: -1}, "tasks = -1"},
		{"rotated zero tasks", train, test, StreamConfig{Kind: KindRotated}, "tasks = 0 and no angles"},
		{"rotated angles mismatch", train, test, StreamConfig{Kind: KindRotated, Tasks: 3, Angles: []float64{0, 1}}, "tasks = 3 but 2 angles"},
		{"rotated nan", train, test, StreamConfig{Kind: KindRotated, Angles: []float64{0, math.NaN()}}, "angle 1 is NaN"},
		{"split not divisible", train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 3}, "10 classes are not divisible into tasks of 3"},
		{"split too many tasks", train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 2, Tasks: 6}, "6 tasks of 2 classes need 12 classes, the data has 10"},
		{"split negative tasks", train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 2, Tasks: -1}, "tasks = -1"},
		{"split zero classes", train, test, StreamConfig{Kind: KindSplit}, "classes per task = 0"},
		{"nil train", nil, test, StreamConfig{Kind: KindPermuted, Tasks: 1}, "train: nil dataset"},
		{"shape mismatch", train, other, StreamConfig{Kind: KindPermuted, Tasks: 1}, "train is [1 6 6]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := BuildStream(tc.train, tc.test, tc.cfg, 1)
			if !errors.Is(err, ErrStream) {
				t.Fatalf("got %v, want ErrStream", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func BenchmarkRotate(b *testing.B) {
	train, _ := Synthetic(SyntheticConfig{Train: 1000, Test: 1, Shape: [3]int{1, 28, 28}}, 1)
	b.ReportAllocs()
	for b.Loop() {
		Rotate(train, 30)
	}
	b.ReportMetric(float64(b.N*train.Len())/b.Elapsed().Seconds(), "samples/s")
}
