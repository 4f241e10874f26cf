package client

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Tolerances.
const (
	controlMinDiff = 1e-4 // a behaviour's extras must move the delta by more than this
	hostTimeout    = 30 * time.Second
)

func hostConfig(first, last, workers int) HostConfig {
	return HostConfig{First: first, Last: last, Workers: workers, Train: testTrainConfig()}
}

func TestHostConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*HostConfig)
	}{
		{"workers0", func(c *HostConfig) { c.Workers = 0 }},
		{"empty-range", func(c *HostConfig) { c.Last = c.First }},
		{"negative-first", func(c *HostConfig) { c.First = -1 }},
		{"bad-train", func(c *HostConfig) { c.Train.Epochs = 0 }},
		{"bad-lora", func(c *HostConfig) { c.LoRA = "a" }},
	}
	m := testModel(t, 1, false)
	for _, tc := range tests {
		cfg := hostConfig(0, 4, 2)
		tc.edit(&cfg)
		if _, err := NewHost(cfg, m, nil, newFakeBus()); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: got error %v, want ErrConfig", tc.name, err)
		}
	}
	if _, err := NewHost(hostConfig(0, 4, 2), m, nil, newFakeBus()); err != nil {
		t.Errorf("valid config: got error %v, want nil", err)
	}
}

func TestHostRoundPublishesOwnSelectedClients(t *testing.T) {
	m := testModel(t, 1, true)
	d := testDataset(t, 200, 1)
	shards := newTestShards(d, 2, 12)
	cfg := hostConfig(2, 6, 3)
	rh := startHost(t, cfg, m, shards)
	global := initParams(m, 31)
	const round, task = 7, 1
	// Clients 0, 1, 6 and 7 belong to other hosts ([First, Last) = [2, 6)).
	rh.send(t, roundMsg(round, task, []int32{0, 1, 2, 3, 5, 6, 7}, global, 0))
	rh.stop(t)

	ups := rh.ups.all()
	got := byClient(t, ups, round)
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
		want, _, wantLoss, wantSteps := directDelta(m, global, segs, cfg.Train, nil, c, round)
		if u.Kind != transport.KindUpdate || u.Round != round || u.Task != task || u.Client != int32(c) {
			t.Errorf("client %d: got kind %v round %d task %d client %d, want update %d %d %d", c, u.Kind, u.Round, u.Task, u.Client, round, task, c)
		}
		if u.N != int64(len(segs[0].Rows)) {
			t.Errorf("client %d: got N %d, want %d", c, u.N, len(segs[0].Rows))
		}
		if diff := maxAbsDiff(tensorOf(t, u, protocol.TensorDelta), want); diff != 0 {
			t.Errorf("client %d: max |delta - (trained - global)| = %v, want 0", c, diff)
		}
		if maxAbs(want) == 0 {
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
	m := testModel(t, 1, false)
	shards := newTestShards(testDataset(t, 40, 1), 1, 5)
	t.Run("stop", func(t *testing.T) {
		rh := startHost(t, hostConfig(0, 2, 1), m, shards)
		rh.stop(t) // fails unless Wait returns nil
	})
	t.Run("cancel", func(t *testing.T) {
		rh := startHost(t, hostConfig(0, 2, 1), m, shards)
		rh.cancel()
		done := make(chan error, 1)
		go func() { done <- rh.h.Wait() }()
		select {
		case err := <-done:
			rh.waited = true
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Wait after cancel: got %v, want context.Canceled", err)
			}
		case <-time.After(hostTimeout):
			t.Fatal("host did not stop after its context was cancelled")
		}
	})
}

func TestHostSkipsBadMessages(t *testing.T) {
	m := testModel(t, 1, false)
	shards := newTestShards(testDataset(t, 60, 1), 1, 5)
	rh := startHost(t, hostConfig(0, 4, 2), m, shards)
	global := initParams(m, 1)
	short := global[:len(global)-1]

	rh.send(t, roundMsg(0, 0, []int32{0, 1}, short, 0)) // wrong length
	noParams := roundMsg(1, 0, []int32{0, 1}, global, 0)
	noParams.Tensors[0].Name = "weights" // no params tensor at all
	rh.send(t, noParams)
	rh.bus.Inject(testSubjects.Round, errInjected)                                            // undecodable
	rh.send(t, &transport.Message{Kind: transport.KindUpdate, Round: 2, Clients: []int32{0}}) // wrong kind
	rh.send(t, roundMsg(3, 0, []int32{2}, global, 0))                                         // still serving
	rh.stop(t)

	ups := rh.ups.all()
	if len(ups) != 1 || ups[0].Round != 3 || ups[0].Client != 2 {
		t.Fatalf("got %d updates, want exactly one, of client 2 in round 3", len(ups))
	}
	lines := rh.log.all()
	wantLog := []string{"round 0", "round 1", errInjected.Error(), "kind"}
	for _, w := range wantLog {
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, w) }) {
			t.Errorf("log %q: no line mentions %q", lines, w)
		}
	}
	skipped := 0
	for _, l := range lines {
		if strings.Contains(l, "skipped") {
			skipped++
		}
	}
	if skipped != 2 {
		t.Errorf("got %d 'skipped' log lines, want 2 (the two malformed rounds): %q", skipped, lines)
	}
}

func TestHostWorkerCountIndependence(t *testing.T) {
	m := testModel(t, 1, true)
	d := testDataset(t, 200, 1)
	shards := newTestShards(d, 2, 20)
	global := initParams(m, 9)
	// A basis for the first layer (e_0, e_1 as columns of a 16x2 matrix).
	basis := make([]float32, testIn*2)
	basis[0*2+0], basis[1*2+1] = 1, 1
	clients := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	reversed := slices.Clone(clients)
	slices.Reverse(reversed)
	run := func(workers int, clients []int32) map[int32]*transport.Message {
		cfg := hostConfig(0, 8, workers)
		cfg.Behaviour = &gpseBehaviour{model: m, cfg: GPSEConfig{Sketch: "uniform", Oversample: 1, TrainMode: true}, batch: cfg.Train.BatchSize}
		rh := startHost(t, cfg, m, shards)
		rh.send(t, roundMsg(3, 1, clients, global, protocol.FlagSketch|protocol.FlagFisher,
			transport.Tensor{Name: protocol.BasisTensor(0), Rows: testIn, Cols: 2, Data: basis}))
		rh.send(t, roundMsg(4, 1, clients, global, 0))
		rh.stop(t)
		ups := rh.ups.all()
		out := byClient(t, ups, 3)
		for c, u := range byClient(t, ups, 4) {
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
		compareUpdates(t, one, other.ups, other.name)
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
}

// gpseBehaviour is FOT's client side as a test-only Behaviour: GPSE after
// training on a sketch round, with a GPSE kept per worker in Work.State.
type gpseBehaviour struct {
	model *nn.Model
	cfg   GPSEConfig
	batch int
}

func (*gpseBehaviour) Round(*transport.Message) error { return nil }
func (*gpseBehaviour) Extras(*Work) (*Extras, error)  { return nil, nil }

func (b *gpseBehaviour) Finish(w *Work) error {
	if w.Msg.Flags&protocol.FlagSketch == 0 {
		return nil
	}
	g, ok := w.State.(*GPSE)
	if !ok {
		var err error
		if g, err = NewGPSE(b.model, b.cfg, b.batch); err != nil {
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

func (b *testBehaviour) Extras(w *Work) (*Extras, error) {
	if b.fail == "extras" {
		return nil, errBehaviour
	}
	w.Extras = Extras{Mu: testMu, Global: w.Global}
	return &w.Extras, nil
}

func (b *testBehaviour) Finish(w *Work) error {
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
	m := testModel(t, 1, false)
	shards := newTestShards(testDataset(t, 100, 1), 1, 15)
	cfg := hostConfig(0, 4, 2)
	b := &testBehaviour{}
	cfg.Behaviour = b
	rh := startHost(t, cfg, m, shards)
	global := initParams(m, 6)
	rh.send(t, roundMsg(0, 0, []int32{1, 3}, global, 0))
	rh.send(t, roundMsg(1, 0, []int32{7}, global, 0))                 // no client of this host
	rh.send(t, roundMsg(2, 0, []int32{1}, global[:len(global)-1], 0)) // malformed
	rh.stop(t)

	if got := b.seen(); !slices.Equal(got, []int32{0, 1}) {
		t.Errorf("Round saw rounds %v, want [0 1]", got)
	}
	ups := rh.ups.all()
	if len(ups) != 2 {
		t.Fatalf("got %d updates, want 2 (clients 1 and 3 of round 0)", len(ups))
	}
	got := byClient(t, ups, 0)
	for _, c := range []int{1, 3} {
		u := got[int32(c)]
		if u == nil {
			t.Fatalf("no update of client %d", c)
		}
		segs := shards.Shard(0, c)
		want, local, _, _ := directDelta(m, global, segs, cfg.Train, &Extras{Mu: testMu, Global: global}, c, 0)
		delta := tensorOf(t, u, protocol.TensorDelta)
		if diff := maxAbsDiff(delta, want); diff != 0 {
			t.Errorf("client %d: max |delta - delta with the behaviour's extras| = %v, want 0", c, diff)
		}
		plain, _, _, _ := directDelta(m, global, segs, cfg.Train, nil, c, 0)
		if diff := maxAbsDiff(delta, plain); diff < controlMinDiff {
			t.Errorf("client %d: delta is within %v of plain training; the test cannot tell the extras were used", c, diff)
		}
		if diff := maxAbsDiff(tensorOf(t, u, testTensorLocal), local); diff != 0 {
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
	m := testModel(t, 1, false)
	shards := newTestShards(testDataset(t, 40, 1), 1, 5)
	for _, hook := range []string{"round", "extras", "finish"} {
		cfg := hostConfig(0, 2, 1)
		cfg.Behaviour = &testBehaviour{fail: hook}
		rh := startHost(t, cfg, m, shards)
		rh.send(t, roundMsg(0, 0, []int32{0}, initParams(m, 1), 0))
		done := make(chan error, 1)
		go func() { done <- rh.h.Wait() }()
		select {
		case err := <-done:
			rh.waited = true
			if !errors.Is(err, errBehaviour) {
				t.Errorf("%s: Wait got %v, want the behaviour's error", hook, err)
			}
		case <-time.After(hostTimeout):
			t.Fatalf("%s: host kept running after its behaviour failed", hook)
		}
		if n := len(rh.ups.all()); n != 0 {
			t.Errorf("%s: got %d updates, want 0", hook, n)
		}
	}
}

// compareUpdates requires bit-identical tensors and scalars (but the wall
// time) in two runs' updates, keyed alike (round 3: client id; round 4:
// 100 + client id).
func compareUpdates(t *testing.T, want, got map[int32]*transport.Message, name string) {
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

	m := testModel(t, 1, true)
	shards := newTestShards(testDataset(t, 100, 1), 1, 10)
	cfg := hostConfig(0, 4, 2)
	cfg.Subjects = transport.SubjectsFor("client-nats-test")
	h, err := NewHost(cfg, m, shards, hostConn)
	if err != nil {
		t.Fatal(err)
	}
	ups := &recorder{}
	unsub, err := srvConn.Subscribe(cfg.Subjects.Update, ups.handle)
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
	global := initParams(m, 5)
	if _, err := srvConn.Publish(cfg.Subjects.Round, roundMsg(2, 0, []int32{1, 3}, global, 0)); err != nil {
		t.Fatal(err)
	}
	got := byClient(t, ups.waitFor(t, 2, hostTimeout), 2)
	for _, c := range []int{1, 3} {
		want, _, _, _ := directDelta(m, global, shards.Shard(0, c), cfg.Train, nil, c, 2)
		if u := got[int32(c)]; u == nil {
			t.Errorf("no update of client %d", c)
		} else if diff := maxAbsDiff(tensorOf(t, u, protocol.TensorDelta), want); diff != 0 {
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
	case <-time.After(hostTimeout):
		t.Fatal("host did not stop")
	}
}
