package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sweep runs the synthetic scenario for fedavg and fot over seeds 0 and 1
// into a fresh folder, with extra --set overrides, and returns the folder.
func sweep(t *testing.T, sets ...string) string {
	t.Helper()
	out := t.TempDir()
	args := []string{"run", "synthetic", "--quiet", "--out", out, "--set", "seeds=[0,1]", "--set", "methods=[fedavg,fot]"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	return out
}

func TestCompareSweep(t *testing.T) {
	dir := sweep(t)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"compare", "--format", "json", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("compare: %v\n%s", err, stderr.String())
	}
	var doc struct {
		Schema   string `json:"schema"`
		Scenario string `json:"scenario"`
		Metrics  []struct {
			Name, Better string
		} `json:"metrics"`
		Methods []struct {
			Label string   `json:"label"`
			Seeds []uint64 `json:"seeds"`
			N     int      `json:"n"`
			Files []string `json:"files"`
			ACC   struct {
				Mean, Std *float64
			} `json:"acc"`
			Best []string `json:"best"`
		} `json:"methods"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &doc); err != nil {
		t.Fatalf("json output does not parse: %v\n%s", err, stdout.String())
	}
	if doc.Schema != "fotsim.compare/v1" || doc.Scenario != "synthetic" || len(doc.Methods) != 2 {
		t.Fatalf("document: %+v", doc)
	}
	if doc.Metrics[0].Name != "acc" || doc.Metrics[0].Better != "higher" {
		t.Errorf("first metric %+v", doc.Metrics[0])
	}
	best := 0
	for i, m := range doc.Methods {
		if m.Label != []string{"fedavg", "fot"}[i] || m.N != 2 || len(m.Seeds) != 2 || m.Seeds[0] != 0 || m.Seeds[1] != 1 {
			t.Errorf("method %d: %+v", i, m)
		}
		if len(m.Files) != 2 || !strings.HasPrefix(m.Files[0], dir) {
			t.Errorf("%s files %v", m.Label, m.Files)
		}
		if m.ACC.Mean == nil || m.ACC.Std == nil || *m.ACC.Mean <= 0 {
			t.Errorf("%s acc %+v", m.Label, m.ACC)
		}
		for _, b := range m.Best {
			if b == "acc" {
				best++
			}
		}
	}
	if best == 0 {
		t.Errorf("no method marked best at acc:\n%s", stdout.String())
	}

	// The default table marks the best and says which way is best; every
	// format works on the same folder.
	for _, f := range []struct{ format, want string }{
		{"table", "| method | n | seeds |"},
		{"markdown", "| --- | ---: | --- |"},
		{"csv", "scenario,label,method,n,seeds,acc_mean,acc_std,acc_best"},
	} {
		stdout.Reset()
		if err := run(context.Background(), []string{"compare", dir, "--format", f.format}, &stdout, &stderr); err != nil {
			t.Fatalf("%s: %v", f.format, err)
		}
		if !strings.Contains(stdout.String(), f.want) {
			t.Errorf("%s output lacks %q:\n%s", f.format, f.want, stdout.String())
		}
		if f.format != "csv" && (!strings.Contains(stdout.String(), " *") || !strings.Contains(stdout.String(), "highest ACC")) {
			t.Errorf("%s output marks no best:\n%s", f.format, stdout.String())
		}
	}

	// Single run folders (one result.json each) compare too.
	stdout.Reset()
	if err := run(context.Background(), []string{"compare", filepath.Join(dir, "synthetic-fot-s0"), filepath.Join(dir, "synthetic-fot-s1")}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "| fot    | 2 | 0,1   |") {
		t.Errorf("two single runs:\n%s", stdout.String())
	}

	// --help prints the usage and exits cleanly.
	stderr.Reset()
	if err := run(context.Background(), []string{"compare", "--help"}, &stdout, &stderr); err != nil || !strings.Contains(stderr.String(), "Usage: fotsim compare") {
		t.Errorf("compare --help: %v\n%s", err, stderr.String())
	}
	stdout.Reset()
	if err := run(context.Background(), []string{"help"}, &stdout, &stderr); err != nil || !strings.Contains(stdout.String(), "fotsim compare [flags] DIR...") {
		t.Errorf("help lacks compare: %v\n%s", err, stdout.String())
	}
}

// Bad input to compare exits 2 with one line naming the problem and the
// path, never a panic.
func TestCompareBadInputExitsTwo(t *testing.T) {
	dir := sweep(t)
	other := sweep(t, "name=other")
	empty := t.TempDir()
	corrupt := t.TempDir()
	if err := os.MkdirAll(filepath.Join(corrupt, "r"), 0o755); err != nil {
		t.Fatal(err)
	}
	corruptFile := filepath.Join(corrupt, "r", "result.json")
	if err := os.WriteFile(corruptFile, []byte("{\"schema\": \"fotsim.result/v1\",\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(empty, "nosuch")
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"unknown folder", []string{"compare", dir, missing}, []string{missing, "no such folder"}},
		{"empty folder", []string{"compare", empty}, []string{empty, "no run records"}},
		{"mixed scenarios", []string{"compare", dir, other}, []string{`"synthetic"`, `"other"`, filepath.Join(other, "other-fedavg-s0", "result.json"), "--allow-mixed"}},
		{"corrupt record", []string{"compare", corrupt}, []string{corruptFile, "decode record"}},
		{"unknown flag", []string{"compare", "--frob", dir}, []string{"frob"}},
		{"unknown format", []string{"compare", "--format", "xml", dir}, []string{`unknown --format "xml"`}},
		{"no folder", []string{"compare"}, []string{"at least one run folder"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := exitCode(run(context.Background(), tc.args, &out, &errb), &errb)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, errb.String())
			}
			msg := errb.String()
			if i := strings.LastIndex(strings.TrimSuffix(msg, "\n"), "\n"); i >= 0 {
				msg = msg[i+1:] // the usage text may come first
			}
			if !strings.HasPrefix(msg, "fotsim: ") || strings.Count(msg, "\n") != 1 {
				t.Errorf("want one error line, got:\n%s", errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if strings.Contains(errb.String(), "goroutine ") || strings.Contains(errb.String(), "panic") {
				t.Errorf("stack trace:\n%s", errb.String())
			}
		})
	}

	// --allow-mixed compares both scenarios, one row per scenario and method.
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"compare", "--allow-mixed", dir, other}, &out, &errb); err != nil {
		t.Fatalf("--allow-mixed: %v", err)
	}
	if !strings.Contains(out.String(), "| scenario ") || strings.Count(out.String(), "| fot ") != 2 {
		t.Errorf("--allow-mixed:\n%s", out.String())
	}

	// The same method and seed twice (a copied run folder) names both files.
	dup := t.TempDir()
	b, err := os.ReadFile(filepath.Join(dir, "synthetic-fot-s1", "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dup, "result.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	code := exitCode(run(context.Background(), []string{"compare", dir, dup}, &out, &errb), &errb)
	for _, w := range []string{filepath.Join(dir, "synthetic-fot-s1", "result.json"), filepath.Join(dup, "result.json"), "fot seed 1"} {
		if code != 2 || !strings.Contains(errb.String(), w) {
			t.Errorf("duplicate run: exit %d, stderr lacks %q:\n%s", code, w, errb.String())
		}
	}
}
