package transport

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// eventually polls cond every 10 ms until it holds or limit passes.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("%s: not after %v", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dialWith(t *testing.T, url string, opts DialOptions) *Conn {
	t.Helper()
	c, err := DialWith(url, "health-test", opts)
	if err != nil {
		t.Fatalf("DialWith(%q): %v", url, err)
	}
	t.Cleanup(c.Close)
	return c
}

// A connection whose server goes away for good is given up after its
// timeout, with an error that names the URL and the outage.
func TestConnLostAfterTimeout(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	const timeout = 500 * time.Millisecond
	c := dialWith(t, e.URL(), DialOptions{Timeout: timeout})
	if h := c.Health(); !h.Connected || h.URL != e.URL() || h.Disconnects != 0 {
		t.Fatalf("Health before: got %+v, want connected to %s", h, e.URL())
	}
	if c.Err() != nil {
		t.Fatalf("Err before: got %v, want nil", c.Err())
	}
	start := time.Now()
	e.Shutdown()
	select {
	case <-c.Done():
	case <-time.After(timeout + 5*time.Second):
		t.Fatalf("Done not closed %v after the server stopped (timeout %v)", time.Since(start), timeout)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("given up after %v, before the timeout %v", took, timeout)
	}
	err := c.Err()
	if !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), e.URL()) || !strings.Contains(err.Error(), "unreachable for ") {
		t.Fatalf("Err: got %v, want an error wrapping %v naming %s and the outage", err, ErrLost, e.URL())
	}
	if h := c.Health(); h.Connected || h.Disconnects != 1 {
		t.Errorf("Health after: got %+v, want disconnected once", h)
	}
	if _, err := c.Publish("x", &Message{Kind: KindStop}); !errors.Is(err, ErrLost) {
		t.Errorf("Publish after giving up: got %v, want %v", err, ErrLost)
	}
	if err := c.Flush(); !errors.Is(err, ErrLost) {
		t.Errorf("Flush after giving up: got %v, want %v", err, ErrLost)
	}
}

// A server back within the timeout: the connection reconnects, its
// subscriptions work again and it is not given up.
func TestConnRecoversWithinTimeout(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	p := e.srv.Addr().(*net.TCPAddr).Port
	c := dialWith(t, e.URL(), DialOptions{Timeout: 10 * time.Second})
	ch := collect(t, c, "fotsim.health.round")
	e.Shutdown()
	eventually(t, 5*time.Second, "Health().Connected false", func() bool { return !c.Health().Connected })
	if h := c.Health(); h.DownSince.IsZero() || h.Disconnects != 1 {
		t.Fatalf("Health while down: got %+v", h)
	}
	e2 := startEmbedded(t, EmbeddedOptions{Port: p})
	eventually(t, 5*time.Second, "reconnected", func() bool { return c.Health().Connected })
	h := c.Health()
	if h.URL != e2.URL() || h.LastOutage <= 0 || !h.DownSince.IsZero() {
		t.Fatalf("Health after reconnect: got %+v, want connected to %s with the outage's length", h, e2.URL())
	}
	select {
	case <-c.Done():
		t.Fatalf("Done closed after a reconnect within the timeout: %v", c.Err())
	default:
	}
	if err := c.Flush(); err != nil { // the subscription is back on the server
		t.Fatal(err)
	}
	other := dial(t, e2.URL(), "other")
	if _, err := other.Publish("fotsim.health.round", &Message{Kind: KindStop}); err != nil {
		t.Fatal(err)
	}
	if d := next(t, ch); d.err != nil || d.m.Kind != KindStop {
		t.Fatalf("after reconnect: got %+v", d)
	}
}

// Close is the owner's: it does not count as a loss.
func TestCloseIsNotLost(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	c := dialWith(t, e.URL(), DialOptions{Timeout: 100 * time.Millisecond})
	in := connect(t, e, "in-process")
	c.Close()
	in.Close()
	time.Sleep(300 * time.Millisecond)
	for _, x := range []*Conn{c, in} {
		select {
		case <-x.Done():
			t.Fatalf("Done closed by Close: %v", x.Err())
		default:
		}
	}
}

// An in-process connection does not reconnect: the server's shutdown
// under it is a loss at once.
func TestInProcessLostWithServer(t *testing.T) {
	e := startEmbedded(t, EmbeddedOptions{})
	c := connect(t, e, "in-process")
	e.Shutdown()
	select {
	case <-c.Done():
	case <-time.After(waitTimeout):
		t.Fatal("Done not closed after the server shut down")
	}
	if err := c.Err(); !errors.Is(err, ErrLost) || !strings.Contains(err.Error(), e.URL()) {
		t.Fatalf("Err: got %v, want %v naming %s", err, ErrLost, e.URL())
	}
}

func TestDialOptionsValidate(t *testing.T) {
	if err := (DialOptions{Timeout: -time.Second}).Validate(); !errors.Is(err, ErrOptions) {
		t.Fatalf("negative timeout: got %v, want %v", err, ErrOptions)
	}
	if _, err := DialWith("nats://127.0.0.1:1", "x", DialOptions{Timeout: -1}); !errors.Is(err, ErrOptions) {
		t.Fatalf("DialWith negative timeout: got %v, want %v", err, ErrOptions)
	}
	if err := (DialOptions{}).Validate(); err != nil {
		t.Fatalf("zero options: %v", err)
	}
}

func TestEmbeddedClusterOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts EmbeddedOptions
		ok   bool
	}{
		{"cluster", EmbeddedOptions{Cluster: "c", Routes: []string{"nats://127.0.0.1:6222"}}, true},
		{"routes without cluster", EmbeddedOptions{Routes: []string{"nats://127.0.0.1:6222"}}, false},
		{"cluster port without cluster", EmbeddedOptions{ClusterPort: 6222}, false},
		{"bad cluster port", EmbeddedOptions{Cluster: "c", ClusterPort: -2}, false},
		{"bad route", EmbeddedOptions{Cluster: "c", Routes: []string{"no url"}}, false},
	}
	for _, tc := range tests {
		if err := tc.opts.Validate(); (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrOptions)) {
			t.Errorf("%s: got %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// startCluster starts n embedded servers routed into one cluster and waits
// until each has a route to every other.
func startCluster(t *testing.T, n int) []*Embedded {
	t.Helper()
	var nodes []*Embedded
	var routes []string
	for i := range n {
		e := startEmbedded(t, EmbeddedOptions{Name: fmt.Sprintf("node-%d", i), Cluster: "fotsim-test", Routes: routes})
		if e.ClusterURL() == "" {
			t.Fatal("ClusterURL empty for a cluster node")
		}
		routes = append(routes, e.ClusterURL())
		nodes = append(nodes, e)
	}
	eventually(t, 10*time.Second, "full mesh", func() bool {
		for _, e := range nodes {
			if e.Peers() != n-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

// A connection to a cluster moves to another node when its node dies,
// within the timeout, and keeps its subscriptions.
func TestConnMovesToAnotherClusterNode(t *testing.T) {
	nodes := startCluster(t, 3)
	urls := make([]string, len(nodes))
	for i, e := range nodes {
		urls[i] = e.URL()
	}
	c := dialWith(t, strings.Join(urls, ","), DialOptions{Timeout: 5 * time.Second})
	ch := collect(t, c, "fotsim.cluster.round")
	var mine int
	for i, e := range nodes {
		if e.URL() == c.Health().URL {
			mine = i
		}
	}
	other := nodes[(mine+1)%3]
	nodes[mine].Shutdown()
	eventually(t, 5*time.Second, "reconnected to another node", func() bool {
		h := c.Health()
		return h.Connected && h.Disconnects == 1
	})
	if got := c.Health().URL; got == urls[mine] {
		t.Fatalf("reconnected to the dead node %s", got)
	}
	if err := c.Flush(); err != nil {
		t.Fatal(err)
	}
	pub := dial(t, other.URL(), "publisher")
	// The subscription's interest reaches the publisher's node through
	// the routes: publish until it arrives.
	deadline := time.Now().Add(waitTimeout)
	for {
		if _, err := pub.Publish("fotsim.cluster.round", &Message{Kind: KindStop}); err != nil {
			t.Fatal(err)
		}
		select {
		case d := <-ch:
			if d.err != nil || d.m.Kind != KindStop {
				t.Fatalf("got %+v", d)
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("no message through the cluster after the node died")
		}
	}
}

func TestEmbeddedInProcess(t *testing.T) {
	e, err := StartEmbeddedWith(EmbeddedOptions{InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Shutdown)
	if u := e.URL(); u != "" {
		t.Errorf("URL() = %q, want none: an in-process server has no listener", u)
	}
	if a := e.srv.Addr(); a != nil {
		t.Errorf("server listens on %v, want no listener", a)
	}
	sub, err := e.Connect("sub")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.Connect("pub")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Close(); pub.Close() })
	got := make(chan *Message, 1)
	if _, err := sub.Subscribe("fotsim.t.round", func(m *Message, err error) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Publish("fotsim.t.round", &Message{Kind: KindStop, Round: 7}); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-got:
		if m.Kind != KindStop || m.Round != 7 {
			t.Errorf("got %+v, want the stop of round 7", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no message over the in-process connections")
	}
	if _, err := StartEmbeddedWith(EmbeddedOptions{InProcess: true, Port: 4222}); !errors.Is(err, ErrOptions) {
		t.Errorf("InProcess with a port: %v, want ErrOptions", err)
	}
}
