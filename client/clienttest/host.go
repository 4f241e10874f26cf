package clienttest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// HostTimeout is how long the helpers (and the tests) wait for a host to
// publish or to stop.
const HostTimeout = 30 * time.Second

// Subjects are the subjects a Host serves.
var Subjects = transport.SubjectsFor("clienttest")

// Recorder collects the messages published on one subject: subscribe its
// Handle.
type Recorder struct {
	mu   sync.Mutex
	msgs []*transport.Message
	errs []error
}

// Handle is a transport handler: it records m, or err if there is one.
func (r *Recorder) Handle(m *transport.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.msgs = append(r.msgs, m)
}

// All returns the messages received so far, in order.
func (r *Recorder) All() []*transport.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// Errs returns the errors received so far, in order.
func (r *Recorder) Errs() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}

// WaitFor waits until n messages arrived and returns them; it fails the
// test if they do not within timeout.
func (r *Recorder) WaitFor(t *testing.T, n int, timeout time.Duration) []*transport.Message {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		got := r.All()
		if len(got) >= n || time.Now().After(end) {
			if len(got) < n {
				t.Fatalf("got %d messages, want %d within %v", len(got), n, timeout)
			}
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// Log collects the lines of a Logf.
type Log struct {
	mu    sync.Mutex
	lines []string
}

// Logf records one formatted line.
func (l *Log) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// Lines returns the lines recorded so far.
func (l *Log) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Host is a started client.Host on its own in-memory bus, serving
// Subjects, with the recorder of its updates and of its log.
type Host struct {
	Bus     *transporttest.Bus
	Updates *Recorder // every update the host published
	Log     *Log      // the host's Logf lines (also passed to t.Logf)
	// Cancel cancels the host's context.
	Cancel context.CancelFunc

	host *client.Host
	done chan struct{} // closed when the host's Wait returned
	err  error         // what it returned
}

// Rejected returns the host's rejected round-subject messages by reason
// (client.Host.Rejected).
func (rh *Host) Rejected() map[string]int { return rh.host.Rejected() }

// StartHost builds a client.Host of cfg (with Subjects and a Logf of its
// own) over a new bus, subscribes Updates and starts the host. The test's
// cleanup cancels the host and waits for it.
func StartHost(t *testing.T, cfg client.HostConfig, m *nn.Model, shards client.Shards) *Host {
	t.Helper()
	rh := &Host{Bus: transporttest.NewBus(), Updates: &Recorder{}, Log: &Log{}, done: make(chan struct{})}
	cfg.Subjects = Subjects
	cfg.Logf = func(format string, args ...any) {
		rh.Log.Logf(format, args...)
		t.Logf(format, args...)
	}
	h, err := client.NewHost(cfg, m, shards, rh.Bus)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	rh.host = h
	if _, err := rh.Bus.Subscribe(Subjects.Update, rh.Updates.Handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rh.Cancel = cancel
	if err := h.Start(ctx); err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	go func() {
		rh.err = h.Wait()
		close(rh.done)
	}()
	t.Cleanup(func() {
		cancel()
		<-rh.done
	})
	return rh
}

// Send publishes a message on the round subject.
func (rh *Host) Send(t *testing.T, m *transport.Message) {
	t.Helper()
	if _, err := rh.Bus.Publish(Subjects.Round, m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// Wait waits up to timeout for the host to end. It returns whether it
// ended and, if so, what the host's Wait returned.
func (rh *Host) Wait(timeout time.Duration) (ended bool, err error) {
	select {
	case <-rh.done:
		return true, rh.err
	case <-time.After(timeout):
		return false, nil
	}
}

// Stop sends Stop and waits for the host: every round sent before has
// then been handled and its updates published. It fails the test unless
// the host ends, without an error, within HostTimeout.
func (rh *Host) Stop(t *testing.T) {
	t.Helper()
	rh.Send(t, &transport.Message{Kind: transport.KindStop})
	ended, err := rh.Wait(HostTimeout)
	if !ended {
		t.Fatalf("host did not stop within %v of a Stop message", HostTimeout)
	}
	if err != nil {
		t.Fatalf("Wait after Stop: got %v, want nil", err)
	}
}

// RoundMsg is the broadcast of round (of task) to clients: the params
// tensor first, then extra.
func RoundMsg(round, task int, clients []int32, params []float32, flags uint32, extra ...transport.Tensor) *transport.Message {
	ts := []transport.Tensor{{Name: protocol.TensorParams, Rows: 1, Cols: len(params), Data: params}}
	return &transport.Message{
		Kind: transport.KindRound, Round: int32(round), Task: int32(task), Clients: clients,
		Flags: flags, Tensors: append(ts, extra...),
	}
}

// TensorOf returns the data of m's tensor name; it fails the test if m has
// none.
func TensorOf(t *testing.T, m *transport.Message, name string) []float32 {
	t.Helper()
	x := m.Tensor(name)
	if x == nil {
		t.Fatalf("client %d round %d: no %q tensor", m.Client, m.Round, name)
	}
	return x.Data
}

// ByClient indexes the updates of one round by client; a second update of
// the same client is an error.
func ByClient(t *testing.T, ups []*transport.Message, round int) map[int32]*transport.Message {
	t.Helper()
	out := map[int32]*transport.Message{}
	for _, u := range ups {
		if int(u.Round) != round {
			continue
		}
		if out[u.Client] != nil {
			t.Errorf("round %d: client %d published twice", round, u.Client)
		}
		out[u.Client] = u
	}
	return out
}

// CompareUpdates requires bit-identical tensors and scalars (but the wall
// time) in two runs' updates, keyed alike; want is the run with 1 worker,
// got the run called name.
func CompareUpdates(t *testing.T, want, got map[int32]*transport.Message, name string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %d updates, want %d", name, len(got), len(want))
	}
	for c, a := range want {
		b := got[c]
		if b == nil {
			t.Fatalf("%s: update %d missing", name, c)
		}
		if len(a.Tensors) != len(b.Tensors) {
			t.Fatalf("update %d: %d tensors with 1 worker, %d with %s", c, len(a.Tensors), len(b.Tensors), name)
		}
		for i := range a.Tensors {
			ta, tb := a.Tensors[i], b.Tensors[i]
			if ta.Name != tb.Name || ta.Rows != tb.Rows || ta.Cols != tb.Cols {
				t.Fatalf("%s: update %d tensor %d: %s %dx%d vs %s %dx%d", name, c, i, ta.Name, ta.Rows, ta.Cols, tb.Name, tb.Rows, tb.Cols)
			}
			for j := range ta.Data {
				if math.Float32bits(ta.Data[j]) != math.Float32bits(tb.Data[j]) {
					t.Fatalf("update %d tensor %s[%d]: %v with 1 worker, %v with %s", c, ta.Name, j, ta.Data[j], tb.Data[j], name)
				}
			}
		}
		for _, s := range a.Scalars {
			if s.Name == protocol.ScalarTrainSeconds {
				continue // wall time
			}
			if v, ok := b.Scalar(s.Name); !ok || v != s.Value {
				t.Errorf("update %d scalar %s: %v with 1 worker, %v with %s", c, s.Name, s.Value, v, name)
			}
		}
	}
}

// CheckWorkerCountIndependence runs hosts of clients 0-7, each with its
// own behaviour(model, batch size), through a sketch round (round 3, with
// FlagSketch|FlagFisher and a 2-vector basis for the first projected
// layer) and a plain round (round 4), on 1 worker, on 4 workers and on 1
// worker in the reverse client order, and requires bit-identical updates
// (CompareUpdates). The behaviour must sketch on FlagSketch (GPSE): the
// sketch round's updates must carry one sketch and ratio per projected
// layer, the first layer's ratio in (0, 1), the others 1. It returns the
// updates of the 1-worker run, keyed by client id in round 3 and by 100 +
// client id in round 4.
func CheckWorkerCountIndependence(t *testing.T, behaviour func(m *nn.Model, batch int) client.Behaviour) map[int32]*transport.Message {
	t.Helper()
	m := Model(t, 1, true)
	d := Dataset(t, 200, 1)
	shards := NewShards(d, 2, 20)
	global := InitParams(m, 9)
	// A basis for the first layer (e_0, e_1 as columns of a 16x2 matrix).
	basis := make([]float32, In*2)
	basis[0*2+0], basis[1*2+1] = 1, 1
	clients := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	reversed := slices.Clone(clients)
	slices.Reverse(reversed)
	run := func(workers int, clients []int32) map[int32]*transport.Message {
		cfg := HostConfig(0, 8, workers)
		cfg.Behaviour = behaviour(m, cfg.Train.BatchSize)
		rh := StartHost(t, cfg, m, shards)
		rh.Send(t, RoundMsg(3, 1, clients, global, protocol.FlagSketch|protocol.FlagFisher,
			transport.Tensor{Name: protocol.BasisTensor(0), Rows: In, Cols: 2, Data: basis}))
		rh.Send(t, RoundMsg(4, 1, clients, global, 0))
		rh.Stop(t)
		ups := rh.Updates.All()
		out := ByClient(t, ups, 3)
		for c, u := range ByClient(t, ups, 4) {
			out[c+100] = u
		}
		return out
	}
	// A worker's streams must not carry over from one client to the next:
	// one worker in the other client order must agree too.
	one := run(1, clients)
	for _, other := range []struct {
		name string
		ups  map[int32]*transport.Message
	}{
		{"4 workers", run(4, clients)},
		{"1 worker, reversed order", run(1, reversed)},
	} {
		CompareUpdates(t, one, other.ups, other.name)
	}
	// The sketch round carries one sketch and ratio per projected layer;
	// the first layer's residual ratio is below 1 (the basis explains part
	// of the input), the others (no basis) are 1.
	u := one[0]
	if u.Flags&protocol.FlagSketch == 0 {
		t.Errorf("sketch round: update flags %b lack FlagSketch", u.Flags)
	}
	for i, p := range protocol.Projected(m) {
		sk := u.Tensor(protocol.SketchTensor(i))
		if sk == nil || sk.Rows != p.Cols || sk.Cols != p.Cols {
			t.Fatalf("layer %d: sketch %v, want %dx%d", i, sk, p.Cols, p.Cols)
		}
		r, ok := u.Scalar(protocol.RatioScalar(i))
		if !ok {
			t.Fatalf("layer %d: no ratio", i)
		}
		if i == 0 && !(r > 0 && r < 1) {
			t.Errorf("layer 0 ratio with a 2-vector basis: got %v, want in (0, 1)", r)
		}
		if i > 0 && math.Abs(r-1) > 1e-6 {
			t.Errorf("layer %d ratio without a basis: got %v, want 1", i, r)
		}
	}
	return one
}
