package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// With Options.Live every round's metrics reach the run's metrics subject
// and the sink, in round order, and the record is byte-identical to a run
// without them.
func TestLiveMetrics(t *testing.T) {
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	watcher, err := transport.Dial(emb.URL(), "watcher")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(watcher.Close)
	var mu sync.Mutex
	var onNATS [][]byte
	subjects := map[string]bool{}
	unsub, err := watcher.SubscribeRaw(transport.MetricsWildcard, func(s string, d []byte) {
		mu.Lock()
		defer mu.Unlock()
		onNATS = append(onNATS, d)
		subjects[s] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unsub() })
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}

	sc := load(t, "methods=[fot]", "eval.every=2", "transport.nats="+emb.URL())
	run := sc.Runs()[0]
	ref, err := NewEnv().Run(context.Background(), sc, run, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var sunk [][]byte
	var reports []server.RoundReport
	opts := Options{
		Live:     true,
		LiveSink: func(d []byte) { sunk = append(sunk, d) },
		OnRound:  func(_ scenarios.Run, r server.RoundReport) { reports = append(reports, r) },
	}
	rec, err := NewEnv().Run(context.Background(), sc, run, opts)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(canonical(t, rec), canonical(t, ref)) {
		t.Fatalf("record with live metrics differs:\ngot  %s\nwant %s", canonical(t, rec), canonical(t, ref))
	}
	rounds := sc.Data.Tasks * sc.Train.RoundsPerTask
	if len(sunk) != rounds || len(reports) != rounds {
		t.Fatalf("sink got %d documents and OnRound %d reports, want %d each", len(sunk), len(reports), rounds)
	}
	withAcc := 0
	for i, d := range sunk {
		var m map[string]any
		if err := json.Unmarshal(d, &m); err != nil {
			t.Fatalf("document %d: %v: %s", i, err, d)
		}
		for _, k := range []string{"schema", "run", "scenario", "method", "label", "seed", "task", "tasks", "round", "rounds", "loss", "acc", "updates", "elapsed_seconds"} {
			if _, ok := m[k]; !ok {
				t.Fatalf("document %d lacks %q: %s", i, k, d)
			}
		}
		var got Metrics
		if err := json.Unmarshal(d, &got); err != nil {
			t.Fatal(err)
		}
		r := reports[i]
		if got.Schema != MetricsSchema || got.Scenario != "synthetic" || got.Method != "fot" || got.Round != i+1 || got.Rounds != rounds ||
			got.Task != r.Task || got.Tasks != sc.Data.Tasks || got.Loss == nil || *got.Loss != r.TrainLoss || got.Updates != r.Updates {
			t.Fatalf("document %d = %s does not match the round report %+v", i, d, r)
		}
		if (r.Acc == nil) != (got.Acc == nil) || len(got.Acc) != len(r.Acc) {
			t.Fatalf("document %d acc %s, report %v", i, d, r.Acc)
		}
		for j := range r.Acc {
			if *got.Acc[j] != r.Acc[j] {
				t.Fatalf("document %d acc[%d] = %v, want %v", i, j, *got.Acc[j], r.Acc[j])
			}
		}
		if got.Acc != nil {
			withAcc++
		}
	}
	if withAcc != rounds/2 {
		t.Errorf("%d documents with acc, want %d (eval.every=2)", withAcc, rounds/2)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		n := len(onNATS)
		mu.Unlock()
		if n == rounds || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(onNATS) != rounds || len(subjects) != 1 {
		t.Fatalf("NATS carried %d documents on %d subjects, want %d on 1", len(onNATS), len(subjects), rounds)
	}
	for i := range onNATS {
		if !bytes.Equal(onNATS[i], sunk[i]) {
			t.Fatalf("document %d differs between NATS and the sink:\n%s\n%s", i, onNATS[i], sunk[i])
		}
	}
}

// A publisher whose queue is full drops and counts instead of blocking.
func TestLivePublisherDrops(t *testing.T) {
	release := make(chan struct{})
	var got int
	p := startLive(Options{LiveSink: func([]byte) { <-release; got++ }}, nil, "fotsim.x.metrics")
	start := time.Now()
	for range liveQueue + 10 {
		p.publish(Metrics{Round: 1})
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("publishing took %v", d)
	}
	if p.dropped.Load() < 9 {
		t.Fatalf("dropped %d, want at least 9", p.dropped.Load())
	}
	close(release)
	var logged []string
	p.stop(func(f string, a ...any) { logged = append(logged, f) })
	if int64(got)+p.dropped.Load() != liveQueue+10 {
		t.Fatalf("delivered %d + dropped %d != %d", got, p.dropped.Load(), liveQueue+10)
	}
	if len(logged) != 1 {
		t.Fatalf("stop logged %d lines, want 1", len(logged))
	}
}
