package client

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fotsim/fotsim/transport"
)

// Tolerances.
const (
	curvDeltaTol   = 1e-6 // max |host delta - direct delta| under FedCurv (float32 own-term arithmetic)
	controlMinDiff = 1e-4 // a wrong penalty or teacher must move the delta by more than this
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
		if diff := maxAbsDiff(tensorOf(t, u, TensorDelta), want); diff != 0 {
			t.Errorf("client %d: max |delta - (trained - global)| = %v, want 0", c, diff)
		}
		if maxAbs(want) == 0 {
			t.Errorf("client %d: training did not move the model", c)
		}
		if l, _ := scalarOf(u, ScalarLoss); l != wantLoss {
			t.Errorf("client %d: loss got %v, want %v", c, l, wantLoss)
		}
		if s, _ := scalarOf(u, ScalarSteps); s != float64(wantSteps) {
			t.Errorf("client %d: steps got %v, want %d", c, s, wantSteps)
		}
		if findTensor(u.Tensors, TensorFisher) != nil || u.Flags&FlagFisher != 0 {
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

func TestHostFisherFlag(t *testing.T) {
	m := testModel(t, 1, true)
	d := testDataset(t, 100, 1)
	shards := newTestShards(d, 1, 15)
	for _, limit := range []int{0, 6} {
		cfg := hostConfig(0, 4, 2)
		cfg.Method = Method{Name: "ewc", Lambda: 1, FisherSamples: limit}
		rh := startHost(t, cfg, m, shards)
		global := initParams(m, 2)
		rh.send(t, roundMsg(4, 0, []int32{1, 3}, global, FlagFisher))
		rh.stop(t)
		got := byClient(t, rh.ups.all(), 4)
		for _, c := range []int{1, 3} {
			u := got[int32(c)]
			if u == nil {
				t.Fatalf("limit %d: no update of client %d", limit, c)
			}
			segs := shards.Shard(0, c)
			_, local, _, _ := directDelta(m, global, segs, cfg.Train, nil, c, 4)
			want := make([]float32, len(local))
			NewTrainer(m, cfg.Train.BatchSize).Fisher(want, local, segs[0], limit, cfg.Train.Seed, c, 4)
			if u.Flags&FlagFisher == 0 {
				t.Errorf("limit %d client %d: update flags %b lack FlagFisher", limit, c, u.Flags)
			}
			f := tensorOf(t, u, TensorFisher)
			if diff := maxAbsDiff(f, want); diff != 0 {
				t.Errorf("limit %d client %d: max |fisher - Trainer.Fisher(local)| = %v, want 0", limit, c, diff)
			}
			if maxAbs(f) == 0 {
				t.Errorf("limit %d client %d: Fisher is all zero", limit, c)
			}
		}
	}
}

func TestHostFedCurvExcludesOwnTerm(t *testing.T) {
	m := testModel(t, 1, false)
	d := testDataset(t, 160, 1)
	shards := newTestShards(d, 2, 15)
	cfg := hostConfig(0, 4, 2)
	cfg.Method = Method{Name: "fedcurv", Lambda: 50}
	rh := startHost(t, cfg, m, shards)

	// Round 0 (last of task 0): clients 0 and 1 send their Fisher; K = 2.
	g0 := initParams(m, 3)
	rh.send(t, roundMsg(0, 0, []int32{0, 1}, g0, FlagFisher))
	// Wait for both so that the server-side sums can be built from them.
	first := byClient(t, rh.ups.waitFor(t, 2, hostTimeout), 0)
	np := m.NumParams()
	fisher, local := map[int][]float32{}, map[int][]float32{}
	for _, c := range []int{0, 1} {
		_, local[c], _, _ = directDelta(m, g0, shards.Shard(0, c), cfg.Train, nil, c, 0)
		fisher[c] = tensorOf(t, first[int32(c)], TensorFisher)
	}
	// The server's sums: U = (F0 + F1)/2, V = (F0 w0 + F1 w1)/2.
	u, v := make([]float32, np), make([]float32, np)
	for i := range u {
		u[i] = (fisher[0][i] + fisher[1][i]) / 2
		v[i] = (fisher[0][i]*local[0][i] + fisher[1][i]*local[1][i]) / 2
	}
	// Round 1 (task 1): client 0 took part in the Fisher round, client 2
	// did not.
	g1 := initParams(m, 4)
	quad := []transport.Tensor{
		{Name: TensorQuadU, Rows: 1, Cols: np, Data: u},
		{Name: TensorQuadV, Rows: 1, Cols: np, Data: v},
		// The server accepted both Fisher terms (K = 2).
		{Name: TensorCurvAccepted, Rows: 1, Cols: 2, Data: []float32{0, 1}},
	}
	rh.send(t, roundMsg(1, 1, []int32{0, 2}, g1, 0, quad...))
	rh.stop(t)
	got := byClient(t, rh.ups.all(), 1)

	// Client 0: U - F0/2, V - F0 w0/2.
	u0, v0 := make([]float32, np), make([]float32, np)
	for i := range u0 {
		u0[i] = u[i] - fisher[0][i]*0.5
		v0[i] = v[i] - fisher[0][i]*local[0][i]*0.5
	}
	tests := []struct {
		c       int
		u, v    []float32
		control [2][]float32 // a penalty the client must NOT have used
	}{
		{0, u0, v0, [2][]float32{u, v}},
		{2, u, v, [2][]float32{nil, nil}},
	}
	for _, tc := range tests {
		up := got[int32(tc.c)]
		if up == nil {
			t.Fatalf("no update of client %d in round 1", tc.c)
		}
		segs := shards.Shard(1, tc.c)
		want, _, _, _ := directDelta(m, g1, segs, cfg.Train, &Extras{Lambda: cfg.Method.Lambda, U: tc.u, V: tc.v}, tc.c, 1)
		delta := tensorOf(t, up, TensorDelta)
		if diff := maxAbsDiff(delta, want); diff > curvDeltaTol {
			t.Errorf("client %d: max |delta - delta with expected U, V| = %v, want <= %v", tc.c, diff, curvDeltaTol)
		}
		ctrl, _, _, _ := directDelta(m, g1, segs, cfg.Train, &Extras{Lambda: cfg.Method.Lambda, U: tc.control[0], V: tc.control[1]}, tc.c, 1)
		if diff := maxAbsDiff(delta, ctrl); diff < controlMinDiff {
			t.Errorf("client %d: delta is within %v of the run with the wrong penalty; the test cannot tell them apart", tc.c, diff)
		}
	}
}

func TestHostPenaltyTensorLengthMismatchStopsHost(t *testing.T) {
	m := testModel(t, 1, false)
	shards := newTestShards(testDataset(t, 40, 1), 2, 5)
	cfg := hostConfig(0, 2, 1)
	cfg.Method = Method{Name: "ewc", Lambda: 1}
	rh := startHost(t, cfg, m, shards)
	g := initParams(m, 1)
	short := []transport.Tensor{{Name: TensorQuadU, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}, {Name: TensorQuadV, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}}
	rh.send(t, roundMsg(0, 1, []int32{0}, g, 0, short...))
	done := make(chan error, 1)
	go func() { done <- rh.h.Wait() }()
	select {
	case err := <-done:
		rh.waited = true
		if err == nil || !strings.Contains(err.Error(), "penalty") {
			t.Errorf("Wait: got %v, want an error about the penalty tensors", err)
		}
	case <-time.After(hostTimeout):
		t.Fatal("host kept running after a round with mis-sized penalty tensors")
	}
	if n := len(rh.ups.all()); n != 0 {
		t.Errorf("got %d updates, want 0", n)
	}
}

func TestHostFLwFTeacherIsFirstGlobalOfTask(t *testing.T) {
	m := testModel(t, 1, false)
	d := testDataset(t, 100, 1)
	shards := newTestShards(d, 3, 15)
	cfg := hostConfig(0, 3, 1)
	cfg.Method = Method{Name: "flwf", Alpha: 2, Temp: 2}
	rh := startHost(t, cfg, m, shards)
	globals := make([][]float32, 4)
	for i := range globals {
		globals[i] = initParams(m, uint64(40+i))
	}
	// Rounds 0 (task 0), 1 and 2 (task 1), 3 (task 2); client 1 each time.
	tasks := []int{0, 1, 1, 2}
	for r, task := range tasks {
		rh.send(t, roundMsg(r, task, []int32{1}, globals[r], 0))
	}
	rh.stop(t)
	ups := rh.ups.all()
	tests := []struct {
		round   int
		teacher []float32 // nil = no distillation
		wrong   []float32 // a teacher that must not have been used
	}{
		{0, nil, globals[0]},
		{1, globals[1], nil},
		{2, globals[1], globals[2]},
		{3, globals[3], globals[1]},
	}
	for _, tc := range tests {
		u := byClient(t, ups, tc.round)[1]
		if u == nil {
			t.Fatalf("no update of client 1 in round %d", tc.round)
		}
		segs := shards.Shard(tasks[tc.round], 1)
		exFor := func(teacher []float32) *Extras {
			if teacher == nil {
				return nil
			}
			return &Extras{Teacher: teacher, Alpha: cfg.Method.Alpha, Temp: cfg.Method.Temp}
		}
		want, _, _, _ := directDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.teacher), 1, tc.round)
		delta := tensorOf(t, u, TensorDelta)
		if diff := maxAbsDiff(delta, want); diff != 0 {
			t.Errorf("round %d: max |delta - delta with the expected teacher| = %v, want 0", tc.round, diff)
		}
		wrong, _, _, _ := directDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.wrong), 1, tc.round)
		if diff := maxAbsDiff(delta, wrong); diff < controlMinDiff {
			t.Errorf("round %d: delta is within %v of the run with the wrong teacher", tc.round, diff)
		}
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
		cfg.Method = Method{Name: "fot"}
		cfg.GPSE = GPSEConfig{Sketch: "uniform", Oversample: 1, TrainMode: true}
		rh := startHost(t, cfg, m, shards)
		rh.send(t, roundMsg(3, 1, clients, global, FlagSketch|FlagFisher,
			transport.Tensor{Name: BasisTensor(0), Rows: testIn, Cols: 2, Data: basis}))
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
	for i, p := range Projected(m) {
		sk := findTensor(u.Tensors, SketchTensor(i))
		if sk == nil || sk.Rows != p.Cols || sk.Cols != p.Cols {
			t.Fatalf("layer %d: sketch %v, want %dx%d", i, sk, p.Cols, p.Cols)
		}
		r, ok := scalarOf(u, RatioScalar(i))
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
			if s.Name == ScalarTrainSeconds {
				continue // wall time
			}
			if v, ok := scalarOf(b, s.Name); !ok || v != s.Value {
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
		} else if diff := maxAbsDiff(tensorOf(t, u, TensorDelta), want); diff != 0 {
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
