package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/transport"
)

// syncBuffer is a log that several goroutines write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitLog waits until log holds want, for up to 10 s.
func waitLog(log *syncBuffer, want string) bool {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if strings.Contains(log.String(), want) {
			return true
		}
	}
	return strings.Contains(log.String(), want)
}

// startClients runs one ServeClients per range on its own connection to
// emb until the test ends, and returns their logs.
func startClients(t *testing.T, emb *transport.Embedded, ranges ...[2]int) []*syncBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	logs := make([]*syncBuffer, len(ranges))
	for i, r := range ranges {
		conn, err := transport.Dial(emb.URL(), fmt.Sprintf("test-host-%d", i))
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = &syncBuffer{}
		wg.Go(func() {
			defer conn.Close()
			err := NewEnv().ServeClients(ctx, conn, ClientOptions{First: r[0], Last: r[1], Workers: 1 + i, Name: fmt.Sprintf("h%d", i), Log: logs[i]})
			if err != nil {
				t.Errorf("host %d: %v", i, err)
			}
		})
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return logs
}

// A run whose clients are trained by hosts in other "processes" (here
// goroutines with their own connections and environments) gives the record
// of the run in one process, byte for byte; a host whose range is past the
// run's clients stays out.
func TestRemoteHostsMatchOneProcess(t *testing.T) {
	base := []string{"methods=[fedavg,fot,fedcurv]", "eval.every=2"}
	ref := runAll(t, load(t, append(base, "train.workers=2")...))

	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	// The synthetic scenario has 4 clients.
	logs := startClients(t, emb, [2]int{0, 1}, [2]int{1, 3}, [2]int{3, 64}, [2]int{100, 200})
	time.Sleep(50 * time.Millisecond) // let them subscribe
	sc := load(t, append(base, "transport.nats="+emb.URL())...)
	var srvLog syncBuffer
	env := NewEnv()
	for _, r := range sc.Runs() {
		rec, err := env.Run(context.Background(), sc, r, Options{Remote: &Remote{Wait: 30 * time.Second, Log: &srvLog}})
		if err != nil {
			t.Fatalf("%s: %v\nserver log:\n%s", r.Method.Label(), err, srvLog.String())
		}
		k := fmt.Sprintf("%s/s%d", r.Method.Label(), r.Seed)
		if got := canonical(t, rec); !bytes.Equal(got, ref[k]) {
			t.Errorf("%s: record differs from the one-process run:\ngot  %s\nwant %s", k, got, ref[k])
		}
	}
	for _, w := range []string{"h0 (clients 0) joined", "h1 (clients 1-2) joined", "h2 (clients 3) joined"} {
		if strings.Count(srvLog.String(), w) != len(sc.Runs()) {
			t.Errorf("server log has %q %d times, want %d:\n%s", w, strings.Count(srvLog.String(), w), len(sc.Runs()), srvLog.String())
		}
	}
	if strings.Contains(srvLog.String(), "h3") {
		t.Errorf("host h3 (clients 100-199) took part:\n%s", srvLog.String())
	}
	if !strings.Contains(logs[3].String(), "not joined") {
		t.Errorf("host h3 log:\n%s", logs[3].String())
	}
	// Every host has served every run before the test ends and stops them.
	for i, l := range logs[:3] {
		for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && strings.Count(l.String(), ": done") < len(sc.Runs()); {
			time.Sleep(5 * time.Millisecond)
		}
		if n := strings.Count(l.String(), ": done"); n != len(sc.Runs()) {
			t.Errorf("host h%d finished %d runs, want %d:\n%s", i, n, len(sc.Runs()), l.String())
		}
	}
}

// Ids that no host covers make the server wait, then fail naming them; an
// overlapping host is refused with the reason.
func TestRemoteMissingClients(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	logs := startClients(t, emb, [2]int{0, 2}, [2]int{0, 2})
	time.Sleep(50 * time.Millisecond)
	sc := load(t, "methods=fedavg", "transport.nats="+emb.URL())
	var srvLog syncBuffer
	start := time.Now()
	_, err = NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{Remote: &Remote{Wait: 2 * time.Second, Log: &srvLog}})
	if !errors.Is(err, ErrRemote) {
		t.Fatalf("got %v, want ErrRemote", err)
	}
	for _, w := range []string{"clients 2-3 (of 0-3)", "after 2s", "joined: h", " (clients 0-1); refused: h", ": clients 0-1 are run by h"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if d := time.Since(start); d < 2*time.Second {
		t.Errorf("gave up after %v, want the 2s wait", d)
	}
	// The hosts hear the server give up, and the refused host why.
	both := func() string { return logs[0].String() + logs[1].String() }
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && !strings.Contains(both(), "the server gave up"); {
		time.Sleep(5 * time.Millisecond)
	}
	for _, w := range []string{"the server gave up: " + ErrRemote.Error() + ": no client host joined for clients 2-3", "not joined: clients 0-1 are run by h"} {
		if !strings.Contains(both(), w) {
			t.Errorf("host logs lack %q:\n%s", w, both())
		}
	}
}

// A client process skips announcements that do not check out (garbage,
// unknown fields, a scenario with an unknown key, another version) with a
// line each, and still serves the next good one.
func TestRemoteBadAnnouncements(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	logs := startClients(t, emb, [2]int{0, 4})
	time.Sleep(50 * time.Millisecond)
	pub, err := transport.Dial(emb.URL(), "test-announcer")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	good := func(run, scenario, version string) string {
		return fmt.Sprintf(`{"schema": %q, "run": %q, "fotsim_version": %q, "wire_version": %d, "backend": "x", "scenario": %q, "method": 0, "seed": 0, "clients": 4, "wait_seconds": 1}`,
			AnnounceSchema, run, version, transport.Version, scenario)
	}
	for _, doc := range []string{
		"not json",
		`{"schema": "fotsim.announce/v1", "frob": 1}`,
		strings.Replace(good("r1", "name: x\n", Version()), `"seed": 0`, `"seed": -1`, 1),
		good("r2", "name: x\ndata: {taks: 2}\n", Version()),
		good("r3", "name: x\n", "v0.0.0-other"),
	} {
		if err := pub.PublishRaw(transport.AnnounceSubject, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	sc := load(t, "methods=fedavg", "transport.nats="+emb.URL())
	if _, err := NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{Remote: &Remote{Wait: 30 * time.Second}}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"ignored an announcement: invalid character", `unknown field "frob"`, "seed -1 < 0",
		"announced scenario:2:", "data.taks", "the server runs fotsim v0.0.0-other", "done"} {
		if !waitLog(logs[0], w) {
			t.Errorf("host log lacks %q:\n%s", w, logs[0].String())
		}
	}
}

func TestRanges(t *testing.T) {
	for _, tc := range []struct {
		ids  []int
		want string
	}{
		{nil, ""}, {[]int{3}, "3"}, {[]int{0, 1, 2, 5, 7, 8}, "0-2, 5, 7-8"},
	} {
		if got := Ranges(tc.ids); got != tc.want {
			t.Errorf("Ranges(%v) = %q, want %q", tc.ids, got, tc.want)
		}
	}
}
