package plots

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/fotsim/fotsim/results"
)

// errPoint is one bar's error bar: mean y at x, plus or minus e.
type errPoint struct{ x, y, e float64 }

func (p errPoint) Len() int                       { return 1 }
func (p errPoint) XY(int) (float64, float64)      { return p.x, p.y }
func (p errPoint) YError(int) (low, high float64) { return p.e, p.e }

// group is the records of one method label.
type group struct {
	label    string
	acc, fgt []float64
}

// groupRecords groups records by method label (MethodLabel, or Method), in
// order of first appearance, as the comparison table does; records of
// several scenarios are grouped by "scenario: label".
func groupRecords(recs []*results.Record) ([]*group, error) {
	var scenarios []string
	for _, r := range recs {
		if r == nil {
			return nil, fmt.Errorf("plots: summary: %w", results.ErrNilRecord)
		}
		if !slices.Contains(scenarios, r.Scenario) {
			scenarios = append(scenarios, r.Scenario)
		}
	}
	var groups []*group
	byLabel := map[string]*group{}
	for _, r := range recs {
		l := label(r)
		if len(scenarios) > 1 {
			l = r.Scenario + ": " + l
		}
		g, ok := byLabel[l]
		if !ok {
			g = &group{label: l}
			byLabel[l] = g
			groups = append(groups, g)
		}
		g.acc = append(g.acc, r.ACC)
		g.fgt = append(g.fgt, r.FGT)
	}
	return groups, nil
}

// Summary draws ACC and FGT per method label over several records (two
// panels of bars, one colour per method): the mean over the label's
// records (its seeds) with sample-std error bars (n-1; none for a single
// record), each bar annotated "mean ± std". A label whose records have an
// undefined value gets no bar but "n/a", as in the comparison table.
// Records are grouped as results.ComparisonTable groups them; records of
// several scenarios are told apart by "scenario: label".
func Summary(recs []*results.Record) (*Figure, error) {
	if len(recs) == 0 {
		return nil, errors.New("plots: summary of no records")
	}
	groups, err := groupRecords(recs)
	if err != nil {
		return nil, err
	}
	n := len(groups)
	seeds := len(groups[0].acc)
	for _, g := range groups {
		if len(g.acc) != seeds {
			seeds = 0
		}
	}
	title := "ACC and FGT per method, mean ± sample std over seeds"
	switch {
	case seeds == 1:
		title = "ACC and FGT per method (one seed each: no error bars)"
	case seeds > 1:
		title = fmt.Sprintf("ACC and FGT per method, mean ± sample std over %d seeds", seeds)
	}
	if s := recs[0].Scenario; s != "" && !slices.ContainsFunc(recs, func(r *results.Record) bool { return r.Scenario != s }) {
		title = s + ": " + title
	}

	labels := make([]string, n)
	for i, g := range groups {
		labels[i] = g.label
	}
	// Up to four methods: the panels side by side; more: one above the
	// other, each as wide as the figure.
	stacked := n > 4
	panelW := clamp(1.2*vg.Inch+vg.Length(n)*0.9*vg.Inch, 3.5*vg.Inch, 5*vg.Inch)
	w, h := 2*panelW+0.6*vg.Inch, 4.8*vg.Inch
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: 0.4 * vg.Inch, PadLeft: vg.Points(4), PadRight: vg.Points(8), PadBottom: vg.Points(4)}
	if stacked {
		panelW = clamp(1.2*vg.Inch+vg.Length(n)*0.8*vg.Inch, 6*vg.Inch, 11*vg.Inch)
		w, h = panelW+0.4*vg.Inch, 8.5*vg.Inch
		tiles = draw.Tiles{Rows: 2, Cols: 1, PadY: 0.3 * vg.Inch, PadLeft: vg.Points(4), PadRight: vg.Points(8), PadBottom: vg.Points(4)}
	}
	barW := clamp(panelW*0.55/vg.Length(n), vg.Points(6), vg.Points(60))
	head := textStyle(12, nil)
	head.YAlign = draw.YTop
	w = fitWidth(w, head, title)

	acc, err := barPanel(groups, labels, func(g *group) []float64 { return g.acc }, barW, panelW)
	if err != nil {
		return nil, err
	}
	acc.Title.Text = "ACC (%): mean final accuracy"
	acc.Y.Min, acc.Y.Max = 0, 100
	acc.Y.Tick.Marker = pctTicks{}
	fgt, err := barPanel(groups, labels, func(g *group) []float64 { return g.fgt }, barW, panelW)
	if err != nil {
		return nil, err
	}
	fgt.Title.Text = "FGT (points): just-learnt minus final"
	fgt.Y.Min, fgt.Y.Max = math.Min(fgt.Y.Min, 0), math.Max(fgt.Y.Max, 1)
	return &Figure{Name: SummaryName, Title: title, Width: w, Height: h, draw: func(c draw.Canvas) {
		top := drawHeading(c, head, title)
		body := draw.Crop(c, 0, 0, 0, -top)
		panels := [][]*plot.Plot{{acc, fgt}}
		if stacked {
			panels = [][]*plot.Plot{{acc}, {fgt}}
		}
		cs := plot.Align(panels, tiles, body)
		for i, row := range panels {
			for j, p := range row {
				p.Draw(cs[i][j])
			}
		}
	}}, nil
}

// barPanel draws one metric of every group: a bar per group at x = its
// index, with its error bar and annotation.
func barPanel(groups []*group, labels []string, values func(*group) []float64, barW, panelW vg.Length) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Padding = vg.Points(4)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	grid := plotter.NewGrid()
	grid.Vertical.Color = nil
	p.Add(grid)
	var xys plotter.XYs
	var notes []string
	var aligns []bool // annotation below the point (negative bars)
	for i, g := range groups {
		mean, std := results.MeanStd(values(g))
		x := float64(i)
		if !finite(mean) {
			xys, notes, aligns = append(xys, plotter.XY{X: x, Y: 0}), append(notes, "n/a"), append(aligns, false)
			continue
		}
		b, err := plotter.NewBarChart(plotter.Values{mean}, barW)
		if err != nil {
			return nil, fmt.Errorf("plots: summary: %w", err)
		}
		b.XMin = x
		b.Color = seriesColor(i)
		b.LineStyle.Width = 0
		p.Add(b)
		note := fmtPct(mean, 1)
		end := mean
		if len(values(g)) > 1 && finite(std) {
			eb, err := plotter.NewYErrorBars(errPoint{x, mean, std})
			if err != nil {
				return nil, fmt.Errorf("plots: summary: %w", err)
			}
			eb.LineStyle.Width = vg.Points(1.2)
			eb.CapWidth = min(barW/2, vg.Points(10))
			p.Add(eb)
			note += " ± " + fmtPct(std, 1)
			end = mean + math.Copysign(std, mean)
			if mean == 0 {
				end = mean + std
			}
		}
		xys, notes, aligns = append(xys, plotter.XY{X: x, Y: end}), append(notes, note), append(aligns, mean < 0)
	}
	for _, below := range []bool{false, true} {
		var pts plotter.XYs
		var txt []string
		for i := range xys {
			if aligns[i] == below {
				pts, txt = append(pts, xys[i]), append(txt, notes[i])
			}
		}
		if len(pts) == 0 {
			continue
		}
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: txt})
		if err != nil {
			return nil, fmt.Errorf("plots: summary: %w", err)
		}
		for i := range l.TextStyle {
			l.TextStyle[i] = textStyle(9, nil)
			l.TextStyle[i].YAlign = draw.YBottom
			l.Offset = vg.Point{Y: vg.Points(3)}
			if below {
				l.TextStyle[i].YAlign = draw.YTop
				l.Offset = vg.Point{Y: -vg.Points(3)}
			}
		}
		p.Add(l)
	}
	p.NominalX(labels...)
	p.X.Min, p.X.Max = -0.5, float64(len(groups))-0.5
	var total vg.Length
	for _, s := range labels {
		total += p.X.Tick.Label.Width(s) + vg.Points(6)
	}
	if total > panelW*0.85 {
		p.X.Tick.Label.Rotation = math.Pi / 6
		p.X.Tick.Label.XAlign = draw.XRight
		p.X.Tick.Label.YAlign = draw.YCenter
	}
	return p, nil
}
