package plots

import (
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/fotsim/fotsim/results"
)

// HasSubspace reports whether rec has FOT subspace details (some task
// detail with basis dimensions), the data of [Subspace].
func HasSubspace(rec *results.Record) bool {
	if rec == nil {
		return false
	}
	for _, d := range rec.TasksDetail {
		if len(d.BasisDims) > 0 {
			return true
		}
	}
	return false
}

// Subspace draws FOT's subspace memory, per projected layer, after each
// task (two panels, one line per layer): on the left the basis dimension
// over its capacity, 100 k/d_in (%), or k itself when the record lacks the
// capacities; on the right the mean share of the layer's aggregated update
// that the projection removed during the task (%, from task 1 on: task 0 is
// not projected). A record without subspace details gives [ErrNoSubspace].
func Subspace(rec *results.Record) (*Figure, error) {
	if rec == nil {
		return nil, results.ErrNilRecord
	}
	if !HasSubspace(rec) {
		return nil, ErrNoSubspace
	}
	var layers []string
	capacity := map[string]int{}
	nTasks := 0
	for i, d := range rec.TasksDetail {
		nTasks = max(nTasks, taskOf(d, i)+1)
		for l := range d.BasisDims {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
		for l, c := range d.BasisCapacity {
			capacity[l] = max(capacity[l], c)
		}
	}
	slices.SortFunc(layers, naturalCompare)
	relative := true
	for _, l := range layers {
		if capacity[l] <= 0 {
			relative = false
		}
	}

	title := runTitle("FOT subspaces", rec)
	dims, removed := plot.New(), plot.New()
	dims.Title.Text = "basis dimension after each task"
	dims.Y.Label.Text = "basis dimension k"
	if relative {
		dims.Y.Label.Text = "basis k / capacity d_in (%)"
	}
	removed.Title.Text = "update removed by the projection"
	removed.Y.Label.Text = "share of the aggregated update (%)"
	leg := newLegend()
	kmax := 1.0
	for li, l := range layers {
		var xs, ks, fs, fx []float64
		for i, d := range rec.TasksDetail {
			t := float64(taskOf(d, i))
			k, ok := d.BasisDims[l]
			y := math.NaN()
			if ok {
				y = float64(k)
				kmax = math.Max(kmax, y)
				if relative {
					y = 100 * y / float64(capacity[l])
				}
			}
			xs, ks = append(xs, t), append(ks, y)
			if taskOf(d, i) > 0 {
				f, ok := d.ProjectedFraction[l]
				if !ok {
					f = math.NaN()
				}
				fx, fs = append(fx, t), append(fs, 100*f)
			}
		}
		thumbs, err := addSeries(dims, xs, ks, li)
		if err != nil {
			return nil, fmt.Errorf("plots: subspace: %w", err)
		}
		if _, err := addSeries(removed, fx, fs, li); err != nil {
			return nil, fmt.Errorf("plots: subspace: %w", err)
		}
		name := l
		if c := capacity[l]; c > 0 {
			name = fmt.Sprintf("%s (d_in %d)", l, c)
		}
		if thumbs != nil {
			leg.add(name, thumbs...)
		}
	}
	for _, p := range []*plot.Plot{dims, removed} {
		p.Title.Padding = vg.Points(4)
		p.Title.TextStyle.Font.Size = vg.Points(11)
		p.X.Label.Text = "task"
		p.X.Min, p.X.Max = -0.5, float64(nTasks)-0.5
		p.X.Tick.Marker = intTicks{0, nTasks - 1, func(i int) string { return fmt.Sprint(i) }}
		p.Y.Min, p.Y.Max = 0, 100
		p.Y.Tick.Marker = pctTicks{}
	}
	if !relative {
		dims.Y.Max = kmax * 1.05
		dims.Y.Tick.Marker = plot.DefaultTicks{}
	}

	head := textStyle(12, nil)
	head.YAlign = draw.YTop
	w := fitWidth(10.5*vg.Inch, head, title)
	h := max(4.5*vg.Inch, 1.2*vg.Inch+vg.Length(leg.n)*vg.Points(13))
	return &Figure{Name: SubspaceName, Title: title, Width: w, Height: h, draw: func(c draw.Canvas) {
		top := drawHeading(c, head, title)
		body := draw.Crop(c, 0, -leg.width(), 0, -top)
		tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: 0.35 * vg.Inch, PadLeft: vg.Points(4), PadBottom: vg.Points(4)}
		cs := plot.Align([][]*plot.Plot{{dims, removed}}, tiles, body)
		dims.Draw(cs[0][0])
		removed.Draw(cs[0][1])
		leg.draw(c, top+titleHeight(dims)+vg.Points(6))
	}}, nil
}

// taskOf is a task detail's task index; a detail without one (Task 0 past
// the first) counts by position.
func taskOf(d results.TaskDetail, i int) int {
	if d.Task > 0 || i == 0 {
		return d.Task
	}
	return i
}

// drawHeading writes a figure's heading centred at the top of c and returns
// the height it takes.
func drawHeading(c draw.Canvas, s text.Style, title string) vg.Length {
	pad := vg.Points(6)
	c.FillText(s, vg.Point{X: c.Center().X, Y: c.Max.Y - pad}, title)
	return s.Height(title) + 2*pad
}
