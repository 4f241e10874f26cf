package sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// testHost is a client host "process" of a test: ServeClients on its own
// connection, which kill ends as a SIGKILL would, without a word to the
// server.
type testHost struct {
	log    *syncBuffer
	conn   *transport.Conn
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// startHost runs ServeClients for [first, last) on a new connection to
// emb; the test's end stops it.
func startHost(t *testing.T, emb *transport.Embedded, name string, first, last int) *testHost {
	t.Helper()
	conn, err := transport.Dial(emb.URL(), "test-"+name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &testHost{log: &syncBuffer{}, conn: conn, cancel: cancel, done: make(chan error, 1)}
	go func() {
		h.done <- NewEnv().ServeClients(ctx, conn, ClientOptions{First: first, Last: last, Workers: 1, Name: name, Log: h.log})
	}()
	t.Cleanup(func() {
		h.kill()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			t.Errorf("host %s did not stop:\n%s", name, h.log.String())
		}
	})
	return h
}

// kill cuts the host off at once: its connection is closed before its
// context ends, so no report reaches the server.
func (h *testHost) kill() {
	h.once.Do(func() {
		h.conn.Close()
		h.cancel()
	})
}

// waitFor polls log for want for up to a minute.
func waitFor(t *testing.T, what string, log fmt.Stringer, want string) {
	t.Helper()
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(log.String(), want) {
			return
		}
	}
	t.Fatalf("%s lacks %q after a minute:\n%s", what, want, log.String())
}

// remoteRun runs sc's first run with client hosts in other "processes",
// calling onRound after every round, and returns the record and error
// on the channel.
type runResult struct {
	rec []byte
	err error
}

func remoteRun(t *testing.T, sc *scenarios.Scenario, wait time.Duration, log io.Writer, onRound func(server.RoundReport)) <-chan runResult {
	t.Helper()
	out := make(chan runResult, 1)
	go func() {
		rec, err := NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{
			Remote:  &Remote{Wait: wait, Log: log},
			Log:     log,
			OnRound: func(_ scenarios.Run, r server.RoundReport) { onRound(r) },
		})
		if err != nil {
			out <- runResult{nil, err}
			return
		}
		out <- runResult{canonical(t, rec), nil}
	}()
	return out
}

// result waits up to five minutes for a remote run's end.
func result(t *testing.T, ch <-chan runResult, log fmt.Stringer) runResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(5 * time.Minute):
		t.Fatalf("the run has not ended after 5 minutes; server log:\n%s", log.String())
		return runResult{}
	}
}

// rejoinSets are the scenario of the rejoin tests: every client trains in
// every round, and a lost round is sent again after a second.
var rejoinSets = []string{"methods=fedavg", "train.clients_per_round=4", "train.rounds_per_task=4", "eval.every=2", "transport.timeout=1s"}

// A client host killed mid-run, without a deadline: the round waits for
// its clients; once the server has not heard from it for transport.timeout
// (at least 3 s) it announces the run again, a new host for the same
// clients rejoins, gets the round sent again and trains it: the record is
// the one of the run in one process, byte for byte.
func TestRejoinWithoutDeadlineMatchesOneProcess(t *testing.T) {
	ref := runAll(t, load(t, rejoinSets...))["fedavg/s0"]
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	a := startHost(t, emb, "a", 0, 2)
	b := startHost(t, emb, "b", 2, 4)
	time.Sleep(50 * time.Millisecond) // let them subscribe
	sc := load(t, append(rejoinSets, "transport.nats="+emb.URL())...)
	var log syncBuffer
	killed := make(chan struct{})
	ch := remoteRun(t, sc, time.Minute, &log, func(r server.RoundReport) {
		if r.Round == 2 {
			a.kill() // before round 3 is sent: its clients never answer it
			close(killed)
		}
	})
	select {
	case <-killed:
	case r := <-ch:
		t.Fatalf("the run ended before round 2: %v\n%s", r.err, log.String())
	}
	waitFor(t, "server log", &log, "client host a (clients 0-1) has not been heard from for 3s: gone")
	a2 := startHost(t, emb, "a2", 0, 64) // a wider range: it gets the free clients
	r := result(t, ch, &log)
	if r.err != nil {
		t.Fatalf("run: %v\nserver log:\n%s", r.err, log.String())
	}
	if string(r.rec) != string(ref) {
		t.Errorf("record differs from the one-process run:\ngot  %s\nwant %s", r.rec, ref)
	}
	for _, w := range []string{
		"client host a2 (clients 0-1) rejoined the started run, replacing a (clients 0-1); it offered clients 0-3, the others are run by live hosts",
		`a "fotsim client --clients 0-1" may rejoin; the rounds wait for their updates`,
		"sent the round again to the 2 clients not heard from",
	} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("server log lacks %q:\n%s", w, log.String())
		}
	}
	waitFor(t, "rejoined host's log", a2.log, "rejoined the started run: running clients 0-1 of 0-3 from the next round")
	waitFor(t, "rejoined host's log", a2.log, ": done")
	waitFor(t, "other host's log", b.log, ": done")
}

// With a deadline, the rounds after the kill go on without the killed
// host's clients; the host that rejoins trains the later rounds.
func TestRejoinWithDeadline(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	a := startHost(t, emb, "a", 0, 2)
	startHost(t, emb, "b", 2, 4)
	time.Sleep(50 * time.Millisecond)
	sc := load(t, "methods=fedavg", "train.clients_per_round=4", "train.rounds_per_task=8", "transport.timeout=1s",
		"train.deadline=3s", "transport.nats="+emb.URL())
	var log syncBuffer
	var mu sync.Mutex
	var updates []int
	short := make(chan struct{}) // closed at the first round without the killed clients
	var shortOnce sync.Once
	ch := remoteRun(t, sc, time.Minute, &log, func(r server.RoundReport) {
		mu.Lock()
		defer mu.Unlock()
		updates = append(updates, r.Updates)
		switch {
		case r.Round == 2:
			a.kill()
		case r.Round == 3 && r.Updates == 2:
			shortOnce.Do(func() { close(short) })
		}
	})
	select {
	case <-short:
	case r := <-ch:
		t.Fatalf("the run ended before a round without the killed clients: %v\n%s", r.err, log.String())
	case <-time.After(2 * time.Minute):
		mu.Lock()
		t.Fatalf("round 3 did not end with the 2 updates of the live host (updates per round: %v):\n%s", updates, log.String())
	}
	a2 := startHost(t, emb, "a2", 0, 2)
	r := result(t, ch, &log)
	if r.err != nil {
		t.Fatalf("run: %v\nserver log:\n%s", r.err, log.String())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(updates) != 16 || updates[0] != 4 || updates[3] != 2 || updates[15] != 4 {
		t.Errorf("updates per round %v, want 4 until round 2, then 2 in round 3, 4 again in the last round", updates)
	}
	for _, w := range []string{"client host a2 (clients 0-1) rejoined the started run", "their updates are dropped at each round's deadline"} {
		if !strings.Contains(log.String(), w) {
			t.Errorf("server log lacks %q:\n%s", w, log.String())
		}
	}
	waitFor(t, "rejoined host's log", a2.log, ": done")
}

// keeperBehaviour is plain local SGD whose client side says it keeps state
// across rounds (protocol.Stateful).
type keeperBehaviour struct{}

func (keeperBehaviour) Round(*transport.Message) error              { return nil }
func (keeperBehaviour) Extras(*client.Work) (*client.Extras, error) { return nil, nil }
func (keeperBehaviour) Finish(*client.Work) error                   { return nil }
func (keeperBehaviour) SaveState(io.Writer) error                   { return nil }
func (keeperBehaviour) LoadState(io.Reader) error                   { return nil }

// A method whose clients keep state across rounds cannot be rejoined: the
// new host is refused with the reason, and the run, which has no deadline,
// ends after the wait with an error naming the clients and why.
func TestRejoinRefusedForStatefulMethod(t *testing.T) {
	methods.Register(methods.Def[methods.NoOptions]{
		Spec: methods.Spec{Name: "keeper", Summary: "test: FedAvg whose clients keep state"},
		NewClient: func(methods.NoOptions, methods.Env) (client.Behaviour, error) {
			return keeperBehaviour{}, nil
		},
	})
	defer methods.Unregister("keeper")
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	a := startHost(t, emb, "a", 0, 2)
	startHost(t, emb, "b", 2, 4)
	time.Sleep(50 * time.Millisecond)
	sc := load(t, "methods=keeper", "train.clients_per_round=4", "train.rounds_per_task=4", "transport.timeout=1s", "transport.nats="+emb.URL())
	var log syncBuffer
	const wait = 10 * time.Second
	ch := remoteRun(t, sc, wait, &log, func(r server.RoundReport) {
		if r.Round == 1 {
			a.kill()
		}
	})
	waitFor(t, "server log", &log, "client host a (clients 0-1) has not been heard from for 3s: gone; method keeper keeps client state, so no host can take over")
	a2 := startHost(t, emb, "a2", 0, 2)
	const reason = "method keeper keeps client state across rounds; a host cannot rejoin a started run"
	waitFor(t, "new host's log", a2.log, "not joined: "+reason)
	r := result(t, ch, &log)
	if !errors.Is(r.err, ErrRemote) {
		t.Fatalf("got %v, want ErrRemote\nserver log:\n%s", r.err, log.String())
	}
	for _, w := range []string{"clients 0-1 of run ", "have had no client host for 10s", "train.deadline is 0", "method keeper keeps client state across rounds, so no host can rejoin"} {
		if !strings.Contains(r.err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, r.err)
		}
	}
	if !strings.Contains(log.String(), "refused client host a2 (clients 0-1): "+reason) {
		t.Errorf("server log:\n%s", log.String())
	}
}

// The methods whose client side keeps state across rounds, which cannot
// be rejoined after the start: FedCurv (each client's own Fisher terms)
// and FLwF (the teacher); FedAvg, FOT and EWC can.
func TestRejoinStatefulMethods(t *testing.T) {
	sc := load(t, "methods=[fedavg, fot, ewc, fedcurv, flwf]")
	want := map[string]bool{"fedavg": false, "fot": false, "ewc": false, "fedcurv": true, "flwf": true}
	env := NewEnv()
	for _, r := range sc.Runs() {
		x, err := env.Build(sc, r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.clientState()
		if err != nil {
			t.Fatal(err)
		}
		if got != want[r.Method.Name] {
			t.Errorf("%s: client state %t, want %t", r.Method.Name, got, want[r.Method.Name])
		}
	}
}

// The rule for a hello (hostSet.place): no client of a live host; gone
// hosts do not count; after the start, a wider range gets its first
// stretch of free clients, and a stateful method none.
func TestRejoinPlace(t *testing.T) {
	now := time.Now()
	hosts := func() []*remoteHost {
		return []*remoteHost{
			{id: "a", name: "a", first: 0, last: 2, seen: now},
			{id: "b", name: "b", first: 2, last: 4, seen: now.Add(-10 * time.Second)}, // gone
			{id: "c", name: "c", first: 4, last: 8, seen: now.Add(-time.Second)},
		}
	}
	hello := func(first, last int) *HostReport {
		return &HostReport{Host: "n", Name: "n", First: first, Last: last, Version: Version()}
	}
	for _, tc := range []struct {
		name        string
		started     bool
		stateful    string
		h           *HostReport
		first, last int
		reason      string
	}{
		{"before the start, a gone host's range", false, "", hello(2, 4), 2, 4, ""},
		{"before the start, an overlap", false, "", hello(0, 8), 0, 0, "clients 0-1 are run by a (clients 0-1)"},
		{"after the start, the same range", true, "", hello(2, 4), 2, 4, ""},
		{"after the start, part of it", true, "", hello(3, 4), 3, 4, ""},
		{"after the start, a wider range", true, "", hello(0, 64), 2, 4, ""},
		{"after the start, live hosts only", true, "", hello(0, 2), 0, 0, "clients 0-1 are run by a (clients 0-1)"},
		{"after the start, a live host and ids past the end", true, "", hello(4, 9), 0, 0, "clients 4-7 are run by c (clients 4-7)"},
		{"stateful, before the start", false, "keeper", hello(2, 4), 2, 4, ""},
		{"stateful, after the start", true, "keeper", hello(2, 4), 0, 0, "method keeper keeps client state across rounds; a host cannot rejoin a started run"},
		{"stateful, after the start, live hosts", true, "keeper", hello(0, 2), 0, 0, "clients 0-1 are run by a (clients 0-1)"},
		{"past the run's clients", true, "", hello(8, 10), 0, 0, "the run has clients 0-7 only"},
		{"another version", true, "", &HostReport{First: 2, Last: 4, Version: "v0"}, 0, 0, "fotsim version v0, the server runs " + Version()},
	} {
		s := &hostSet{clients: 8, gone: 3 * time.Second, started: tc.started, stateful: tc.stateful, hosts: hosts()}
		first, last, reason := s.place(tc.h, now)
		if first != tc.first || last != tc.last || reason != tc.reason {
			t.Errorf("%s: got [%d, %d) %q, want [%d, %d) %q", tc.name, first, last, reason, tc.first, tc.last, tc.reason)
		}
	}
}

// A host that rejoins replaces the gone host of its clients, which is sent
// a Cancel, again whenever it reports (it was only cut off), and whose
// failure no longer ends the run.
func TestRejoinReplacedHostIsCancelled(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	conn, err := transport.Dial(emb.URL(), "test-server")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var log syncBuffer
	now := time.Now()
	s := &hostSet{conn: conn, run: "r", subj: transport.SubjectsFor("r"), clients: 4, gone: 3 * time.Second, wait: time.Minute,
		logf: logger(&log), cancel: func() { t.Error("the run was cancelled") }, started: true,
		hosts: []*remoteHost{
			{id: "a", name: "a", first: 0, last: 2, ready: true, seen: now.Add(-10 * time.Second)},
			{id: "b", name: "b", first: 2, last: 4, ready: true, seen: now},
		}}
	decisions := make(chan JoinDecision, 16)
	unsub, err := conn.SubscribeRaw(s.subj.Join, func(_ string, data []byte) {
		var d JoinDecision
		if err := decodeDoc(data, &d); err != nil {
			t.Error(err)
		}
		decisions <- d
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unsub() }()
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	report := func(host, state string, first, last int) []byte {
		return fmt.Appendf(nil, `{"schema": %q, "run": "r", "host": %q, "name": %q, "state": %q, "first": %d, "last": %d, "fotsim_version": %q, "backend": %q}`,
			HostSchema, host, host, state, first, last, Version(), Backend())
	}
	next := func() JoinDecision {
		t.Helper()
		select {
		case d := <-decisions:
			return d
		case <-time.After(30 * time.Second):
			t.Fatal("no join decision")
			return JoinDecision{}
		}
	}
	const why = "client host n (clients 0-1) took over clients 0-1: this host was not heard from for 3s"
	s.handle(report("n", HostHello, 0, 4))
	if d := next(); d.Host != "a" || d.Cancel != why {
		t.Errorf("first decision %+v, want the Cancel of a", d)
	}
	if d := next(); d.Host != "n" || !d.Accepted || !d.Started || d.First != 0 || d.Last != 2 {
		t.Errorf("second decision %+v, want n accepted for clients 0-1 of the started run", d)
	}
	s.handle(report("a", HostReady, 0, 2))
	if d := next(); d.Host != "a" || d.Cancel != why {
		t.Errorf("decision after a's heartbeat %+v, want its Cancel again", d)
	}
	s.handle(report("a", HostFailed, 0, 2))
	if s.failed != nil || len(s.hosts) != 2 || s.hosts[1].id != "n" {
		t.Errorf("after a's failure: failed %v, hosts %v", s.failed, s.hosts)
	}
	if !strings.Contains(log.String(), "client host n (clients 0-1) rejoined the started run, replacing a (clients 0-1); it offered clients 0-3, the others are run by live hosts") {
		t.Errorf("log:\n%s", log.String())
	}
	if s.watch(time.Now()) {
		t.Error("watch wants the run announced again with every client covered")
	}
}
