package plots

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gonum.org/v1/plot/vg/draw"

	"github.com/fotsim/fotsim/results"
)

var nan = math.NaN()

// fotRecord is a 3-task FOT run with curves and subspace details.
func fotRecord(seed uint64) *results.Record {
	r := &results.Record{
		Scenario: "pmnist-small", Method: "fot", MethodLabel: "FOT (eps=0.96)", Seed: seed,
		Tasks: 3, Rounds: 9,
		AccMatrix: results.Matrix{
			{97.5, nan, nan},
			{90, 96, nan},
			{85.25, 91, 95.5 - float64(seed)},
		},
		Curves: []results.Curve{
			{Round: 1, Task: 0, Acc: []float64{60}},
			{Round: 2, Task: 0, Acc: []float64{90}},
			{Round: 3, Task: 0, Acc: []float64{97.5}},
			{Round: 4, Task: 1, Acc: []float64{95, 50}},
			{Round: 5, Task: 1, Acc: []float64{93, nan}},
			{Round: 6, Task: 1, Acc: []float64{90, 96}},
			{Round: 7, Task: 2, Acc: []float64{88, 94, 40}},
			{Round: 8, Task: 2, Acc: []float64{86, 92, 80}},
			{Round: 9, Task: 2, Acc: []float64{85.25, 91, 95.5}},
		},
		TasksDetail: []results.TaskDetail{
			{Task: 0, Rounds: 3, BasisDims: map[string]int{"fc0.weight": 40, "fc1.weight": 20, "head.weight": 5},
				BasisCapacity:     map[string]int{"fc0.weight": 784, "fc1.weight": 100, "head.weight": 100},
				ProjectedFraction: map[string]float64{"fc0.weight": 0, "fc1.weight": 0, "head.weight": 0}},
			{Task: 1, Rounds: 3, BasisDims: map[string]int{"fc0.weight": 90, "fc1.weight": 45, "head.weight": 9},
				BasisCapacity:     map[string]int{"fc0.weight": 784, "fc1.weight": 100, "head.weight": 100},
				ProjectedFraction: map[string]float64{"fc0.weight": 0.4, "fc1.weight": 0.55, "head.weight": nan}},
			{Task: 2, Rounds: 3, BasisDims: map[string]int{"fc0.weight": 150, "fc1.weight": 70, "head.weight": 12},
				BasisCapacity:     map[string]int{"fc0.weight": 784, "fc1.weight": 100, "head.weight": 100},
				ProjectedFraction: map[string]float64{"fc0.weight": 0.6, "fc1.weight": 0.8, "head.weight": 0.3}},
		},
	}
	r.FillMetrics()
	return r
}

// fedavgRecord is a 3-task FedAvg run without curves or subspace details.
func fedavgRecord(seed uint64) *results.Record {
	r := &results.Record{
		Scenario: "pmnist-small", Method: "fedavg", Seed: seed, Tasks: 3, Rounds: 9,
		AccMatrix: results.Matrix{
			{97, nan, nan},
			{70, 96.5, nan},
			{50 + float64(seed), 75, 96},
		},
		TasksDetail: []results.TaskDetail{{Task: 0, Rounds: 3}, {Task: 1, Rounds: 3}, {Task: 2, Rounds: 3}},
	}
	r.FillMetrics()
	return r
}

func render(t *testing.T, f *Figure, format string) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := f.Render(&b, format); err != nil {
		t.Fatalf("%s.%s: %v", f.Name, format, err)
	}
	return b.Bytes()
}

// checkPNG decodes a PNG and checks its size against the figure's.
func checkPNG(t *testing.T, f *Figure, data []byte) {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s.png: %v", f.Name, err)
	}
	w, h := f.PixelSize()
	if b := img.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Errorf("%s.png is %dx%d, want %dx%d", f.Name, b.Dx(), b.Dy(), w, h)
	}
	if w < 300 || h < 300 {
		t.Errorf("%s.png is only %dx%d", f.Name, w, h)
	}
}

// checkSVG parses an SVG as XML and checks that its text holds every want.
func checkSVG(t *testing.T, f *Figure, data []byte, want ...string) {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(data))
	var text strings.Builder
	root := ""
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s.svg is not well-formed XML: %v", f.Name, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
		case xml.CharData:
			text.Write(tok)
			text.WriteByte('\n')
		}
	}
	if root != "svg" {
		t.Errorf("%s.svg: root element %q", f.Name, root)
	}
	for _, w := range want {
		if !strings.Contains(text.String(), w) {
			t.Errorf("%s.svg lacks the text %q", f.Name, w)
		}
	}
}

func TestRunFiguresRender(t *testing.T) {
	rec := fotRecord(0)
	figs, err := RunFigures(rec)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range figs {
		names = append(names, f.Name)
	}
	if want := []string{MatrixName, CurvesName, SubspaceName}; !slices.Equal(names, want) {
		t.Fatalf("figures %v, want %v", names, want)
	}
	want := map[string][]string{
		MatrixName:   {"FOT (eps=0.96)", "pmnist-small", "accuracy (%)", "97.5", "85.2", "91.0", "after learning task i"},
		CurvesName:   {"FOT (eps=0.96)", "accuracy during training", "task 0", "task 2", "task boundary", "rounds"},
		SubspaceName: {"FOT (eps=0.96)", "FOT subspaces", "fc0.weight (d_in 784)", "head.weight (d_in 100)", "update removed by the projection"},
	}
	for _, f := range figs {
		checkPNG(t, f, render(t, f, PNG))
		checkSVG(t, f, render(t, f, SVG), want[f.Name]...)
	}
	// The matrix's upper triangle is blank: no "n/a" for it.
	var b bytes.Buffer
	if err := figs[0].Render(&b, SVG); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "n/a") {
		t.Error("accuracy matrix annotates the upper triangle")
	}
}

func TestFigureSizes(t *testing.T) {
	rec := fotRecord(0)
	c, err := Curves(rec)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := c.PixelSize(); w != 850 || h != 450 {
		t.Errorf("curves %dx%d px, want 850x450", w, h)
	}
	m, err := AccuracyMatrix(rec)
	if err != nil {
		t.Fatal(err)
	}
	if w, h := m.PixelSize(); w < 450 || h < 450 || w > 1200 || h > 1200 {
		t.Errorf("accuracy matrix %dx%d px", w, h)
	}
	// A bigger matrix gives a bigger figure.
	big := &results.Record{AccMatrix: results.NewMatrix(12)}
	for i := range 12 {
		for j := 0; j <= i; j++ {
			big.AccMatrix[i][j] = float64(50 + i + j)
		}
	}
	mb, err := AccuracyMatrix(big)
	if err != nil {
		t.Fatal(err)
	}
	if wb, _ := mb.PixelSize(); wb <= 450 {
		t.Errorf("12-task matrix is %d px wide", wb)
	}
	checkPNG(t, mb, render(t, mb, PNG))
}

func TestWriteRunAndSummaryFiles(t *testing.T) {
	dir := t.TempDir()
	paths, err := WriteRun(dir, fotRecord(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range paths {
		if filepath.Dir(p) != dir {
			t.Errorf("%s written outside %s", p, dir)
		}
		got = append(got, filepath.Base(p))
	}
	want := []string{"accuracy_matrix.png", "accuracy_matrix.svg", "curves.png", "curves.svg", "subspace.png", "subspace.svg"}
	if !slices.Equal(got, want) {
		t.Errorf("wrote %v, want %v", got, want)
	}
	for _, name := range want {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(data) == 0 {
			t.Errorf("%s: %v (%d bytes)", name, err, len(data))
		}
	}

	// FedAvg: no subspace, SVG only.
	dir2 := t.TempDir()
	paths, err = WriteRun(dir2, fedavgRecord(0), []string{SVG})
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 {
		t.Errorf("fedavg wrote %v", paths)
	}
	if _, err := os.Stat(filepath.Join(dir2, "subspace.svg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fedavg has a subspace plot: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "curves.png")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("png written though only svg asked: %v", err)
	}

	recs := []*results.Record{fedavgRecord(0), fedavgRecord(1), fedavgRecord(2), fotRecord(0), fotRecord(1), fotRecord(2)}
	paths, err = WriteSummary(dir, recs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 2 || filepath.Base(paths[0]) != "summary.png" || filepath.Base(paths[1]) != "summary.svg" {
		t.Errorf("summary wrote %v", paths)
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("left %s", e.Name())
		}
	}
}

func TestSummary(t *testing.T) {
	recs := []*results.Record{fedavgRecord(0), fotRecord(0), fedavgRecord(1), fotRecord(1), fedavgRecord(2), fotRecord(2)}
	f, err := Summary(recs)
	if err != nil {
		t.Fatal(err)
	}
	checkPNG(t, f, render(t, f, PNG))
	// Groups in order of first appearance, by label (Method when empty).
	checkSVG(t, f, render(t, f, SVG), "fedavg", "FOT (eps=0.96)", "pmnist-small", "3 seeds", "ACC (%)", "FGT", "±")
	groups, err := groupRecords(recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || groups[0].label != "fedavg" || groups[1].label != "FOT (eps=0.96)" || len(groups[1].acc) != 3 {
		t.Errorf("groups %+v", groups)
	}
	// The annotation is mean ± sample std, as the comparison table has it.
	mean, std := results.MeanStd(groups[0].acc)
	want := fmtPct(mean, 1) + " ± " + fmtPct(std, 1)
	checkSVG(t, f, render(t, f, SVG), want)

	// Records of two scenarios are told apart.
	other := fedavgRecord(0)
	other.Scenario = "other"
	g2, err := groupRecords([]*results.Record{fedavgRecord(0), other})
	if err != nil {
		t.Fatal(err)
	}
	if len(g2) != 2 || g2[0].label != "pmnist-small: fedavg" || g2[1].label != "other: fedavg" {
		t.Errorf("groups of two scenarios: %+v", g2)
	}
}

func TestDeterministic(t *testing.T) {
	build := func() []*Figure {
		figs, err := RunFigures(fotRecord(1))
		if err != nil {
			t.Fatal(err)
		}
		s, err := Summary([]*results.Record{fedavgRecord(0), fotRecord(0), fedavgRecord(1), fotRecord(1)})
		if err != nil {
			t.Fatal(err)
		}
		return append(figs, s)
	}
	a, b := build(), build()
	for i := range a {
		for _, format := range Formats {
			x, y := render(t, a[i], format), render(t, b[i], format)
			if !bytes.Equal(x, y) {
				t.Errorf("%s.%s differs between two renders of the same record", a[i].Name, format)
			}
			// The same figure rendered twice gives the same bytes too.
			if z := render(t, a[i], format); !bytes.Equal(x, z) {
				t.Errorf("%s.%s differs when rendered again", a[i].Name, format)
			}
		}
	}
	// Files written twice are identical.
	d1, d2 := t.TempDir(), t.TempDir()
	for _, d := range []string{d1, d2} {
		if _, err := WriteRun(d, fotRecord(2), nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"accuracy_matrix.png", "curves.svg", "subspace.png"} {
		x, _ := os.ReadFile(filepath.Join(d1, name))
		y, _ := os.ReadFile(filepath.Join(d2, name))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two writes", name)
		}
	}
}

func TestSubspaceOnlyWithDetails(t *testing.T) {
	rec := fedavgRecord(0)
	if HasSubspace(rec) {
		t.Fatal("fedavg record has subspace details")
	}
	if _, err := Subspace(rec); !errors.Is(err, ErrNoSubspace) {
		t.Errorf("Subspace of a fedavg record: %v, want ErrNoSubspace", err)
	}
	figs, err := RunFigures(rec)
	if err != nil {
		t.Fatal(err)
	}
	if len(figs) != 2 {
		t.Errorf("%d figures for a record without subspace details", len(figs))
	}
	// Without capacities the dimension itself is drawn.
	fot := fotRecord(0)
	for i := range fot.TasksDetail {
		fot.TasksDetail[i].BasisCapacity = nil
	}
	f, err := Subspace(fot)
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, f, render(t, f, SVG), "basis dimension k", "fc1.weight")
}

// The matrix fallback of Curves: no curves in the record.
func TestCurvesFromMatrix(t *testing.T) {
	f, err := Curves(fedavgRecord(0))
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, f, render(t, f, SVG), "accuracy at the end of each task", "task 2", "task boundary", "rounds")
	ends, inRounds := taskEnds(fedavgRecord(0), 3)
	if !inRounds || !slices.Equal(ends, []float64{3, 6, 9}) {
		t.Errorf("task ends %v (in rounds %v), want [3 6 9]", ends, inRounds)
	}
	// Neither details nor rounds: tasks learnt.
	r := &results.Record{AccMatrix: results.Matrix{{50, nan}, {40, 60}}}
	f, err = Curves(r)
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, f, render(t, f, SVG), "tasks learnt")
}

// Degenerate records render without panicking.
func TestDegenerateRecords(t *testing.T) {
	oneTask := &results.Record{Method: "fedavg", Tasks: 1, Rounds: 2, AccMatrix: results.Matrix{{88}}}
	oneTask.FillMetrics()
	allNaN := &results.Record{Method: "fot", Tasks: 2, AccMatrix: results.NewMatrix(2),
		Curves:      []results.Curve{{Round: 1, Task: 0, Acc: []float64{nan}}, {Round: 2, Task: 1, Acc: []float64{nan, nan}}},
		TasksDetail: []results.TaskDetail{{Task: 0, Rounds: 1, BasisDims: map[string]int{"fc0.weight": 0}, ProjectedFraction: map[string]float64{"fc0.weight": nan}}}}
	allNaN.FillMetrics()
	infs := &results.Record{Method: "x", Tasks: 2, AccMatrix: results.Matrix{{math.Inf(1), nan}, {-5, 120}},
		Curves: []results.Curve{{Round: 3, Task: 0, Acc: nil}, {Round: 1, Task: 0, Acc: []float64{math.Inf(-1)}}}}
	infs.FillMetrics()
	golden, err := results.ReadRecord("../results/testdata/result.json.golden")
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]*results.Record{
		"empty":    {},
		"one task": oneTask,
		"all NaN":  allNaN,
		"inf":      infs,
		"golden":   golden,
		"perfect":  {Method: "fedavg", Tasks: 2, AccMatrix: results.Matrix{{100, nan}, {100, 100}}},
		"over 100": {Method: "fedavg", Tasks: 2, AccMatrix: results.Matrix{{150, nan}, {200, 300}}},
	}
	for name, rec := range cases {
		t.Run(name, func(t *testing.T) {
			figs, err := RunFigures(rec)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range figs {
				checkPNG(t, f, render(t, f, PNG))
				checkSVG(t, f, render(t, f, SVG))
			}
			s, err := Summary([]*results.Record{rec, rec})
			if err != nil {
				t.Fatal(err)
			}
			checkPNG(t, s, render(t, s, PNG))
			checkSVG(t, s, render(t, s, SVG))
		})
	}
	// NaN ACC: "n/a" instead of a bar.
	s, err := Summary([]*results.Record{allNaN})
	if err != nil {
		t.Fatal(err)
	}
	checkSVG(t, s, render(t, s, SVG), "n/a")
}

func TestBadInput(t *testing.T) {
	if _, err := AccuracyMatrix(nil); !errors.Is(err, results.ErrNilRecord) {
		t.Errorf("AccuracyMatrix(nil): %v", err)
	}
	if _, err := Curves(nil); !errors.Is(err, results.ErrNilRecord) {
		t.Errorf("Curves(nil): %v", err)
	}
	if _, err := Subspace(nil); !errors.Is(err, results.ErrNilRecord) {
		t.Errorf("Subspace(nil): %v", err)
	}
	if _, err := Summary(nil); err == nil {
		t.Error("Summary of no records succeeded")
	}
	if _, err := Summary([]*results.Record{fotRecord(0), nil}); !errors.Is(err, results.ErrNilRecord) {
		t.Errorf("Summary with a nil record: %v", err)
	}
	f, err := Curves(fotRecord(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Render(io.Discard, "gif"); err == nil {
		t.Error("rendered an unknown format")
	}
	if err := (&Figure{Name: "x"}).Render(io.Discard, PNG); err == nil {
		t.Error("rendered an empty figure")
	}
	// A figure that panics while drawing returns an error.
	boom := &Figure{Name: "boom", Width: f.Width, Height: f.Height, draw: func(draw.Canvas) { panic("boom") }}
	if err := boom.Render(io.Discard, SVG); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("panicking figure: %v", err)
	}
	// A folder that cannot be created is an error.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Save(filepath.Join(file, "sub"), Formats); err == nil {
		t.Error("saved into a path below a file")
	}
}

func TestParseFormats(t *testing.T) {
	for in, want := range map[string][]string{
		"png,svg": {"png", "svg"}, "svg": {"svg"}, " SVG , png,svg ": {"svg", "png"},
	} {
		got, err := ParseFormats(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("ParseFormats(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", ",", "pdf", "png,jpg"} {
		if _, err := ParseFormats(in); err == nil {
			t.Errorf("ParseFormats(%q) succeeded", in)
		}
	}
}

func TestNaturalCompare(t *testing.T) {
	xs := []string{"fc10.weight", "head.weight", "fc2.weight", "conv1.weight", "fc0.weight"}
	slices.SortFunc(xs, naturalCompare)
	want := []string{"conv1.weight", "fc0.weight", "fc2.weight", "fc10.weight", "head.weight"}
	if !slices.Equal(xs, want) {
		t.Errorf("sorted %v, want %v", xs, want)
	}
}
