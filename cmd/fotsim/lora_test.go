package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// fotsim list shows the LoRA methods (read from the registry), their
// options, the dp_epsilon option every method takes and the fedsvd-dp
// built-in; validate accepts the built-in by its repository path.
func TestListShowsLoRAMethods(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"list", "--keys"}, &out, &errb); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"fedavg-lora", "ffa-lora", "fedsvd", "(options: period, warmup, fot)", "flora", "fedex-lora",
		"option dp_epsilon", "fedsvd-dp", "model.lora.rank", "pretrain.mode", "dp.clip", "train.local_steps"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("list lacks %q", w)
		}
	}
}

// A LoRA + DP scenario runs from the command line and prints the spent
// epsilon.
func TestRunLoRADP(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"run", "synthetic", "--quiet", "--out", filepath.Join(t.TempDir(), "o"),
		"--set", "methods=[fedsvd, {name: fedsvd, dp_epsilon: 5}]", "--set", "model.lora={rank: 4}", "--set", "train.local_steps=3"}
	if err := run(context.Background(), args, &out, &errb); err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	for _, w := range []string{"fedsvd(eps_dp=5)", "eps spent (max)", "5.00"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("run output lacks %q:\n%s", w, out.String())
		}
	}
}
