package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	htmlreport "github.com/fotsim/fotsim/report"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

// These tests drive a real headless Chromium (Debian's chromium package;
// .ci/run installs it when it can) over the DevTools protocol. Without it
// they skip. $FOTSIM_CHROMIUM names another binary.

// chromiumPath returns the browser to test with, or skips.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("FOTSIM_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "chromium", "chromium-browser"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("no Chromium found (apt-get install chromium, or set FOTSIM_CHROMIUM): skipping the headless-browser test")
	return ""
}

// pageWatch records what a page did: console errors, uncaught exceptions,
// browser log errors and every request it made.
type pageWatch struct {
	mu       sync.Mutex
	errors   []string
	requests []string
}

func (w *pageWatch) event(ev any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch ev := ev.(type) {
	case *cdpruntime.EventConsoleAPICalled:
		if ev.Type == cdpruntime.ConsoleAPICalledTypeError || ev.Type == cdpruntime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			w.errors = append(w.errors, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *cdpruntime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		w.errors = append(w.errors, "exception: "+msg)
	case *cdplog.EventEntryAdded:
		if ev.Entry.Level == cdplog.EntryLevelError {
			w.errors = append(w.errors, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
		}
	case *network.EventRequestWillBeSent:
		w.requests = append(w.requests, ev.Request.URL)
	}
}

// reset forgets what earlier pages did.
func (w *pageWatch) reset() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.errors, w.requests = nil, nil
}

func (w *pageWatch) snapshot() (errs, reqs []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.errors...), append([]string(nil), w.requests...)
}

// headlessTab starts Chromium headless with a fresh profile and returns a
// tab's context, with network and log events on.
func headlessTab(t *testing.T) (context.Context, *pageWatch) {
	t.Helper()
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests and CI run as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 1600),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	watch := &pageWatch{}
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(watch.event))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first call starts the browser: no timeout on its context.
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	if _, err := chromedp.Call(ctx, cdplog.Enable, cdp.Empty{}); err != nil {
		t.Fatalf("log.enable: %v", err)
	}
	return ctx, watch
}

// evalJS evaluates expr in the page, bounded in time.
func evalJS[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(c, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitJS polls expr until it is true, failing with the page's errors
// after timeout.
func waitJS(t *testing.T, ctx context.Context, w *pageWatch, expr string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if evalJS[bool](t, ctx, "!!("+expr+")") {
			return
		}
		if time.Now().After(deadline) {
			errs, _ := w.snapshot()
			t.Fatalf("waited %v for %s; page errors: %q", timeout, expr, errs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func navigate(t *testing.T, ctx context.Context, u string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(c, chromedp.Navigate(u)); err != nil {
		t.Fatalf("navigate %s: %v", u, err)
	}
}

// pageState is what the report tests read from the rendered page.
type pageState struct {
	Text       string     `json:"text"`
	Paths      int        `json:"paths"`
	Circles    int        `json:"circles"`
	Bars       int        `json:"bars"`
	Matrices   int        `json:"matrices"`
	Comparison [][]string `json:"comparison"`
	Summary    [][]string `json:"summary"`
}

const readPage = `(() => {
  const rows = sel => [...document.querySelectorAll(sel + ' tbody tr')].map(tr => [...tr.cells].map(c => c.textContent));
  return {
    text: document.body.innerText,
    paths: document.querySelectorAll('svg path[data-n]').length,
    circles: document.querySelectorAll('svg circle').length,
    bars: document.querySelectorAll('svg rect[data-mean]').length,
    matrices: document.querySelectorAll('table.matrix').length,
    comparison: rows('#comparison'),
    summary: rows('#summary'),
  };
})()`

// fmtCell formats a mean and std as the report does (two decimals).
func fmtCell(xs []float64) string {
	m, s := results.MeanStd(xs)
	f := func(v float64) string {
		r := strconv.FormatFloat(v, 'f', 2, 64)
		if r == "-0.00" {
			r = "0.00"
		}
		return r
	}
	if len(xs) == 1 {
		return f(m)
	}
	return f(m) + " \u00b1 " + f(s)
}

// The report of a sweep (two methods x two seeds, written by fotsim run)
// loads offline in a real browser without an error and shows every method,
// the comparison over seeds as results computes it, and its charts.
func TestReportInBrowser(t *testing.T) {
	chromiumPath(t)
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	args := []string{"run", "synthetic", "--quiet", "--out", out, "--set", "seeds=[0,1]", "--set", "methods=[fedavg,fot]"}
	if err := run(context.Background(), args, &stdout, &stderr); err != nil {
		t.Fatalf("fotsim %v: %v\n%s", args, err, stderr.String())
	}
	found, err := htmlreport.Scan(os.DirFS(out), ".")
	if err != nil || len(found) != 4 {
		t.Fatalf("%d records under %s (%v), want 4", len(found), out, err)
	}
	recs := htmlreport.Records(found)
	ctx, watch := headlessTab(t)

	pages := map[string][]*results.Record{filepath.Join(out, htmlreport.File): recs}
	for _, f := range found {
		pages[filepath.Join(out, filepath.FromSlash(f.Dir), htmlreport.File)] = []*results.Record{f.Record}
	}
	for file, want := range pages {
		u := (&url.URL{Scheme: "file", Path: filepath.ToSlash(file)}).String()
		watch.reset()
		navigate(t, ctx, u)
		waitJS(t, ctx, watch, `document.getElementById('app').dataset.rendered === 'true'`, 20*time.Second)
		st := evalJS[pageState](t, ctx, readPage)

		labels := map[string][]*results.Record{}
		var order []string
		for _, r := range want {
			if _, ok := labels[r.MethodLabel]; !ok {
				order = append(order, r.MethodLabel)
			}
			labels[r.MethodLabel] = append(labels[r.MethodLabel], r)
		}
		for _, l := range order {
			if !strings.Contains(st.Text, l) {
				t.Errorf("%s: page text lacks method %q", file, l)
			}
		}
		if len(st.Summary) != len(want) {
			t.Errorf("%s: summary has %d rows, want %d", file, len(st.Summary), len(want))
		}
		groups := len(order) // the comparison and its bars, with several runs
		if len(want) == 1 {
			groups = 0
		}
		if len(st.Comparison) != groups {
			t.Fatalf("%s: comparison has %d rows, want %d: %q", file, len(st.Comparison), groups, st.Comparison)
		}
		for i, l := range order[:groups] {
			var acc, fgt []float64
			for _, r := range labels[l] {
				acc, fgt = append(acc, r.ACC), append(fgt, r.FGT)
			}
			row := st.Comparison[i]
			if row[0] != l || row[1] != strconv.Itoa(len(acc)) || row[2] != fmtCell(acc) || row[3] != fmtCell(fgt) {
				t.Errorf("%s: comparison row %q, want %s, %d seeds, ACC %s, FGT %s", file, row, l, len(acc), fmtCell(acc), fmtCell(fgt))
			}
		}
		// Charts: per run a curve chart (one path per task) and, for FOT,
		// two subspace charts (one path per layer); bars for ACC and FGT
		// per method.
		paths := 0
		for _, r := range want {
			paths += r.Tasks
			if len(r.TasksDetail) > 0 && len(r.TasksDetail[0].BasisDims) > 0 {
				paths += 2 * len(r.TasksDetail[0].BasisDims)
			}
		}
		if st.Paths != paths || st.Circles == 0 || st.Bars != 2*groups || st.Matrices != len(want) {
			t.Errorf("%s: %d series paths, %d points, %d bars, %d matrices; want %d, > 0, %d, %d",
				file, st.Paths, st.Circles, st.Bars, st.Matrices, paths, 2*groups, len(want))
		}
		errs, reqs := watch.snapshot()
		if len(errs) > 0 {
			t.Errorf("%s: the page reported errors: %q", file, errs)
		}
		for _, r := range reqs {
			if r != u && !strings.HasPrefix(r, "data:") {
				t.Errorf("%s: the page requested %s (a report loads nothing)", file, r)
			}
		}
	}
}

// The live view of fotsim serve draws the metrics that a run publishes on
// NATS as they arrive: the plotted points grow with every round.
func TestLiveViewInBrowser(t *testing.T) {
	chromiumPath(t)
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	hub := htmlreport.NewHub()
	stop, err := watchNATS(emb.URL(), hub)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	srv := httptest.NewServer(serveHandler(os.DirFS(t.TempDir()), "empty", hub, emb.URL()))
	t.Cleanup(srv.Close)
	t.Cleanup(hub.Close) // before srv.Close: ends the event stream

	pub, err := emb.Connect("run")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	const runID, tasks, rounds = "live-test-run", 2, 8
	subj := transport.SubjectsFor(runID)

	ctx, watch := headlessTab(t)
	navigate(t, ctx, srv.URL+"/live")
	waitJS(t, ctx, watch, `document.getElementById('status').textContent === 'connected'`, 20*time.Second)

	points := `[...document.querySelectorAll('.loss path[data-n]')].reduce((s, p) => s + Number(p.dataset.n), 0)`
	accPoints := `[...document.querySelectorAll('.acc path[data-n]')].reduce((s, p) => s + Number(p.dataset.n), 0)`
	last, lastAcc := 0, 0
	for round := 1; round <= rounds; round++ {
		loss := 2.0 / float64(round)
		m := sim.Metrics{Schema: sim.MetricsSchema, Run: runID, Scenario: "synthetic", Method: "fot", Label: "fot(eps=0.9)",
			Seed: 3, Task: (round - 1) * tasks / rounds, Tasks: tasks, Round: round, Rounds: rounds, Loss: &loss,
			Updates: 2, ElapsedSeconds: 0.1 * float64(round)}
		if round%2 == 0 { // eval.every = 2
			for j := 0; j <= m.Task; j++ {
				a := 50 + float64(round) + float64(j)
				m.Acc = append(m.Acc, &a)
			}
		}
		doc, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.PublishRaw(subj.Metrics, doc); err != nil {
			t.Fatal(err)
		}
		waitJS(t, ctx, watch, fmt.Sprintf("%s === %d", points, round), 20*time.Second)
		n, na := evalJS[int](t, ctx, points), evalJS[int](t, ctx, accPoints)
		if n <= last || na < lastAcc {
			t.Fatalf("round %d: %d loss points after %d, %d accuracy points after %d: the curves must grow", round, n, last, na, lastAcc)
		}
		last, lastAcc = n, na
	}
	// Rounds 2, 4 (task 0) and 6, 8 (tasks 0 and 1) had evaluations.
	if lastAcc != 6 {
		t.Errorf("%d accuracy points, want 6", lastAcc)
	}
	text := evalJS[string](t, ctx, "document.body.innerText")
	for _, w := range []string{"fot(eps=0.9)", "8/8", "2/2"} {
		if !strings.Contains(text, w) {
			t.Errorf("live page lacks %q", w)
		}
	}
	hub.Close()
	waitJS(t, ctx, watch, `document.getElementById('status').textContent.startsWith('finished')`, 20*time.Second)
	errs, reqs := watch.snapshot()
	if len(errs) > 0 {
		t.Errorf("the live page reported errors: %q", errs)
	}
	for _, r := range reqs {
		if !strings.HasPrefix(r, srv.URL+"/") && !strings.HasPrefix(r, "data:") {
			t.Errorf("the live page requested %s, outside its server", r)
		}
	}
}
