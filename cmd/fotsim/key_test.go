package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fotsim/fotsim/auth"
)

// fotsim keygen writes a key file readable by its owner only, that
// auth.LoadKeyFile reads, and refuses to overwrite it.
func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.key")
	var out, errb bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"keygen", path}, &out, &errb), &errb); code != 0 {
		t.Fatalf("exit code %d; stderr:\n%s", code, errb.String())
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("mode %v, want 0600", m)
	}
	k, err := auth.LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if k.Secret == ([auth.SecretSize]byte{}) {
		t.Error("a zero secret")
	}
	before, _ := os.ReadFile(path)
	errb.Reset()
	if code := exitCode(run(context.Background(), []string{"keygen", path}, &out, &errb), &errb); code != 2 {
		t.Errorf("second keygen: exit code %d, want 2", code)
	}
	if !strings.Contains(errb.String(), "exists") {
		t.Errorf("second keygen: stderr:\n%s", errb.String())
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Error("the second keygen changed the file")
	}
	errb.Reset()
	if code := exitCode(run(context.Background(), []string{"keygen"}, &out, &errb), &errb); code != 2 {
		t.Errorf("keygen without FILE: exit code %d, want 2", code)
	}
}

// --key with a missing or malformed file: exit 2, naming the file.
func TestKeyFlagBadFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("not hex\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.key")
	for _, tc := range [][]string{
		{"server", "synthetic", "--nats", "nats://127.0.0.1:1", "--key", missing},
		{"server", "synthetic", "--nats", "nats://127.0.0.1:1", "--key", bad},
		{"client", "--nats", "nats://127.0.0.1:1", "--clients", "0-3", "--key", missing},
		{"client", "--nats", "nats://127.0.0.1:1", "--clients", "0-3", "--key", bad},
	} {
		var out, errb bytes.Buffer
		if code := exitCode(run(context.Background(), tc, &out, &errb), &errb); code != 2 {
			t.Errorf("%q: exit code %d, want 2; stderr:\n%s", tc, code, errb.String())
		}
		if file := tc[len(tc)-1]; !strings.Contains(errb.String(), "--key "+file) {
			t.Errorf("%q: stderr does not name the file:\n%s", tc, errb.String())
		}
	}
}

// keyFile writes a new key file with fotsim keygen.
func keyFile(t *testing.T, bin string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run.key")
	if out, err := exec.Command(bin, "keygen", path).CombinedOutput(); err != nil {
		t.Fatalf("fotsim keygen: %v\n%s", err, out)
	}
	return path
}

// With a shared key file, a server and a client process sign their
// messages and give the records of the one-process run.
func TestServerAndClientKey(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fotsim and runs three processes")
	}
	bin := buildFotsim(t)
	url := loopbackNATS(t)
	key := keyFile(t, bin)
	flags := []string{"--quiet", "--no-plots", "--no-report", "--set", "methods=fedavg", "--set", "eval.every=2"}

	t.Run("shared key", func(t *testing.T) {
		ref := t.TempDir()
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"run", "synthetic", "--out", ref}, flags...), &stdout, &stderr); err != nil {
			t.Fatalf("fotsim run: %v\n%s", err, stderr.String())
		}
		c := startClient(t, bin, url, "0-3", "--key", key, "--once")
		got := t.TempDir()
		srv := exec.Command(bin, append([]string{"server", "synthetic", "--nats", url, "--wait", "1m", "--key", key, "--out", got}, flags...)...)
		var srvErr bytes.Buffer
		srv.Stderr = &srvErr
		if err := srv.Run(); err != nil {
			t.Fatalf("fotsim server: %v\nstderr:\n%s\nclient:\n%s", err, srvErr.String(), c.String())
		}
		if strings.Contains(srvErr.String(), "not signed") {
			t.Errorf("server with --key warns:\n%s", srvErr.String())
		}
		want, have := recordFiles(t, ref), recordFiles(t, got)
		if len(want) == 0 || len(have) != len(want) {
			t.Fatalf("%d record files from the server, %d from fotsim run", len(have), len(want))
		}
		for name, w := range want {
			if !bytes.Equal(have[name], w) {
				t.Errorf("%s differs from fotsim run's:\ngot:\n%s\nwant:\n%s", name, have[name], w)
			}
		}
	})

	// A client process with another key file (or none) next to one with
	// the server's: with another key it rejects the server's rounds and
	// stop (bad signature) and sends nothing; with none its updates are
	// rejected (not signed). Either way the rounds that select only its
	// clients get no update, and the server, whose rounds wait
	// train.deadline, fails.
	for _, tc := range []struct {
		name string
		key  []string // the bad process's --key
		want []string // in its output (-v)
		srv  string   // in the server's stderr (-v)
	}{
		{"other key", []string{}, []string{"rejected round message of round 0: protocol: bad signature", "rejected stop message"}, ""},
		{"no key", nil, nil, "rejected update of client 2 in round 1: protocol: bad signature: not signed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"client", "--nats", url, "--clients", "2-3", "--workers", "1", "--name", "bad", "--once", "-v"}
			if tc.key != nil {
				args = append(args, "--key", keyFile(t, bin))
			}
			good := startClient(t, bin, url, "0-1", "--key", key, "--once")
			out := &lockedBuffer{}
			bad := exec.Command(bin, args...)
			bad.Stdout, bad.Stderr = out, out
			if err := bad.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { // it waits for a stop it cannot verify: interrupt it
				_ = bad.Process.Signal(syscall.SIGINT)
				done := make(chan error, 1)
				go func() { done <- bad.Wait() }()
				select {
				case <-done:
				case <-time.After(20 * time.Second):
					_ = bad.Process.Kill()
				}
			}()
			srv := exec.Command(bin, append([]string{"server", "synthetic", "--nats", url, "--wait", "1m", "--key", key, "--out", t.TempDir(), "-v", "--set", "train.deadline=1s"}, flags...)...)
			var srvErr bytes.Buffer
			srv.Stderr = &srvErr
			err := srv.Run()
			if code := exitCodeOf(err); code != 1 {
				t.Errorf("server: %v, want exit code 1", err)
			}
			wantSrv := []string{"no client update arrived in round"}
			if tc.srv != "" {
				wantSrv = append(wantSrv, tc.srv)
			}
			for _, w := range wantSrv {
				if !strings.Contains(srvErr.String(), w) {
					t.Errorf("server stderr lacks %q:\n%s", w, srvErr.String())
				}
			}
			// The bad client logs the server's last messages (the stop)
			// asynchronously, possibly after the server has exited.
			for _, w := range tc.want {
				for end := time.Now().Add(10 * time.Second); !strings.Contains(out.String(), w) && time.Now().Before(end); {
					time.Sleep(20 * time.Millisecond)
				}
				if !strings.Contains(out.String(), w) {
					t.Errorf("bad client's output lacks %q:\n%s", w, out.String())
				}
			}
			if t.Failed() {
				t.Logf("good client:\n%s", good.String())
			}
		})
	}
}

// exitCodeOf returns the exit code of a finished command's error.
func exitCodeOf(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := err.(*exec.ExitError); ok {
		return e.ExitCode()
	}
	return -1
}
