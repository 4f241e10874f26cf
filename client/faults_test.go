package client_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// stopLimit is how soon training must stop after it is told to.
const stopLimit = time.Second

// Train stops after the mini-batch in progress once its stop flag is set,
// plain and DP-SGD, and checking the flag allocates nothing.
func TestTrainStopsOnFlag(t *testing.T) {
	m := clienttest.Model(t, 1, true)
	d := clienttest.Dataset(t, 60, 1)
	segs := []client.Segment{{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 40)}}
	for _, dp := range []*client.DPStep{nil, {Clip: 1, Sigma: 0.5}} {
		cfg := clienttest.TrainConfig()
		cfg.DP = dp
		tr := client.NewTrainer(m, cfg.BatchSize)
		var stop atomic.Bool
		tr.StopOn(&stop)
		p := clienttest.InitParams(m, 1)
		if _, steps := tr.Train(p, segs, cfg, nil, 0, 0); steps != client.StepsPerRound(cfg, 40) {
			t.Fatalf("DP %v: unset flag: %d steps, want %d", dp != nil, steps, client.StepsPerRound(cfg, 40))
		}
		if a := testing.AllocsPerRun(5, func() { tr.Train(p, segs, cfg, nil, 0, 1) }); a != 0 {
			t.Errorf("DP %v: Train with a stop flag: got %v allocations per call, want 0", dp != nil, a)
		}
		stop.Store(true)
		before := slices.Clone(p)
		if _, steps := tr.Train(p, segs, cfg, nil, 0, 2); steps != 0 || !slices.Equal(p, before) {
			t.Errorf("DP %v: set flag: %d steps (params changed: %v), want none", dp != nil, steps, !slices.Equal(p, before))
		}
	}
	// Set during a long training: it returns within stopLimit.
	cfg := clienttest.TrainConfig()
	cfg.Epochs = 1 << 30
	tr := client.NewTrainer(m, cfg.BatchSize)
	var stop atomic.Bool
	tr.StopOn(&stop)
	time.AfterFunc(50*time.Millisecond, func() { stop.Store(true) })
	done := make(chan int)
	go func() {
		_, steps := tr.Train(clienttest.InitParams(m, 1), segs, cfg, nil, 0, 0)
		done <- steps
	}()
	select {
	case steps := <-done:
		if steps == 0 {
			t.Error("stopped before any step, want some in 50 ms")
		}
	case <-time.After(50*time.Millisecond + stopLimit):
		t.Fatalf("Train did not stop within %v of its flag", stopLimit)
	}
}

// A host whose context ends while its clients train stops within a
// mini-batch and publishes no update of that round.
func TestHostStopsTrainingOnCancel(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 20)
	cfg := clienttest.HostConfig(0, 4, 2)
	cfg.Train.Epochs = 1 << 30 // hours of training
	rh := clienttest.StartHost(t, cfg, m, shards)
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 1, 2, 3}, clienttest.InitParams(m, 3), 0))
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	rh.Cancel()
	ended, err := rh.Wait(stopLimit)
	if !ended {
		t.Fatalf("host still training %v after its context ended", stopLimit)
	}
	t.Logf("stopped %v after the cancel", time.Since(start))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Wait: got %v, want context.Canceled", err)
	}
	if n := len(rh.Updates.All()); n != 0 {
		t.Errorf("published %d updates of the interrupted round, want none", n)
	}
}

// gateBehaviour holds the host in Round until open is closed.
type gateBehaviour struct {
	open   chan struct{}
	rounds atomic.Int32
}

func (b *gateBehaviour) Round(*transport.Message) error {
	b.rounds.Add(1)
	<-b.open
	return nil
}
func (*gateBehaviour) Extras(*client.Work) (*client.Extras, error) { return nil, nil }
func (*gateBehaviour) Finish(*client.Work) error                   { return nil }

// A round sent again (server.Config.Resend) after the host finished it
// trains the clients it lists again, with the same updates, without a
// second Behaviour.Round; one that arrived while the host trained the
// round is ignored.
func TestHostRoundSentAgain(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 15)
	cfg := clienttest.HostConfig(0, 4, 2)
	b := &gateBehaviour{open: make(chan struct{})}
	cfg.Behaviour = b
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 6)
	round := clienttest.RoundMsg(0, 0, []int32{1, 3}, global, 0)
	rh.Send(t, round)
	rh.Send(t, round) // arrives while the host is in round 0: ignored
	close(b.open)
	first := rh.Updates.WaitFor(t, 2, clienttest.HostTimeout)
	time.Sleep(50 * time.Millisecond) // the host is done with round 0
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{3}, global, 0))
	rh.Stop(t)

	ups := rh.Updates.All()
	if len(ups) != 3 || ups[2].Client != 3 {
		ids := []int32{}
		for _, u := range ups {
			ids = append(ids, u.Client)
		}
		t.Fatalf("updates of clients %v, want 1 and 3, then 3 again", ids)
	}
	again := clienttest.TensorOf(t, ups[2], protocol.TensorDelta)
	if want := clienttest.TensorOf(t, clienttest.ByClient(t, first, 0)[3], protocol.TensorDelta); !slices.Equal(again, want) {
		t.Errorf("client 3's update sent again differs from its first (max diff %v)", clienttest.MaxAbsDiff(again, want))
	}
	if n := b.rounds.Load(); n != 1 {
		t.Errorf("Behaviour.Round called %d times, want once for round 0", n)
	}
	ignored := false
	for _, l := range rh.Log.Lines() {
		ignored = ignored || strings.Contains(l, "sent again while this host trained it")
	}
	if !ignored {
		t.Errorf("log %q does not say the repeat sent during the round was ignored", rh.Log.Lines())
	}
}
