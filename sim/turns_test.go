package sim

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// Runs given one Turns take turns round by round, one at a time, and
// their records are byte-identical to the same runs one after the other;
// each run's wall time leaves out its waits for the others.
func TestTurnsAlternateRoundsAndKeepRecords(t *testing.T) {
	sc := load(t, "methods=[fedavg, fot, fedprox]", "seeds=[0]", "eval.every=2")
	ref := runAll(t, sc)
	runs := sc.Runs()

	var mu sync.Mutex
	var order []int // run index of every round, in the order they ended
	busy := 0       // runs inside a round right now
	turns := NewTurns(len(runs))
	env := NewEnv()
	recs := make([][]byte, len(runs))
	walls := make([]float64, len(runs))
	errs := make([]error, len(runs))
	start := time.Now()
	var wg sync.WaitGroup
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := Options{Turns: turns, Turn: i, OnRound: func(scenarios.Run, server.RoundReport) {
				mu.Lock()
				order = append(order, i)
				busy++
				if busy > 1 {
					errs[i] = fmt.Errorf("round of run %d ended while another run was in its round", i)
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond) // a run computing at the same time would end a round now
				mu.Lock()
				busy--
				mu.Unlock()
			}}
			rec, err := env.Run(context.Background(), sc, r, opts)
			if err != nil {
				errs[i] = err
				return
			}
			recs[i], walls[i] = canonical(t, rec), rec.WallSeconds
		}()
	}
	wg.Wait()
	total := time.Since(start).Seconds()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	rounds := sc.Data.Tasks * sc.Train.RoundsPerTask
	if len(order) != rounds*len(runs) {
		t.Fatalf("%d rounds reported, want %d", len(order), rounds*len(runs))
	}
	for k, i := range order {
		if i != k%len(runs) {
			t.Fatalf("round %d of the process was run %d's, want %d (order %v)", k, i, k%len(runs), order)
		}
	}
	var sum float64
	for i, r := range runs {
		key := fmt.Sprintf("%s/s%d", r.Method.Label(), r.Seed)
		if !bytes.Equal(recs[i], ref[key]) {
			t.Errorf("%s: the record taking turns differs from the run alone", key)
		}
		sum += walls[i]
	}
	// Each run computed while the others waited, so its own times add up
	// to at most the whole; counting the waits would make them about 3x.
	if sum > total {
		t.Errorf("wall times add up to %.3f s, more than the %.3f s all runs took", sum, total)
	}
}

// A run that fails, or is cancelled, gives up its turn: the others go on.
func TestTurnsSurviveAFailedRun(t *testing.T) {
	good := load(t, "seeds=[0]")
	bad := load(t, "seeds=[0]", "data.dataset=mnist", "data.dir=/nonexistent")
	turns := NewTurns(3)
	env := NewEnv()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i, sc := range []*scenarios.Scenario{bad, good, good} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := context.Background()
			if i == 2 {
				c = ctx // cancelled before its turn
			}
			_, errs[i] = env.Run(c, sc, sc.Runs()[0], Options{Turns: turns, Turn: i})
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("runs still waiting for their turn")
	}
	if errs[0] == nil {
		t.Error("the run without data succeeded")
	}
	if errs[1] != nil {
		t.Errorf("the good run failed: %v", errs[1])
	}
	if !errors.Is(errs[2], context.Canceled) {
		t.Errorf("the cancelled run: %v, want context.Canceled", errs[2])
	}
}

// pairedRatio is the median of the per-round ratios of the rounds kept.
func TestPairedRatio(t *testing.T) {
	round := func(i int, d time.Duration) server.RoundTiming {
		return server.RoundTiming{Round: i, Broadcast: d / 4, Collect: d / 2, Aggregate: d / 4}
	}
	var a, b server.Timing
	for i, q := range []float64{9, 1.5, 0.5, 1.1, 1.2, 4} { // round 0 is left out below
		a.Rounds = append(a.Rounds, round(i, 100*time.Millisecond))
		b.Rounds = append(b.Rounds, round(i, time.Duration(q*100)*time.Millisecond))
	}
	keep := func(r server.RoundTiming) bool { return r.Round > 0 }
	if got := pairedRatio(a, b, keep); got < 1.2-1e-9 || got > 1.2+1e-9 { // 0.5 1.1 [1.2] 1.5 4
		t.Errorf("odd count: %v, want 1.2", got)
	}
	keep5 := func(r server.RoundTiming) bool { return r.Round > 0 && r.Round < 5 } // 0.5 [1.1 1.2] 1.5
	if got := pairedRatio(a, b, keep5); got < 1.15-1e-9 || got > 1.15+1e-9 {
		t.Errorf("even count: %v, want 1.15", got)
	}
	if got := pairedRatio(a, b, func(server.RoundTiming) bool { return false }); got != 0 {
		t.Errorf("no rounds: %v, want 0", got)
	}
}

// Checkpoints are spaced in the run's own time (its wall time, which
// leaves out the waits for other runs' turns), not in the clock's: a run
// that waited for others does not write more often for it.
func TestCheckpointSpacingInRunTime(t *testing.T) {
	sc := load(t, "seeds=[0]")
	x, err := NewEnv().Build(sc, sc.Runs()[0])
	if err != nil {
		t.Fatal(err)
	}
	own := 100.0 // the run's own seconds, as Env.Run's wall reports them
	k, err := x.newCheckpointer(t.TempDir(), nil, func() map[string]int { return nil }, func() float64 { return own })
	if err != nil {
		t.Fatal(err)
	}
	writes := 0
	k.saved = func(string) { writes++ }
	st := &server.State{Params: make([]float32, 1<<16)}
	if err := k.save(st); err != nil || writes != 1 {
		t.Fatalf("first save: %v, %d writes, want 1", err, writes)
	}
	// The clock runs on while the run waits: its own time does not.
	time.Sleep(checkpointShare*k.cost + 10*time.Millisecond)
	if err := k.save(st); err != nil || writes != 1 {
		t.Fatalf("save after waiting: %v, %d writes, want still 1", err, writes)
	}
	own += checkpointShare*k.cost.Seconds() + 0.001
	if err := k.save(st); err != nil || writes != 2 {
		t.Fatalf("save after the run's own time passed: %v, %d writes, want 2", err, writes)
	}
}
