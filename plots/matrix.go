package plots

import (
	"fmt"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"

	"github.com/fotsim/fotsim/results"
)

// blues is a white-to-dark-blue ramp (ColorBrewer "Blues") of n colours:
// low accuracies are light, high ones dark.
type blues int

var bluesAnchors = []color.RGBA{
	{0xf7, 0xfb, 0xff, 0xff}, {0xde, 0xeb, 0xf7, 0xff}, {0xc6, 0xdb, 0xef, 0xff},
	{0x9e, 0xca, 0xe1, 0xff}, {0x6b, 0xae, 0xd6, 0xff}, {0x42, 0x92, 0xc6, 0xff},
	{0x21, 0x71, 0xb5, 0xff}, {0x08, 0x51, 0x9c, 0xff}, {0x08, 0x30, 0x6b, 0xff},
}

func (b blues) Colors() []color.Color {
	n := max(int(b), 2)
	out := make([]color.Color, n)
	for i := range out {
		t := float64(i) / float64(n-1) * float64(len(bluesAnchors)-1)
		k := min(int(t), len(bluesAnchors)-2)
		f := t - float64(k)
		a, z := bluesAnchors[k], bluesAnchors[k+1]
		mix := func(x, y uint8) uint8 { return uint8(math.Round(float64(x) + f*(float64(y)-float64(x)))) }
		out[i] = color.RGBA{mix(a.R, z.R), mix(a.G, z.G), mix(a.B, z.B), 0xff}
	}
	return out
}

// darkFrom is the share of the colour range from which a cell is dark
// enough for white text.
const darkFrom = 0.55

// matrixGrid shows a results.Matrix as a heatmap grid: column c = task j,
// grid row r = matrix row n-1-r (so that row 0, after task 0, is at the
// top), the upper triangle NaN (blank).
type matrixGrid struct {
	m results.Matrix
	n int
}

func (g matrixGrid) Dims() (c, r int) { return g.n, g.n }
func (g matrixGrid) X(c int) float64  { return float64(c) }
func (g matrixGrid) Y(r int) float64  { return float64(r) }
func (g matrixGrid) Z(c, r int) float64 {
	i := g.n - 1 - r
	if c > i {
		return math.NaN()
	}
	return g.m.At(i, c)
}

// AccuracyMatrix draws rec's accuracy matrix as a heatmap: row i = after
// task i (top to bottom), column j = accuracy on task j, colours from white
// (ten below the lowest accuracy, rounded down to ten) to dark blue
// (100 %), every cell of the lower triangle annotated
// with its value ("n/a" when it was not evaluated), the upper triangle
// blank. The figure grows with the number of tasks; annotations shrink and
// are left out from about 40 tasks on.
func AccuracyMatrix(rec *results.Record) (*Figure, error) {
	if rec == nil {
		return nil, results.ErrNilRecord
	}
	n := max(len(rec.AccMatrix), rec.AccMatrix.Cols())
	title := runTitle("accuracy (%)", rec)
	cell := clamp(vg.Length(6.5)*vg.Inch/vg.Length(max(n, 1)), 0.3*vg.Inch, 0.8*vg.Inch)
	side := clamp(1.2*vg.Inch+vg.Length(n)*cell, 4.5*vg.Inch, 11*vg.Inch)
	p := plot.New()
	p.Title.Text = title
	p.Title.Padding = vg.Points(6)
	w := fitWidth(side, p.Title.TextStyle, title)
	h := side + 0.3*vg.Inch
	if n == 0 {
		noData(p, "no accuracy matrix in the record")
		return &Figure{Name: MatrixName, Title: title, Width: w, Height: h, draw: p.Draw}, nil
	}

	// Colours from ten below the lowest accuracy (rounded to ten) to 100,
	// so that forgetting shows when every accuracy is high.
	lo := 100.0
	for i := range n {
		for j := 0; j <= i; j++ {
			if v := rec.AccMatrix.At(i, j); finite(v) {
				lo = math.Min(lo, v)
			}
		}
	}
	lo = math.Min(math.Max(0, 10*math.Floor(lo/10-0.5)), 90)
	grid := matrixGrid{m: rec.AccMatrix, n: n}
	pal := blues(101)
	hm := &plotter.HeatMap{GridXYZ: grid, Palette: pal, Min: lo, Max: 100}
	cols := pal.Colors()
	hm.Underflow, hm.Overflow = cols[0], cols[len(cols)-1]
	p.Add(hm)

	// Annotations: one decimal while they fit, then none.
	dataSide := float64(side-1.2*vg.Inch) / float64(n)
	decimals := 1
	size := dataSide / 3.2
	if size < 6 {
		decimals, size = 0, dataSide/2.3
	}
	if size >= 4 {
		size = min(size, 11)
		var xys plotter.XYs
		var labels []string
		var styles []text.Style
		for i := range n {
			for j := 0; j <= i; j++ {
				v := rec.AccMatrix.At(i, j)
				xys = append(xys, plotter.XY{X: float64(j), Y: float64(n - 1 - i)})
				labels = append(labels, fmtPct(v, decimals))
				c := color.Color(color.Black)
				switch {
				case !finite(v):
					c = grey
				case (v-lo)/(100-lo) >= darkFrom:
					c = color.White
				}
				styles = append(styles, textStyle(size, c))
			}
		}
		l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
		if err != nil {
			return nil, fmt.Errorf("plots: accuracy matrix: %w", err)
		}
		l.TextStyle = styles
		p.Add(l)
	}

	p.X.Label.Text = "accuracy on task j"
	p.Y.Label.Text = "after learning task i"
	p.X.Tick.Marker = intTicks{0, n - 1, strconv.Itoa}
	p.Y.Tick.Marker = intTicks{0, n - 1, func(r int) string { return strconv.Itoa(n - 1 - r) }}
	p.X.Padding, p.Y.Padding = 0, 0
	p.X.Min, p.X.Max = -0.5, float64(n)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(n)-0.5
	return &Figure{Name: MatrixName, Title: title, Width: w, Height: h, draw: p.Draw}, nil
}

// noData turns p into an empty frame with msg in its middle.
func noData(p *plot.Plot, msg string) {
	p.HideAxes()
	p.X.Label.Text, p.Y.Label.Text = "", ""
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: plotter.XYs{{X: 0, Y: 0}}, Labels: []string{msg}})
	if err == nil {
		l.TextStyle[0] = textStyle(12, grey)
		p.Add(l)
	}
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = -1, 1, -1, 1
}
