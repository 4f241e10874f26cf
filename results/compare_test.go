package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// compareRec is a two-task record: acc[0][0] = 90, acc[1] = {old, last}.
func compareRec(scenario, method, label string, seed uint64, old, last float64, bytesUp int64, wall float64) *Record {
	r := &Record{Schema: Schema, Scenario: scenario, Method: method, MethodLabel: label, Seed: seed, Tasks: 2,
		AccMatrix: Matrix{{90, math.NaN()}, {old, last}}, Rounds: 6, Clients: 4, ClientsPerRound: 2,
		BytesUp: bytesUp, BytesDown: 2048, WallSeconds: wall}
	r.FillMetrics()
	return r
}

// writeSweep writes recs into dir/<name>/ with the project's record writer
// and returns dir.
func writeSweep(t *testing.T, dir string, recs map[string]*Record) string {
	t.Helper()
	for name, r := range recs {
		if err := Write(filepath.Join(dir, name), r, nil); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// compareFixture is a sweep of two methods: fedavg over seeds 0, 1, 2 and
// FOT over seeds 0, 1, in sub-folders whose name order is not seed order.
//
//	method  seed  acc[1]     ACC  FGT  last  bytes up  wall
//	fedavg  0     {80, 80}   80   10   80    1000      1
//	fedavg  1     {82, 82}   82    8   82    1000      2
//	fedavg  2     {84, 84}   84    6   84    1000      3
//	fot     0     {88, 76}   82    2   76    2048     10
//	fot     1     {89, 77}   83    1   77    4096     20
//
// fedavg: ACC 82 +- 2, FGT 8 +- 2, last 82 +- 2, wall 2 +- 1.
// fot:    ACC 82.5 +- sqrt(0.5), FGT 1.5 +- sqrt(0.5), last 76.5 +- sqrt(0.5),
//
//	bytes up 3072 +- 2048/sqrt(2), wall 15 +- 10/sqrt(2).
func compareFixture(t *testing.T) string {
	return writeSweep(t, t.TempDir(), map[string]*Record{
		"c-fedavg": compareRec("toy", "fedavg", "", 0, 80, 80, 1000, 1),
		"b-fedavg": compareRec("toy", "fedavg", "", 1, 82, 82, 1000, 2),
		"a-fedavg": compareRec("toy", "fedavg", "", 2, 84, 84, 1000, 3),
		"d-fot-1":  compareRec("toy", "fot", "FOT (eps=0.9)", 1, 89, 77, 4096, 20),
		"e-fot-0":  compareRec("toy", "fot", "FOT (eps=0.9)", 0, 88, 76, 2048, 10),
	})
}

func loadCompare(t *testing.T, opt CompareOptions, paths ...string) *Comparison {
	t.Helper()
	runs, err := LoadRuns(paths...)
	if err != nil {
		t.Fatalf("LoadRuns: %v", err)
	}
	c, err := Compare(runs, opt)
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	return c
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCompareGroupsAndStats(t *testing.T) {
	dir := compareFixture(t)
	c := loadCompare(t, CompareOptions{}, dir)
	if c.Scenario != "toy" || len(c.Scenarios) != 1 {
		t.Fatalf("scenario %q %v", c.Scenario, c.Scenarios)
	}
	if len(c.Methods) != 2 {
		t.Fatalf("%d groups, want 2", len(c.Methods))
	}
	// Groups in order of first appearance: a-fedavg comes before d-fot-1.
	fa, fot := c.Methods[0], c.Methods[1]
	if fa.Label != "fedavg" || fa.Method != "fedavg" || fot.Label != "FOT (eps=0.9)" || fot.Method != "fot" {
		t.Fatalf("groups %q/%q, %q/%q", fa.Label, fa.Method, fot.Label, fot.Method)
	}
	if got := fa.Seeds; len(got) != 3 || got[0] != 0 || got[1] != 1 || got[2] != 2 {
		t.Errorf("fedavg seeds %v, want [0 1 2]", got)
	}
	if got := fot.Seeds; len(got) != 2 || got[0] != 0 || got[1] != 1 {
		t.Errorf("fot seeds %v, want [0 1]", got)
	}
	if want := filepath.Join(dir, "c-fedavg", RecordFile); fa.Files[0] != want {
		t.Errorf("fedavg seed 0 file %s, want %s", fa.Files[0], want)
	}
	r := math.Sqrt(0.5)
	want := map[string]map[string][2]float64{
		"fedavg": {"acc": {82, 2}, "finetune_acc": {82, 2}, "fgt": {8, 2}, "bwt": {-8, 2}, "max_fgt": {8, 2},
			"last_task_acc": {82, 2}, "rounds": {6, 0}, "bytes_up": {1000, 0}, "bytes_down": {2048, 0}, "wall_seconds": {2, 1}},
		"FOT (eps=0.9)": {"acc": {82.5, r}, "finetune_acc": {82.5, r}, "fgt": {1.5, r}, "bwt": {-1.5, r}, "max_fgt": {1.5, r},
			"last_task_acc": {76.5, r}, "rounds": {6, 0}, "bytes_up": {3072, 2048 * r}, "bytes_down": {2048, 0}, "wall_seconds": {15, 10 * r}},
	}
	bestWant := map[string][]string{
		"fedavg":        {"last_task_acc"},
		"FOT (eps=0.9)": {"acc", "finetune_acc", "fgt", "bwt", "max_fgt"},
	}
	for _, ms := range c.Methods {
		for i, m := range c.Metrics {
			s := ms.Stats[i]
			if m.Name == "eps_spent_max" {
				if s.N != 0 || !math.IsNaN(s.Mean) {
					t.Errorf("%s eps: %+v, want undefined", ms.Label, s)
				}
				continue
			}
			w, ok := want[ms.Label][m.Name]
			if !ok {
				t.Errorf("no expectation for %s %s", ms.Label, m.Name)
				continue
			}
			if !near(s.Mean, w[0]) || !near(s.Std, w[1]) || s.N != len(ms.Seeds) {
				t.Errorf("%s %s: mean %v std %v n %d, want %v +- %v", ms.Label, m.Name, s.Mean, s.Std, s.N, w[0], w[1])
			}
		}
		if got := strings.Join(ms.Best(c.Metrics), ","); got != strings.Join(bestWant[ms.Label], ",") {
			t.Errorf("%s best %s, want %v", ms.Label, got, bestWant[ms.Label])
		}
	}
}

// The text table's header says which direction is best, and the best cell
// of each column carries a "*".
const wantCompareTable = `Comparison of toy over seeds (mean +- sample std); * = best: highest ACC, BWT, last-task ACC; lowest FGT (final vs just-learnt), max-FGT (Chaudhry)
+---------------+---+-------+-----------------+----------------------------+-----------------+--------------------+-----------------+--------+--------------------+------------+---------------+
|    method     | n | seeds |       ACC       | FGT (final vs just-learnt) |       BWT       | max-FGT (Chaudhry) |  last-task ACC  | rounds |      bytes up      | bytes down |   wall time   |
+---------------+---+-------+-----------------+----------------------------+-----------------+--------------------+-----------------+--------+--------------------+------------+---------------+
| fedavg        | 3 | 0,1,2 |   82.00 +- 2.00 |               8.00 +- 2.00 |   -8.00 +- 2.00 |       8.00 +- 2.00 | 82.00 +- 2.00 * |      6 |             1000 B |    2.0 KiB |  2.0s +- 1.0s |
| FOT (eps=0.9) | 2 | 0,1   | 82.50 +- 0.71 * |             1.50 +- 0.71 * | -1.50 +- 0.71 * |     1.50 +- 0.71 * |   76.50 +- 0.71 |      6 | 3.0 KiB +- 1.4 KiB |    2.0 KiB | 15.0s +- 7.1s |
+---------------+---+-------+-----------------+----------------------------+-----------------+--------------------+-----------------+--------+--------------------+------------+---------------+
`

const wantCompareMarkdown = `Comparison of toy over seeds (mean +- sample std); * = best: highest ACC, BWT, last-task ACC; lowest FGT (final vs just-learnt), max-FGT (Chaudhry)

| method | n | seeds | ACC | FGT (final vs just-learnt) | BWT | max-FGT (Chaudhry) | last-task ACC | rounds | bytes up | bytes down | wall time |
| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
| fedavg | 3 | 0,1,2 | 82.00 +- 2.00 | 8.00 +- 2.00 | -8.00 +- 2.00 | 8.00 +- 2.00 | 82.00 +- 2.00 * | 6 | 1000 B | 2.0 KiB | 2.0s +- 1.0s |
| FOT (eps=0.9) | 2 | 0,1 | 82.50 +- 0.71 * | 1.50 +- 0.71 * | -1.50 +- 0.71 * | 1.50 +- 0.71 * | 76.50 +- 0.71 | 6 | 3.0 KiB +- 1.4 KiB | 2.0 KiB | 15.0s +- 7.1s |
`

const wantCompareCSV = `scenario,label,method,n,seeds,acc_mean,acc_std,acc_best,finetune_acc_mean,finetune_acc_std,finetune_acc_best,fgt_mean,fgt_std,fgt_best,bwt_mean,bwt_std,bwt_best,max_fgt_mean,max_fgt_std,max_fgt_best,last_task_acc_mean,last_task_acc_std,last_task_acc_best,rounds_mean,rounds_std,bytes_up_mean,bytes_up_std,bytes_down_mean,bytes_down_std,wall_seconds_mean,wall_seconds_std,eps_spent_max_mean,eps_spent_max_std
toy,fedavg,fedavg,3,0 1 2,82,2,false,82,2,false,8,2,false,-8,2,false,8,2,false,82,2,true,6,0,1000,0,2048,0,2,1,,
toy,FOT (eps=0.9),fot,2,0 1,82.5,0.7071067811865476,true,82.5,0.7071067811865476,true,1.5,0.7071067811865476,true,-1.5,0.7071067811865476,true,1.5,0.7071067811865476,true,76.5,0.7071067811865476,false,6,0,3072,1448.1546878700494,2048,0,15,7.0710678118654755,,
`

const wantCompareJSON = `{
  "schema": "fotsim.compare/v1",
  "scenario": "toy",
  "scenarios": ["toy"],
  "metrics": [
    {"name": "acc", "title": "ACC", "better": "higher"},
    {"name": "finetune_acc", "title": "ACC after pretrain", "better": "higher"},
    {"name": "fgt", "title": "FGT (final vs just-learnt)", "better": "lower"},
    {"name": "bwt", "title": "BWT", "better": "higher"},
    {"name": "max_fgt", "title": "max-FGT (Chaudhry)", "better": "lower"},
    {"name": "last_task_acc", "title": "last-task ACC", "better": "higher"},
    {"name": "rounds", "title": "rounds", "better": "none"},
    {"name": "bytes_up", "title": "bytes up", "better": "none"},
    {"name": "bytes_down", "title": "bytes down", "better": "none"},
    {"name": "wall_seconds", "title": "wall time", "better": "none"},
    {"name": "eps_spent_max", "title": "eps spent (max)", "better": "none"}
  ],
  "methods": [
    {"label": "fedavg", "method": "fedavg", "scenario": "toy", "seeds": [0, 1, 2], "n": 3, "files": ["DIR/c-fedavg/result.json", "DIR/b-fedavg/result.json", "DIR/a-fedavg/result.json"], "acc": {"mean": 82, "std": 2}, "finetune_acc": {"mean": 82, "std": 2}, "fgt": {"mean": 8, "std": 2}, "bwt": {"mean": -8, "std": 2}, "max_fgt": {"mean": 8, "std": 2}, "last_task_acc": {"mean": 82, "std": 2}, "rounds": {"mean": 6, "std": 0}, "bytes_up": {"mean": 1000, "std": 0}, "bytes_down": {"mean": 2048, "std": 0}, "wall_seconds": {"mean": 2, "std": 1}, "eps_spent_max": {"mean": null, "std": null}, "best": ["last_task_acc"]},
    {"label": "FOT (eps=0.9)", "method": "fot", "scenario": "toy", "seeds": [0, 1], "n": 2, "files": ["DIR/e-fot-0/result.json", "DIR/d-fot-1/result.json"], "acc": {"mean": 82.5, "std": 0.7071067811865476}, "finetune_acc": {"mean": 82.5, "std": 0.7071067811865476}, "fgt": {"mean": 1.5, "std": 0.7071067811865476}, "bwt": {"mean": -1.5, "std": 0.7071067811865476}, "max_fgt": {"mean": 1.5, "std": 0.7071067811865476}, "last_task_acc": {"mean": 76.5, "std": 0.7071067811865476}, "rounds": {"mean": 6, "std": 0}, "bytes_up": {"mean": 3072, "std": 1448.1546878700494}, "bytes_down": {"mean": 2048, "std": 0}, "wall_seconds": {"mean": 15, "std": 7.0710678118654755}, "eps_spent_max": {"mean": null, "std": null}, "best": ["acc", "finetune_acc", "fgt", "bwt", "max_fgt"]}
  ]
}
`

func TestCompareFormats(t *testing.T) {
	dir := compareFixture(t)
	c := loadCompare(t, CompareOptions{}, dir)
	for _, tc := range []struct{ format, want string }{
		{"table", wantCompareTable},
		{"markdown", wantCompareMarkdown},
		{"csv", wantCompareCSV},
		{"json", wantCompareJSON},
	} {
		var b bytes.Buffer
		if err := c.Write(&b, tc.format); err != nil {
			t.Fatalf("%s: %v", tc.format, err)
		}
		got := strings.ReplaceAll(b.String(), dir, "DIR")
		if got != tc.want {
			t.Errorf("%s output:\n%s\nwant:\n%s", tc.format, got, tc.want)
		}
	}
	var b bytes.Buffer
	if err := c.Write(&b, "xml"); !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), `"xml"`) {
		t.Errorf("unknown format: %v", err)
	}
}

// The JSON output parses back into its documented structure.
func TestCompareJSONStructure(t *testing.T) {
	c := loadCompare(t, CompareOptions{}, compareFixture(t))
	var b bytes.Buffer
	if err := c.WriteJSON(&b); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Schema   string           `json:"schema"`
		Scenario string           `json:"scenario"`
		Metrics  []map[string]any `json:"metrics"`
		Methods  []map[string]any `json:"methods"`
	}
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if doc.Schema != CompareSchema || doc.Scenario != "toy" || len(doc.Metrics) != len(CompareMetrics()) || len(doc.Methods) != 2 {
		t.Fatalf("document %+v", doc)
	}
	fot := doc.Methods[1]
	if fot["label"] != "FOT (eps=0.9)" || fot["n"] != 2.0 {
		t.Errorf("fot: %v", fot)
	}
	if acc := fot["acc"].(map[string]any); acc["mean"] != 82.5 {
		t.Errorf("fot acc %v", acc)
	}
	if eps := fot["eps_spent_max"].(map[string]any); eps["mean"] != nil {
		t.Errorf("fot eps %v, want null", eps)
	}
}

func TestCompareBestMarking(t *testing.T) {
	run := func(label string, seed uint64, old, last float64) Run {
		return Run{Path: label + ".json", Record: compareRec("toy", label, "", seed, old, last, 0, 1)}
	}
	// A tie marks both groups; NaN is never best.
	c, err := Compare([]Run{run("a", 0, 80, 80), run("b", 0, 80, 80), run("c", 0, math.NaN(), 99)}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"acc,finetune_acc,fgt,bwt,max_fgt", "acc,finetune_acc,fgt,bwt,max_fgt", "last_task_acc"} {
		if got := strings.Join(c.Methods[i].Best(c.Metrics), ","); got != want {
			t.Errorf("group %d best %s, want %s", i, got, want)
		}
	}
	// One group: nothing to compare, nothing marked.
	c, err = Compare([]Run{run("a", 0, 80, 80), run("a", 1, 70, 80)}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Methods[0].Best(c.Metrics); len(got) != 0 {
		t.Errorf("single group marked best at %v", got)
	}
}

func TestLoadRunsPaths(t *testing.T) {
	dir := compareFixture(t)
	// A folder holding a result.json is one run; a record file is one run;
	// the same record reached twice is read once.
	one := filepath.Join(dir, "e-fot-0")
	runs, err := LoadRuns(one, filepath.Join(dir, "d-fot-1", RecordFile), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 || runs[0].Path != filepath.Join(one, RecordFile) || runs[0].Record.Seed != 0 {
		t.Errorf("got %d runs, first %s", len(runs), runs[0].Path)
	}
	// Sub-folders without a record (a run in progress) are skipped.
	if err := os.Mkdir(filepath.Join(dir, "f-running"), 0o755); err != nil {
		t.Fatal(err)
	}
	if runs, err := LoadRuns(dir); err != nil || len(runs) != 5 {
		t.Errorf("with an unfinished run: %d runs, %v", len(runs), err)
	}
}

func TestCompareErrors(t *testing.T) {
	dir := compareFixture(t)
	missing := filepath.Join(dir, "nosuch")
	empty := t.TempDir()
	if err := os.Mkdir(filepath.Join(empty, "unfinished"), 0o755); err != nil {
		t.Fatal(err)
	}
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, "r1"), 0o755); err != nil {
		t.Fatal(err)
	}
	corruptFile := filepath.Join(corrupt, "r1", RecordFile)
	if err := os.WriteFile(corruptFile, []byte(`{"schema": "fotsim.result/v1", "acc": `), 0o644); err != nil {
		t.Fatal(err)
	}
	oldSchema := filepath.Join(t.TempDir(), RecordFile)
	if err := os.WriteFile(oldSchema, []byte(`{"schema": "fotsim.result/v0"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		paths []string
		is    error
		want  []string
	}{
		{"missing folder", []string{dir, missing}, fs.ErrNotExist, []string{missing, "no such folder"}},
		{"empty folder", []string{empty}, ErrNoRuns, []string{empty, "no run records", RecordFile}},
		{"corrupt record", []string{corrupt}, nil, []string{corruptFile, "decode record"}},
		{"other schema", []string{oldSchema}, ErrSchema, []string{oldSchema, "fotsim.result/v0"}},
		{"no paths", nil, ErrNoRuns, []string{"no folder given"}},
	} {
		_, err := LoadRuns(tc.paths...)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if tc.is != nil && !errors.Is(err, tc.is) {
			t.Errorf("%s: %v is not %v", tc.name, err, tc.is)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %q lacks %q", tc.name, err, w)
			}
		}
	}

	// Mixed scenarios name both scenarios and files, unless allowed.
	other := writeSweep(t, t.TempDir(), map[string]*Record{"x": compareRec("toy2", "fedavg", "", 0, 70, 90, 1, 1)})
	runs, err := LoadRuns(dir, other)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compare(runs, CompareOptions{})
	if !errors.Is(err, ErrMixedScenarios) {
		t.Fatalf("mixed: %v", err)
	}
	for _, w := range []string{`"toy"`, `"toy2"`, filepath.Join(dir, "a-fedavg", RecordFile), filepath.Join(other, "x", RecordFile)} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("mixed: %q lacks %q", err, w)
		}
	}
	c, err := Compare(runs, CompareOptions{AllowMixed: true})
	if err != nil {
		t.Fatalf("allow mixed: %v", err)
	}
	if c.Scenario != "" || len(c.Scenarios) != 2 || len(c.Methods) != 3 || c.Methods[2].Scenario != "toy2" {
		t.Errorf("allow mixed: %q %v, %d groups", c.Scenario, c.Scenarios, len(c.Methods))
	}
	// The best is marked within each scenario: toy2's only group is not compared.
	if got := c.Methods[2].Best(c.Metrics); len(got) != 0 {
		t.Errorf("lone toy2 group marked best at %v", got)
	}
	var b bytes.Buffer
	if err := c.WriteTable(&b); err != nil || !strings.Contains(b.String(), "| scenario ") || !strings.Contains(b.String(), "toy, toy2") {
		t.Errorf("mixed table (%v):\n%s", err, b.String())
	}

	// The same method and seed twice names both files.
	dup := writeSweep(t, t.TempDir(), map[string]*Record{"again": compareRec("toy", "fedavg", "", 1, 80, 80, 1, 1)})
	runs, err = LoadRuns(dir, dup)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compare(runs, CompareOptions{})
	if !errors.Is(err, ErrDuplicateRun) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, w := range []string{filepath.Join(dir, "b-fedavg", RecordFile), filepath.Join(dup, "again", RecordFile), "fedavg seed 1"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("duplicate: %q lacks %q", err, w)
		}
	}

	if _, err := Compare(nil, CompareOptions{}); !errors.Is(err, ErrNoRuns) {
		t.Errorf("no runs: %v", err)
	}
	if _, err := Compare([]Run{{Path: "x.json"}}, CompareOptions{}); !errors.Is(err, ErrNilRecord) || !strings.Contains(err.Error(), "x.json") {
		t.Errorf("nil record: %v", err)
	}
}

// DP and pretraining add their columns to the text tables; a group
// without DP shows "-".
func TestCompareDPColumn(t *testing.T) {
	a := compareRec("toy", "fedavg", "", 0, 80, 80, 1, 1)
	b := compareRec("toy", "dpsgd", "", 0, 70, 70, 1, 1)
	b.DP = &DP{EpsilonSpentMax: 5.5}
	c, err := Compare([]Run{{"a", a}, {"b", b}}, CompareOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := c.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{headEps, "|               - |", "|            5.50 |"} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, buf.String())
		}
	}
	if strings.Contains(buf.String(), headFTACC) {
		t.Errorf("pretrain column without pretraining:\n%s", buf.String())
	}
}
