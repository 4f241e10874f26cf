package client

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// fakeBus is the in-memory transport of package transporttest.
type fakeBus = transporttest.Bus

func newFakeBus() *fakeBus { return transporttest.NewBus() }

// recorder collects the messages published on one subject.
type recorder struct {
	mu   sync.Mutex
	msgs []*transport.Message
	errs []error
}

func (r *recorder) handle(m *transport.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.msgs = append(r.msgs, m)
}

func (r *recorder) all() []*transport.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until n messages arrived or the timeout passed.
func (r *recorder) waitFor(t *testing.T, n int, timeout time.Duration) []*transport.Message {
	t.Helper()
	end := time.Now().Add(timeout)
	for {
		got := r.all()
		if len(got) >= n || time.Now().After(end) {
			if len(got) < n {
				t.Fatalf("got %d messages, want %d within %v", len(got), n, timeout)
			}
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// logSink collects Logf lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logSink) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.lines)
}

// Test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	testIn      = 16
	testHidden  = 8
	testClasses = 4
	testSeed    = 42
)

func testDataset(t testing.TB, train, noise float64) *data.Dataset {
	t.Helper()
	tr, _ := data.Synthetic(data.SyntheticConfig{
		Train: int(train), Test: 8, Shape: [3]int{1, 4, 4}, Classes: testClasses, Noise: noise,
	}, testSeed)
	return tr
}

func testModel(t testing.TB, heads int, dropout bool) *nn.Model {
	t.Helper()
	s := nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{testHidden}, Classes: testClasses, Heads: heads}
	if dropout {
		s.Dropout = []float64{0.5}
	}
	m, err := nn.Build(s)
	if err != nil {
		t.Fatalf("nn.Build: %v", err)
	}
	return m
}

func initParams(m *nn.Model, seed uint64) []float32 {
	p := make([]float32, m.NumParams())
	m.Init(p, rand.New(rand.NewPCG(seed, 1)))
	return p
}

// permutedView returns a view of d whose pixels are permuted by a fixed
// permutation drawn from seed (seed 0: identity).
func permutedView(d *data.Dataset, seed uint64) data.View {
	if seed == 0 {
		return data.View{Base: d}
	}
	r := rand.New(rand.NewPCG(seed, 2))
	perm := make([]int32, d.Dim())
	for i := range perm {
		perm[i] = int32(i)
	}
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return data.View{Base: d, Perm: perm}
}

func rowRange(lo, hi int) []int32 {
	out := make([]int32, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, int32(i))
	}
	return out
}

// testShards gives client c of task t the rows [c*per, (c+1)*per) of task
// t's view, trained on head heads[t].
type testShards struct {
	views []data.View
	heads []int
	per   int
}

func (s *testShards) Shard(task, c int) []Segment {
	return []Segment{{View: s.views[task], Rows: rowRange(c*s.per, (c+1)*s.per), Head: s.heads[task]}}
}

func newTestShards(d *data.Dataset, tasks, per int) *testShards {
	s := &testShards{per: per}
	for t := 0; t < tasks; t++ {
		s.views = append(s.views, permutedView(d, uint64(t)))
		s.heads = append(s.heads, 0)
	}
	return s
}

func testTrainConfig() Config {
	return Config{Seed: testSeed, Epochs: 2, BatchSize: 5, SGD: nn.SGD{LR: 0.05, WeightDecay: 1e-4}}
}

var testSubjects = transport.SubjectsFor("client-test")

// runningHost is a started Host with its bus and the recorder of its
// updates.
type runningHost struct {
	h      *Host
	bus    *fakeBus
	ups    *recorder
	log    *logSink
	cancel context.CancelFunc
	waited bool
}

func startHost(t *testing.T, cfg HostConfig, m *nn.Model, shards Shards) *runningHost {
	t.Helper()
	rh := &runningHost{bus: newFakeBus(), ups: &recorder{}, log: &logSink{}}
	cfg.Subjects = testSubjects
	cfg.Logf = rh.log.logf
	h, err := NewHost(cfg, m, shards, rh.bus)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	rh.h = h
	if _, err := rh.bus.Subscribe(testSubjects.Update, rh.ups.handle); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rh.cancel = cancel
	if err := h.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if !rh.waited {
			_ = h.Wait()
		}
	})
	return rh
}

// send publishes a message on the round subject.
func (rh *runningHost) send(t *testing.T, m *transport.Message) {
	t.Helper()
	if _, err := rh.bus.Publish(testSubjects.Round, m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// stop sends Stop and waits for the host: every round sent before has
// then been handled and its updates published.
func (rh *runningHost) stop(t *testing.T) {
	t.Helper()
	rh.send(t, &transport.Message{Kind: transport.KindStop})
	done := make(chan error, 1)
	go func() { done <- rh.h.Wait() }()
	select {
	case err := <-done:
		rh.waited = true
		if err != nil {
			t.Fatalf("Wait after Stop: got %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("host did not stop within 30s of a Stop message")
	}
}

func roundMsg(round, task int, clients []int32, params []float32, flags uint32, extra ...transport.Tensor) *transport.Message {
	ts := []transport.Tensor{{Name: protocol.TensorParams, Rows: 1, Cols: len(params), Data: params}}
	return &transport.Message{
		Kind: transport.KindRound, Round: int32(round), Task: int32(task), Clients: clients,
		Flags: flags, Tensors: append(ts, extra...),
	}
}

func tensorOf(t *testing.T, m *transport.Message, name string) []float32 {
	t.Helper()
	x := m.Tensor(name)
	if x == nil {
		t.Fatalf("client %d round %d: no %q tensor", m.Client, m.Round, name)
	}
	return x.Data
}

// byClient indexes updates of one round by client; a second update of the
// same client is an error.
func byClient(t *testing.T, ups []*transport.Message, round int) map[int32]*transport.Message {
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

// directDelta trains client c as the host should and returns local -
// global, the local model, and Train's loss and steps.
func directDelta(m *nn.Model, global []float32, segs []Segment, cfg Config, ex *Extras, c, round int) (delta, local []float32, loss float64, steps int) {
	tr := NewTrainer(m, cfg.BatchSize)
	local = slices.Clone(global)
	loss, steps = tr.Train(local, segs, cfg, ex, c, round)
	delta = make([]float32, len(local))
	for i := range local {
		delta[i] = local[i] - global[i]
	}
	return delta, local, loss, steps
}

func maxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func maxAbs(a []float32) float64 {
	var d float64
	for _, v := range a {
		d = max(d, math.Abs(float64(v)))
	}
	return d
}

var errInjected = errors.New("fake: undecodable message")
