package plots

import (
	"fmt"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/fotsim/fotsim/results"
)

// taskEnds returns, for each of the first n tasks, the position on the x
// axis of its end (inRounds true): the number of rounds run when it ends,
// (t+1) R, with R the rounds per task (the largest of the task details'
// Rounds: a centrally pretrained task runs fewer, in the same slots) or,
// failing those, Rounds spread evenly over the tasks. When the record knows
// neither, the number of tasks learnt, 1, 2, ... (inRounds false).
func taskEnds(rec *results.Record, n int) (ends []float64, inRounds bool) {
	ends = make([]float64, n)
	per := 0.0
	for _, d := range rec.TasksDetail {
		per = math.Max(per, float64(d.Rounds))
	}
	if per <= 0 && rec.Rounds > 0 && rec.Tasks > 0 {
		per = float64(rec.Rounds) / float64(rec.Tasks)
	}
	inRounds = per > 0
	for i := range ends {
		ends[i] = float64(i + 1)
		if inRounds {
			ends[i] *= per
		}
	}
	return ends, inRounds
}

// Curves draws the accuracy on every task during training: one line per
// task j through the record's curve points (x = Curve.Round, the rounds run),
// broken at undefined points, with grey dashed vertical lines at the task
// boundaries. A record without curves (eval.every off) gives the accuracy
// matrix at the end of each task instead: task j's line runs through
// acc[i][j] for i >= j, placed at the end of task i.
func Curves(rec *results.Record) (*Figure, error) {
	if rec == nil {
		return nil, results.ErrNilRecord
	}
	n := taskCount(rec)
	ends, inRounds := taskEnds(rec, n)
	fromMatrix := len(rec.Curves) == 0
	title := runTitle("accuracy during training", rec)
	if fromMatrix {
		title = runTitle("accuracy at the end of each task", rec)
	}
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	p.Y.Label.Text = "test accuracy (%)"
	p.X.Label.Text = "rounds"
	if fromMatrix && !inRounds {
		p.X.Label.Text = "tasks learnt"
	}
	leg := newLegend()

	xmax, ymin := 0.0, math.Inf(1)
	for j := range n {
		var xs, ys []float64
		if fromMatrix {
			for i := j; i < len(rec.AccMatrix); i++ {
				xs = append(xs, ends[i])
				ys = append(ys, rec.AccMatrix.At(i, j))
			}
		} else {
			for _, c := range rec.Curves {
				if j < len(c.Acc) {
					xs = append(xs, float64(c.Round))
					ys = append(ys, c.Acc[j])
				}
			}
		}
		for k, x := range xs {
			if finite(x) && finite(ys[k]) {
				xmax, ymin = math.Max(xmax, x), math.Min(ymin, ys[k])
			}
		}
		thumbs, err := addSeries(p, xs, ys, j)
		if err != nil {
			return nil, fmt.Errorf("plots: curves: %w", err)
		}
		if thumbs != nil {
			leg.add(fmt.Sprintf("task %d", j), thumbs...)
		}
	}

	// Task boundaries: the end of every task but the last.
	var bounds []float64
	switch {
	case fromMatrix || inRounds:
		bounds = ends[:max(n-1, 0)]
	default: // curves, but no round counts: between the tasks' points
		for k := 1; k < len(rec.Curves); k++ {
			a, b := rec.Curves[k-1], rec.Curves[k]
			if b.Task != a.Task {
				bounds = append(bounds, float64(a.Round+b.Round)/2)
			}
		}
	}
	if leg.n == 0 {
		noData(p, "no accuracy in the record")
	} else {
		// From a round ten below the lowest accuracy (so that forgetting
		// shows when every accuracy is high) to 100.
		p.Y.Min, p.Y.Max = math.Max(0, 10*math.Floor(ymin/10-0.5)), math.Max(p.Y.Max, 100)
		p.Y.Tick.Marker = pctTicks{}
		if inRounds || !fromMatrix {
			p.X.Min = 0
		} else {
			p.X.Min = 0.5
		}
		p.X.Max = math.Max(p.X.Max, xmax)
		if fromMatrix && !inRounds {
			p.X.Max = float64(n) + 0.5
			p.X.Tick.Marker = intTicks{1, n, func(i int) string { return fmt.Sprint(i) }}
		}
		var bl plot.Thumbnailer
		for _, x := range bounds {
			l, err := vline(p, x, p.Y.Min, p.Y.Max)
			if err != nil {
				return nil, fmt.Errorf("plots: curves: %w", err)
			}
			bl = l
		}
		if bl != nil {
			leg.add("task boundary", bl)
		}
	}

	w := max(8.5*vg.Inch, p.Title.TextStyle.Width(title)+leg.width()+vg.Inch)
	h := max(4.5*vg.Inch, 1*vg.Inch+vg.Length(leg.n)*vg.Points(13))
	return &Figure{Name: CurvesName, Title: title, Width: w, Height: h,
		draw: func(c draw.Canvas) { legendRight(c, p, leg) }}, nil
}
