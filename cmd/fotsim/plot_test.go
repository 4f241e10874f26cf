package main

import (
	"bytes"
	"context"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// plotFilesIn lists the .png and .svg files under dir, relative to it.
func plotFilesIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if ext := filepath.Ext(p); !d.IsDir() && (ext == ".png" || ext == ".svg") {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var o, e bytes.Buffer
	code = exitCode(run(context.Background(), args, &o, &e), &e)
	return o.String(), e.String(), code
}

// sweepPlots are the plot files of a synthetic fedavg + fot sweep.
var sweepPlots = []string{
	"summary.png", "summary.svg",
	"synthetic-fedavg-s0/accuracy_matrix.png", "synthetic-fedavg-s0/accuracy_matrix.svg",
	"synthetic-fedavg-s0/curves.png", "synthetic-fedavg-s0/curves.svg",
	"synthetic-fot-s0/accuracy_matrix.png", "synthetic-fot-s0/accuracy_matrix.svg",
	"synthetic-fot-s0/curves.png", "synthetic-fot-s0/curves.svg",
	"synthetic-fot-s0/subspace.png", "synthetic-fot-s0/subspace.svg",
}

func TestRunWritesPlotsAndPlotRedrawsThem(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := runCLI(t, "run", "synthetic", "--quiet", "--out", dir, "--set", "methods=[fedavg,fot]"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, e)
	}
	if got := plotFilesIn(t, dir); !slices.Equal(got, sweepPlots) {
		t.Fatalf("run wrote plots\n%v\nwant\n%v", got, sweepPlots)
	}
	f, err := os.Open(filepath.Join(dir, "synthetic-fot-s0", "accuracy_matrix.png"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = png.Decode(f)
	f.Close()
	if err != nil {
		t.Errorf("accuracy_matrix.png: %v", err)
	}

	// fotsim plot on the sweep draws them all again.
	for _, p := range sweepPlots {
		if err := os.Remove(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	out, e, code := runCLI(t, "plot", dir)
	if code != 0 {
		t.Fatalf("plot: exit %d\n%s", code, e)
	}
	if got := plotFilesIn(t, dir); !slices.Equal(got, sweepPlots) {
		t.Errorf("plot wrote\n%v\nwant\n%v", got, sweepPlots)
	}
	if !strings.Contains(out, filepath.Join(dir, "summary")) || !strings.Contains(out, "subspace") {
		t.Errorf("plot names no files:\n%s", out)
	}

	// One run folder, SVG only, into --out.
	other := t.TempDir()
	if _, e, code := runCLI(t, "plot", "--format", "svg", "--out", other, filepath.Join(dir, "synthetic-fot-s0")); code != 0 {
		t.Fatalf("plot --out: exit %d\n%s", code, e)
	}
	want := []string{"accuracy_matrix.svg", "curves.svg", "subspace.svg"}
	if got := plotFilesIn(t, other); !slices.Equal(got, want) {
		t.Errorf("plot --out wrote %v, want %v", got, want)
	}

	// Several folders with --out: one sub-folder each.
	many := t.TempDir()
	a, b := filepath.Join(dir, "synthetic-fedavg-s0"), filepath.Join(dir, "synthetic-fot-s0")
	if _, e, code := runCLI(t, "plot", "--out", many, "--format", "png", a, b); code != 0 {
		t.Fatalf("plot of two folders: exit %d\n%s", code, e)
	}
	want = []string{
		"synthetic-fedavg-s0/accuracy_matrix.png", "synthetic-fedavg-s0/curves.png",
		"synthetic-fot-s0/accuracy_matrix.png", "synthetic-fot-s0/curves.png", "synthetic-fot-s0/subspace.png",
	}
	if got := plotFilesIn(t, many); !slices.Equal(got, want) {
		t.Errorf("plot of two folders wrote %v, want %v", got, want)
	}
}

func TestRunNoPlots(t *testing.T) {
	dir := t.TempDir()
	if _, e, code := runCLI(t, "run", "synthetic", "--quiet", "--no-plots", "--out", dir, "--set", "methods=[fedavg,fot]"); code != 0 {
		t.Fatalf("run: exit %d\n%s", code, e)
	}
	if got := plotFilesIn(t, dir); len(got) != 0 {
		t.Errorf("run --no-plots wrote %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "synthetic-fot-s0", "result.json")); err != nil {
		t.Errorf("run --no-plots wrote no record: %v", err)
	}
}

func TestPlotBadInput(t *testing.T) {
	empty := t.TempDir()
	missing := filepath.Join(empty, "nosuch")
	corrupt := t.TempDir()
	if err := os.WriteFile(filepath.Join(corrupt, "result.json"), []byte(`{"schema": "fotsim.result/v1", "acc_matrix": [[1,`), 0o644); err != nil {
		t.Fatal(err)
	}
	sweep := t.TempDir()
	if err := os.MkdirAll(filepath.Join(sweep, "run-a"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sweep, "run-a", "result.json"), []byte(`{"schema": "other/v9"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(empty, "file.txt")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"missing folder", []string{"plot", missing}, []string{missing, "no such folder"}},
		{"folder without records", []string{"plot", empty}, []string{empty, "no result.json"}},
		{"corrupt record", []string{"plot", corrupt}, []string{filepath.Join(corrupt, "result.json")}},
		{"bad schema in a sweep", []string{"plot", sweep}, []string{filepath.Join(sweep, "run-a", "result.json"), "schema"}},
		{"a file", []string{"plot", file}, []string{file, "not a folder"}},
		{"no folder", []string{"plot"}, []string{"at least one"}},
		{"bad format", []string{"plot", "--format", "gif", corrupt}, []string{`"gif"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, e, code := runCLI(t, tc.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2; stderr:\n%s", code, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(e, w) {
					t.Errorf("stderr lacks %q:\n%s", w, e)
				}
			}
			if strings.Contains(e, "goroutine ") || strings.Contains(e, "panic") {
				t.Errorf("stderr has a stack trace:\n%s", e)
			}
		})
	}
	// Nothing was written into the bad folders.
	for _, d := range []string{empty, corrupt, sweep} {
		if got := plotFilesIn(t, d); len(got) != 0 {
			t.Errorf("%s got plots %v", d, got)
		}
	}
}

func TestPlotInHelp(t *testing.T) {
	out, _, code := runCLI(t, "help")
	if code != 0 || !strings.Contains(out, "fotsim plot [flags] DIR...") {
		t.Errorf("help lacks the plot command:\n%s", out)
	}
	var o, e bytes.Buffer
	if err := run(context.Background(), []string{"plot", "--help"}, &o, &e); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"Usage: fotsim plot", "-format", "-out"} {
		if !strings.Contains(e.String(), w) {
			t.Errorf("plot --help lacks %q:\n%s", w, e.String())
		}
	}
}
