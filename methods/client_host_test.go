package methods_test

// The client side of the methods, run in a client.Host: each behaviour is
// built through the registry (Lookup, Resolve, Client) and checked against
// the client's Trainer driven directly.

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Tolerances.
const (
	clCurvDeltaTol   = 1e-6 // max |host delta - direct delta| under FedCurv (float32 own-term arithmetic)
	clControlMinDiff = 1e-4 // a wrong penalty, teacher or proximal term must move the delta by more than this
	clHostTimeout    = 30 * time.Second
)

func TestHostFisherFlag(t *testing.T) {
	m := clModel(t, 1, true)
	d := clDataset(t, 100, 1)
	shards := clNewShards(d, 1, 15)
	// FedCurv's clients compute the same Fisher as EWC's.
	for _, name := range []string{"ewc", "fedcurv"} {
		for _, limit := range []int{0, 6} {
			cfg := clHostConfig(0, 4, 2)
			cfg.Behaviour, _ = clBehaviour(t, name, map[string]any{"lambda": 1.0, "fisher_samples": limit}, m, cfg.Train.BatchSize)
			rh := clStartHost(t, cfg, m, shards)
			global := clInitParams(m, 2)
			rh.send(t, clRoundMsg(4, 0, []int32{1, 3}, global, protocol.FlagFisher))
			rh.stop(t)
			got := clByClient(t, rh.ups.all(), 4)
			for _, c := range []int{1, 3} {
				u := got[int32(c)]
				if u == nil {
					t.Fatalf("%s limit %d: no update of client %d", name, limit, c)
				}
				segs := shards.Shard(0, c)
				_, local, _, _ := clDirectDelta(m, global, segs, cfg.Train, nil, c, 4)
				want := make([]float32, len(local))
				client.NewTrainer(m, cfg.Train.BatchSize).Fisher(want, local, segs[0], limit, cfg.Train.Seed, c, 4)
				if u.Flags&protocol.FlagFisher == 0 {
					t.Errorf("%s limit %d client %d: update flags %b lack FlagFisher", name, limit, c, u.Flags)
				}
				f := clTensorOf(t, u, protocol.TensorFisher)
				if diff := clMaxAbsDiff(f, want); diff != 0 {
					t.Errorf("%s limit %d client %d: max |fisher - Trainer.Fisher(local)| = %v, want 0", name, limit, c, diff)
				}
				if clMaxAbs(f) == 0 {
					t.Errorf("%s limit %d client %d: Fisher is all zero", name, limit, c)
				}
			}
		}
	}
}

// Without FlagFisher a penalty method's client sends no Fisher.
func TestHostPenaltyNoFisherWithoutFlag(t *testing.T) {
	m := clModel(t, 1, false)
	shards := clNewShards(clDataset(t, 60, 1), 1, 15)
	for _, name := range []string{"ewc", "fedcurv"} {
		cfg := clHostConfig(0, 4, 2)
		cfg.Behaviour, _ = clBehaviour(t, name, nil, m, cfg.Train.BatchSize)
		rh := clStartHost(t, cfg, m, shards)
		rh.send(t, clRoundMsg(0, 0, []int32{0, 2}, clInitParams(m, 2), 0))
		rh.stop(t)
		ups := rh.ups.all()
		if len(ups) != 2 {
			t.Fatalf("%s: got %d updates, want 2", name, len(ups))
		}
		for _, u := range ups {
			if u.Tensor(protocol.TensorFisher) != nil || u.Flags&protocol.FlagFisher != 0 {
				t.Errorf("%s client %d: Fisher sent without FlagFisher", name, u.Client)
			}
		}
	}
}

func TestHostFedCurvExcludesOwnTerm(t *testing.T) {
	m := clModel(t, 1, false)
	d := clDataset(t, 160, 1)
	shards := clNewShards(d, 2, 15)
	cfg := clHostConfig(0, 4, 2)
	b, opts := clBehaviour(t, "fedcurv", map[string]any{"lambda": 50, "fisher_samples": 0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	lambda := float32(opts.(methods.PenaltyOptions).Lambda)
	rh := clStartHost(t, cfg, m, shards)

	// Round 0 (last of task 0): clients 0 and 1 send their Fisher; K = 2.
	g0 := clInitParams(m, 3)
	rh.send(t, clRoundMsg(0, 0, []int32{0, 1}, g0, protocol.FlagFisher))
	// Wait for both so that the server-side sums can be built from them.
	first := clByClient(t, rh.ups.waitFor(t, 2, clHostTimeout), 0)
	np := m.NumParams()
	fisher, local := map[int][]float32{}, map[int][]float32{}
	for _, c := range []int{0, 1} {
		_, local[c], _, _ = clDirectDelta(m, g0, shards.Shard(0, c), cfg.Train, nil, c, 0)
		fisher[c] = clTensorOf(t, first[int32(c)], protocol.TensorFisher)
	}
	// The server's sums: U = (F0 + F1)/2, V = (F0 w0 + F1 w1)/2.
	u, v := make([]float32, np), make([]float32, np)
	for i := range u {
		u[i] = (fisher[0][i] + fisher[1][i]) / 2
		v[i] = (fisher[0][i]*local[0][i] + fisher[1][i]*local[1][i]) / 2
	}
	// Round 1 (task 1): client 0 took part in the Fisher round, client 2
	// did not.
	g1 := clInitParams(m, 4)
	quad := []transport.Tensor{
		{Name: protocol.TensorQuadU, Rows: 1, Cols: np, Data: u},
		{Name: protocol.TensorQuadV, Rows: 1, Cols: np, Data: v},
		// The server accepted both Fisher terms (K = 2).
		{Name: protocol.TensorCurvAccepted, Rows: 1, Cols: 2, Data: []float32{0, 1}},
	}
	rh.send(t, clRoundMsg(1, 1, []int32{0, 2}, g1, 0, quad...))
	rh.stop(t)
	got := clByClient(t, rh.ups.all(), 1)

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
		want, _, _, _ := clDirectDelta(m, g1, segs, cfg.Train, &client.Extras{Lambda: lambda, U: tc.u, V: tc.v}, tc.c, 1)
		delta := clTensorOf(t, up, protocol.TensorDelta)
		if diff := clMaxAbsDiff(delta, want); diff > clCurvDeltaTol {
			t.Errorf("client %d: max |delta - delta with expected U, V| = %v, want <= %v", tc.c, diff, clCurvDeltaTol)
		}
		ctrl, _, _, _ := clDirectDelta(m, g1, segs, cfg.Train, &client.Extras{Lambda: lambda, U: tc.control[0], V: tc.control[1]}, tc.c, 1)
		if diff := clMaxAbsDiff(delta, ctrl); diff < clControlMinDiff {
			t.Errorf("client %d: delta is within %v of the run with the wrong penalty; the test cannot tell them apart", tc.c, diff)
		}
	}
}

func TestHostPenaltyTensorLengthMismatchStopsHost(t *testing.T) {
	m := clModel(t, 1, false)
	shards := clNewShards(clDataset(t, 40, 1), 2, 5)
	cfg := clHostConfig(0, 2, 1)
	cfg.Behaviour, _ = clBehaviour(t, "ewc", map[string]any{"lambda": 1.0}, m, cfg.Train.BatchSize)
	rh := clStartHost(t, cfg, m, shards)
	g := clInitParams(m, 1)
	short := []transport.Tensor{{Name: protocol.TensorQuadU, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}, {Name: protocol.TensorQuadV, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}}
	rh.send(t, clRoundMsg(0, 1, []int32{0}, g, 0, short...))
	done := make(chan error, 1)
	go func() { done <- rh.h.Wait() }()
	select {
	case err := <-done:
		rh.waited = true
		if err == nil || !strings.Contains(err.Error(), "penalty") {
			t.Errorf("Wait: got %v, want an error about the penalty tensors", err)
		}
	case <-time.After(clHostTimeout):
		t.Fatal("host kept running after a round with mis-sized penalty tensors")
	}
	if n := len(rh.ups.all()); n != 0 {
		t.Errorf("got %d updates, want 0", n)
	}
}

func TestHostFLwFTeacherIsFirstGlobalOfTask(t *testing.T) {
	m := clModel(t, 1, false)
	d := clDataset(t, 100, 1)
	shards := clNewShards(d, 3, 15)
	cfg := clHostConfig(0, 3, 1)
	b, opts := clBehaviour(t, "flwf", map[string]any{"alpha": 2.0, "temperature": 2.0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	o := opts.(methods.FLwFOptions)
	rh := clStartHost(t, cfg, m, shards)
	globals := make([][]float32, 4)
	for i := range globals {
		globals[i] = clInitParams(m, uint64(40+i))
	}
	// Rounds 0 (task 0), 1 and 2 (task 1), 3 (task 2); client 1 each time.
	tasks := []int{0, 1, 1, 2}
	for r, task := range tasks {
		rh.send(t, clRoundMsg(r, task, []int32{1}, globals[r], 0))
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
		u := clByClient(t, ups, tc.round)[1]
		if u == nil {
			t.Fatalf("no update of client 1 in round %d", tc.round)
		}
		segs := shards.Shard(tasks[tc.round], 1)
		exFor := func(teacher []float32) *client.Extras {
			if teacher == nil {
				return nil
			}
			return &client.Extras{Teacher: teacher, Alpha: float32(o.Alpha), Temp: float32(o.Temperature)}
		}
		want, _, _, _ := clDirectDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.teacher), 1, tc.round)
		delta := clTensorOf(t, u, protocol.TensorDelta)
		if diff := clMaxAbsDiff(delta, want); diff != 0 {
			t.Errorf("round %d: max |delta - delta with the expected teacher| = %v, want 0", tc.round, diff)
		}
		wrong, _, _, _ := clDirectDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.wrong), 1, tc.round)
		if diff := clMaxAbsDiff(delta, wrong); diff < clControlMinDiff {
			t.Errorf("round %d: delta is within %v of the run with the wrong teacher", tc.round, diff)
		}
	}
}

// FedProx's clients add the proximal term towards the round's global model.
func TestHostFedProxProximalTerm(t *testing.T) {
	m := clModel(t, 1, false)
	shards := clNewShards(clDataset(t, 100, 1), 1, 15)
	cfg := clHostConfig(0, 4, 2)
	b, opts := clBehaviour(t, "fedprox", map[string]any{"mu": 5.0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	mu := float32(opts.(methods.FedProxOptions).Mu)
	rh := clStartHost(t, cfg, m, shards)
	global := clInitParams(m, 7)
	rh.send(t, clRoundMsg(0, 0, []int32{0, 3}, global, 0))
	rh.stop(t)
	got := clByClient(t, rh.ups.all(), 0)
	for _, c := range []int{0, 3} {
		u := got[int32(c)]
		if u == nil {
			t.Fatalf("no update of client %d", c)
		}
		segs := shards.Shard(0, c)
		want, _, _, _ := clDirectDelta(m, global, segs, cfg.Train, &client.Extras{Mu: mu, Global: global}, c, 0)
		delta := clTensorOf(t, u, protocol.TensorDelta)
		if diff := clMaxAbsDiff(delta, want); diff != 0 {
			t.Errorf("client %d: max |delta - delta with the proximal term| = %v, want 0", c, diff)
		}
		plain, _, _, _ := clDirectDelta(m, global, segs, cfg.Train, nil, c, 0)
		if diff := clMaxAbsDiff(delta, plain); diff < clControlMinDiff {
			t.Errorf("client %d: delta is within %v of plain local SGD", c, diff)
		}
	}
}

func TestHostWorkerCountIndependence(t *testing.T) {
	m := clModel(t, 1, true)
	d := clDataset(t, 200, 1)
	shards := clNewShards(d, 2, 20)
	global := clInitParams(m, 9)
	// A basis for the first layer (e_0, e_1 as columns of a 16x2 matrix).
	basis := make([]float32, clIn*2)
	basis[0*2+0], basis[1*2+1] = 1, 1
	clients := []int32{0, 1, 2, 3, 4, 5, 6, 7}
	reversed := slices.Clone(clients)
	slices.Reverse(reversed)
	run := func(workers int, clients []int32) map[int32]*transport.Message {
		cfg := clHostConfig(0, 8, workers)
		cfg.Behaviour, _ = clBehaviour(t, "fot", map[string]any{"sketch": "uniform", "oversample": 1, "gpse_dropout": true}, m, cfg.Train.BatchSize)
		rh := clStartHost(t, cfg, m, shards)
		rh.send(t, clRoundMsg(3, 1, clients, global, protocol.FlagSketch|protocol.FlagFisher,
			transport.Tensor{Name: protocol.BasisTensor(0), Rows: clIn, Cols: 2, Data: basis}))
		rh.send(t, clRoundMsg(4, 1, clients, global, 0))
		rh.stop(t)
		ups := rh.ups.all()
		out := clByClient(t, ups, 3)
		for c, u := range clByClient(t, ups, 4) {
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
		clCompareUpdates(t, one, other.ups, other.name)
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
	// The round without FlagSketch carries no sketch.
	if u := one[100]; u.Flags&protocol.FlagSketch != 0 || u.Tensor(protocol.SketchTensor(0)) != nil {
		t.Errorf("round without FlagSketch: flags %b, sketch %v; want neither", u.Flags, u.Tensor(protocol.SketchTensor(0)))
	}
}
