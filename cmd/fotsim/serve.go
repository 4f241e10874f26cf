package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	htmlreport "github.com/fotsim/fotsim/report"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
	"github.com/fotsim/fotsim/transport"
)

func init() {
	register(command{name: "serve", usage: "[flags] DIR         serve reports of DIR and the live view of runs", order: 60, run: cmdServe})
}

const serveUsage = `Usage: fotsim serve [--addr 127.0.0.1:8080] [--nats URL [--nats-password-file FILE] [--nats-ca FILE]] DIR

Serves, over HTTP, the reports of the run records under DIR and the live
view of running runs:

  /                      index: every folder under DIR that holds a run record
  /report.html           report of every record under DIR (made on the fly)
  /FOLDER/report.html    report of the records under DIR/FOLDER
  /FOLDER/FILE           the files under DIR (result.json, CSVs, ...)
  /live                  per-round curves of running runs, drawn as they arrive
  /events                the live view's Server-Sent Events

The live view shows the metrics that runs publish on the NATS subjects
fotsim.<run>.metrics of the server --nats names (runs over an external NATS
server publish them; "fotsim run --live ADDR" serves its own live view).
An ADDR without a host listens on 127.0.0.1 only. On a NATS server with
fotsim natsconf's users, give it the viewer's: nats://fotsim-viewer@host:4222,
with the password in --nats-password-file or FOTSIM_NATS_PASSWORD. If the
NATS connection is given up (lost for longer than its timeout, or a
subscription refused by the server's permissions), serve exits with the
error.

Flags:
`

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", serveUsage, stderr)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address, host:port (no host: 127.0.0.1)")
	natsURL := fs.String("nats", "", "NATS server whose runs' metrics the live view shows (subject "+transport.MetricsWildcard+"); empty: none")
	creds := addNATSAuth(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usagef("serve takes exactly one folder, got %d", fs.NArg())
	}
	dir := fs.Arg(0)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return usagef("serve: %v", err)
	}
	defer root.Close()

	hub := htmlreport.NewHub()
	defer hub.Close()
	source := "none (start fotsim serve with --nats URL)"
	var lost <-chan struct{} // closed when the NATS connection is given up
	var natsErr func() error
	if *natsURL != "" {
		dopts, err := creds.dialOptions("serve", *natsURL)
		if err != nil {
			return err
		}
		conn, stop, err := watchNATSWith(*natsURL, dopts, hub)
		if err != nil {
			return err
		}
		defer stop()
		lost, natsErr = conn.Done(), conn.Err
		source = transport.RedactURLs(*natsURL) + " (" + transport.MetricsWildcard + ")"
	}
	ln, err := net.Listen("tcp", listenAddr(*addr))
	if err != nil {
		return usagef("serve: %v", err)
	}
	srv := &http.Server{Handler: serveHandler(root.FS(), dir, hub, source), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "serving %s at http://%s/ (live view: http://%s/live); Ctrl-C stops\n", dir, ln.Addr(), ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	var stopErr error
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	case <-lost:
		stopErr = fmt.Errorf("serve: the live view's NATS connection: %w", natsErr())
	}
	hub.Close() // ends the event streams, so that Shutdown need not wait for them
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return stopErr
}

// watchNATS feeds hub with the metrics documents of every run on the
// NATS server at url, until stop.
func watchNATS(url string, hub *htmlreport.Hub) (stop func(), err error) {
	_, stop, err = watchNATSWith(url, transport.DialOptions{}, hub)
	return stop, err
}

// watchNATSWith is watchNATS with dial options; it returns the
// connection too, whose Done and Err say when and why it was given up.
func watchNATSWith(url string, opts transport.DialOptions, hub *htmlreport.Hub) (conn *transport.Conn, stop func(), err error) {
	conn, err = transport.DialWith(url, "fotsim-serve", opts)
	if err != nil {
		return nil, nil, err
	}
	unsub, err := conn.SubscribeRaw(transport.MetricsWildcard, func(_ string, doc []byte) { hub.Publish(doc) })
	if err == nil {
		err = conn.Flush() // the server knows the subscription
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, func() { _ = unsub(); conn.Close() }, nil
}

// listenAddr makes an address without a host ("8080", ":8080") listen on
// the loopback interface only.
func listenAddr(addr string) string {
	if !strings.Contains(addr, ":") {
		return net.JoinHostPort("127.0.0.1", addr)
	}
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// liveRoutes adds the live page (/live) and its event stream (/events).
func liveRoutes(mux *http.ServeMux, hub *htmlreport.Hub, source string) {
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		var b bytes.Buffer
		if err := htmlreport.LivePage(&b, "/events", source); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		page(w, b.Bytes())
	})
	mux.Handle("GET /events", hub)
}

func page(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// serveHandler serves fsys (the folder named name): the index, reports
// made on the fly, the files, and the live view fed by hub.
func serveHandler(fsys fs.FS, name string, hub *htmlreport.Hub, source string) http.Handler {
	mux := http.NewServeMux()
	liveRoutes(mux, hub, source)
	files := http.FileServerFS(fsys)
	mux.HandleFunc("GET /{path...}", func(w http.ResponseWriter, r *http.Request) {
		p := r.PathValue("path")
		switch {
		case p == "":
			serveIndex(w, fsys, name)
		case p == htmlreport.File || strings.HasSuffix(p, "/"+htmlreport.File):
			serveReport(w, fsys, path.Dir(p))
		default:
			files.ServeHTTP(w, r)
		}
	})
	return mux
}

func serveReport(w http.ResponseWriter, fsys fs.FS, dir string) {
	if !fs.ValidPath(dir) {
		http.NotFound(w, nil)
		return
	}
	found, err := htmlreport.Scan(fsys, dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		http.Error(w, "no such folder: "+dir, http.StatusNotFound)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	case len(found) == 0:
		http.Error(w, "no run records under "+dir, http.StatusNotFound)
		return
	}
	var b bytes.Buffer
	if err := htmlreport.Render(&b, htmlreport.Records(found)); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	page(w, b.Bytes())
}

var indexPage = template.Must(template.New("index").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>fotsim: {{.Name}}</title><link rel="icon" href="data:,">
<style>body{font:14px/1.45 system-ui,sans-serif;margin:1rem 1.5rem;color:#1d2430}td,th{padding:.2rem .6rem;text-align:left;border-bottom:1px solid #d5dbe3}table{border-collapse:collapse}.err{color:#b00020}</style>
</head><body>
<h1>fotsim: {{.Name}}</h1>
<p><a href="/live">Live view</a> of running runs.</p>
{{if .Err}}<p class="err">{{.Err}}</p>{{end}}
{{if .Runs}}<p><a href="/report.html">Report of all {{len .Runs}} runs</a>. One folder per run:</p>
<table><tr><th>folder</th><th>scenario</th><th>method</th><th>seed</th><th>ACC</th><th>FGT</th></tr>
{{range .Runs}}<tr><td><a href="{{.Href}}">{{.Dir}}</a></td><td>{{.Scenario}}</td><td>{{.Label}}</td><td>{{.Seed}}</td><td>{{.ACC}}</td><td>{{.FGT}}</td></tr>
{{end}}</table>{{else}}<p>No run records here yet.</p>{{end}}
</body></html>
`))

type indexRun struct {
	Dir, Href, Scenario, Label string
	Seed                       uint64
	ACC, FGT                   string
}

func serveIndex(w http.ResponseWriter, fsys fs.FS, name string) {
	data := struct {
		Name, Err string
		Runs      []indexRun
	}{Name: name}
	found, err := htmlreport.Scan(fsys, ".")
	if err != nil {
		data.Err = err.Error()
	}
	for _, f := range found {
		r := f.Record
		l := r.MethodLabel
		if l == "" {
			l = r.Method
		}
		href := "/" + htmlreport.File
		if f.Dir != "." {
			href = "/" + f.Dir + "/" + htmlreport.File
		}
		data.Runs = append(data.Runs, indexRun{Dir: f.Dir, Href: href, Scenario: r.Scenario, Label: l, Seed: r.Seed,
			ACC: fmt.Sprintf("%.2f", r.ACC), FGT: fmt.Sprintf("%.2f", r.FGT)})
	}
	var b bytes.Buffer
	if err := indexPage.Execute(&b, data); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	page(w, b.Bytes())
}

// liveServer is `fotsim run --live ADDR`: the live view of this process's
// runs, fed in process (sim.Options.LiveSink), for as long as the runs
// last.
type liveServer struct {
	hub *htmlreport.Hub
	srv *http.Server
}

// startLive starts the live view on addr and prints its URL.
func startLive(addr string, stdout io.Writer) (*liveServer, error) {
	ln, err := net.Listen("tcp", listenAddr(addr))
	if err != nil {
		return nil, usagef("--live: %v", err)
	}
	hub := htmlreport.NewHub()
	mux := http.NewServeMux()
	liveRoutes(mux, hub, "this fotsim run")
	mux.Handle("GET /{$}", http.RedirectHandler("/live", http.StatusFound))
	l := &liveServer{hub: hub, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = l.srv.Serve(ln) }()
	fmt.Fprintf(stdout, "live view: http://%s/live\n", ln.Addr())
	return l, nil
}

// options makes a run publish its metrics to the live view (nil: no live
// view). Runs over an external NATS server also publish them on their
// metrics subject, for fotsim serve --nats; with the embedded server no
// other process could hear them.
func (l *liveServer) options(opts *sim.Options, sc *scenarios.Scenario) {
	external := sc.Transport.NATS != "" && sc.Transport.NATS != "embedded"
	opts.Live = external
	if l != nil {
		opts.LiveSink = l.hub.Publish
	}
}

// stop ends the live view: the pages are told the run has finished.
func (l *liveServer) stop() {
	if l == nil {
		return
	}
	l.hub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = l.srv.Shutdown(ctx)
}

// writeReports writes report.html into a run's folder (recs of one run)
// or a sweep's (recs of all runs) and names it unless quiet.
func writeReports(dir string, recs []*results.Record, quiet bool, stdout io.Writer) error {
	if err := htmlreport.Write(dir, recs); err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(stdout, "report: %s\n", filepath.Join(dir, htmlreport.File))
	}
	return nil
}
