package methods_test

// Fakes and fixtures of the client-side host tests (client_host_test.go),
// adapted from client/fake_test.go. Every top-level name starts with cl so
// that they cannot clash with the other test files of the package.

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// clRecorder collects the messages published on one subject.
type clRecorder struct {
	mu   sync.Mutex
	msgs []*transport.Message
	errs []error
}

func (r *clRecorder) handle(m *transport.Message, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.errs = append(r.errs, err)
		return
	}
	r.msgs = append(r.msgs, m)
}

func (r *clRecorder) all() []*transport.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// waitFor waits until n messages arrived or the timeout passed.
func (r *clRecorder) waitFor(t *testing.T, n int, timeout time.Duration) []*transport.Message {
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

// Test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	clIn      = 16
	clHidden  = 8
	clClasses = 4
	clSeed    = 42
)

func clDataset(t testing.TB, train, noise float64) *data.Dataset {
	t.Helper()
	tr, _ := data.Synthetic(data.SyntheticConfig{
		Train: int(train), Test: 8, Shape: [3]int{1, 4, 4}, Classes: clClasses, Noise: noise,
	}, clSeed)
	return tr
}

func clModel(t testing.TB, heads int, dropout bool) *nn.Model {
	t.Helper()
	s := nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{clHidden}, Classes: clClasses, Heads: heads}
	if dropout {
		s.Dropout = []float64{0.5}
	}
	m, err := nn.Build(s)
	if err != nil {
		t.Fatalf("nn.Build: %v", err)
	}
	return m
}

func clInitParams(m *nn.Model, seed uint64) []float32 {
	p := make([]float32, m.NumParams())
	m.Init(p, rand.New(rand.NewPCG(seed, 1)))
	return p
}

// clPermutedView returns a view of d whose pixels are permuted by a fixed
// permutation drawn from seed (seed 0: identity).
func clPermutedView(d *data.Dataset, seed uint64) data.View {
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

func clRowRange(lo, hi int) []int32 {
	out := make([]int32, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, int32(i))
	}
	return out
}

// clShards gives client c of task t the rows [c*per, (c+1)*per) of task
// t's view, trained on head heads[t].
type clShards struct {
	views []data.View
	heads []int
	per   int
}

func (s *clShards) Shard(task, c int) []client.Segment {
	return []client.Segment{{View: s.views[task], Rows: clRowRange(c*s.per, (c+1)*s.per), Head: s.heads[task]}}
}

func clNewShards(d *data.Dataset, tasks, per int) *clShards {
	s := &clShards{per: per}
	for t := 0; t < tasks; t++ {
		s.views = append(s.views, clPermutedView(d, uint64(t)))
		s.heads = append(s.heads, 0)
	}
	return s
}

func clTrainConfig() client.Config {
	return client.Config{Seed: clSeed, Epochs: 2, BatchSize: 5, SGD: nn.SGD{LR: 0.05, WeightDecay: 1e-4}}
}

// clHostConfig is a host of clients [first, last) on workers goroutines,
// training plain FedAvg until a test sets a Behaviour.
func clHostConfig(first, last, workers int) client.HostConfig {
	return client.HostConfig{First: first, Last: last, Workers: workers, Train: clTrainConfig()}
}

// clBehaviour builds the client side of the registered method name with
// the written options laid over its defaults, and returns it with the
// resolved options.
func clBehaviour(t *testing.T, name string, written map[string]any, m *nn.Model, batch int) (client.Behaviour, any) {
	t.Helper()
	def, ok := methods.Lookup(name)
	if !ok {
		t.Fatalf("method %q is not registered", name)
	}
	opts, err := def.Resolve(nil, written)
	if err != nil {
		t.Fatalf("%s: Resolve(%v): %v", name, written, err)
	}
	if p := def.Check(opts); len(p) > 0 {
		t.Fatalf("%s: options %+v: %v", name, opts, p)
	}
	b, err := def.Client(opts, methods.Env{Model: m, Seed: clSeed, BatchSize: batch})
	if err != nil {
		t.Fatalf("%s: Client: %v", name, err)
	}
	if b == nil {
		t.Fatalf("%s: no client behaviour", name)
	}
	return b, opts
}

var clSubjects = transport.SubjectsFor("methods-client-test")

// clRunningHost is a started Host with its bus and the recorder of its
// updates.
type clRunningHost struct {
	h      *client.Host
	bus    *transporttest.Bus
	ups    *clRecorder
	cancel context.CancelFunc
	waited bool
}

func clStartHost(t *testing.T, cfg client.HostConfig, m *nn.Model, shards client.Shards) *clRunningHost {
	t.Helper()
	rh := &clRunningHost{bus: transporttest.NewBus(), ups: &clRecorder{}}
	cfg.Subjects = clSubjects
	cfg.Logf = t.Logf
	h, err := client.NewHost(cfg, m, shards, rh.bus)
	if err != nil {
		t.Fatalf("NewHost: %v", err)
	}
	rh.h = h
	if _, err := rh.bus.Subscribe(clSubjects.Update, rh.ups.handle); err != nil {
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
func (rh *clRunningHost) send(t *testing.T, m *transport.Message) {
	t.Helper()
	if _, err := rh.bus.Publish(clSubjects.Round, m); err != nil {
		t.Fatalf("publish: %v", err)
	}
}

// stop sends Stop and waits for the host: every round sent before has
// then been handled and its updates published.
func (rh *clRunningHost) stop(t *testing.T) {
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
	case <-time.After(clHostTimeout):
		t.Fatalf("host did not stop within %v of a Stop message", clHostTimeout)
	}
}

func clRoundMsg(round, task int, clients []int32, params []float32, flags uint32, extra ...transport.Tensor) *transport.Message {
	ts := []transport.Tensor{{Name: protocol.TensorParams, Rows: 1, Cols: len(params), Data: params}}
	return &transport.Message{
		Kind: transport.KindRound, Round: int32(round), Task: int32(task), Clients: clients,
		Flags: flags, Tensors: append(ts, extra...),
	}
}

func clTensorOf(t *testing.T, m *transport.Message, name string) []float32 {
	t.Helper()
	x := m.Tensor(name)
	if x == nil {
		t.Fatalf("client %d round %d: no %q tensor", m.Client, m.Round, name)
	}
	return x.Data
}

// clByClient indexes updates of one round by client; a second update of
// the same client is an error.
func clByClient(t *testing.T, ups []*transport.Message, round int) map[int32]*transport.Message {
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

// clDirectDelta trains client c as the host should and returns local -
// global, the local model, and Train's loss and steps.
func clDirectDelta(m *nn.Model, global []float32, segs []client.Segment, cfg client.Config, ex *client.Extras, c, round int) (delta, local []float32, loss float64, steps int) {
	tr := client.NewTrainer(m, cfg.BatchSize)
	local = slices.Clone(global)
	loss, steps = tr.Train(local, segs, cfg, ex, c, round)
	delta = make([]float32, len(local))
	for i := range local {
		delta[i] = local[i] - global[i]
	}
	return delta, local, loss, steps
}

func clMaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

func clMaxAbs(a []float32) float64 {
	var d float64
	for _, v := range a {
		d = max(d, math.Abs(float64(v)))
	}
	return d
}

// clCompareUpdates requires bit-identical tensors and scalars (but the
// wall time) in two runs' updates, keyed alike (round 3: client id; round
// 4: 100 + client id).
func clCompareUpdates(t *testing.T, want, got map[int32]*transport.Message, name string) {
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
