package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/transport"
)

// Running the server and the client hosts in different processes.
//
// The server announces each run on transport.AnnounceSubject with an
// Announcement (the resolved scenario, the method's index, the seed), at
// once and then every AnnounceEvery until client hosts cover every client
// id. A host (Env.ServeClients) that hears it builds the same
// experiment, and sends a HostReport "hello" with its client range on the
// run's Subjects.Hosts; the server answers each hello on Subjects.Join
// (JoinDecision: accepted, or refused with the reason, e.g. an overlap). An
// accepted host subscribes to the rounds and reports "ready"; when the
// ready hosts cover [0, clients) the rounds start, and the run ends with the
// server's Stop, as in one process. A host that fails reports "failed",
// which ends the run with its error; a server that gives up sends a
// JoinDecision with Cancel. Every document is JSON, checked field by field
// by the side that receives it (unknown fields, wrong schema or version,
// bad ranges, a scenario that does not parse) and ignored with a log line
// when it does not pass.
//
// Hosts that go, and hosts that rejoin. A running host repeats "ready"
// every HeartbeatEvery as a heartbeat. A host the server has not heard
// from for the run's transport.timeout (at least minGone) is gone: its
// process was killed, its machine or its network went away. A process
// that exits by itself says so ("failed", which ends the run, as before);
// a killed one cannot, hence the heartbeat, the only sign that needs
// nothing from the host. The rule for a hello is then the same before and
// after the start: it is accepted when its range overlaps no host that is
// alive (joined, not gone). The hosts it overlaps, all gone, are replaced:
// they leave the run and are sent a JoinDecision with Host and Cancel, so
// that one that was only cut off stops when it hears again, instead of
// training the same clients as its successor (if it still reports, it is
// sent the Cancel again). While some ids have no live host, the server
// announces the run again every AnnounceEvery, so that a restarted
// "fotsim client" hears it; a rejoined host trains from the next round
// message it receives: the next round, or the current one sent again to
// the clients not heard from (server.Config.Resend), so a run without a
// deadline gets the same updates as if nothing had happened. A run with
// train.deadline goes on without the gone clients' updates meanwhile
// (dropped at the deadline); one without waits for them, and ends with
// ErrRemote when no host has come back for them after Remote.Wait.
//
// A method whose client side keeps state across rounds
// (protocol.HasState) cannot be rejoined after the start: a new process
// has lost that state, and its updates would differ from the ones the
// method needs. Hellos are then refused with the reason, and the run goes
// on without those clients (with a deadline) or ends after Remote.Wait.
// A hello that arrives after the run's last round cannot take part and
// is sent a Cancel when the run ends.

// Schemas of the documents of the remote protocol.
const (
	AnnounceSchema = "fotsim.announce/v1"
	HostSchema     = "fotsim.host/v1"
	JoinSchema     = "fotsim.join/v1"
)

// Host report states (HostReport.State).
const (
	HostHello  = "hello"  // wants to run its clients in the run
	HostReady  = "ready"  // accepted, subscribed to the rounds
	HostFailed = "failed" // cannot join, or its run failed: Error says why
)

// AnnounceEvery is how often a server repeats a run's announcement while
// client ids are not covered (by live hosts, once the run has started).
const AnnounceEvery = time.Second

// HeartbeatEvery is how often a running host repeats its "ready" report:
// a host the server has not heard from for the run's transport.timeout
// (at least minGone) is gone, and another may take over its clients.
const HeartbeatEvery = time.Second

// minGone is the shortest silence after which a host is gone, whatever
// transport.timeout: a few heartbeats.
const minGone = 3 * HeartbeatEvery

// DefaultRemoteWait is how long a server waits for client hosts when
// Remote.Wait is 0.
const DefaultRemoteWait = 2 * time.Minute

// Bounds on what a remote document may hold.
const (
	maxDocBytes     = 1 << 20 // an announcement, with its scenario
	maxRunIDBytes   = 256
	maxNameBytes    = 128
	maxErrorBytes   = 4096
	maxWaitSeconds  = 7 * 24 * 3600
	joinGracePeriod = 10 * time.Second
)

// ErrRemote reports a remote run that could not start or went wrong: no
// external NATS server, client ids no host covers, a host that failed.
var ErrRemote = errors.New("sim: remote client hosts")

// Remote configures a run whose client hosts are other processes
// (Options.Remote).
type Remote struct {
	// Wait bounds how long the server waits for hosts to cover every client
	// id and be ready; 0 is DefaultRemoteWait.
	Wait time.Duration
	// Log receives a line for every host that joins, is refused or fails,
	// and for documents that were ignored; nil is silent.
	Log io.Writer
	// CAFile, when set, is the PEM certificate of the CA that signed the
	// NATS server's TLS certificate: the server's connection requires TLS
	// and verifies it (transport.DialOptions.CAFile).
	CAFile string
}

// Announcement is a server's call for client hosts for one run, published
// on transport.AnnounceSubject.
type Announcement struct {
	Schema  string `json:"schema"`         // AnnounceSchema
	Run     string `json:"run"`            // the run's id: its subjects are transport.SubjectsFor(Run)
	Version string `json:"fotsim_version"` // the server's Version(); a host of another version refuses
	Wire    int    `json:"wire_version"`   // transport.Version
	Backend string `json:"backend"`        // the server's matrix backend (Backend()): results match across hosts only with the same
	// Scenario is the resolved scenario (scenario.yaml of the record:
	// every default filled in, every --set applied).
	Scenario string  `json:"scenario"`
	Method   int     `json:"method"`  // index of the run's method in the scenario's methods
	Seed     int64   `json:"seed"`    // the run's seed
	Clients  int     `json:"clients"` // the run's clients: hosts must cover [0, Clients)
	Wait     float64 `json:"wait_seconds"`
}

// HostReport is a client host's message to the server of a run, on the
// run's Subjects.Hosts.
type HostReport struct {
	Schema  string `json:"schema"` // HostSchema
	Run     string `json:"run"`
	Host    string `json:"host"`  // the host's id, unique per process and run
	Name    string `json:"name"`  // for people: host name and process id
	State   string `json:"state"` // HostHello, HostReady or HostFailed
	First   int    `json:"first"` // the clients it runs: [First, Last)
	Last    int    `json:"last"`
	Version string `json:"fotsim_version"`
	Backend string `json:"backend"`
	Error   string `json:"error,omitempty"` // HostFailed: why
}

// JoinDecision is the server's answer to a hello, or (Host empty, Cancel
// set) the end of the run for every host that has not started it.
type JoinDecision struct {
	Schema   string `json:"schema"` // JoinSchema
	Run      string `json:"run"`
	Host     string `json:"host,omitempty"`
	Accepted bool   `json:"accepted"`
	Reason   string `json:"reason,omitempty"` // why a host was refused
	// Started is set on accepting a host after the rounds have started (a
	// rejoin): it trains from the next round message it receives.
	Started bool `json:"started,omitempty"`
	// First and Last are the clients an accepted host runs, [First, Last):
	// its range, or after the start the part of it that no live host runs.
	First int `json:"first,omitempty"`
	Last  int `json:"last,omitempty"`
	// Cancel is why the server gave up on the run (Host empty: for every
	// host that has not started), or on the host Host: it was replaced
	// after it had gone silent, or the run ended before it could start.
	Cancel string `json:"cancel,omitempty"`
}

// Backend names the active matrix backend with its kernel level
// ("simd/avx512", "gonum"): runs give the same bits only on the same.
func Backend() string {
	b := nn.ActiveBackend()
	if s, ok := b.(*gemm.SIMD); ok {
		return b.Name() + "/" + s.Level()
	}
	return b.Name()
}

// decodeDoc decodes one JSON document strictly into v: no unknown field,
// nothing after it, at most maxDocBytes.
func decodeDoc(data []byte, v any) error {
	if len(data) > maxDocBytes {
		return fmt.Errorf("%d bytes, at most %d", len(data), maxDocBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the document")
	}
	return nil
}

// checkText reports a string field that is empty, too long or holds
// control characters (it ends up in log lines).
func checkText(field, s string, maxLen int, empty bool) error {
	if s == "" && !empty {
		return fmt.Errorf("%s is empty", field)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%s has %d bytes, at most %d", field, len(s), maxLen)
	}
	for _, r := range s {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) && r != ' ' {
			return fmt.Errorf("%s %q holds a control or invalid character", field, s)
		}
	}
	return nil
}

// check validates an announcement's fields (the scenario is checked when
// a host parses it).
func (a *Announcement) check() error {
	switch {
	case a.Schema != AnnounceSchema:
		return fmt.Errorf("schema %q, want %q", a.Schema, AnnounceSchema)
	case a.Wire != int(transport.Version):
		return fmt.Errorf("wire version %d, this build speaks %d", a.Wire, transport.Version)
	case a.Method < 0:
		return fmt.Errorf("method index %d < 0", a.Method)
	case a.Seed < 0:
		return fmt.Errorf("seed %d < 0", a.Seed)
	case a.Clients < 1 || a.Clients > transport.MaxClients:
		return fmt.Errorf("clients %d, want 1 to %d", a.Clients, transport.MaxClients)
	case !(a.Wait >= 0 && a.Wait <= maxWaitSeconds):
		return fmt.Errorf("wait_seconds %v, want 0 to %d", a.Wait, maxWaitSeconds)
	case a.Scenario == "":
		return errors.New("no scenario")
	}
	if err := checkText("run", a.Run, maxRunIDBytes, false); err != nil {
		return err
	}
	if err := checkText("fotsim_version", a.Version, maxNameBytes, false); err != nil {
		return err
	}
	return checkText("backend", a.Backend, maxNameBytes, false)
}

// check validates a host report of run for a run of clients clients.
func (h *HostReport) check(run string) error {
	switch {
	case h.Schema != HostSchema:
		return fmt.Errorf("schema %q, want %q", h.Schema, HostSchema)
	case h.Run != run:
		return fmt.Errorf("run %q, want %q", h.Run, run)
	case h.State != HostHello && h.State != HostReady && h.State != HostFailed:
		return fmt.Errorf("state %q, want %s, %s or %s", h.State, HostHello, HostReady, HostFailed)
	case h.First < 0 || h.Last <= h.First || h.Last > transport.MaxClients:
		return fmt.Errorf("client range [%d, %d) is empty or out of [0, %d)", h.First, h.Last, transport.MaxClients)
	}
	for _, f := range []struct {
		name, s string
		max     int
		empty   bool
	}{
		{"host", h.Host, maxNameBytes, false}, {"name", h.Name, maxNameBytes, false},
		{"fotsim_version", h.Version, maxNameBytes, false}, {"backend", h.Backend, maxNameBytes, false},
		{"error", h.Error, maxErrorBytes, true},
	} {
		if err := checkText(f.name, f.s, f.max, f.empty); err != nil {
			return err
		}
	}
	return nil
}

// check validates a join decision of run.
func (j *JoinDecision) check(run string) error {
	switch {
	case j.Schema != JoinSchema:
		return fmt.Errorf("schema %q, want %q", j.Schema, JoinSchema)
	case j.Run != run:
		return fmt.Errorf("run %q, want %q", j.Run, run)
	case j.Host == "" && j.Cancel == "":
		return errors.New("neither host nor cancel")
	case j.Accepted && (j.First < 0 || j.Last <= j.First || j.Last > transport.MaxClients):
		return fmt.Errorf("accepted for client range [%d, %d), empty or out of [0, %d)", j.First, j.Last, transport.MaxClients)
	}
	if err := checkText("reason", j.Reason, maxErrorBytes, true); err != nil {
		return err
	}
	return checkText("cancel", j.Cancel, maxErrorBytes, true)
}

// Ranges formats the sorted, distinct ids as inclusive ranges, "0-3, 7,
// 9-12", as `fotsim client --clients` takes them.
func Ranges(ids []int) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(ids[i]))
		if j > i {
			b.WriteString("-" + strconv.Itoa(ids[j]))
		}
		i = j + 1
	}
	return b.String()
}

// span formats [first, last) as an inclusive range.
func span(first, last int) string {
	if last-first == 1 {
		return strconv.Itoa(first)
	}
	return fmt.Sprintf("%d-%d", first, last-1)
}

// remoteHost is a host that joined a run, as the server sees it.
type remoteHost struct {
	id, name    string
	first, last int // clamped to the run's clients
	ready       bool
	seen        time.Time // when the server last heard from it
	gone        bool      // not heard from for hostSet.gone (logged once)
}

func (h *remoteHost) String() string {
	return fmt.Sprintf("%s (clients %s)", h.name, span(h.first, h.last))
}

// hostSet is the server's side of a remote run's hosts: who joined, whether
// they cover the clients, and the failures that end the run.
type hostSet struct {
	conn    *transport.Conn
	run     string
	subj    transport.Subjects
	clients int
	logf    func(string, ...any)

	// gone is the silence after which a host is gone (see the top of this
	// file); stateful names the method when its client side keeps state
	// across rounds (no rejoin after the start); deadline is whether the
	// rounds go on without missing updates (train.deadline); wait bounds
	// how long ids may have no live host.
	gone     time.Duration
	stateful string
	deadline bool
	wait     time.Duration

	mu       sync.Mutex
	hosts    []*remoteHost     // accepted, in arrival order; replaced ones removed
	replaced map[string]string // id of a replaced host -> the Cancel it was sent
	refused  []string          // "name: reason", for the timeout error
	started  bool              // the rounds have started
	orphaned time.Time         // since when some ids have no live host, zero if none
	failed   error             // a started host's failure
	cancel   context.CancelFunc
}

// handle processes one document from the run's Hosts subject.
func (s *hostSet) handle(data []byte) {
	var h HostReport
	err := decodeDoc(data, &h)
	if err == nil {
		err = h.check(s.run)
	}
	if err != nil {
		s.logf("ignored a host report of run %s: %v", s.run, err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if why, ok := s.replaced[h.Host]; ok {
		// A replaced host that was only cut off: tell it again to stop.
		if h.State != HostFailed {
			s.answer(JoinDecision{Host: h.Host, Cancel: why})
		}
		return
	}
	i := slices.IndexFunc(s.hosts, func(r *remoteHost) bool { return r.id == h.Host })
	switch h.State {
	case HostHello:
		if i >= 0 {
			return // a repeated hello: already accepted
		}
		first, last, reason := s.place(&h, now)
		if reason != "" {
			s.refused = append(s.refused, h.Name+": "+reason)
			s.logf("refused client host %s (clients %s): %s", h.Name, span(h.First, h.Last), reason)
			s.answer(JoinDecision{Host: h.Host, Reason: reason})
			return
		}
		r := &remoteHost{id: h.Host, name: h.Name, first: first, last: last, seen: now}
		// The hosts it overlaps are gone (place): it replaces them.
		var took []string
		s.hosts = slices.DeleteFunc(s.hosts, func(o *remoteHost) bool {
			if max(o.first, r.first) >= min(o.last, r.last) {
				return false
			}
			why := fmt.Sprintf("client host %s took over clients %s: this host was not heard from for %v", r, span(max(o.first, r.first), min(o.last, r.last)), s.gone)
			if s.replaced == nil {
				s.replaced = map[string]string{}
			}
			s.replaced[o.id] = why
			s.answer(JoinDecision{Host: o.id, Cancel: why})
			took = append(took, o.String())
			return true
		})
		s.hosts = append(s.hosts, r)
		if h.Backend != Backend() {
			s.logf("client host %s uses the matrix backend %s, this server %s: results differ from a run on one machine", h.Name, h.Backend, Backend())
		}
		var msg strings.Builder
		if s.started {
			fmt.Fprintf(&msg, "client host %s rejoined the started run", r)
		} else {
			fmt.Fprintf(&msg, "client host %s joined", r)
		}
		if len(took) > 0 {
			fmt.Fprintf(&msg, ", replacing %s", strings.Join(took, ", "))
		}
		if first != h.First || last != min(h.Last, s.clients) {
			fmt.Fprintf(&msg, "; it offered clients %s, the others are run by live hosts", span(h.First, min(h.Last, s.clients)))
		}
		s.logf("%s", msg.String())
		s.answer(JoinDecision{Host: h.Host, Accepted: true, Started: s.started, First: first, Last: last})
		s.covered(now)
	case HostReady:
		if i < 0 {
			return
		}
		r := s.hosts[i]
		r.ready, r.seen = true, now
		if r.gone {
			r.gone = false
			s.logf("client host %s is heard from again", r)
			s.covered(now)
		}
	case HostFailed:
		if i < 0 {
			s.refused = append(s.refused, h.Name+": "+h.Error)
			s.logf("client host %s (clients %s) cannot join: %s", h.Name, span(h.First, h.Last), h.Error)
			return
		}
		r := s.hosts[i]
		if s.started {
			if s.failed == nil {
				s.failed = fmt.Errorf("%w: client host %s failed: %s", ErrRemote, r, h.Error)
				s.cancel()
			}
			return
		}
		s.hosts = slices.Delete(s.hosts, i, i+1)
		s.refused = append(s.refused, h.Name+": "+h.Error)
		s.logf("client host %s left before the start: %s", r, h.Error)
	}
}

// alive reports whether host r has been heard from within s.gone of now.
func (s *hostSet) alive(r *remoteHost, now time.Time) bool {
	return now.Sub(r.seen) < s.gone
}

// place returns the clients [first, last) the hello h is to run, or why
// it cannot join (reason): another version, a range past the run's
// clients, clients run by a live host, or (after the start) a method whose
// clients keep state. Hosts it overlaps that are gone are no reason: it
// replaces them. Before the start it runs its whole range (an overlap
// with a live host is a mistake in the layout of the hosts, refused);
// after it, a host that rejoins runs the first stretch of its range that
// no live host runs: "fotsim client --clients 0-63" restarted on a
// machine takes the clients of the host that was there. s.mu is held.
func (s *hostSet) place(h *HostReport, now time.Time) (first, last int, reason string) {
	switch {
	case h.Version != Version():
		return 0, 0, fmt.Sprintf("fotsim version %s, the server runs %s", h.Version, Version())
	case h.First >= s.clients:
		return 0, 0, fmt.Sprintf("the run has clients 0-%d only", s.clients-1)
	}
	first, last = h.First, min(h.Last, s.clients)
	live := func(c int) *remoteHost {
		for _, r := range s.hosts {
			if c >= r.first && c < r.last && s.alive(r, now) {
				return r
			}
		}
		return nil
	}
	if s.started {
		for first < last && live(first) != nil {
			first++
		}
		if first == last {
			var by []string
			for _, r := range s.hosts {
				if max(r.first, h.First) < min(r.last, last) && s.alive(r, now) {
					by = append(by, r.String())
				}
			}
			return 0, 0, fmt.Sprintf("clients %s are run by %s", span(h.First, last), strings.Join(by, ", "))
		}
		end := first
		for end < last && live(end) == nil {
			end++
		}
		last = end
		if s.stateful != "" {
			return 0, 0, fmt.Sprintf("method %s keeps client state across rounds; a host cannot rejoin a started run", s.stateful)
		}
		return first, last, ""
	}
	for _, r := range s.hosts {
		if lo, hi := max(r.first, first), min(r.last, last); lo < hi && s.alive(r, now) {
			return 0, 0, fmt.Sprintf("clients %s are run by %s", span(lo, hi), r)
		}
	}
	return first, last, ""
}

// orphans returns the client ids that no live host covers. s.mu is held.
func (s *hostSet) orphans(now time.Time) []int {
	covered := make([]bool, s.clients)
	for _, r := range s.hosts {
		if s.alive(r, now) {
			for c := r.first; c < r.last; c++ {
				covered[c] = true
			}
		}
	}
	var ids []int
	for c, ok := range covered {
		if !ok {
			ids = append(ids, c)
		}
	}
	return ids
}

// covered updates s.orphaned after a host joined or came back. s.mu is
// held.
func (s *hostSet) covered(now time.Time) {
	if s.started && len(s.orphans(now)) == 0 {
		s.orphaned = time.Time{}
	}
}

// watch is the started run's periodic check of its hosts, every
// AnnounceEvery: it logs the hosts that went silent, and returns whether
// some ids have no live host (then the run is to be announced again, for a
// host to rejoin). Without a deadline, ids that had no live host for
// s.wait end the run (s.failed): the rounds would wait for them forever.
func (s *hostSet) watch(now time.Time) (announce bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed != nil {
		return false
	}
	for _, r := range s.hosts {
		if !r.gone && !s.alive(r, now) {
			r.gone = true
			var next string
			switch {
			case s.stateful != "":
				next = fmt.Sprintf("method %s keeps client state, so no host can take over", s.stateful)
			default:
				next = fmt.Sprintf(`a "fotsim client --clients %s" may rejoin`, span(r.first, r.last))
			}
			if s.deadline {
				next += "; their updates are dropped at each round's deadline"
			} else {
				next += fmt.Sprintf("; the rounds wait for their updates (no train.deadline), for at most %v", s.wait)
			}
			s.logf("client host %s has not been heard from for %v: gone; %s", r, s.gone, next)
		}
	}
	ids := s.orphans(now)
	if len(ids) == 0 {
		s.orphaned = time.Time{}
		return false
	}
	if s.orphaned.IsZero() {
		s.orphaned = now
	}
	if !s.deadline && now.Sub(s.orphaned) >= s.wait {
		why := "no client host rejoined for them"
		if s.stateful != "" {
			why = fmt.Sprintf("method %s keeps client state across rounds, so no host can rejoin", s.stateful)
		}
		s.failed = fmt.Errorf("%w: clients %s of run %s have had no client host for %v and the rounds wait for their updates (train.deadline is 0): %s",
			ErrRemote, Ranges(ids), s.run, s.wait, why)
		s.cancel()
		return false
	}
	return true
}

// endRun tells the hosts that joined but are not ready (a rejoin that came
// as the run ended, which may have missed the Stop) that the run is over.
func (s *hostSet) endRun() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.hosts {
		if !r.ready {
			s.answer(JoinDecision{Host: r.id, Cancel: "the run has ended"})
		}
	}
	_ = s.conn.Flush()
}

// answer publishes d on the run's Join subject. s.mu may be held.
func (s *hostSet) answer(d JoinDecision) {
	d.Schema, d.Run = JoinSchema, s.run
	doc, err := json.Marshal(d)
	if err == nil {
		err = s.conn.PublishRaw(s.subj.Join, doc)
	}
	if err != nil {
		s.logf("run %s: cannot answer client hosts: %v", s.run, err)
	}
}

// missing returns the client ids no accepted host covers, and whether
// every accepted host is ready.
func (s *hostSet) missing() (ids []int, ready bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	covered := make([]bool, s.clients)
	ready = true
	for _, r := range s.hosts {
		for c := r.first; c < r.last; c++ {
			covered[c] = true
		}
		ready = ready && r.ready
	}
	for c, ok := range covered {
		if !ok {
			ids = append(ids, c)
		}
	}
	return ids, ready
}

// waitError explains why the hosts did not cover the clients in time.
func (s *hostSet) waitError(wait time.Duration) error {
	ids, _ := s.missing()
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	if len(ids) > 0 {
		fmt.Fprintf(&b, "no client host joined for clients %s (of 0-%d) of run %s after %v",
			Ranges(ids), s.clients-1, s.run, wait)
	} else {
		var late []string
		for _, r := range s.hosts {
			if !r.ready {
				late = append(late, r.String())
			}
		}
		fmt.Fprintf(&b, "client hosts %s joined run %s but were not ready after %v",
			strings.Join(late, ", "), s.run, wait)
	}
	if len(s.hosts) > 0 {
		names := make([]string, len(s.hosts))
		for i, r := range s.hosts {
			names[i] = r.String()
		}
		fmt.Fprintf(&b, "; joined: %s", strings.Join(names, ", "))
	}
	if len(s.refused) > 0 {
		fmt.Fprintf(&b, "; refused: %s", strings.Join(s.refused, "; "))
	}
	if len(ids) > 0 {
		b.WriteString(`; start "fotsim client --nats URL --clients A-B" for the missing ids`)
	}
	return fmt.Errorf("%w: %s", ErrRemote, b.String())
}

// executeRemote runs the server side of the experiment: it announces the
// run, waits until client hosts in other processes cover every client id,
// then runs the rounds with them.
func (x *Experiment) executeRemote(ctx context.Context, opts Options) (*results.Record, error) {
	sc, run := x.Scenario, x.Run
	url := sc.Transport.NATS
	if url == "" || url == "embedded" {
		return nil, fmt.Errorf("%w: client hosts in other processes need an external NATS server (transport.nats: nats://host:4222)", ErrRemote)
	}
	method := slices.IndexFunc(sc.Methods, func(m scenarios.Method) bool { return m.Label() == run.Method.Label() })
	if method < 0 {
		return nil, fmt.Errorf("%w: method %s is not in the scenario's methods", ErrRemote, run.Method.Label())
	}
	resolved, err := sc.Resolved()
	if err != nil {
		return nil, err
	}
	conn, err := transport.DialWith(url, "fotsim-server", transport.DialOptions{Timeout: sc.Transport.DialTimeout(), CAFile: opts.Remote.CAFile})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// A connection given up (lost past the timeout, or a publish or
	// subscription the NATS server refuses) ends the run at once.
	ctx, unwatch := watchConns(ctx, conn)
	defer unwatch()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	r := opts.Remote
	wait := r.Wait
	if wait <= 0 {
		wait = DefaultRemoteWait
	}
	id := runID(sc, run)
	clients, _ := population(sc, x.Spec)
	s := &hostSet{conn: conn, run: id, subj: transport.SubjectsFor(id), clients: clients, logf: logger(r.Log), cancel: cancel,
		gone: max(sc.Transport.DialTimeout(), minGone), deadline: sc.Train.Deadline > 0, wait: wait}
	if stateful, err := x.clientState(); err != nil {
		return nil, err
	} else if stateful {
		s.stateful = run.Method.Label()
	}
	if s.logf == nil {
		s.logf = func(string, ...any) {}
	}
	docs := make(chan []byte, 256)
	unsub, err := conn.SubscribeRaw(s.subj.Hosts, func(_ string, data []byte) {
		select {
		case docs <- data:
		default:
			s.logf("run %s: dropped a host report (queue full)", id)
		}
	})
	if err != nil {
		return nil, err
	}
	defer unsub()
	if err := conn.Flush(); err != nil {
		return nil, err
	}
	ann, err := json.Marshal(Announcement{
		Schema: AnnounceSchema, Run: id, Version: Version(), Wire: int(transport.Version), Backend: Backend(),
		Scenario: string(resolved), Method: method, Seed: run.Seed, Clients: clients, Wait: math.Ceil(wait.Seconds()),
	})
	if err != nil {
		return nil, err
	}
	start := time.Now()
	err = s.gather(ctx, docs, ann, wait)
	x.waited = time.Since(start)
	if err != nil {
		return nil, err
	}
	// The rounds run; a host's failure ends the run, a host that goes
	// silent may be replaced by one that rejoins, and the run is announced
	// again while some ids have no live host (hostSet.handle, watch).
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(AnnounceEvery)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case d := <-docs:
				s.handle(d)
			case now := <-tick.C:
				if s.watch(now) {
					if err := conn.PublishRaw(transport.AnnounceSubject, ann); err != nil {
						s.logf("run %s: cannot announce it again: %v", id, err)
					}
				}
			}
		}
	})
	rec, err := x.serve(ctx, id, conn, opts, logger(opts.Log))
	close(done)
	wg.Wait()
	// Reports still queued (a host that got ready just before the Stop),
	// then the end for the hosts that may have missed the Stop.
	for drained := false; !drained; {
		select {
		case d := <-docs:
			s.handle(d)
		default:
			drained = true
		}
	}
	s.endRun()
	s.mu.Lock()
	failed := s.failed
	s.mu.Unlock()
	if failed != nil {
		return nil, failed
	}
	return rec, err
}

// gather announces the run until the accepted hosts cover every client and
// are ready, or wait passes (an error naming the missing ids) or ctx ends.
func (s *hostSet) gather(ctx context.Context, docs <-chan []byte, ann []byte, wait time.Duration) error {
	announce := func() error {
		if err := s.conn.PublishRaw(transport.AnnounceSubject, ann); err != nil {
			return err
		}
		return s.conn.Flush()
	}
	giveUp := func(why string) {
		s.answer(JoinDecision{Cancel: why})
		_ = s.conn.Flush()
	}
	if err := announce(); err != nil {
		return err
	}
	tick := time.NewTicker(AnnounceEvery)
	defer tick.Stop()
	timeout := time.NewTimer(wait)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			giveUp("the server was stopped")
			return ctx.Err()
		case <-timeout.C:
			err := s.waitError(wait)
			giveUp(err.Error())
			return err
		case <-tick.C:
			if ids, _ := s.missing(); len(ids) > 0 {
				if err := announce(); err != nil {
					return err
				}
			}
		case d := <-docs:
			s.handle(d)
			if ids, ready := s.missing(); len(ids) == 0 && ready {
				s.mu.Lock()
				s.started = true
				s.mu.Unlock()
				return nil
			}
		}
	}
}

// clientState reports whether the run's method keeps client state across
// rounds (protocol.HasState of its client side): a host of such a method
// cannot rejoin a started run.
func (x *Experiment) clientState() (bool, error) {
	weighting, err := aggregator.ParseWeighting(x.Scenario.Train.Weighting)
	if err != nil {
		return false, err
	}
	b, err := x.clientMethod(weighting)
	if err != nil {
		return false, err
	}
	return b != nil && protocol.HasState(b), nil
}
