package sim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/transport"
)

// staleAnnouncement is the age after which a queued announcement is
// dropped unread: a server still waiting for hosts repeats it every
// AnnounceEvery, so a fresh one follows.
const staleAnnouncement = 3 * AnnounceEvery

// maxSeenRuns bounds the run ids a client process remembers having handled.
const maxSeenRuns = 4096

// ClientOptions configure Env.ServeClients.
type ClientOptions struct {
	// First and Last bound the client ids this process runs: [First,
	// Last). A run with fewer clients gets the part of the range it has.
	First, Last int
	// Workers is the number of training goroutines; 0 is runtime.NumCPU().
	// Results do not depend on it.
	Workers int
	// DataDir, when set, replaces the announced scenario's data.dir: where
	// this machine keeps the dataset files.
	DataDir string
	// Once makes ServeClients return after the first run this process
	// joined, with that run's error.
	Once bool
	// Name names this process in the server's messages; "" is
	// "HOSTNAME:PID".
	Name string
	// Log receives a line for every run joined, finished or not joined,
	// and for every announcement ignored; nil is silent.
	Log io.Writer
	// Verbose receives the host's rejected-message lines; nil is silent.
	Verbose io.Writer
	// Keys, when set, is the runs' secret (package auth), the server's
	// Options.Keys: the hosts sign their clients' updates and accept only
	// the server's signed messages. nil: the messages are checked only.
	Keys *auth.Keys
}

// ServeClients runs the clients [o.First, o.Last) of every run announced on
// conn's transport.AnnounceSubject by servers whose client hosts are other
// processes (Options.Remote), one run after the other: for each, it builds
// the same experiment from the announced scenario, method and seed (data,
// partitions, model, the method's client side), joins the run, trains its
// clients until the server's Stop, and waits for the next announcement.
// Announcements that do not check out (unknown fields or scenario keys,
// another fotsim version, a method or client count that does not match)
// are logged and skipped. It returns nil when ctx ends while it waits, and
// the error of a run that failed or was interrupted otherwise; with Once,
// after the first run it joined.
func (e *Env) ServeClients(ctx context.Context, conn *transport.Conn, o ClientOptions) error {
	if o.First < 0 || o.Last <= o.First || o.Last > transport.MaxClients {
		return fmt.Errorf("%w: client range [%d, %d) is empty or out of [0, %d)", ErrRemote, o.First, o.Last, transport.MaxClients)
	}
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.Name == "" {
		host, _ := os.Hostname()
		o.Name = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	logf := logger(o.Log)
	if logf == nil {
		logf = func(string, ...any) {}
	}
	type heard struct {
		data []byte
		at   time.Time
	}
	anns := make(chan heard, 64)
	unsub, err := conn.SubscribeRaw(transport.AnnounceSubject, func(_ string, data []byte) {
		select {
		case anns <- heard{data, time.Now()}:
		default: // the server repeats it
		}
	})
	if err != nil {
		return err
	}
	defer unsub()
	if err := conn.Flush(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for {
		var h heard
		select {
		case <-ctx.Done():
			return nil
		case h = <-anns:
		}
		if time.Since(h.at) > staleAnnouncement {
			continue
		}
		var a Announcement
		err := decodeDoc(h.data, &a)
		if err == nil {
			err = checkText("run", a.Run, maxRunIDBytes, false)
		}
		if err != nil {
			logf("ignored an announcement: %v", err)
			continue
		}
		if seen[a.Run] { // the server repeats it while it waits
			continue
		}
		if len(seen) >= maxSeenRuns {
			clear(seen)
		}
		seen[a.Run] = true
		c := &clientRun{env: e, conn: conn, o: o, a: &a, subj: transport.SubjectsFor(a.Run), logf: logf}
		if err := a.check(); err != nil {
			// Tell the server why (another build, most likely): its
			// error names this process if no other covers the clients.
			logf("ignored the announcement of run %s: %v", a.Run, err)
			c.first, c.last, c.id = o.First, o.Last, newHostID()
			c.report(HostFailed, "announcement: "+oneLine(err.Error()))
			continue
		}
		joined, err := c.serve(ctx)
		switch {
		case ctx.Err() != nil && !joined:
			return nil
		case joined && o.Once, err != nil && ctx.Err() != nil:
			return err
		case err != nil:
			logf("run %s: %v", a.Run, err)
		}
	}
}

// clientRun is one announced run, as a client process serves it.
type clientRun struct {
	env  *Env
	conn *transport.Conn
	o    ClientOptions
	a    *Announcement
	subj transport.Subjects
	logf func(string, ...any)
	id   string // this host's id in the run
	what string // the run for log lines: "quickstart fedavg s0"

	first, last int  // the clients it runs, within the run's
	rejoined    bool // accepted after the run's start (JoinDecision.Started)
}

// report tells the server the host's state.
func (c *clientRun) report(state, msg string) {
	if len(msg) > maxErrorBytes {
		msg = msg[:maxErrorBytes-3] + "..."
	}
	doc, err := json.Marshal(HostReport{
		Schema: HostSchema, Run: c.a.Run, Host: c.id, Name: c.o.Name, State: state,
		First: c.first, Last: c.last, Version: Version(), Backend: Backend(), Error: msg,
	})
	if err == nil {
		err = c.conn.PublishRaw(c.subj.Hosts, doc)
	}
	if err == nil {
		err = c.conn.Flush()
	}
	if err != nil {
		c.logf("run %s: cannot report %s to the server: %v", c.a.Run, state, err)
	}
}

// fail reports that the host cannot join or its run failed, and returns
// err.
func (c *clientRun) fail(err error) error {
	c.report(HostFailed, oneLine(err.Error()))
	return err
}

// serve joins the run and trains its clients until the server's Stop. It
// reports whether it joined (was accepted by the server).
func (c *clientRun) serve(ctx context.Context) (joined bool, err error) {
	a := c.a
	c.id = newHostID()
	c.first, c.last = c.o.First, min(c.o.Last, a.Clients)
	if c.first >= c.last {
		c.logf("run %s has clients 0-%d, none of %s: not joined", a.Run, a.Clients-1, span(c.o.First, c.o.Last))
		return false, nil
	}
	c.what = a.Run
	if a.Version != Version() {
		return false, c.fail(fmt.Errorf("%w: the server runs fotsim %s, this client %s", ErrRemote, a.Version, Version()))
	}
	sc, err := scenarios.Parse([]byte(a.Scenario), "announced scenario", nil)
	if err != nil {
		return false, c.fail(err)
	}
	if a.Method >= len(sc.Methods) {
		return false, c.fail(fmt.Errorf("%w: method index %d, the scenario has %d methods", ErrRemote, a.Method, len(sc.Methods)))
	}
	sc.Train.Workers = c.o.Workers
	if c.o.DataDir != "" {
		sc.Data.Dir = c.o.DataDir
	}
	run := scenarios.Run{Method: sc.Methods[a.Method], Seed: a.Seed}
	c.what = fmt.Sprintf("%s %s s%d", sc.Name, run.Method.Label(), run.Seed)
	x, err := c.env.Build(sc, run)
	if err != nil {
		return false, c.fail(err)
	}
	if clients, _ := population(sc, x.Spec); clients != a.Clients {
		return false, c.fail(fmt.Errorf("%w: the announcement says %d clients, its scenario %d", ErrRemote, a.Clients, clients))
	}
	hcfg, err := x.hostConfig(c.subj, c.first, c.last, c.o.Workers, logger(c.o.Verbose))
	if err != nil {
		return false, c.fail(err)
	}
	x.guardHost(&hcfg, a.Run, c.o.Keys) // the checks of round messages and, with keys, signatures
	host, err := client.NewHost(hcfg, x.Model, x, c.conn)
	if err != nil {
		return false, c.fail(err)
	}
	answers, unsub, err := c.listen()
	if err != nil {
		return false, c.fail(err)
	}
	defer unsub()
	if ok, err := c.join(ctx, answers); !ok || err != nil {
		return false, err
	}
	if c.first != hcfg.First || c.last != hcfg.Last {
		// Accepted for part of its range (a rejoin, the rest run by
		// others): the host runs that part.
		hcfg.First, hcfg.Last = c.first, c.last
		if host, err = client.NewHost(hcfg, x.Model, x, c.conn); err != nil {
			return false, c.fail(err)
		}
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Until the rounds start, the server may still give up on the run
	// (hosts missing), and at any time on this host (it was not heard
	// from and another took over its clients, or it joined as the run
	// ended): that ends this host's part in it.
	var gaveUp atomic.Pointer[JoinDecision]
	watch := make(chan struct{})
	defer close(watch)
	go func() {
		for {
			select {
			case <-watch:
				return
			case data := <-answers:
				if d, ok := c.answer(data); ok && d.Cancel != "" {
					gaveUp.Store(&d)
					cancel()
					return
				}
			}
		}
	}()
	if err := host.Start(hctx); err != nil {
		return true, c.fail(err)
	}
	c.report(HostReady, "")
	// The heartbeat: the server takes a host it does not hear from for a
	// while for gone (remote.go).
	go func() {
		tick := time.NewTicker(HeartbeatEvery)
		defer tick.Stop()
		for {
			select {
			case <-watch:
				return
			case <-hctx.Done():
				return
			case <-tick.C:
				c.heartbeat()
			}
		}
	}()
	if c.rejoined {
		c.logf("run %s (%s): rejoined the started run: running clients %s of 0-%d from the next round", c.what, a.Run, span(c.first, c.last), a.Clients-1)
	} else {
		c.logf("run %s (%s): running clients %s of 0-%d", c.what, a.Run, span(c.first, c.last), a.Clients-1)
	}
	err = host.Wait()
	if d := gaveUp.Load(); d != nil && err != nil { // a Stop that came first ends the run as usual
		if d.Host != "" {
			c.logf("run %s (%s): the server dropped this host: %s", c.what, a.Run, d.Cancel)
		} else {
			c.logf("run %s (%s): the server gave up: %s", c.what, a.Run, d.Cancel)
		}
		return false, nil
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("run %s: the client process was stopped during the run", c.what)
		}
		return true, c.fail(err)
	}
	c.logf("run %s (%s): done", c.what, a.Run)
	return true, nil
}

// listen subscribes to the server's answers on the run's Join subject.
func (c *clientRun) listen() (<-chan []byte, func() error, error) {
	answers := make(chan []byte, 16)
	unsub, err := c.conn.SubscribeRaw(c.subj.Join, func(_ string, data []byte) {
		select {
		case answers <- data:
		default:
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if err := c.conn.Flush(); err != nil {
		_ = unsub()
		return nil, nil, err
	}
	return answers, unsub, nil
}

// answer decodes and checks one of the server's answers; false (logged)
// when it does not check out, or when it is about another host.
func (c *clientRun) answer(data []byte) (JoinDecision, bool) {
	var d JoinDecision
	err := decodeDoc(data, &d)
	if err == nil {
		err = d.check(c.a.Run)
	}
	if err != nil {
		c.logf("run %s: ignored an answer of the server: %v", c.a.Run, err)
		return d, false
	}
	return d, d.Host == c.id || d.Host == "" && d.Cancel != ""
}

// heartbeat repeats the host's "ready" report (HeartbeatEvery), quietly:
// while the connection is down it fails every time, and the host's own
// messages say so.
func (c *clientRun) heartbeat() {
	doc, err := json.Marshal(HostReport{
		Schema: HostSchema, Run: c.a.Run, Host: c.id, Name: c.o.Name, State: HostReady,
		First: c.first, Last: c.last, Version: Version(), Backend: Backend(),
	})
	if err == nil {
		_ = c.conn.PublishRaw(c.subj.Hosts, doc)
	}
}

// join says hello and waits for the server's answer: true when accepted.
func (c *clientRun) join(ctx context.Context, answers <-chan []byte) (bool, error) {
	c.report(HostHello, "")
	timeout := time.NewTimer(time.Duration(c.a.Wait*float64(time.Second)) + joinGracePeriod)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			c.report(HostFailed, "the client process was stopped")
			return false, nil
		case <-timeout.C:
			c.logf("run %s (%s): no answer from the server: not joined", c.what, c.a.Run)
			return false, nil
		case data := <-answers:
			d, ok := c.answer(data)
			switch {
			case !ok:
			case d.Accepted && (d.First < c.first || d.Last > c.last):
				c.logf("run %s: ignored an answer of the server: accepted for clients %s, this host offered %s", c.a.Run, span(d.First, d.Last), span(c.first, c.last))
			case d.Cancel != "":
				c.logf("run %s (%s): the server gave up: %s", c.what, c.a.Run, d.Cancel)
				return false, nil
			case !d.Accepted:
				c.logf("run %s (%s): not joined: %s", c.what, c.a.Run, d.Reason)
				return false, nil
			default:
				c.rejoined = d.Started
				c.first, c.last = d.First, d.Last // a rejoin may get part of the range
				return true, nil
			}
		}
	}
}

// newHostID returns a random host id for one run.
func newHostID() string {
	var id [8]byte
	_, _ = rand.Read(id[:]) // crypto/rand.Read never fails
	return hex.EncodeToString(id[:])
}

// oneLine joins the lines of a multi-line error (a scenario's problems).
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}
