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

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bad input gets one error naming the key or line, exit code 2, and no
// stack trace.
func TestBadInputExitsTwo(t *testing.T) {
	empty := t.TempDir()
	tests := []struct {
		name string
		args []string
		want []string // fragments of stderr
	}{
		{"malformed yaml", []string{"run", write(t, "a.yaml", "name: x\ndata: {dataset: mnist, tasks: 2\n")}, []string{"a.yaml:2", "malformed YAML"}},
		{"unknown key", []string{"run", write(t, "b.yaml", "name: x\ndata:\n  taks: 2\n")}, []string{"b.yaml:3", "data.taks", `did you mean "data.tasks"`}},
		{"unknown dataset", []string{"run", "synthetic", "--set", "data.dataset=cifar"}, []string{"data.dataset", `unknown dataset "cifar"`}},
		{"missing mnist", []string{"run", "quickstart", "--set", "data.dir=" + empty}, []string{"mnist not found", "data.dir", "go mod download"}},
		{"too many clients per round", []string{"run", "synthetic", "--set", "train.clients_per_round=9"}, []string{"train.clients_per_round (9) is larger than partition.clients (4)"}},
		{"unknown scenario", []string{"run", "nosuch"}, []string{`"nosuch"`, "built-in"}},
		{"unknown flag", []string{"run", "--frob", "synthetic"}, []string{"frob"}},
		{"unknown command", []string{"frob"}, []string{`unknown command "frob"`}},
		{"no scenario", []string{"run"}, []string{"exactly one scenario"}},
		{"bad backend", []string{"run", "--backend", "nosuch", "synthetic"}, []string{"unknown backend"}},
		{"invalid file in validate", []string{"validate", write(t, "c.yaml", "seeds: [0, 0]\n")}, []string{"c.yaml:1", "seeds"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := exitCode(run(context.Background(), tc.args, &out, &errb), &errb)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if strings.Contains(errb.String(), "goroutine ") || strings.Contains(errb.String(), "panic") {
				t.Errorf("stderr has a stack trace:\n%s", errb.String())
			}
		})
	}
}

func TestRunWritesTablesAndRecords(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"run", "synthetic", "--out", out, "--set", "seeds=[0,1]", "--set", "train.rounds_per_task=2"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	s := stdout.String()
	for _, w := range []string{"task 2/2", "after task 1", "Summary of synthetic", "Comparison over seeds", "fot", "fedavg"} {
		if !strings.Contains(s, w) {
			t.Errorf("stdout lacks %q:\n%s", w, s)
		}
	}
	for _, dir := range []string{"synthetic-fedavg-s0", "synthetic-fedavg-s1", "synthetic-fot-s0", "synthetic-fot-s1"} {
		b, err := os.ReadFile(filepath.Join(out, dir, "result.json"))
		if err != nil {
			t.Fatal(err)
		}
		var rec map[string]any
		if err := json.Unmarshal(b, &rec); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, k := range []string{"schema", "scenario", "method", "seed", "tasks", "acc_matrix", "acc", "fgt", "bwt",
			"rounds", "clients", "clients_per_round", "bytes_up", "bytes_down", "wall_seconds", "curves"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("%s/result.json lacks %q", dir, k)
			}
		}
		if rec["schema"] != "fotsim.result/v1" {
			t.Errorf("schema %v", rec["schema"])
		}
	}
	// --quiet prints the tables only.
	stdout.Reset()
	if err := run(context.Background(), []string{"run", "synthetic", "--quiet", "--out", t.TempDir(), "--set", "methods=fedavg"}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout.String(), "task 1/2") || !strings.Contains(stdout.String(), "Summary") {
		t.Errorf("--quiet output:\n%s", stdout.String())
	}
}

func TestListAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"list", "--keys"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mnist", "permuted", "dirichlet", "fedavg", "fot", "quickstart", "paper/pmnist-iid", "train.rounds_per_task"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("list lacks %q", w)
		}
	}
	for _, cmd := range []string{"run", "validate", "list", "bench"} {
		out.Reset()
		errb.Reset()
		if err := run(context.Background(), []string{cmd, "--help"}, &out, &errb); err != nil {
			t.Errorf("%s --help: %v", cmd, err)
		}
		if !strings.Contains(errb.String(), "Usage: fotsim "+cmd) {
			t.Errorf("%s --help printed:\n%s", cmd, errb.String())
		}
	}
}
