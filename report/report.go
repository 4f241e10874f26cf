package report

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/fotsim/fotsim/results"
)

// File is the name of the report Write puts in a folder.
const File = "report.html"

// Schema is the schema string of the data block of a report page.
const Schema = "fotsim.report/v1"

//go:embed assets/page.html assets/style.css assets/render.js
var assets embed.FS

// Content Security Policies of the pages: the report fetches nothing; the
// live page may only open its event stream on its own origin.
const (
	reportCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
	liveCSP   = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'"
)

// pageData is the JSON of the fotsim-data block.
type pageData struct {
	Schema string            `json:"schema"`
	Mode   string            `json:"mode"` // "report" or "live"
	Title  string            `json:"title"`
	Runs   []*results.Record `json:"runs,omitempty"`   // report
	Events string            `json:"events,omitempty"` // live: URL of the event stream
	Source string            `json:"source,omitempty"` // live: where the metrics come from, for people
}

// Write renders the report of recs into dir/report.html (dir is created
// when missing), atomically: through a temporary file in dir and a rename.
func Write(dir string, recs []*results.Record) error {
	var b bytes.Buffer
	if err := Render(&b, recs); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := results.WriteFileAtomic(dir, File, b.Bytes()); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// Render writes the self-contained report page of recs to w. The records
// appear in the page in the order given.
func Render(w io.Writer, recs []*results.Record) error {
	for _, r := range recs {
		if r == nil {
			return fmt.Errorf("report: %w", results.ErrNilRecord)
		}
	}
	return render(w, reportCSP, pageData{Schema: Schema, Mode: "report", Title: Title(recs), Runs: recs})
}

// LivePage writes the live view: it reads metrics documents from the
// Server-Sent Events at events (a URL on the page's own origin, such as
// "/events") and draws them as they arrive. source tells the reader where
// the metrics come from (shown on the page).
func LivePage(w io.Writer, events, source string) error {
	return render(w, liveCSP, pageData{Schema: Schema, Mode: "live", Title: "fotsim live view", Events: events, Source: source})
}

// Title is the report title of recs: the scenario, method and seed of a
// single run, else the scenarios and the number of runs.
func Title(recs []*results.Record) string {
	if len(recs) == 1 {
		r := recs[0]
		l := r.MethodLabel
		if l == "" {
			l = r.Method
		}
		return fmt.Sprintf("fotsim report: %s, %s, seed %d", r.Scenario, l, r.Seed)
	}
	var names []string
	seen := map[string]bool{}
	for _, r := range recs {
		if !seen[r.Scenario] {
			seen[r.Scenario] = true
			names = append(names, r.Scenario)
		}
	}
	return fmt.Sprintf("fotsim report: %s (%d runs)", strings.Join(names, ", "), len(recs))
}

func render(w io.Writer, csp string, d pageData) error {
	page, err := assets.ReadFile("assets/page.html")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	style, err := assets.ReadFile("assets/style.css")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	script, err := assets.ReadFile("assets/render.js")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	data, err := ScriptJSON(d)
	if err != nil {
		return err
	}
	// One pass: what is substituted is never scanned for placeholders.
	r := strings.NewReplacer(
		"{{CSP}}", html.EscapeString(csp),
		"{{TITLE}}", html.EscapeString(d.Title),
		"{{STYLE}}", string(style),
		"{{SCRIPT}}", string(script),
		"{{DATA}}", string(data),
	)
	if _, err := r.WriteString(w, string(page)); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return nil
}

// ScriptJSON encodes v as JSON that is safe inside an HTML <script>
// element: '<', '>' and '&' (so no "</script" or "<!--"), U+2028 and
// U+2029 are written as \u escapes, which JSON.parse reads back unchanged.
func ScriptJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(true)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("report: encode data: %w", err)
	}
	out := bytes.TrimRight(b.Bytes(), "\n")
	// Outside strings JSON has none of these characters, so replacing them
	// everywhere only rewrites string contents (and records' own
	// MarshalJSON output, which Encode copies as it is).
	out = bytes.ReplaceAll(out, []byte("<"), []byte(`\u003c`))
	out = bytes.ReplaceAll(out, []byte(">"), []byte(`\u003e`))
	out = bytes.ReplaceAll(out, []byte("&"), []byte(`\u0026`))
	out = bytes.ReplaceAll(out, []byte("\u2028"), []byte(`\u2028`))
	out = bytes.ReplaceAll(out, []byte("\u2029"), []byte(`\u2029`))
	return out, nil
}

// Found is a run record found by Scan, with the folder that holds it.
type Found struct {
	Dir    string // slash-separated, relative to the scanned file system
	Record *results.Record
}

// Scan finds every run record (results.RecordFile) under dir in fsys,
// sorted by folder. A record that cannot be read or decoded is an error
// naming it.
func Scan(fsys fs.FS, dir string) ([]Found, error) {
	var found []Found
	err := fs.WalkDir(fsys, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Name() != results.RecordFile {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rec, err := results.DecodeRecord(b)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		found = append(found, Found{Dir: path.Dir(p), Record: rec})
		return nil
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && len(found) == 0 {
			return nil, fmt.Errorf("report: %s: %w", dir, fs.ErrNotExist)
		}
		return nil, fmt.Errorf("report: %w", err)
	}
	sort.SliceStable(found, func(i, j int) bool { return found[i].Dir < found[j].Dir })
	return found, nil
}

// Records returns the records of found, in order.
func Records(found []Found) []*results.Record {
	recs := make([]*results.Record, len(found))
	for i, f := range found {
		recs[i] = f.Record
	}
	return recs
}
