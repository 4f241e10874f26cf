package server

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// fakeBus is the in-memory transport of package transporttest.
type fakeBus = transporttest.Bus

func newFakeBus() *fakeBus { return transporttest.NewBus() }

var errInjected = errors.New("fake: undecodable message")

// Test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	testIn      = 16
	testClasses = 4
	testSeed    = 42
)

var testSubjects = transport.SubjectsFor("server-test")

func testModel(t testing.TB, heads int) *nn.Model {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Classes: testClasses, Heads: heads})
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

func testData(train, test int) (*data.Dataset, *data.Dataset) {
	return data.Synthetic(data.SyntheticConfig{Train: train, Test: test, Shape: [3]int{1, 4, 4}, Classes: testClasses, Noise: 1}, testSeed)
}

// permutedView returns a view of d with a fixed pixel permutation drawn
// from seed (seed 0: identity).
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

// testEvaluator evaluates on tasks test views, all on head 0.
func testEvaluator(m *nn.Model, tasks int) *Evaluator {
	_, test := testData(8, 60)
	views := make([]data.View, tasks)
	heads := make([]int, tasks)
	for t := range views {
		views[t] = permutedView(test, uint64(t))
	}
	return NewEvaluator(m, views, heads, 16, 2)
}

// fed plays the clients: it answers every round broadcast by publishing
// the updates respond returns, in order, and remembers every broadcast.
type fed struct {
	bus     *fakeBus
	mu      sync.Mutex
	rounds  []*transport.Message
	respond func(m *transport.Message) []*transport.Message
}

func newFed(bus *fakeBus, respond func(m *transport.Message) []*transport.Message) *fed {
	f := &fed{bus: bus, respond: respond}
	if _, err := bus.Subscribe(testSubjects.Round, f.handle); err != nil {
		panic(err)
	}
	return f
}

func (f *fed) handle(m *transport.Message, err error) {
	if err != nil || m.Kind != transport.KindRound {
		return
	}
	f.mu.Lock()
	f.rounds = append(f.rounds, m)
	f.mu.Unlock()
	for _, u := range f.respond(m) {
		if _, err := f.bus.Publish(testSubjects.Update, u); err != nil {
			panic(err)
		}
	}
}

func (f *fed) broadcasts() []*transport.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rounds)
}

// honestN is the sample count fake client c reports.
func honestN(c int32) int64 { return 5 + 3*int64(c) }

// honestDelta is fake client c's update in round for the global model g:
// a step of 0.2 towards the client's own target plus a little noise.
func honestDelta(c int32, round int32, g []float32) []float32 {
	tr := rng.New(7, "fake-target", int(c))
	nr := rng.New(7, "fake-noise", int(c), int(round))
	d := make([]float32, len(g))
	for i := range d {
		target := float32(tr.NormFloat64())
		d[i] = 0.2*(target-g[i]) + float32(0.01*nr.NormFloat64())
	}
	return d
}

func honestLoss(c, round int32) float64 { return 1 + 0.1*float64(c) + 0.01*float64(round) }

// honestUpdate is the update of client c for round broadcast m.
func honestUpdate(m *transport.Message, c int32) *transport.Message {
	g := paramsOf(m)
	d := honestDelta(c, m.Round, g)
	return &transport.Message{
		Kind: transport.KindUpdate, Round: m.Round, Task: m.Task, Client: c, N: honestN(c),
		Scalars: []transport.Scalar{{Name: protocol.ScalarLoss, Value: honestLoss(c, m.Round)}},
		Tensors: []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: len(d), Data: d}},
	}
}

func paramsOf(m *transport.Message) []float32 {
	if t := m.Tensor(protocol.TensorParams); t != nil {
		return t.Data
	}
	return nil
}

// honestRespond answers every selected client honestly.
func honestRespond(m *transport.Message) []*transport.Message {
	var out []*transport.Message
	for _, c := range m.Clients {
		out = append(out, honestUpdate(m, c))
	}
	return out
}

// meanApply returns params + lr * sum_k c_k delta_k with c_k = 1/K or
// n_k / sum n, computed in float64 per element, updates in the given
// (client-id) order.
func meanApply(params []float32, deltas [][]float32, ns []int64, samples bool, lr float32) []float32 {
	var total float64
	for _, n := range ns {
		total += float64(n)
	}
	out := slices.Clone(params)
	for i := range out {
		var a float64
		for k, d := range deltas {
			c := 1 / float64(len(deltas))
			if samples {
				c = float64(ns[k]) / total
			}
			a += c * float64(d[i])
		}
		out[i] += lr * float32(a)
	}
	return out
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

// logSink collects Logf lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, format)
}

func (l *logSink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

// testContext ends after runTimeout, so that a server waiting for updates
// that never come fails the test instead of hanging it.
func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	t.Cleanup(cancel)
	return ctx
}
