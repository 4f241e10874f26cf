package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fotsim/fotsim/sim"
)

var wallLine = regexp.MustCompile(`"wall_seconds": [0-9.e+-]+`)

// sameRecords compares the record files of two run folders byte for byte,
// wall time aside.
func sameRecords(t *testing.T, want, got string) {
	t.Helper()
	for _, f := range []string{"result.json", "acc_matrix.csv", "curves.csv", "scenario.yaml"} {
		w, err1 := os.ReadFile(filepath.Join(want, f))
		g, err2 := os.ReadFile(filepath.Join(got, f))
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: %v %v", f, err1, err2)
		}
		w, g = wallLine.ReplaceAll(w, nil), wallLine.ReplaceAll(g, nil)
		if !bytes.Equal(w, g) {
			t.Errorf("%s of %s differs from the uninterrupted run's:\nwant %.400s\ngot  %.400s", f, got, w, g)
		}
	}
}

// TestResumeAfterKill kills (SIGKILL) a fotsim run of two methods while
// the second trains, then continues it with fotsim run --resume: the first
// run's record is kept, the second resumes from its last checkpoint, and
// both records are byte-identical (wall time aside) to an uninterrupted
// run's. FedCurv keeps state on the server and the clients.
func TestResumeAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the binary for about half a minute")
	}
	bin := buildSignalsBinary(t)
	args := []string{"run", "synthetic", "--quiet", "--no-plots", "--no-report",
		"--set", "methods=[fot,fedcurv]", "--set", "train.rounds_per_task=3000"}
	clean := filepath.Join(t.TempDir(), "clean")
	if out, err := exec.Command(bin, append(args, "--out", clean)...).CombinedOutput(); err != nil {
		t.Fatalf("clean run: %v\n%s", err, out)
	}
	killed := filepath.Join(t.TempDir(), "killed")
	cmd := exec.Command(bin, append(args, "--out", killed)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ck := filepath.Join(killed, "synthetic-fedcurv-s0", sim.CheckpointFile)
	waitForFiles(t, cmd, 3*time.Minute, ck)
	time.Sleep(300 * time.Millisecond) // a few checkpoints into the run
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if _, err := os.Stat(filepath.Join(killed, "synthetic-fedcurv-s0", "result.json")); err == nil {
		t.Fatal("the second run finished before it was killed: make it longer")
	}
	c, err := sim.ReadCheckpoint(filepath.Dir(ck))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("killed before round %d of task %d", c.Server.Round, c.Server.Task)

	out, err := exec.Command(bin, "run", "--resume", killed, "--no-plots", "--no-report").CombinedOutput()
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, out)
	}
	for _, want := range []string{"fot, seed 0: finished before", "resuming fedcurv, seed 0", "Summary of synthetic"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("resume output lacks %q:\n%s", want, out)
		}
	}
	for _, run := range []string{"synthetic-fot-s0", "synthetic-fedcurv-s0"} {
		sameRecords(t, filepath.Join(clean, run), filepath.Join(killed, run))
	}
	if _, err := os.Stat(ck); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the resumed run left its checkpoint: %v", err)
	}

	// Nothing left to resume, a folder without checkpoints, and a
	// change of the scenario: exit code 2 with the reason.
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--resume", filepath.Join(killed, "synthetic-fot-s0")}, "finished"},
		{[]string{"run", "--resume", empty}, "nothing to resume"},
		{[]string{"run", "--resume", filepath.Join(t.TempDir(), "missing")}, "not a folder"},
		{[]string{"run", "--resume", killed, "synthetic"}, "takes no scenario"},
	} {
		out, err := exec.Command(bin, tc.args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v: %v, want exit code 2 and %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}
