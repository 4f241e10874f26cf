package methods_test

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// Fakes for the tests of the methods' server rules (server_*_test.go),
// adapted from package server's own fakes. Every identifier starts with
// srv so that the client-side test fakes of this package cannot clash.

// Tolerances and limits.
const (
	srvParamTol   = 1e-6 // max |server params - replayed params|
	srvRunTimeout = 20 * time.Second
)

// Test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	srvClasses = 4
	srvSeed    = 42
)

var srvSubjects = transport.SubjectsFor("methods-server-test")

// srvBus is the in-memory transport of package transporttest.
type srvBus = transporttest.Bus

func newSrvBus() *srvBus { return transporttest.NewBus() }

func srvModel(t testing.TB, heads int) *nn.Model {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Classes: srvClasses, Heads: heads})
	if err != nil {
		t.Fatalf("nn.Build: %v", err)
	}
	return m
}

func srvInitParams(m *nn.Model, seed uint64) []float32 {
	p := make([]float32, m.NumParams())
	m.Init(p, rand.New(rand.NewPCG(seed, 1)))
	return p
}

func srvData(train, test int) (*data.Dataset, *data.Dataset) {
	return data.Synthetic(data.SyntheticConfig{Train: train, Test: test, Shape: [3]int{1, 4, 4}, Classes: srvClasses, Noise: 1}, srvSeed)
}

// srvPermutedView returns a view of d with a fixed pixel permutation drawn
// from seed (seed 0: identity).
func srvPermutedView(d *data.Dataset, seed uint64) data.View {
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

// srvEvaluator evaluates on tasks test views, all on head 0.
func srvEvaluator(m *nn.Model, tasks int) *server.Evaluator {
	_, test := srvData(8, 60)
	views := make([]data.View, tasks)
	heads := make([]int, tasks)
	for t := range views {
		views[t] = srvPermutedView(test, uint64(t))
	}
	return server.NewEvaluator(m, views, heads, 16, 2)
}

// srvBaseConfig is a small FedAvg run: T tasks of R rounds, 6 clients, 3
// per round.
func srvBaseConfig(tasks, rounds int) server.Config {
	return server.Config{
		Subjects: srvSubjects, Seed: srvSeed, Tasks: tasks, RoundsPerTask: rounds,
		Clients: 6, ClientsPerRound: 3, Weighting: aggregator.Uniform, ServerLR: 1,
	}
}

// srvRule builds the server rule of the registered method name with the
// options written (over the method's defaults; the FOT settings of the
// environment are methods.DefaultFOT()), as the simulator does. It also
// returns the method, whose Info().LoRA goes into server.Config.LoRA.
func srvRule(t *testing.T, name string, written map[string]any, e methods.Env) (methods.Method, server.Rule) {
	t.Helper()
	m, ok := methods.Lookup(name)
	if !ok {
		t.Fatalf("method %q is not registered", name)
	}
	opts, err := m.Resolve(nil, written)
	if err != nil {
		t.Fatalf("%s: Resolve(%v): %v", name, written, err)
	}
	if p := m.Check(opts); len(p) > 0 {
		t.Fatalf("%s: Check(%v): %v", name, written, p)
	}
	if e.FOT == (methods.FOTOptions{}) {
		e.FOT = methods.DefaultFOT()
	}
	if e.ServerLR == 0 {
		e.ServerLR = 1
	}
	r, err := m.Server(opts, e)
	if err != nil {
		t.Fatalf("%s: Server: %v", name, err)
	}
	if r == nil {
		t.Fatalf("%s: Server returned no rule", name)
	}
	return m, r
}

// srvFed plays the clients: it answers every round broadcast by publishing
// the updates respond returns, in order, and remembers every broadcast.
type srvFed struct {
	bus     *srvBus
	mu      sync.Mutex
	rounds  []*transport.Message
	respond func(m *transport.Message) []*transport.Message
}

func newSrvFed(bus *srvBus, respond func(m *transport.Message) []*transport.Message) *srvFed {
	f := &srvFed{bus: bus, respond: respond}
	if _, err := bus.Subscribe(srvSubjects.Round, f.handle); err != nil {
		panic(err)
	}
	return f
}

func (f *srvFed) handle(m *transport.Message, err error) {
	if err != nil || m.Kind != transport.KindRound {
		return
	}
	f.mu.Lock()
	f.rounds = append(f.rounds, m)
	f.mu.Unlock()
	for _, u := range f.respond(m) {
		if _, err := f.bus.Publish(srvSubjects.Update, u); err != nil {
			panic(err)
		}
	}
}

func (f *srvFed) broadcasts() []*transport.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rounds)
}

// srvHonestN is the sample count fake client c reports.
func srvHonestN(c int32) int64 { return 5 + 3*int64(c) }

// srvHonestDelta is fake client c's update in round for the global model
// g: a step of 0.2 towards the client's own target plus a little noise.
func srvHonestDelta(c int32, round int32, g []float32) []float32 {
	tr := rng.New(7, "fake-target", int(c))
	nr := rng.New(7, "fake-noise", int(c), int(round))
	d := make([]float32, len(g))
	for i := range d {
		target := float32(tr.NormFloat64())
		d[i] = 0.2*(target-g[i]) + float32(0.01*nr.NormFloat64())
	}
	return d
}

func srvHonestLoss(c, round int32) float64 { return 1 + 0.1*float64(c) + 0.01*float64(round) }

// srvHonestUpdate is the update of client c for round broadcast m.
func srvHonestUpdate(m *transport.Message, c int32) *transport.Message {
	g := srvParamsOf(m)
	d := srvHonestDelta(c, m.Round, g)
	return &transport.Message{
		Kind: transport.KindUpdate, Round: m.Round, Task: m.Task, Client: c, N: srvHonestN(c),
		Scalars: []transport.Scalar{{Name: protocol.ScalarLoss, Value: srvHonestLoss(c, m.Round)}},
		Tensors: []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: len(d), Data: d}},
	}
}

func srvParamsOf(m *transport.Message) []float32 {
	if t := m.Tensor(protocol.TensorParams); t != nil {
		return t.Data
	}
	return nil
}

// srvHonestRespond answers every selected client honestly.
func srvHonestRespond(m *transport.Message) []*transport.Message {
	var out []*transport.Message
	for _, c := range m.Clients {
		out = append(out, srvHonestUpdate(m, c))
	}
	return out
}

// srvMeanApply returns params + lr * sum_k c_k delta_k with c_k = 1/K or
// n_k / sum n, computed in float64 per element, updates in the given
// (client-id) order.
func srvMeanApply(params []float32, deltas [][]float32, ns []int64, samples bool, lr float32) []float32 {
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

func srvMaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// srvTestContext ends after srvRunTimeout, so that a server waiting for
// updates that never come fails the test instead of hanging it.
func srvTestContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), srvRunTimeout)
	t.Cleanup(cancel)
	return ctx
}
