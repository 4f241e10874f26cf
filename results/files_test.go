package results

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const scenarioYAML = "name: pmnist-iid-small\nseed: 7\nmethods: [fot]\n"

func TestWriteAndRead(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "runs", "pmnist", "fot", "seed7")
	rec := sampleRecord()
	if err := Write(dir, rec, []byte(scenarioYAML)); err != nil {
		t.Fatalf("Write: %v", err)
	}
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("read %s: %v", name, err)
		}
		return b
	}
	golden(t, "result.json.golden", read(RecordFile))
	golden(t, "acc_matrix.csv.golden", read(MatrixFile))
	golden(t, "curves.csv.golden", read(CurvesFile))
	if got := string(read(ScenarioFile)); got != scenarioYAML {
		t.Errorf("scenario.yaml: got %q, want %q", got, scenarioYAML)
	}
	assertNoTempFiles(t, dir)

	back, err := ReadRecord(filepath.Join(dir, RecordFile))
	if err != nil {
		t.Fatalf("ReadRecord: %v", err)
	}
	var b1, b2 bytes.Buffer
	if err := WriteRecord(&b1, rec); err != nil {
		t.Fatal(err)
	}
	if err := WriteRecord(&b2, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b1.Bytes(), b2.Bytes()) {
		t.Errorf("ReadRecord(Write(rec)) differs from rec:\n%s\nvs\n%s", b2.Bytes(), b1.Bytes())
	}

	// Writing again replaces the files; a nil scenario leaves scenario.yaml alone.
	rec.Method = "fedavg"
	if err := Write(dir, rec, nil); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	back, err = ReadRecord(filepath.Join(dir, RecordFile))
	if err != nil {
		t.Fatalf("ReadRecord: %v", err)
	}
	if back.Method != "fedavg" {
		t.Errorf("method after rewrite: got %q, want %q", back.Method, "fedavg")
	}
	if got := string(read(ScenarioFile)); got != scenarioYAML {
		t.Errorf("scenario.yaml after nil rewrite: got %q, want %q", got, scenarioYAML)
	}
	info, err := os.Stat(filepath.Join(dir, RecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != filePerm {
		t.Errorf("result.json mode: got %v, want %v", got, fs.FileMode(filePerm))
	}
}

func TestWriteWithoutScenario(t *testing.T) {
	dir := t.TempDir()
	if err := Write(dir, &Record{Method: "fedavg"}, nil); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ScenarioFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scenario.yaml: got %v, want not exist", err)
	}
	for _, name := range []string{RecordFile, MatrixFile, CurvesFile} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestWriteFailureLeavesNoTrace makes the final rename of result.json fail
// (a non-empty directory sits at its name) and wants an error, no
// temporary file left behind and the obstacle untouched.
func TestWriteFailureLeavesNoTrace(t *testing.T) {
	dir := t.TempDir()
	obstacle := filepath.Join(dir, RecordFile)
	if err := os.MkdirAll(filepath.Join(obstacle, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := Write(dir, sampleRecord(), []byte(scenarioYAML))
	if err == nil {
		t.Fatal("Write over a directory named result.json: got no error")
	}
	if !strings.Contains(err.Error(), RecordFile) {
		t.Errorf("error %q does not name %s", err, RecordFile)
	}
	assertNoTempFiles(t, dir)
	if _, err := os.Stat(filepath.Join(obstacle, "keep")); err != nil {
		t.Errorf("obstacle disturbed: %v", err)
	}
}

func TestWriteNil(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "x")
	if err := Write(dir, nil, nil); !errors.Is(err, ErrNilRecord) {
		t.Errorf("got %v, want ErrNilRecord", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Write(nil) created the directory: %v", err)
	}
}

func TestReadRecordErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "v2.json")
	if err := os.WriteFile(bad, []byte(`{"schema":"fotsim.result/v2"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRecord(bad); !errors.Is(err, ErrSchema) || !strings.Contains(err.Error(), bad) {
		t.Errorf("wrong schema: got %v, want ErrSchema naming the file", err)
	}
	if _, err := ReadRecord(filepath.Join(dir, "missing.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: got %v, want fs.ErrNotExist", err)
	}
}

func TestMatrixCSV(t *testing.T) {
	tests := []struct {
		name  string
		m     Matrix
		tasks int
		want  string
	}{
		{"empty", nil, 0, "after_task\n"},
		{"declared tasks widen", Matrix{{50.5}}, 3, "after_task,task0,task1,task2\n0,50.5,,\n"},
		{"rows widen", Matrix{{1, 2}, {3, math.NaN()}}, 1, "after_task,task0,task1\n0,1,2\n1,3,\n"},
		{"exact values", Matrix{{100.0 / 3}}, 1, "after_task,task0\n0,33.333333333333336\n"},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := WriteMatrixCSV(&b, tc.m, tc.tasks); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := b.String(); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestCurvesCSV(t *testing.T) {
	var b bytes.Buffer
	curves := []Curve{{Round: 0, Task: 0, Acc: []float64{10}}, {Round: 5, Task: 1, Acc: []float64{math.NaN(), 20.25}}}
	if err := WriteCurvesCSV(&b, curves, 3); err != nil {
		t.Fatal(err)
	}
	want := "round,task,task0,task1,task2\n0,0,10,,\n5,1,,20.25,\n"
	if got := b.String(); got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func BenchmarkWrite(b *testing.B) {
	rec := sampleRecord()
	dir := b.TempDir()
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(dir, rec, []byte(scenarioYAML)); err != nil {
			b.Fatal(err)
		}
	}
}
