package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fotsim/fotsim/transport"
)

// buildFotsim builds this command into a temporary folder.
func buildFotsim(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fotsim")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// lockedBuffer is a process's output, read while the process writes it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startClient starts `fotsim client` on url for ids; at the end of the
// test it interrupts it and checks that it exits with 0.
func startClient(t *testing.T, bin, url, ids string, extra ...string) *lockedBuffer {
	t.Helper()
	out := &lockedBuffer{}
	cmd := exec.Command(bin, append([]string{"client", "--nats", url, "--clients", ids, "--workers", "1", "--name", "c" + ids}, extra...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("fotsim client --clients %s: %v after an interrupt; output:\n%s", ids, err, out.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("fotsim client --clients %s did not stop after an interrupt; output:\n%s", ids, out.String())
		}
	})
	return out
}

var wallSecondsRE = regexp.MustCompile(`"wall_seconds": [0-9.e+-]+`)

// recordFiles returns the record files under dir (one run folder, or a
// sweep's), by path relative to dir, with wall_seconds zeroed and the
// NATS URL of scenario.yaml left out.
func recordFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"result.json", "acc_matrix.csv", "curves.csv", "scenario.yaml"} {
		paths, err := filepath.Glob(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		more, _ := filepath.Glob(filepath.Join(dir, "*", name))
		for _, p := range append(paths, more...) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b = wallSecondsRE.ReplaceAll(b, []byte(`"wall_seconds": 0`))
			b = regexp.MustCompile(`(?m)^  nats: .*$`).ReplaceAll(b, []byte("  nats: X"))
			rel, _ := filepath.Rel(dir, p)
			files[rel] = b
		}
	}
	return files
}

// One fotsim server and three fotsim client processes over TCP give the
// run records of the one-process fotsim run, byte for byte (wall time
// aside): FedAvg, FOT and FedCurv (whose hosts keep their clients' state)
// on the synthetic scenario, then EWC on a reduced quickstart, served by
// the same client processes one run after the other.
func TestServerAndClientProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fotsim and runs five processes")
	}
	bin := buildFotsim(t)
	url := loopbackNATS(t)
	if !strings.HasPrefix(url, "nats://127.0.0.1:") {
		t.Fatalf("embedded NATS URL %q", url)
	}
	// synthetic has 4 clients, quickstart 10.
	clients := []*lockedBuffer{startClient(t, bin, url, "0-1"), startClient(t, bin, url, "2"), startClient(t, bin, url, "3-63")}

	for _, tc := range []struct {
		scenario string
		sets     []string
		last     string // the third client's range in the run
	}{
		{"synthetic", []string{"methods=[fedavg,fot,fedcurv]", "eval.every=2"}, "3"},
		{"quickstart", []string{"methods=ewc", "train.rounds_per_task=2", "data.train_limit=3000", "data.test_limit=1000", "eval.every=1"}, "3-9"},
	} {
		var sets []string
		for _, s := range tc.sets {
			sets = append(sets, "--set", s)
		}
		flags := append([]string{"--quiet", "--no-plots", "--no-report"}, sets...)
		ref := t.TempDir()
		var stdout, stderr bytes.Buffer
		if err := run(context.Background(), append([]string{"run", tc.scenario, "--out", ref}, flags...), &stdout, &stderr); err != nil {
			t.Fatalf("fotsim run %s: %v\n%s", tc.scenario, err, stderr.String())
		}
		got := t.TempDir()
		srv := exec.Command(bin, append([]string{"server", tc.scenario, "--nats", url, "--wait", "2m", "--out", got}, flags...)...)
		var srvOut, srvErr bytes.Buffer
		srv.Stdout, srv.Stderr = &srvOut, &srvErr
		if err := srv.Run(); err != nil {
			for i, c := range clients {
				t.Logf("client %d:\n%s", i, c.String())
			}
			t.Fatalf("fotsim server %s: %v\nstderr:\n%s", tc.scenario, err, srvErr.String())
		}
		if !strings.Contains(srvOut.String(), "Summary of "+tc.scenario) {
			t.Errorf("fotsim server %s printed no summary:\n%s", tc.scenario, srvOut.String())
		}
		for _, w := range []string{"client host c0-1 (clients 0-1) joined", "client host c2 (clients 2) joined", "client host c3-63 (clients " + tc.last + ") joined"} {
			if !strings.Contains(srvErr.String(), w) {
				t.Errorf("fotsim server %s: stderr lacks %q:\n%s", tc.scenario, w, srvErr.String())
			}
		}
		want, have := recordFiles(t, ref), recordFiles(t, got)
		if len(want) == 0 || len(have) != len(want) {
			t.Fatalf("%s: %d record files from the server, %d from fotsim run", tc.scenario, len(have), len(want))
		}
		for name, w := range want {
			if !bytes.Equal(have[name], w) {
				t.Errorf("%s: %s differs from fotsim run's:\ngot:\n%s\nwant:\n%s", tc.scenario, name, have[name], w)
			}
		}
	}
	for i, c := range clients {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && strings.Count(c.String(), ": done") < 4; {
			time.Sleep(10 * time.Millisecond)
		}
		if n := strings.Count(c.String(), ": done"); n != 4 {
			t.Errorf("client %d finished %d runs, want 4:\n%s", i, n, c.String())
		}
	}
}

// A client range that leaves ids uncovered: the server waits, then fails
// naming them.
func TestServerNamesMissingClients(t *testing.T) {
	if testing.Short() {
		t.Skip("builds fotsim")
	}
	bin := buildFotsim(t)
	url := loopbackNATS(t)
	client := startClient(t, bin, url, "0-1", "--once")
	var stdout, stderr bytes.Buffer
	start := time.Now()
	err := run(context.Background(), []string{"server", "synthetic", "--nats", url, "--wait", "3s", "--quiet", "--out", t.TempDir(), "--set", "methods=fedavg"}, &stdout, &stderr)
	code := exitCode(err, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if d := time.Since(start); d < 3*time.Second {
		t.Errorf("the server gave up after %v, want the 3s --wait", d)
	}
	for _, w := range []string{"no client host joined for clients 2-3 (of 0-3)", "after 3s", "joined: c0-1 (clients 0-1)", "fotsim client --nats URL --clients A-B"} {
		if !strings.Contains(stderr.String(), w) {
			t.Errorf("stderr lacks %q:\n%s", w, stderr.String())
		}
	}
	// The client hears that the server gave up, and waits for the next run.
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !strings.Contains(client.String(), "the server gave up"); {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(client.String(), "the server gave up: sim: remote client hosts: no client host joined for clients 2-3") {
		t.Errorf("client output:\n%s", client.String())
	}
}

// Bad command lines of server and client exit with 2 and say why.
func TestServerClientUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"clients reversed", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "5-2"}, "the first id is above the last"},
		{"clients not a number", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "a-b"}, `"a" is not a client id`},
		{"clients three parts", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "1-2-3"}, `"2-3" is not a client id`},
		{"clients negative", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "-1"}, `"" is not a client id`},
		{"clients too large", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "0-1048576"}, `"1048576" is not a client id (0 to 1048575)`},
		{"clients missing", []string{"client", "--nats", "nats://127.0.0.1:1"}, "--clients A-B is required"},
		{"nats missing", []string{"client", "--clients", "0-3"}, "--nats URL is required"},
		{"client scenario", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "0-3", "quickstart"}, "client takes no scenario"},
		{"client workers", []string{"client", "--nats", "nats://127.0.0.1:1", "--clients", "0-3", "--workers", "-1"}, "--workers -1"},
		{"server embedded", []string{"server", "synthetic"}, "need an external NATS server"},
		{"server bad url", []string{"server", "synthetic", "--nats", "http://x"}, "transport.nats"},
		{"server wait", []string{"server", "synthetic", "--nats", "nats://127.0.0.1:1", "--wait", "0s"}, "--wait 0s"},
		{"server no scenario", []string{"server", "--nats", "nats://127.0.0.1:1"}, "server takes exactly one scenario"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := exitCode(run(context.Background(), tc.args, &out, &errb), &errb)
			if code != 2 {
				t.Errorf("exit code %d, want 2; stderr:\n%s", code, errb.String())
			}
			if !strings.Contains(errb.String(), tc.want) {
				t.Errorf("stderr lacks %q:\n%s", tc.want, errb.String())
			}
		})
	}
}

// loopbackNATS starts an embedded NATS server on a random TCP port of
// 127.0.0.1 for the test's processes, stopped at the test's end, and
// returns its URL.
func loopbackNATS(t *testing.T) string {
	t.Helper()
	emb, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{Host: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	return emb.URL()
}
