package data

import (
	"fmt"
	"math"
	"strconv"

	"github.com/fotsim/fotsim/rng"
)

// Task is one step of a continual-learning stream: the train and test views
// of the task, the original labels it contains, and the output head that
// serves it (0 for a shared head).
type Task struct {
	ID          int
	Train, Test View
	Classes     []int32 // original labels present, ascending
	Head        int
}

// StreamConfig chooses how a dataset is cut into a task stream.
//
//	Kind "permuted": Tasks tasks; task 0 is the data unchanged (Perm nil), task
//	  t > 0 applies a fixed random pixel permutation drawn from
//	  rng.New(seed, "permute", t), shared by its train and test views.
//	Kind "rotated": one task per angle (degrees, counter-clockwise) of Angles;
//	  when Angles is empty, Tasks angles evenly spaced on [0, 180):
//	  angle_t = 180*t/Tasks. Each angle != 0 (mod 360) materialises a rotated
//	  copy of train and test (bilinear interpolation about the image centre);
//	  angle 0 uses the original datasets.
//	Kind "split": task t holds the classes [t*c, (t+1)*c), c = ClassesPerTask;
//	  Tasks 0 means all Classes/c tasks.
//
// Mode "class" (or "") keeps the original labels and one shared head
// (Head 0): class-incremental for split, domain-incremental for permuted and
// rotated. Mode "task" gives task t its own head (Head = t); for split the
// labels are remapped to 0..c-1 through View.LabelMap.
type StreamConfig struct {
	Kind           string
	Tasks          int
	Angles         []float64
	ClassesPerTask int
	Mode           string
}

// Stream kinds and modes.
const (
	KindPermuted = "permuted"
	KindRotated  = "rotated"
	KindSplit    = "split"
	ModeClass    = "class"
	ModeTask     = "task"
)

// BuildStream cuts train and test into the task stream cfg describes.
// Randomness comes only from seed, per task, so a longer stream starts with
// the same tasks as a shorter one. Errors wrap ErrStream.
func BuildStream(train, test *Dataset, cfg StreamConfig, seed uint64) ([]Task, error) {
	if err := train.check(); err != nil {
		return nil, fmt.Errorf("%w: train: %v", ErrStream, err)
	}
	if err := test.check(); err != nil {
		return nil, fmt.Errorf("%w: test: %v", ErrStream, err)
	}
	if train.Shape != test.Shape || train.Classes != test.Classes {
		return nil, fmt.Errorf("%w: train is %v with %d classes but test is %v with %d", ErrStream, train.Shape, train.Classes, test.Shape, test.Classes)
	}
	perTask := false
	switch cfg.Mode {
	case "", ModeClass:
	case ModeTask:
		perTask = true
	default:
		return nil, fmt.Errorf("%w: unknown mode %q (want %q or %q)", ErrStream, cfg.Mode, ModeClass, ModeTask)
	}
	head := func(t int) int {
		if perTask {
			return t
		}
		return 0
	}
	switch cfg.Kind {
	case KindPermuted:
		if cfg.Tasks < 1 {
			return nil, fmt.Errorf("%w: permuted: tasks = %d, want >= 1", ErrStream, cfg.Tasks)
		}
		all := allClasses(train.Classes)
		tasks := make([]Task, cfg.Tasks)
		for t := range tasks {
			perm := TaskPermutation(train.Dim(), seed, t)
			tasks[t] = Task{ID: t, Train: View{Base: train, Perm: perm}, Test: View{Base: test, Perm: perm}, Classes: all, Head: head(t)}
		}
		return tasks, nil

	case KindRotated:
		angles, err := streamAngles(cfg)
		if err != nil {
			return nil, err
		}
		all := allClasses(train.Classes)
		tasks := make([]Task, len(angles))
		for t, a := range angles {
			tasks[t] = Task{ID: t, Train: View{Base: Rotate(train, a)}, Test: View{Base: Rotate(test, a)}, Classes: all, Head: head(t)}
		}
		return tasks, nil

	case KindSplit:
		c := cfg.ClassesPerTask
		if c < 1 {
			return nil, fmt.Errorf("%w: split: classes per task = %d, want >= 1", ErrStream, c)
		}
		if train.Classes%c != 0 {
			return nil, fmt.Errorf("%w: split: %d classes are not divisible into tasks of %d", ErrStream, train.Classes, c)
		}
		n := cfg.Tasks
		if n == 0 {
			n = train.Classes / c
		}
		if n < 1 {
			return nil, fmt.Errorf("%w: split: tasks = %d, want >= 1", ErrStream, cfg.Tasks)
		}
		if n*c > train.Classes {
			return nil, fmt.Errorf("%w: split: %d tasks of %d classes need %d classes, the data has %d", ErrStream, n, c, n*c, train.Classes)
		}
		trainRows := rowsByClass(train)
		testRows := rowsByClass(test)
		tasks := make([]Task, n)
		for t := range tasks {
			lo, hi := t*c, (t+1)*c
			classes := make([]int32, 0, c)
			for k := lo; k < hi; k++ {
				classes = append(classes, int32(k))
			}
			var remap []int32
			if perTask {
				remap = make([]int32, train.Classes)
				for k := range remap {
					remap[k] = -1
				}
				for k := lo; k < hi; k++ {
					remap[k] = int32(k - lo)
				}
			}
			tasks[t] = Task{
				ID:      t,
				Train:   View{Base: train, Idx: selectRows(train, trainRows, lo, hi), LabelMap: remap},
				Test:    View{Base: test, Idx: selectRows(test, testRows, lo, hi), LabelMap: remap},
				Classes: classes,
				Head:    head(t),
			}
			if tasks[t].Train.Len() == 0 {
				return nil, fmt.Errorf("%w: split: task %d (classes %d..%d) has no training samples", ErrStream, t, lo, hi-1)
			}
		}
		return tasks, nil

	default:
		return nil, fmt.Errorf("%w: unknown kind %q (want %q, %q or %q)", ErrStream, cfg.Kind, KindPermuted, KindRotated, KindSplit)
	}
}

// TaskPermutation returns the pixel permutation of permuted-stream task t:
// nil (identity) for t == 0, else rng.New(seed, "permute", t).Perm(dim).
func TaskPermutation(dim int, seed uint64, t int) []int32 {
	if t == 0 {
		return nil
	}
	p := rng.New(seed, "permute", t).Perm(dim)
	out := make([]int32, dim)
	for i, v := range p {
		out[i] = int32(v)
	}
	return out
}

func streamAngles(cfg StreamConfig) ([]float64, error) {
	if len(cfg.Angles) > 0 {
		if cfg.Tasks != 0 && cfg.Tasks != len(cfg.Angles) {
			return nil, fmt.Errorf("%w: rotated: tasks = %d but %d angles given", ErrStream, cfg.Tasks, len(cfg.Angles))
		}
		for i, a := range cfg.Angles {
			if math.IsNaN(a) || math.IsInf(a, 0) {
				return nil, fmt.Errorf("%w: rotated: angle %d is %v", ErrStream, i, a)
			}
		}
		return cfg.Angles, nil
	}
	if cfg.Tasks < 1 {
		return nil, fmt.Errorf("%w: rotated: tasks = %d and no angles, want tasks >= 1", ErrStream, cfg.Tasks)
	}
	angles := make([]float64, cfg.Tasks)
	for t := range angles {
		angles[t] = 180 * float64(t) / float64(cfg.Tasks)
	}
	return angles, nil
}

func allClasses(n int) []int32 {
	c := make([]int32, n)
	for i := range c {
		c[i] = int32(i)
	}
	return c
}

// rowsByClass counts the rows of each class.
func rowsByClass(d *Dataset) []int {
	counts := make([]int, d.Classes)
	for _, y := range d.Y {
		if y >= 0 && int(y) < d.Classes {
			counts[y]++
		}
	}
	return counts
}

// selectRows returns, ascending, the rows whose label is in [lo, hi).
func selectRows(d *Dataset, counts []int, lo, hi int) []int32 {
	n := 0
	for k := lo; k < hi; k++ {
		n += counts[k]
	}
	idx := make([]int32, 0, n)
	for i, y := range d.Y {
		if int(y) >= lo && int(y) < hi {
			idx = append(idx, int32(i))
		}
	}
	return idx
}

// Rotate returns d rotated counter-clockwise (as displayed, rows top to
// bottom) by deg degrees about the image centre ((W-1)/2, (H-1)/2), every
// channel alike, with bilinear interpolation; pixels whose source falls
// outside the image blend towards d.Background. A multiple of 360 returns d
// itself, uncopied. The result shares d.Y.
//
// For an output pixel at offset (dx, dy) from the centre (dy pointing down)
// the source is (dx cos a - dy sin a, dx sin a + dy cos a); multiples of 90
// degrees use exact sines so they permute pixels exactly.
func Rotate(d *Dataset, deg float64) *Dataset {
	m := math.Mod(deg, 360)
	if m < 0 {
		m += 360
	}
	if m == 0 {
		return d
	}
	var sin, cos float64
	switch m {
	case 90:
		sin, cos = 1, 0
	case 180:
		sin, cos = 0, -1
	case 270:
		sin, cos = -1, 0
	default:
		sin, cos = math.Sincos(m * math.Pi / 180)
	}
	h, w := d.Shape[1], d.Shape[2]
	plane := h * w
	// Sampling table: for each output pixel, 4 source pixels (-1 = outside)
	// and their bilinear weights.
	src := make([]int32, 4*plane)
	wt := make([]float32, 4*plane)
	cx, cy := float64(w-1)/2, float64(h-1)/2
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			dx, dy := float64(x)-cx, float64(y)-cy
			sx := dx*cos - dy*sin + cx
			sy := dx*sin + dy*cos + cy
			// Snap values within rounding error of a pixel centre.
			if r := math.Round(sx); math.Abs(sx-r) < 1e-9 {
				sx = r
			}
			if r := math.Round(sy); math.Abs(sy-r) < 1e-9 {
				sy = r
			}
			x0, y0 := math.Floor(sx), math.Floor(sy)
			fx, fy := sx-x0, sy-y0
			o := 4 * (y*w + x)
			for k, c := range [4]struct {
				xx, yy float64
				w      float64
			}{
				{x0, y0, (1 - fx) * (1 - fy)},
				{x0 + 1, y0, fx * (1 - fy)},
				{x0, y0 + 1, (1 - fx) * fy},
				{x0 + 1, y0 + 1, fx * fy},
			} {
				wt[o+k] = float32(c.w)
				if c.xx >= 0 && c.xx < float64(w) && c.yy >= 0 && c.yy < float64(h) {
					src[o+k] = int32(int(c.yy)*w + int(c.xx))
				} else {
					src[o+k] = -1
				}
			}
		}
	}
	out := &Dataset{
		Name:       d.Name + "-rot" + strconv.FormatFloat(deg, 'g', -1, 64),
		X:          make([]float32, len(d.X)),
		Y:          d.Y,
		Shape:      d.Shape,
		Classes:    d.Classes,
		Background: d.Background,
	}
	bg := d.Background
	for p := 0; p+plane <= len(d.X); p += plane {
		in, dst := d.X[p:p+plane], out.X[p:p+plane]
		for i := range dst {
			s, ws := src[4*i:4*i+4], wt[4*i:4*i+4]
			var v float32
			for k := 0; k < 4; k++ {
				if ws[k] == 0 {
					continue
				}
				if s[k] >= 0 {
					v += ws[k] * in[s[k]]
				} else {
					v += ws[k] * bg
				}
			}
			dst[i] = v
		}
	}
	return out
}
