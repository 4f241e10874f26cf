package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// runWithin runs sc's first run, calling onRound after every round, and
// fails the test if it has not ended after limit.
func runWithin(t *testing.T, sc *scenarios.Scenario, limit time.Duration, onRound func(server.RoundReport), log io.Writer) ([]byte, error, time.Time) {
	t.Helper()
	type result struct {
		rec []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		rec, err := NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{
			OnRound: func(_ scenarios.Run, r server.RoundReport) { onRound(r) },
			Log:     log,
		})
		if err != nil {
			done <- result{nil, err}
			return
		}
		done <- result{canonical(t, rec), nil}
	}()
	select {
	case r := <-done:
		return r.rec, r.err, time.Now()
	case <-time.After(limit):
		t.Fatalf("the run has not ended after %v", limit)
		return nil, nil, time.Time{}
	}
}

// A run over an external NATS server that dies mid-run ends, within
// transport.timeout, with an error naming the server's URL; it does not hang.
func TestRunEndsWhenNATSDies(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	const timeout = time.Second
	sc := load(t, "methods=[fedavg]", "train.rounds_per_task=200", "transport.nats="+emb.URL(), "transport.timeout=1s")
	var killed time.Time
	_, err, end := runWithin(t, sc, 30*time.Second, func(r server.RoundReport) {
		if r.Round == 5 {
			emb.Shutdown()
			killed = time.Now()
		}
	}, nil)
	if err == nil {
		t.Fatal("the run succeeded after its NATS server died")
	}
	if !errors.Is(err, transport.ErrLost) || !strings.Contains(err.Error(), emb.URL()) || !strings.Contains(err.Error(), "unreachable for ") {
		t.Fatalf("got %v, want an error wrapping %v naming %s and the outage", err, transport.ErrLost, emb.URL())
	}
	if took := end.Sub(killed); took < timeout || took > timeout+5*time.Second {
		t.Errorf("the run ended %v after the server died, want about the timeout %v", took, timeout)
	}
	t.Logf("ended %v after the server died: %v", end.Sub(killed), err)
}

// startCluster starts n embedded NATS servers routed into one cluster.
func startCluster(t *testing.T, n int) []*transport.Embedded {
	t.Helper()
	var nodes []*transport.Embedded
	var routes []string
	for i := range n {
		e, err := transport.StartEmbeddedWith(transport.EmbeddedOptions{Name: fmt.Sprintf("node-%d", i), Cluster: "fotsim-test", Routes: routes})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(e.Shutdown)
		routes = append(routes, e.ClusterURL())
		nodes = append(nodes, e)
	}
	end := time.Now().Add(10 * time.Second)
	for _, e := range nodes {
		for e.Peers() != n-1 {
			if time.Now().After(end) {
				t.Fatalf("the cluster did not form: %d peers, want %d", e.Peers(), n-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nodes
}

// A run over a 3-node NATS cluster completes when a node that serves one
// of its connections dies mid-run, with the record of a clean run.
func TestRunSurvivesClusterNodeLoss(t *testing.T) {
	sets := []string{"methods=[fedavg]", "train.rounds_per_task=30", "eval.every=5"}
	ref := runAll(t, load(t, sets...))["fedavg/s0"]
	for i := range 5 {
		nodes := startCluster(t, 3)
		urls := make([]string, len(nodes))
		for i, e := range nodes {
			urls[i] = e.URL()
		}
		sc := load(t, append(sets, "transport.nats="+strings.Join(urls, ","), "transport.timeout=1s")...)
		var once sync.Once
		var log bytes.Buffer
		got, err, _ := runWithin(t, sc, 60*time.Second, func(r server.RoundReport) {
			if r.Round != 20 {
				return
			}
			once.Do(func() {
				for _, e := range nodes {
					if e.Clients() > 0 {
						go e.Shutdown()
						return
					}
				}
			})
		}, &log)
		t.Logf("try %d: %q", i, log.String())
		if err != nil {
			t.Fatalf("try %d: %v", i, err)
		}
		if !bytes.Equal(got, ref) {
			t.Errorf("record differs from the clean run's:\ngot  %s\nwant %s", got, ref)
		}
	}
}
