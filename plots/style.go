package plots

import (
	"cmp"
	"image/color"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// series colours (Tableau 10): series i has colour i mod 10 and, from the
// eleventh on, a dash pattern, so that 40 series stay distinct.
var series = []color.RGBA{
	{0x1f, 0x77, 0xb4, 0xff}, {0xff, 0x7f, 0x0e, 0xff}, {0x2c, 0xa0, 0x2c, 0xff},
	{0xd6, 0x27, 0x28, 0xff}, {0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff},
	{0xe3, 0x77, 0xc2, 0xff}, {0x7f, 0x7f, 0x7f, 0xff}, {0xbc, 0xbd, 0x22, 0xff},
	{0x17, 0xbe, 0xcf, 0xff},
}

var grey = color.RGBA{0x80, 0x80, 0x80, 0xff}

func seriesColor(i int) color.Color { return series[i%len(series)] }

func seriesDashes(i int) []vg.Length {
	switch (i / len(series)) % 4 {
	case 1:
		return []vg.Length{vg.Points(6), vg.Points(3)}
	case 2:
		return []vg.Length{vg.Points(2), vg.Points(2)}
	case 3:
		return []vg.Length{vg.Points(6), vg.Points(2), vg.Points(2), vg.Points(2)}
	}
	return nil
}

func seriesLine(i int) draw.LineStyle {
	return draw.LineStyle{Color: seriesColor(i), Width: vg.Points(1.5), Dashes: seriesDashes(i)}
}

// textStyle is a plain text style of the plots' font at size pt.
func textStyle(pt float64, c color.Color) text.Style {
	if c == nil {
		c = color.Black
	}
	return text.Style{
		Color:   c,
		Font:    font.From(plot.DefaultFont, vg.Points(pt)),
		Handler: plot.DefaultTextHandler,
		XAlign:  draw.XCenter,
		YAlign:  draw.YCenter,
	}
}

// fitWidth widens w so that a line of text in style s fits with a margin.
func fitWidth(w vg.Length, s text.Style, txt string) vg.Length {
	return max(w, s.Width(txt)+vg.Inch/2)
}

// addSeries adds the points of one series to p as lines broken at the
// non-finite points, with a dot on every isolated point (and on every point
// when there are few). It returns the series' legend thumbnails, nil when
// the series has no finite point.
func addSeries(p *plot.Plot, xs, ys []float64, i int) ([]plot.Thumbnailer, error) {
	style := seriesLine(i)
	glyph := draw.GlyphStyle{Color: seriesColor(i), Radius: vg.Points(2.5), Shape: draw.CircleGlyph{}}
	allDots := len(xs) <= 30
	drawn := false
	var seg plotter.XYs
	flush := func() error {
		if len(seg) == 0 {
			return nil
		}
		defer func() { seg = nil }()
		drawn = true
		if len(seg) > 1 {
			l, err := plotter.NewLine(seg)
			if err != nil {
				return err
			}
			l.LineStyle = style
			p.Add(l)
		}
		if allDots || len(seg) == 1 {
			s, err := plotter.NewScatter(seg)
			if err != nil {
				return err
			}
			s.GlyphStyle = glyph
			p.Add(s)
		}
		return nil
	}
	for k := range xs {
		if !finite(xs[k]) || !finite(ys[k]) {
			if err := flush(); err != nil {
				return nil, err
			}
			continue
		}
		seg = append(seg, plotter.XY{X: xs[k], Y: ys[k]})
	}
	if err := flush(); err != nil {
		return nil, err
	}
	if !drawn {
		return nil, nil
	}
	thumbs := []plot.Thumbnailer{&plotter.Line{LineStyle: style}}
	if allDots {
		thumbs = append(thumbs, &plotter.Scatter{GlyphStyle: glyph})
	}
	return thumbs, nil
}

// vline adds a vertical dashed grey line at x from y0 to y1.
func vline(p *plot.Plot, x, y0, y1 float64) (*plotter.Line, error) {
	l, err := plotter.NewLine(plotter.XYs{{X: x, Y: y0}, {X: x, Y: y1}})
	if err != nil {
		return nil, err
	}
	l.LineStyle = draw.LineStyle{Color: grey, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	p.Add(l)
	return l, nil
}

// intTicks marks the integers lo..hi on an axis, every step-th one when
// there are many, labelled by name(i).
type intTicks struct {
	lo, hi int
	name   func(int) string
}

func (t intTicks) Ticks(_, _ float64) []plot.Tick {
	step := max(1, (t.hi-t.lo+1+14)/15)
	var ts []plot.Tick
	for i := t.lo; i <= t.hi; i++ {
		l := ""
		if (i-t.lo)%step == 0 {
			l = t.name(i)
		}
		ts = append(ts, plot.Tick{Value: float64(i), Label: l})
	}
	return ts
}

// sideLegend is a legend drawn beside a plot, outside its data area.
type sideLegend struct {
	plot.Legend
	n int // entries
}

func newLegend() *sideLegend {
	leg := plot.NewLegend()
	leg.TextStyle.Font.Size = vg.Points(10)
	leg.ThumbnailWidth = vg.Points(22)
	leg.Padding = vg.Points(3)
	leg.Top, leg.Left = true, true
	return &sideLegend{Legend: leg}
}

func (l *sideLegend) add(name string, thumbs ...plot.Thumbnailer) {
	l.Add(name, thumbs...)
	l.n++
}

// width is the room the legend takes beside a plot (0 when empty).
func (l *sideLegend) width() vg.Length {
	if l.n == 0 {
		return 0
	}
	r := l.Rectangle(draw.Canvas{})
	return r.Max.X - r.Min.X + vg.Points(16)
}

// draw draws the legend at the right edge of c, top-aligned top below its
// top edge.
func (l *sideLegend) draw(c draw.Canvas, top vg.Length) {
	if l.n == 0 {
		return
	}
	l.Draw(draw.Crop(c, c.Size().X-l.width()+vg.Points(8), 0, 0, -top))
}

// titleHeight is the room p's title takes at the top of its canvas.
func titleHeight(p *plot.Plot) vg.Length {
	if p.Title.Text == "" {
		return 0
	}
	return p.Title.TextStyle.Rectangle(p.Title.Text).Size().Y + p.Title.Padding
}

// legendRight draws p in c with leg on its right, top-aligned below the
// title.
func legendRight(c draw.Canvas, p *plot.Plot, leg *sideLegend) {
	p.Draw(draw.Crop(c, 0, -leg.width(), 0, 0))
	leg.draw(c, titleHeight(p)+vg.Points(6))
}

// naturalCompare orders "fc2" before "fc10": runs of digits compare as
// numbers.
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da != "" && db != "" {
			na, _ := strconv.ParseFloat(da, 64)
			nb, _ := strconv.ParseFloat(db, 64)
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[len(da):], b[len(db):]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}

// fmtPct formats a percentage for an annotation: one decimal, "n/a" when
// undefined, never "-0.0".
func fmtPct(v float64, decimals int) string {
	if !finite(v) {
		return "n/a"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if s == "-0.0" || s == "-0" {
		s = s[1:]
	}
	return s
}

// clamp limits v to [lo, hi].
func clamp(v, lo, hi vg.Length) vg.Length {
	return vg.Length(math.Min(math.Max(float64(v), float64(lo)), float64(hi)))
}

// pctTicks marks a percentage axis every 5, 10, 20 or 25 points (the
// smallest step giving at most six labels), with plain integer labels.
type pctTicks struct{}

func (pctTicks) Ticks(lo, hi float64) []plot.Tick {
	step := 25.0
	for _, s := range []float64{5, 10, 20, 25} {
		if (hi-lo)/s <= 6 {
			step = s
			break
		}
	}
	var ts []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ts
}
