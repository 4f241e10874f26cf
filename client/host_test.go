package client_test

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// controlMinDiff is how far a behaviour's extras must move the delta.
const controlMinDiff = 1e-4

var errInjected = errors.New("fake: undecodable message")

func TestHostConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*client.HostConfig)
	}{
		{"workers0", func(c *client.HostConfig) { c.Workers = 0 }},
		{"empty-range", func(c *client.HostConfig) { c.Last = c.First }},
		{"negative-first", func(c *client.HostConfig) { c.First = -1 }},
		{"bad-train", func(c *client.HostConfig) { c.Train.Epochs = 0 }},
		{"bad-lora", func(c *client.HostConfig) { c.LoRA = "a" }},
		{"fewer-clients-than-range", func(c *client.HostConfig) { c.Clients = 3 }},
		{"negative-tasks", func(c *client.HostConfig) { c.Tasks = -1 }},
		{"auth-without-run", func(c *client.HostConfig) { c.Auth = &auth.Keys{} }},
	}
	m := clienttest.Model(t, 1, false)
	for _, tc := range tests {
		cfg := clienttest.HostConfig(0, 4, 2)
		tc.edit(&cfg)
		if _, err := client.NewHost(cfg, m, nil, transporttest.NewBus()); !errors.Is(err, client.ErrConfig) {
			t.Errorf("%s: got error %v, want ErrConfig", tc.name, err)
		}
	}
	if _, err := client.NewHost(clienttest.HostConfig(0, 4, 2), m, nil, transporttest.NewBus()); err != nil {
		t.Errorf("valid config: got error %v, want nil", err)
	}
}

func TestHostRoundPublishesOwnSelectedClients(t *testing.T) {
	m := clienttest.Model(t, 1, true)
	d := clienttest.Dataset(t, 200, 1)
	shards := clienttest.NewShards(d, 2, 12)
	cfg := clienttest.HostConfig(2, 6, 3)
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 31)
	const round, task = 7, 1
	// Clients 0, 1, 6 and 7 belong to other hosts ([First, Last) = [2, 6)).
	rh.Send(t, clienttest.RoundMsg(round, task, []int32{0, 1, 2, 3, 5, 6, 7}, global, 0))
	rh.Stop(t)

	ups := rh.Updates.All()
	got := clienttest.ByClient(t, ups, round)
	if len(ups) != 3 || got[2] == nil || got[3] == nil || got[5] == nil {
		ids := []int32{}
		for _, u := range ups {
			ids = append(ids, u.Client)
		}
		t.Fatalf("updates from clients %v, want exactly one each from [2 3 5]", ids)
	}
	for _, c := range []int{2, 3, 5} {
		u := got[int32(c)]
		segs := shards.Shard(task, c)
		want, _, wantLoss, wantSteps := clienttest.DirectDelta(m, global, segs, cfg.Train, nil, c, round)
		if u.Kind != transport.KindUpdate || u.Round != round || u.Task != task || u.Client != int32(c) {
			t.Errorf("client %d: got kind %v round %d task %d client %d, want update %d %d %d", c, u.Kind, u.Round, u.Task, u.Client, round, task, c)
		}
		if u.N != int64(len(segs[0].Rows)) {
			t.Errorf("client %d: got N %d, want %d", c, u.N, len(segs[0].Rows))
		}
		if diff := clienttest.MaxAbsDiff(clienttest.TensorOf(t, u, protocol.TensorDelta), want); diff != 0 {
			t.Errorf("client %d: max |delta - (trained - global)| = %v, want 0", c, diff)
		}
		if clienttest.MaxAbs(want) == 0 {
			t.Errorf("client %d: training did not move the model", c)
		}
		if l, _ := u.Scalar(protocol.ScalarLoss); l != wantLoss {
			t.Errorf("client %d: loss got %v, want %v", c, l, wantLoss)
		}
		if s, _ := u.Scalar(protocol.ScalarSteps); s != float64(wantSteps) {
			t.Errorf("client %d: steps got %v, want %d", c, s, wantSteps)
		}
		if u.Tensor(protocol.TensorFisher) != nil || u.Flags&protocol.FlagFisher != 0 {
			t.Errorf("client %d: Fisher sent without FlagFisher", c)
		}
	}
}

func TestHostStopAndCancel(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 40, 1), 1, 5)
	t.Run("stop", func(t *testing.T) {
		rh := clienttest.StartHost(t, clienttest.HostConfig(0, 2, 1), m, shards)
		rh.Stop(t) // fails unless Wait returns nil
	})
	t.Run("cancel", func(t *testing.T) {
		rh := clienttest.StartHost(t, clienttest.HostConfig(0, 2, 1), m, shards)
		rh.Cancel()
		ended, err := rh.Wait(clienttest.HostTimeout)
		if !ended {
			t.Fatal("host did not stop after its context was cancelled")
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Wait after cancel: got %v, want context.Canceled", err)
		}
	})
}

func TestHostSkipsBadMessages(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 60, 1), 1, 5)
	rh := clienttest.StartHost(t, clienttest.HostConfig(0, 4, 2), m, shards)
	global := clienttest.InitParams(m, 1)
	short := global[:len(global)-1]

	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 1}, short, 0)) // wrong length
	noParams := clienttest.RoundMsg(1, 0, []int32{0, 1}, global, 0)
	noParams.Tensors[0].Name = "weights" // no params tensor at all
	rh.Send(t, noParams)
	rh.Bus.Inject(clienttest.Subjects.Round, errInjected)                                     // undecodable
	rh.Send(t, &transport.Message{Kind: transport.KindUpdate, Round: 2, Clients: []int32{0}}) // wrong kind
	rh.Send(t, clienttest.RoundMsg(3, 0, []int32{2}, global, 0))                              // still serving
	rh.Stop(t)

	ups := rh.Updates.All()
	if len(ups) != 1 || ups[0].Round != 3 || ups[0].Client != 2 {
		t.Fatalf("got %d updates, want exactly one, of client 2 in round 3", len(ups))
	}
	lines := rh.Log.Lines()
	wantLog := []string{"round 0", "round 1", errInjected.Error(), "kind"}
	for _, w := range wantLog {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("log %q: no line mentions %q", lines, w)
		}
	}
	want := map[string]int{client.RejectParams: 2, client.RejectDecode: 1, client.RejectKind: 1}
	if got := rh.Rejected(); !maps.Equal(got, want) {
		t.Errorf("Rejected: got %v, want %v", got, want)
	}
}

func TestHostWorkerCountIndependence(t *testing.T) {
	clienttest.CheckWorkerCountIndependence(t, func(m *nn.Model, batch int) client.Behaviour {
		return &gpseBehaviour{model: m, cfg: client.GPSEConfig{Sketch: "uniform", Oversample: 1, TrainMode: true}, batch: batch}
	})
}

// gpseBehaviour is FOT's client side as a test-only Behaviour: GPSE after
// training on a sketch round, with a GPSE kept per worker in Work.State.
type gpseBehaviour struct {
	model *nn.Model
	cfg   client.GPSEConfig
	batch int
}

func (*gpseBehaviour) Round(*transport.Message) error              { return nil }
func (*gpseBehaviour) Extras(*client.Work) (*client.Extras, error) { return nil, nil }

func (b *gpseBehaviour) Finish(w *client.Work) error {
	if w.Msg.Flags&protocol.FlagSketch == 0 {
		return nil
	}
	g, ok := w.State.(*client.GPSE)
	if !ok {
		var err error
		if g, err = client.NewGPSE(b.model, b.cfg, b.batch); err != nil {
			return err
		}
		w.State = g
	}
	return g.Sketch(w)
}

// testBehaviour is a test-only method: a proximal term towards the round's
// global model (Extras) and, in Finish, a scalar and a tensor of its own
// (the client id and the trained local model). It records the rounds it
// sees and returns errBehaviour from the hook named by fail.
type testBehaviour struct {
	fail string // "", "round", "extras" or "finish"

	mu     sync.Mutex
	rounds []int32
}

const (
	testMu          = 5
	testScalarName  = "test/client"
	testTensorLocal = "test/local"
)

var errBehaviour = errors.New("test behaviour failed")

func (b *testBehaviour) Round(m *transport.Message) error {
	b.mu.Lock()
	b.rounds = append(b.rounds, m.Round)
	b.mu.Unlock()
	if b.fail == "round" {
		return errBehaviour
	}
	return nil
}

func (b *testBehaviour) Extras(w *client.Work) (*client.Extras, error) {
	if b.fail == "extras" {
		return nil, errBehaviour
	}
	w.Extras = client.Extras{Mu: testMu, Global: w.Global}
	return &w.Extras, nil
}

func (b *testBehaviour) Finish(w *client.Work) error {
	if b.fail == "finish" {
		return errBehaviour
	}
	u := w.Update
	u.Scalars = append(u.Scalars, transport.Scalar{Name: testScalarName, Value: float64(w.Client)})
	u.Tensors = append(u.Tensors, transport.Tensor{Name: testTensorLocal, Rows: 1, Cols: len(w.Local), Data: w.Local})
	return nil
}

func (b *testBehaviour) seen() []int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.rounds)
}

// A Behaviour sees every accepted round message (also one without clients
// of this host, never a malformed one); its Extras reach the trainer, and
// what Finish adds, after training, is in the update.
func TestHostBehaviour(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 15)
	cfg := clienttest.HostConfig(0, 4, 2)
	b := &testBehaviour{}
	cfg.Behaviour = b
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 6)
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{1, 3}, global, 0))
	rh.Send(t, clienttest.RoundMsg(1, 0, []int32{7}, global, 0))                 // no client of this host
	rh.Send(t, clienttest.RoundMsg(2, 0, []int32{1}, global[:len(global)-1], 0)) // malformed
	rh.Stop(t)

	if got := b.seen(); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Round saw rounds %v, want [0 1]", got)
	}
	ups := rh.Updates.All()
	if len(ups) != 2 {
		t.Fatalf("got %d updates, want 2 (clients 1 and 3 of round 0)", len(ups))
	}
	got := clienttest.ByClient(t, ups, 0)
	for _, c := range []int{1, 3} {
		u := got[int32(c)]
		if u == nil {
			t.Fatalf("no update of client %d", c)
		}
		segs := shards.Shard(0, c)
		want, local, _, _ := clienttest.DirectDelta(m, global, segs, cfg.Train, &client.Extras{Mu: testMu, Global: global}, c, 0)
		delta := clienttest.TensorOf(t, u, protocol.TensorDelta)
		if diff := clienttest.MaxAbsDiff(delta, want); diff != 0 {
			t.Errorf("client %d: max |delta - delta with the behaviour's extras| = %v, want 0", c, diff)
		}
		plain, _, _, _ := clienttest.DirectDelta(m, global, segs, cfg.Train, nil, c, 0)
		if diff := clienttest.MaxAbsDiff(delta, plain); diff < controlMinDiff {
			t.Errorf("client %d: delta is within %v of plain training; the test cannot tell the extras were used", c, diff)
		}
		if diff := clienttest.MaxAbsDiff(clienttest.TensorOf(t, u, testTensorLocal), local); diff != 0 {
			t.Errorf("client %d: max |Finish's local model - trained model| = %v, want 0", c, diff)
		}
		if v, ok := u.Scalar(testScalarName); !ok || v != float64(c) {
			t.Errorf("client %d: scalar %s = %v (present %v), want %d", c, testScalarName, v, ok, c)
		}
		for _, name := range []string{protocol.ScalarLoss, protocol.ScalarSteps, protocol.ScalarTrainSeconds} {
			if _, ok := u.Scalar(name); !ok {
				t.Errorf("client %d: the behaviour's scalar replaced %s", c, name)
			}
		}
	}
}

// An error from any hook of a Behaviour stops the host with that error,
// and the update is not published.
func TestHostBehaviourErrorStopsHost(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 40, 1), 1, 5)
	for _, hook := range []string{"round", "extras", "finish"} {
		cfg := clienttest.HostConfig(0, 2, 1)
		cfg.Behaviour = &testBehaviour{fail: hook}
		rh := clienttest.StartHost(t, cfg, m, shards)
		rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0}, clienttest.InitParams(m, 1), 0))
		ended, err := rh.Wait(clienttest.HostTimeout)
		if !ended {
			t.Fatalf("%s: host kept running after its behaviour failed", hook)
		}
		if !errors.Is(err, errBehaviour) {
			t.Errorf("%s: Wait got %v, want the behaviour's error", hook, err)
		}
		if n := len(rh.Updates.All()); n != 0 {
			t.Errorf("%s: got %d updates, want 0", hook, n)
		}
	}
}

func TestHostOverEmbeddedNATS(t *testing.T) {
	e, err := transport.StartEmbedded()
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	hostConn, err := e.Connect("host")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hostConn.Close)
	srvConn, err := e.Connect("server")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srvConn.Close)

	m := clienttest.Model(t, 1, true)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 10)
	cfg := clienttest.HostConfig(0, 4, 2)
	cfg.Subjects = transport.SubjectsFor("client-nats-test")
	h, err := client.NewHost(cfg, m, shards, hostConn)
	if err != nil {
		t.Fatal(err)
	}
	ups := &clienttest.Recorder{}
	unsub, err := srvConn.Subscribe(cfg.Subjects.Update, ups.Handle)
	if err != nil {
		t.Fatal(err)
	}
	defer unsub()
	if err := srvConn.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := h.Start(ctx); err != nil {
		t.Fatal(err)
	}
	global := clienttest.InitParams(m, 5)
	if _, err := srvConn.Publish(cfg.Subjects.Round, clienttest.RoundMsg(2, 0, []int32{1, 3}, global, 0)); err != nil {
		t.Fatal(err)
	}
	got := clienttest.ByClient(t, ups.WaitFor(t, 2, clienttest.HostTimeout), 2)
	for _, c := range []int{1, 3} {
		want, _, _, _ := clienttest.DirectDelta(m, global, shards.Shard(0, c), cfg.Train, nil, c, 2)
		if u := got[int32(c)]; u == nil {
			t.Errorf("no update of client %d", c)
		} else if diff := clienttest.MaxAbsDiff(clienttest.TensorOf(t, u, protocol.TensorDelta), want); diff != 0 {
			t.Errorf("client %d: max |delta - direct| = %v, want 0", c, diff)
		}
	}
	if _, err := srvConn.Publish(cfg.Subjects.Round, &transport.Message{Kind: transport.KindStop}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- h.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Wait after Stop: got %v, want nil", err)
		}
	case <-time.After(clienttest.HostTimeout):
		t.Fatal("host did not stop")
	}
}
