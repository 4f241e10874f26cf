package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	htmlreport "github.com/fotsim/fotsim/report"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// fotsim run writes a report.html into every run folder and, with several
// runs and --out, one of the sweep into --out; --no-report writes none.
func TestRunWritesReports(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"run", "synthetic", "--out", out, "--set", "seeds=[0,1]", "--set", "train.rounds_per_task=2"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\n%s", err, stderr.String())
	}
	want := []string{htmlreport.File}
	for _, d := range []string{"synthetic-fedavg-s0", "synthetic-fedavg-s1", "synthetic-fot-s0", "synthetic-fot-s1"} {
		want = append(want, filepath.Join(d, htmlreport.File))
	}
	for _, f := range want {
		b, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(b, []byte(`id="fotsim-data"`)) {
			t.Errorf("%s is not a report", f)
		}
		if !strings.Contains(stdout.String(), "report: "+filepath.Join(out, f)+"\n") {
			t.Errorf("stdout does not name %s", f)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(out, htmlreport.File)); !bytes.Contains(b, []byte("<title>fotsim report: synthetic (4 runs)</title>")) {
		t.Error("sweep report lacks its title")
	}

	none := t.TempDir()
	args = []string{"run", "synthetic", "--quiet", "--no-report", "--out", none, "--set", "seeds=[0,1]", "--set", "train.rounds_per_task=1"}
	if err := run(context.Background(), args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(none, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Name() == htmlreport.File {
			t.Errorf("--no-report wrote %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// fotsim run --live serves the live view while it runs; its event stream
// carries every round of the runs fed to it.
func TestRunLive(t *testing.T) {
	var stdout bytes.Buffer
	args := []string{"run", "synthetic", "--quiet", "--no-report", "--live", "127.0.0.1:0", "--out", t.TempDir(), "--set", "methods=[fot]"}
	if err := run(context.Background(), args, &stdout, io.Discard); err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^live view: (http://127\.0\.0\.1:\d+)/live$`)
	if !re.MatchString(stdout.String()) {
		t.Fatalf("stdout does not name the live view:\n%s", stdout.String())
	}

	// The same wiring, with the run's rounds read back from the stream.
	stdout.Reset()
	l, err := startLive("127.0.0.1:0", &stdout)
	if err != nil {
		t.Fatal(err)
	}
	defer l.stop()
	base := re.FindStringSubmatch(stdout.String())[1]
	sc, err := scenarios.Load("synthetic", []string{"methods=[fot]"})
	if err != nil {
		t.Fatal(err)
	}
	var o sim.Options
	l.options(&o, sc)
	if o.LiveSink == nil || o.Live {
		t.Fatalf("run --live with embedded NATS: LiveSink set %v, Live %v; want set, false", o.LiveSink != nil, o.Live)
	}
	if _, err := sim.NewEnv().Run(context.Background(), sc, sc.Runs()[0], o); err != nil {
		t.Fatal(err)
	}
	l.hub.Close() // the stream ends after the history
	status, body := get(t, base+"/events")
	rounds := sc.Data.Tasks * sc.Train.RoundsPerTask
	if status != 200 || strings.Count(body, "data: {") != rounds+1 || !strings.Contains(body, "event: end") {
		t.Fatalf("GET /events: %d, want %d rounds and the end:\n%s", status, rounds, body)
	}
	if status, body := get(t, base+"/"); status != 200 || !strings.Contains(body, `"mode":"live"`) {
		t.Fatalf("GET / does not lead to the live page: %d", status)
	}

	var none *liveServer
	o = sim.Options{}
	if none.options(&o, sc); o.LiveSink != nil || o.Live {
		t.Fatal("without --live the run must not publish")
	}
	sc.Transport.NATS = "nats://127.0.0.1:4222"
	if none.options(&o, sc); !o.Live {
		t.Fatal("a run over an external NATS server publishes its metrics")
	}
}

func TestListenAddr(t *testing.T) {
	for in, want := range map[string]string{
		"8080": "127.0.0.1:8080", ":8080": "127.0.0.1:8080", "0.0.0.0:80": "0.0.0.0:80",
		"localhost:1": "localhost:1", "[::1]:9": "[::1]:9",
	} {
		if got := listenAddr(in); got != want {
			t.Errorf("listenAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestServeHandler(t *testing.T) {
	dir := t.TempDir()
	args := []string{"run", "synthetic", "--quiet", "--no-report", "--out", filepath.Join(dir, "sweep"), "--set", "seeds=[0,1]", "--set", "train.rounds_per_task=1"}
	if err := run(context.Background(), args, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	hub := htmlreport.NewHub()
	defer hub.Close()
	srv := httptest.NewServer(serveHandler(os.DirFS(dir), "runs <here>", hub, "test"))
	defer srv.Close()
	tests := []struct {
		path   string
		status int
		want   []string
	}{
		{"/", 200, []string{"fotsim: runs &lt;here&gt;", `href="/live"`, `href="/report.html"`, `href="/sweep/synthetic-fot-s1/report.html"`, "fedavg"}},
		{"/report.html", 200, []string{"<title>fotsim report: synthetic (4 runs)</title>", `id="fotsim-data"`}},
		{"/sweep/report.html", 200, []string{"(4 runs)"}},
		{"/sweep/synthetic-fot-s0/report.html", 200, []string{"<title>fotsim report: synthetic, fot, seed 0</title>"}},
		{"/sweep/synthetic-fot-s0/result.json", 200, []string{`"schema": "fotsim.result/v1"`}},
		{"/nosuch/report.html", 404, nil},
		{"/nosuch.json", 404, nil},
		{"/live", 200, []string{`"mode":"live"`, `"events":"/events"`}},
	}
	for _, tc := range tests {
		status, body := get(t, srv.URL+tc.path)
		if status != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.path, status, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("GET %s lacks %q", tc.path, w)
			}
		}
	}
	// Nothing outside the folder is served.
	req, _ := http.NewRequest("GET", srv.URL+"/x", nil)
	req.URL.Path = "/../../etc/passwd"
	req.URL.RawPath = "/%2e%2e/%2e%2e/etc/passwd"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(b), "root:") {
		t.Fatal("served a file outside the folder")
	}
}

// fotsim serve --nats serves the folder and the metrics of the NATS
// server's runs, and stops cleanly when its context ends.
func TestServeCommand(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--nats", emb.URL(), t.TempDir()}, &stdout, io.Discard)
	}()
	re := regexp.MustCompile(`at (http://127\.0\.0\.1:\d+)/`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; {
		if m := re.FindStringSubmatch(stdout.String()); m != nil {
			base = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve printed no address: %q", stdout.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if status, body := get(t, base+"/"); status != 200 || !strings.Contains(body, "No run records here yet") {
		t.Fatalf("GET /: %d\n%s", status, body)
	}
	if status, body := get(t, base+"/live"); status != 200 || !strings.Contains(body, "fotsim.*.metrics") {
		t.Fatalf("GET /live: %d, no metrics source named", status)
	}
	pub, err := emb.Connect("pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	resp, err := http.Get(base + "/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	publishAndStop(t, pub, resp, cancel, done)
}

func TestServeBadInput(t *testing.T) {
	for _, args := range [][]string{{"serve"}, {"serve", filepath.Join(t.TempDir(), "nosuch")}, {"serve", "a", "b"}} {
		var errb bytes.Buffer
		if code := exitCode(run(context.Background(), args, io.Discard, &errb), &errb); code != 2 {
			t.Errorf("%v: exit code %d, want 2; %s", args, code, errb.String())
		}
	}
}

// publishAndStop publishes a metrics document of run r with pub, checks
// that it reaches the live view's event stream resp, then cancels serve
// (cancel) and checks that it stops cleanly (done).
func publishAndStop(t *testing.T, pub *transport.Conn, resp *http.Response, cancel context.CancelFunc, done <-chan error) {
	t.Helper()
	if err := pub.PublishRaw(transport.SubjectsFor("r").Metrics, []byte(`{"run":"r","round":1}`)); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		var all []byte
		for {
			n, err := resp.Body.Read(b)
			all = append(all, b[:n]...)
			if bytes.Contains(all, []byte(`data: {"run":"r","round":1}`)) || err != nil {
				got <- string(all)
				return
			}
		}
	}()
	select {
	case s := <-got:
		if !strings.Contains(s, `data: {"run":"r","round":1}`) {
			t.Fatalf("event stream: %q", s)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the metrics document did not reach the event stream")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
}
