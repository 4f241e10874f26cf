package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fotsim/fotsim/sim"
)

// fotsim run --interleave: the runs take turns round by round. Interrupted
// (SIGINT) while both train, it names both runs and their checkpoints;
// resumed, again taking turns, both records are byte-identical (wall time
// aside) to the same runs one after the other; the per-run output keeps
// the scenario's run order.
func TestInterleaveInterruptAndResume(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary for about half a minute")
	}
	bin := buildSignalsBinary(t)
	args := []string{"run", "synthetic", "--no-plots", "--no-report",
		"--set", "methods=[fedavg,fot]", "--set", "train.rounds_per_task=1500"}
	clean := filepath.Join(t.TempDir(), "clean")
	if out, err := exec.Command(bin, append(args, "--quiet", "--out", clean)...).CombinedOutput(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	inter := filepath.Join(t.TempDir(), "inter")
	cmd := exec.Command(bin, append(args, "--interleave", "--out", inter)...)
	stdout, stderr, exited := startBinary(t, cmd)
	waitForFiles(t, cmd, 2*time.Minute, filepath.Join(inter, "synthetic-fedavg-s0", sim.CheckpointFile), filepath.Join(inter, "synthetic-fot-s0", sim.CheckpointFile))
	time.Sleep(300 * time.Millisecond)
	_, err := signalAndWait(t, cmd, exited, syscall.SIGINT)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("got %v, want exit code 130; stderr:\n%s", err, stderr.String())
	}
	s := stdout.String()
	for _, w := range []*regexp.Regexp{
		regexp.MustCompile(`interrupted: synthetic, method fedavg, seed 0 \(run 1 of 2\) did not finish and wrote no record\n`),
		regexp.MustCompile(`interrupted: synthetic, method fot, seed 0 \(run 2 of 2\) did not finish and wrote no record\n`),
		regexp.MustCompile(`their checkpoints are in \S+synthetic-fedavg-s0, \S+synthetic-fot-s0: fotsim run --resume ` + regexp.QuoteMeta(inter) + ` continues`),
	} {
		if !w.MatchString(s) {
			t.Errorf("stdout lacks %v:\n%s", w, s)
		}
	}
	for _, dir := range []string{"synthetic-fedavg-s0", "synthetic-fot-s0"} {
		if _, err := os.Stat(filepath.Join(inter, dir, "result.json")); err == nil {
			t.Fatalf("%s finished before the interrupt: make the runs longer", dir)
		}
	}

	out, err := exec.Command(bin, "run", "--resume", inter, "--interleave", "--no-plots", "--no-report").CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	o := string(out)
	a, b := strings.Index(o, "Accuracy (%) of fedavg"), strings.Index(o, "Accuracy (%) of fot")
	if a < 0 || b < a {
		t.Errorf("the runs' tables are missing or out of the scenario's order:\n%s", o)
	}
	for _, run := range []string{"synthetic-fedavg-s0", "synthetic-fot-s0"} {
		sameRecords(t, filepath.Join(clean, run), filepath.Join(inter, run))
	}
}

// --interleave is refused with --live, and with one run it runs as usual.
func TestInterleaveFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"run", "synthetic", "--interleave", "--live", "127.0.0.1:0", "--out", t.TempDir()}, &stdout, &stderr)
	if exitCode(err, io.Discard) != 2 || !strings.Contains(err.Error(), "--interleave and --live") {
		t.Errorf("--interleave --live: %v, want exit code 2 naming both flags", err)
	}
	out := t.TempDir()
	if err := run(context.Background(), []string{"run", "synthetic", "--interleave", "--quiet", "--no-plots", "--no-report", "--out", out,
		"--set", "methods=fedavg"}, &stdout, &stderr); err != nil {
		t.Fatalf("one run with --interleave: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "result.json")); err != nil {
		t.Error(err)
	}
}
