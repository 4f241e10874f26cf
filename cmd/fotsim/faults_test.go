package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fotsim/fotsim/scenarios"
)

// buildSignalsBinary builds this command into a temporary folder.
func buildSignalsBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fotsim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// An --out that cannot be written fails before any training, with exit
// code 2, the path and the OS error, and leaves nothing behind.
func TestOutNotWritableExitsTwo(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, out string
		want      []string
		sets      []string
	}{
		{"under a file", filepath.Join(file, "runs"), []string{"--out " + filepath.Join(file, "runs"), "not a directory"}, nil},
		{"sweep under a file", filepath.Join(file, "sweep"), []string{"--out " + filepath.Join(file, "sweep", "synthetic-fedavg-s0"), "not a directory"}, []string{"seeds=[0,1]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"run", "synthetic", "--out", tc.out}
			for _, s := range tc.sets {
				args = append(args, "--set", s)
			}
			var out, errb bytes.Buffer
			if code := exitCode(run(context.Background(), args, &out, &errb), &errb); code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, errb.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(errb.String(), w) {
					t.Errorf("stderr lacks %q:\n%s", w, errb.String())
				}
			}
			if strings.Contains(out.String(), "Accuracy") || strings.Contains(out.String(), "task 1/2") {
				t.Errorf("it trained before failing:\n%s", out.String())
			}
		})
	}
	// A folder that can be written: the check leaves no trace before the
	// run writes its record.
	var out, errb bytes.Buffer
	deep := filepath.Join(dir, "a", "b")
	if err := checkOutDirs(deep, loadSynthetic(t)); err != nil {
		t.Fatalf("checkOutDirs(%s): %v", deep, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "a")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the check left %s behind (%v)", filepath.Join(dir, "a"), err)
	}
	if err := run(context.Background(), []string{"run", "synthetic", "--quiet", "--no-plots", "--no-report", "--set", "methods=fedavg", "--out", deep}, &out, &errb); err != nil {
		t.Fatalf("run: %v\n%s", err, errb.String())
	}
	if entries, err := os.ReadDir(deep); err != nil || len(entries) != 4 {
		t.Errorf("%s holds %v (%v), want the 4 record files and no probe", deep, entries, err)
	}
}

// A read-only folder fails the same way. Root writes anywhere, so as root
// the binary runs as the user nobody.
func TestOutReadOnlyExitsTwo(t *testing.T) {
	bin := buildSignalsBinary(t)
	dir := t.TempDir()
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "synthetic", "--quiet", "--out", filepath.Join(ro, "out"))
	cmd.Dir = dir
	if os.Geteuid() == 0 {
		for _, d := range []string{filepath.Dir(bin), filepath.Dir(filepath.Dir(bin)), dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("got %v, want exit code 2; stderr:\n%s", err, errb.String())
	}
	for _, w := range []string{"--out " + filepath.Join(ro, "out"), "permission denied"} {
		if !strings.Contains(errb.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, errb.String())
		}
	}
	if out.Len() != 0 {
		t.Errorf("stdout before failing:\n%s", out.String())
	}
}

// interruptedLine is the line that names the interrupted run.
var interruptedLine = regexp.MustCompile(`interrupted: synthetic, method fedavg, seed (\d+) \(run (\d+) of 10\) did not finish and wrote no record`)

// SIGINT or SIGTERM during a sweep stops it within a second or two, with
// exit code 130 or 143: the runs that finished keep their records (and are
// summarised), the interrupted one leaves no record.
func TestSignalStopsRun(t *testing.T) {
	bin := buildSignalsBinary(t)
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
		name string
	}{{syscall.SIGINT, 130, "SIGINT"}, {syscall.SIGTERM, 143, "SIGTERM"}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "sweep")
			cmd := exec.Command(bin, "run", "synthetic", "--quiet", "--no-plots", "--no-report", "--out", out,
				"--set", "methods=fedavg", "--set", "seeds=[0,1,2,3,4,5,6,7,8,9]", "--set", "train.rounds_per_task=8000")
			stdout, stderr, exited := startBinary(t, cmd)
			waitForFiles(t, cmd, 2*time.Minute, filepath.Join(out, "synthetic-fedavg-s0", "result.json"))
			took, err := signalAndWait(t, cmd, exited, tc.sig)
			t.Logf("exited %v after %s", took, tc.name)
			if took > 2*time.Second {
				t.Errorf("exited %v after %s, want within 2s", took, tc.name)
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != tc.code {
				t.Fatalf("got %v, want exit code %d; stderr:\n%s", err, tc.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted by "+tc.name) {
				t.Errorf("stderr lacks %q:\n%s", "interrupted by "+tc.name, stderr.String())
			}
			m := interruptedLine.FindStringSubmatch(stdout.String())
			if m == nil {
				t.Fatalf("stdout names no interrupted run:\n%s", stdout.String())
			}
			seed, _ := strconv.Atoi(m[1])
			if seed < 1 {
				t.Fatalf("seed %d interrupted, want a later one than seed 0, whose record was there", seed)
			}
			if !strings.Contains(stdout.String(), "Summary of the finished runs of synthetic") {
				t.Errorf("stdout lacks the summary of the finished runs:\n%s", stdout.String())
			}
			for s := range 10 {
				path := filepath.Join(out, "synthetic-fedavg-s"+strconv.Itoa(s), "result.json")
				b, err := os.ReadFile(path)
				if s >= seed {
					if err == nil {
						t.Errorf("seed %d, interrupted or not started, has a record", s)
					}
					continue
				}
				var rec struct {
					Schema string `json:"schema"`
					Seed   int    `json:"seed"`
				}
				if err != nil || json.Unmarshal(b, &rec) != nil || rec.Schema != "fotsim.result/v1" || rec.Seed != s {
					t.Errorf("finished seed %d: record %s unreadable (%v): %.100s", s, path, err, b)
				}
			}
		})
	}
}

func loadSynthetic(t *testing.T) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load("synthetic", nil)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// SIGINT in the middle of a long local training (a round of 10000 epochs
// of 5000 rows) stops it within a second or two: the clients check for it
// every mini-batch.
func TestSignalStopsLocalTraining(t *testing.T) {
	bin := buildSignalsBinary(t)
	out := filepath.Join(t.TempDir(), "run")
	cmd := exec.Command(bin, "run", "synthetic", "--quiet", "--out", out,
		"--set", "methods=fedavg", "--set", "train.local_epochs=10000", "--set", "data.synthetic.train=20000", "--set", "train.rounds_per_task=1")
	stdout, stderr, exited := startBinary(t, cmd)
	time.Sleep(2 * time.Second) // the clients are training
	took, err := signalAndWait(t, cmd, exited, os.Interrupt)
	t.Logf("exited %v after SIGINT", took)
	if took > 2*time.Second {
		t.Errorf("exited %v after SIGINT, want within 2s", took)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("got %v, want exit code 130; stderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "interrupted: synthetic, method fedavg, seed 0 (run 1 of 1)") || strings.Contains(stdout.String(), "Summary") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the interrupted run left %s (%v)", out, err)
	}
}

// startBinary starts cmd with its output going to the buffers returned;
// exited receives what its Wait returns.
func startBinary(t *testing.T, cmd *exec.Cmd) (stdout, stderr *bytes.Buffer, exited chan error) {
	t.Helper()
	stdout, stderr = new(bytes.Buffer), new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited = make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	return stdout, stderr, exited
}

// waitForFiles waits until every path exists; it kills the process and
// fails the test if that takes longer than within.
func waitForFiles(t *testing.T, cmd *exec.Cmd, within time.Duration, paths ...string) {
	t.Helper()
	for end := time.Now().Add(within); ; time.Sleep(10 * time.Millisecond) {
		missing := ""
		for _, p := range paths {
			if _, err := os.Stat(p); err != nil {
				missing = p
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(end) {
			_ = cmd.Process.Kill()
			t.Fatalf("no %s after %v", missing, within)
		}
	}
}

// signalAndWait sends sig to the process and returns how it exited (from
// exited, its Wait) and how long after the signal; it kills the process
// and fails the test if it is still running 10 s later.
func signalAndWait(t *testing.T, cmd *exec.Cmd, exited <-chan error, sig os.Signal) (time.Duration, error) {
	t.Helper()
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	select {
	case err := <-exited:
		return time.Since(sent), err
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("still running 10s after %v", sig)
	}
	return 0, nil
}
