package client_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// gatedBus is a bus whose update publishes wait for the gate to open
// (a slow transport), then fail with fail when it is set.
type gatedBus struct {
	*transporttest.Bus
	gate chan struct{}
	fail error
}

func (g *gatedBus) PublishFrame(subject string, f *transport.Frame) (int, error) {
	<-g.gate
	if g.fail != nil {
		return 0, g.fail
	}
	return g.Bus.PublishFrame(subject, f)
}

// finishCounter counts the clients that got as far as their update.
type finishCounter struct{ n atomic.Int32 }

func (*finishCounter) Round(*transport.Message) error              { return nil }
func (*finishCounter) Extras(*client.Work) (*client.Extras, error) { return nil, nil }
func (f *finishCounter) Finish(*client.Work) error                 { f.n.Add(1); return nil }

// startGated starts a host of one worker on clients [0, 4) over g.
func startGated(t *testing.T, g *gatedBus, b client.Behaviour) (*client.Host, *clienttest.Recorder) {
	t.Helper()
	m := clienttest.Model(t, 1, false)
	cfg := clienttest.HostConfig(0, 4, 1)
	cfg.Subjects, cfg.Behaviour = clienttest.Subjects, b
	h, err := client.NewHost(cfg, m, clienttest.NewShards(clienttest.Dataset(t, 80, 1), 1, 4), g)
	if err != nil {
		t.Fatal(err)
	}
	rec := &clienttest.Recorder{}
	if _, err := g.Subscribe(clienttest.Subjects.Update, rec.Handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Publish(clienttest.Subjects.Round, clienttest.RoundMsg(0, 0, []int32{0, 1, 2, 3}, clienttest.InitParams(m, 3), 0)); err != nil {
		t.Fatal(err)
	}
	return h, rec
}

// Updates are published off the worker: while the transport holds the
// first update, the worker goes on with the next clients, up to two
// updates per worker in hand (the free frames); once the transport takes
// them, every update goes out and the frames come back for the rest.
func TestHostPublishesOffTheWorker(t *testing.T) {
	g := &gatedBus{Bus: transporttest.NewBus(), gate: make(chan struct{})}
	fc := &finishCounter{}
	h, rec := startGated(t, g, fc)
	for end := time.Now().Add(clienttest.HostTimeout); fc.n.Load() < 2; time.Sleep(time.Millisecond) {
		if time.Now().After(end) {
			t.Fatalf("%d clients finished while the first update was held, want 2", fc.n.Load())
		}
	}
	time.Sleep(100 * time.Millisecond) // the third client trains, then waits for a frame
	if n := fc.n.Load(); n != 2 {
		t.Fatalf("%d clients finished with the transport holding the first update, want 2 (two frames per worker)", n)
	}
	if n := len(rec.All()); n != 0 {
		t.Fatalf("%d updates delivered through a closed gate", n)
	}
	close(g.gate)
	if _, err := g.Publish(clienttest.Subjects.Round, &transport.Message{Kind: transport.KindStop}); err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got := clienttest.ByClient(t, rec.All(), 0); len(got) != 4 {
		t.Errorf("updates of %d clients, want 4", len(got))
	}
}

// A publish that fails ends the round, and the host, with its error.
func TestHostPublishErrorStopsHost(t *testing.T) {
	g := &gatedBus{Bus: transporttest.NewBus(), gate: make(chan struct{}), fail: errors.New("connection closed")}
	close(g.gate)
	h, rec := startGated(t, g, nil)
	done := make(chan error, 1)
	go func() { done <- h.Wait() }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "publish an update of round 0") || !strings.Contains(err.Error(), "connection closed") {
			t.Errorf("Wait: %v, want the publish error of round 0", err)
		}
	case <-time.After(clienttest.HostTimeout):
		t.Fatal("the host did not stop after a failed publish")
	}
	if n := len(rec.All()); n != 0 {
		t.Errorf("%d updates delivered, want 0", n)
	}
}
