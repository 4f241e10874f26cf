package report

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"html"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/fotsim/fotsim/results"
)

// record returns a small two-task record; fot ones have FOT's details.
func record(method, label string, seed uint64, a, b float64) *results.Record {
	r := &results.Record{
		Scenario: "unit", Method: method, MethodLabel: label, Seed: seed, Tasks: 2,
		AccMatrix: results.Matrix{{a, math.NaN()}, {a - 2, b}},
		Rounds:    4, Clients: 4, ClientsPerRound: 2, BytesUp: 1 << 20, BytesDown: 3 << 20, WallSeconds: 1.5,
		Curves: []results.Curve{
			{Round: 1, Task: 0, Acc: []float64{a / 2}},
			{Round: 2, Task: 0, Acc: []float64{a}},
			{Round: 3, Task: 1, Acc: []float64{a - 1, b / 2}},
			{Round: 4, Task: 1, Acc: []float64{a - 2, b}},
		},
		TasksDetail: []results.TaskDetail{{Task: 0, Rounds: 2, TrainLoss: 1.2}, {Task: 1, Rounds: 2, TrainLoss: 0.9}},
	}
	if method == "fot" {
		for i := range r.TasksDetail {
			r.TasksDetail[i].BasisDims = map[string]int{"fc0.weight": 4 + 4*i, "head.weight": 3 + 2*i}
			r.TasksDetail[i].ProjectedFraction = map[string]float64{"fc0.weight": 0.5 * float64(i), "head.weight": 0.25 * float64(i)}
			r.TasksDetail[i].BasisCapacity = map[string]int{"fc0.weight": 16, "head.weight": 32}
		}
	}
	r.FillMetrics()
	return r
}

// hostile is a method label that would break a page that does not escape.
const hostile = "x</script><script>alert(1)</script><!-- & \u2028\u2029 \"'"

func testRecords() []*results.Record {
	return []*results.Record{
		record("fedavg", "fedavg", 0, 90, 80),
		record("fedavg", "fedavg", 1, 88, 82),
		record("fot", "fot(eps=0.9)", 0, 85, 75),
		record("fot", hostile, 1, 84, 77),
	}
}

func renderString(t *testing.T, recs []*results.Record) string {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, recs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var dataBlock = regexp.MustCompile(`(?s)<script type="application/json" id="fotsim-data">(.*?)</script>`)

// The page is one file that names no URL, keeps its data in one JSON
// block that reads back as the records, and cannot be broken out of.
func TestRenderSelfContained(t *testing.T) {
	recs := testRecords()
	page := renderString(t, recs)
	for _, bad := range []string{"://", "http:", "https:", "src=", "url(", "@import", "<link rel=\"stylesheet\"", "<iframe", "<img"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if got := strings.Count(page, "href="); got != 1 || !strings.Contains(page, `<link rel="icon" href="data:,">`) {
		t.Errorf("page has %d href attributes, want only the data: favicon", got)
	}
	if n := strings.Count(strings.ToLower(page), "</script"); n != 2 {
		t.Errorf("page has %d </script, want 2 (data and code)", n)
	}
	if strings.Contains(page, "<!--") || strings.Contains(page, "\u2028") || strings.Contains(page, "\u2029") {
		t.Error("page contains <!--, U+2028 or U+2029")
	}
	if !strings.Contains(html.UnescapeString(page), "default-src 'none'") {
		t.Error("page lacks its Content Security Policy")
	}
	m := dataBlock.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no fotsim-data block")
	}
	var d struct {
		Schema, Mode, Title string
		Runs                []json.RawMessage
	}
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatalf("data block: %v", err)
	}
	if d.Schema != Schema || d.Mode != "report" || d.Title != "fotsim report: unit (4 runs)" || len(d.Runs) != len(recs) {
		t.Fatalf("data block: schema %q mode %q title %q, %d runs", d.Schema, d.Mode, d.Title, len(d.Runs))
	}
	for i, raw := range d.Runs {
		got, err := results.DecodeRecord(raw)
		if err != nil {
			t.Fatal(err)
		}
		var a, b bytes.Buffer
		if err := results.WriteRecord(&a, got); err != nil {
			t.Fatal(err)
		}
		if err := results.WriteRecord(&b, recs[i]); err != nil {
			t.Fatal(err)
		}
		if a.String() != b.String() {
			t.Errorf("run %d does not read back:\n%s\nwant\n%s", i, a.String(), b.String())
		}
	}
	// The title is escaped where it is HTML.
	one := renderString(t, recs[3:])
	if !strings.Contains(one, "<title>fotsim report: unit, x&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;!-- &amp;") {
		t.Errorf("single-run title not escaped:\n%s", one[:600])
	}
	if err := Render(&bytes.Buffer{}, []*results.Record{nil}); !errors.Is(err, results.ErrNilRecord) {
		t.Errorf("Render of a nil record: got %v, want %v", err, results.ErrNilRecord)
	}
}

func TestScriptJSON(t *testing.T) {
	in := map[string]string{"s": hostile}
	b, err := ScriptJSON(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<", ">", "&", "\u2028", "\u2029", "\n"} {
		if bytes.Contains(b, []byte(bad)) {
			t.Errorf("%s contains %q", b, bad)
		}
	}
	var out map[string]string
	if err := json.Unmarshal(b, &out); err != nil || out["s"] != hostile {
		t.Fatalf("round trip: %v, %q", err, out["s"])
	}
}

// The embedded assets can be inlined as they are.
func TestAssets(t *testing.T) {
	for _, name := range []string{"assets/render.js", "assets/style.css"} {
		b, err := assets.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ToLower(string(b))
		for _, bad := range []string{"</script", "</style", "{{", "://", "<!--", "innerhtml", "eval(", "fetch(", "xmlhttprequest"} {
			if strings.Contains(s, bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}

func TestWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "folder")
	if err := Write(dir, testRecords()[:1]); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != File {
		t.Fatalf("folder holds %v, want only %s", entries, File)
	}
	b, err := os.ReadFile(filepath.Join(dir, File))
	if err != nil {
		t.Fatal(err)
	}
	if want := renderString(t, testRecords()[:1]); string(b) != want {
		t.Error("written report differs from Render's")
	}
	if !strings.Contains(string(b), "<title>fotsim report: unit, fedavg, seed 0</title>") {
		t.Error("single-run title missing")
	}
}

func TestScan(t *testing.T) {
	enc := func(r *results.Record) []byte {
		var b bytes.Buffer
		if err := results.WriteRecord(&b, r); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	recs := testRecords()
	fsys := fstest.MapFS{
		"sweep/b-fot-s0/result.json":    {Data: enc(recs[2])},
		"sweep/a-fedavg-s1/result.json": {Data: enc(recs[1])},
		"sweep/a-fedavg-s0/result.json": {Data: enc(recs[0])},
		"sweep/a-fedavg-s0/report.html": {Data: []byte("old")},
		"sweep/.hidden/result.json":     {Data: []byte("not a record")},
		"other/result.json":             {Data: enc(recs[3])},
	}
	found, err := Scan(fsys, "sweep")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, f := range found {
		dirs = append(dirs, f.Dir)
	}
	if got, want := strings.Join(dirs, " "), "sweep/a-fedavg-s0 sweep/a-fedavg-s1 sweep/b-fot-s0"; got != want {
		t.Fatalf("Scan found %q, want %q", got, want)
	}
	if rs := Records(found); rs[2].MethodLabel != "fot(eps=0.9)" || rs[0].Seed != 0 || rs[1].Seed != 1 {
		t.Fatalf("records out of order: %+v", rs)
	}
	all, err := Scan(fsys, ".")
	if err != nil || len(all) != 4 {
		t.Fatalf("Scan(.): %d records, %v; want 4", len(all), err)
	}
	fsys["sweep/c/result.json"] = &fstest.MapFile{Data: []byte(`{"schema":"other"}`)}
	if _, err := Scan(fsys, "sweep"); !errors.Is(err, results.ErrSchema) || !strings.Contains(err.Error(), "sweep/c/result.json") {
		t.Fatalf("Scan with a bad record: got %v, want %v naming the file", err, results.ErrSchema)
	}
	if _, err := Scan(fsys, "nosuch"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Scan of a missing folder: got %v, want %v", err, fs.ErrNotExist)
	}
}

func TestLivePage(t *testing.T) {
	var b bytes.Buffer
	if err := LivePage(&b, "/events", "nats://127.0.0.1:4222 <b>"); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	if !strings.Contains(html.UnescapeString(page), "connect-src 'self'") {
		t.Error("live page cannot open its event stream")
	}
	m := dataBlock.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no data block")
	}
	var d pageData
	if err := json.Unmarshal([]byte(m[1]), &d); err != nil {
		t.Fatal(err)
	}
	if d.Mode != "live" || d.Events != "/events" || d.Source != "nats://127.0.0.1:4222 <b>" {
		t.Fatalf("live data block: %+v", d)
	}
}

// sse reads Server-Sent Events: the data lines, and "end" for an end event.
func sse(t *testing.T, url string) (<-chan string, func()) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	ch := make(chan string, 64)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if event == "end" {
					ch <- "end"
				} else {
					ch <- strings.TrimPrefix(line, "data: ")
				}
				event = ""
			}
		}
	}()
	return ch, func() { resp.Body.Close() }
}

func recv(t *testing.T, ch <-chan string) string {
	t.Helper()
	select {
	case s, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no event after 10s")
		return ""
	}
}

func TestHub(t *testing.T) {
	h := NewHub()
	srv := httptest.NewServer(h)
	defer srv.Close()
	h.Publish([]byte(`{"round":1}`))
	h.Publish([]byte("not json"))
	h.Publish([]byte("{\n  \"round\": 2\n}"))
	if h.Len() != 2 {
		t.Fatalf("hub keeps %d documents, want 2", h.Len())
	}
	early, stop1 := sse(t, srv.URL)
	defer stop1()
	for _, want := range []string{`{"round":1}`, `{"round":2}`} {
		if got := recv(t, early); got != want {
			t.Fatalf("replayed %q, want %q", got, want)
		}
	}
	h.Publish([]byte(`{"round":3}`))
	if got := recv(t, early); got != `{"round":3}` {
		t.Fatalf("got %q, want round 3", got)
	}
	h.Close()
	h.Close()
	if got := recv(t, early); got != "end" {
		t.Fatalf("got %q, want the end event", got)
	}
	h.Publish([]byte(`{"round":4}`)) // ignored after Close
	late, stop2 := sse(t, srv.URL)
	defer stop2()
	for _, want := range []string{`{"round":1}`, `{"round":2}`, `{"round":3}`, "end"} {
		if got := recv(t, late); got != want {
			t.Fatalf("late page got %q, want %q", got, want)
		}
	}
	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
}

// A page that does not read is dropped instead of blocking Publish, and
// the history stays bounded.
func TestHubSlowPageAndHistory(t *testing.T) {
	h := NewHub()
	ch, _, _ := h.subscribe()
	start := time.Now()
	for i := range MaxHistory + 10 {
		h.Publish([]byte(`{"i":` + string(rune('0'+i%10)) + `}`))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("publishing took %v", d)
	}
	if h.Len() != MaxHistory {
		t.Fatalf("history %d, want %d", h.Len(), MaxHistory)
	}
	n := 0
	for range ch { // closed when dropped
		n++
	}
	if n != subscriberQueue {
		t.Fatalf("slow page got %d documents before being dropped, want %d", n, subscriberQueue)
	}
}
