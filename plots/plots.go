package plots

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/fotsim/fotsim/results"
)

// File stems of the figures; [Figure.Save] adds ".png" and ".svg".
const (
	MatrixName   = "accuracy_matrix"
	CurvesName   = "curves"
	SubspaceName = "subspace"
	SummaryName  = "summary"
)

// Output formats.
const (
	PNG = "png"
	SVG = "svg"
)

// Formats lists every format, in the order [WriteRun] writes them.
var Formats = []string{PNG, SVG}

// DPI is the resolution of the PNGs: a figure of w x h inches is
// round(w*DPI) x round(h*DPI) pixels.
const DPI = 100

// margin is the blank border around every figure.
const margin = 4 * vg.Millimeter / 2

// ErrNoSubspace is returned by [Subspace] for a record without FOT subspace
// details (TasksDetail without BasisDims).
var ErrNoSubspace = errors.New("plots: record has no subspace details")

// Figure is one drawing, ready to render: a file stem, a size and the code
// that draws it.
type Figure struct {
	Name          string    // file stem, e.g. "curves"
	Title         string    // the text at its top
	Width, Height vg.Length // size; PNGs are [DPI] dots per inch
	draw          func(c draw.Canvas)
}

// PixelSize is the size in pixels of the figure's PNG.
func (f *Figure) PixelSize() (w, h int) {
	return int(float64(f.Width/vg.Inch)*DPI + 0.5), int(float64(f.Height/vg.Inch)*DPI + 0.5)
}

// Render draws the figure to w in format ([PNG] or [SVG]). A failure of
// the plotting library is returned as an error, never a panic.
func (f *Figure) Render(w io.Writer, format string) (err error) {
	if f == nil || f.draw == nil {
		return errors.New("plots: render of an empty figure")
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("plots: render %s.%s: %v", f.Name, format, r)
		}
	}()
	var out io.WriterTo
	switch format {
	case PNG:
		c := vgimg.NewWith(vgimg.UseWH(f.Width, f.Height), vgimg.UseDPI(DPI))
		f.draw(draw.Crop(draw.New(c), margin, -margin, margin, -margin))
		out = vgimg.PngCanvas{Canvas: c}
	case SVG:
		c := vgsvg.New(f.Width, f.Height)
		f.draw(draw.Crop(draw.New(c), margin, -margin, margin, -margin))
		out = c
	default:
		return fmt.Errorf("plots: unknown format %q (want %s)", format, strings.Join(Formats, " or "))
	}
	if _, err := out.WriteTo(w); err != nil {
		return fmt.Errorf("plots: write %s.%s: %w", f.Name, format, err)
	}
	return nil
}

// Save renders the figure in each format to dir/NAME.FORMAT (dir is created
// when missing; existing files are replaced through a temporary file and a
// rename) and returns the paths written, in the order of formats.
func (f *Figure) Save(dir string, formats []string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("plots: %w", err)
	}
	var paths []string
	for _, format := range formats {
		var buf bytes.Buffer
		if err := f.Render(&buf, format); err != nil {
			return paths, err
		}
		p := filepath.Join(dir, f.Name+"."+format)
		if err := results.WriteFileAtomic(dir, f.Name+"."+format, buf.Bytes()); err != nil {
			return paths, fmt.Errorf("plots: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// ParseFormats reads a comma-separated list of formats ("png,svg", "svg");
// duplicates are dropped, order is kept. Unknown or no formats are an
// error.
func ParseFormats(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.ToLower(strings.TrimSpace(f))
		if f == "" {
			continue
		}
		if !slices.Contains(Formats, f) {
			return nil, fmt.Errorf("plots: unknown format %q (want %s)", f, strings.Join(Formats, ", "))
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("plots: no format in %q (want %s)", s, strings.Join(Formats, ", "))
	}
	return out, nil
}

// RunFigures returns every figure of one run: the accuracy matrix, the
// curves and, for a record with FOT subspace details, the subspace figure.
func RunFigures(rec *results.Record) ([]*Figure, error) {
	m, err := AccuracyMatrix(rec)
	if err != nil {
		return nil, err
	}
	c, err := Curves(rec)
	if err != nil {
		return nil, err
	}
	figs := []*Figure{m, c}
	if HasSubspace(rec) {
		s, err := Subspace(rec)
		if err != nil {
			return nil, err
		}
		figs = append(figs, s)
	}
	return figs, nil
}

// WriteRun writes the figures of [RunFigures] into dir in each format
// (nil: [Formats]) and returns the paths written.
func WriteRun(dir string, rec *results.Record, formats []string) ([]string, error) {
	figs, err := RunFigures(rec)
	if err != nil {
		return nil, err
	}
	return saveAll(dir, figs, formats)
}

// WriteSummary writes the [Summary] figure of recs into dir in each format
// (nil: [Formats]) and returns the paths written.
func WriteSummary(dir string, recs []*results.Record, formats []string) ([]string, error) {
	f, err := Summary(recs)
	if err != nil {
		return nil, err
	}
	return saveAll(dir, []*Figure{f}, formats)
}

func saveAll(dir string, figs []*Figure, formats []string) ([]string, error) {
	if formats == nil {
		formats = Formats
	}
	var paths []string
	for _, f := range figs {
		p, err := f.Save(dir, formats)
		paths = append(paths, p...)
		if err != nil {
			return paths, err
		}
	}
	return paths, nil
}

// label is the record's display label, as the tables show it.
func label(r *results.Record) string {
	if r.MethodLabel != "" {
		return r.MethodLabel
	}
	return r.Method
}

// runTitle names a run and what is drawn: "scenario, label, seed N: what".
func runTitle(what string, r *results.Record) string {
	s := fmt.Sprintf("seed %d: %s", r.Seed, what)
	if l := label(r); l != "" {
		s = l + ", " + s
	}
	if r.Scenario != "" {
		s = r.Scenario + ", " + s
	}
	return s
}

// finite reports whether v is neither NaN nor infinite.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// taskCount is the number of tasks a record has data for: the largest of
// the matrix's size and the curves' width.
func taskCount(r *results.Record) int {
	n := max(len(r.AccMatrix), r.AccMatrix.Cols())
	for _, c := range r.Curves {
		n = max(n, c.Task+1, len(c.Acc))
	}
	return n
}
