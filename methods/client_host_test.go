package methods_test

// The client side of the methods, run in a client.Host: each behaviour is
// built through the registry (Lookup, Resolve, Client) and checked against
// the client's Trainer driven directly.

import (
	"strings"
	"testing"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Tolerances.
const (
	clCurvDeltaTol   = 1e-6 // max |host delta - direct delta| under FedCurv (float32 own-term arithmetic)
	clControlMinDiff = 1e-4 // a wrong penalty, teacher or proximal term must move the delta by more than this
)

func TestHostFisherFlag(t *testing.T) {
	m := clienttest.Model(t, 1, true)
	d := clienttest.Dataset(t, 100, 1)
	shards := clienttest.NewShards(d, 1, 15)
	// FedCurv's clients compute the same Fisher as EWC's.
	for _, name := range []string{"ewc", "fedcurv"} {
		for _, limit := range []int{0, 6} {
			cfg := clienttest.HostConfig(0, 4, 2)
			cfg.Behaviour, _ = clBehaviour(t, name, map[string]any{"lambda": 1.0, "fisher_samples": limit}, m, cfg.Train.BatchSize)
			rh := clienttest.StartHost(t, cfg, m, shards)
			global := clienttest.InitParams(m, 2)
			rh.Send(t, clienttest.RoundMsg(4, 0, []int32{1, 3}, global, protocol.FlagFisher))
			rh.Stop(t)
			got := clienttest.ByClient(t, rh.Updates.All(), 4)
			for _, c := range []int{1, 3} {
				u := got[int32(c)]
				if u == nil {
					t.Fatalf("%s limit %d: no update of client %d", name, limit, c)
				}
				segs := shards.Shard(0, c)
				_, local, _, _ := clienttest.DirectDelta(m, global, segs, cfg.Train, nil, c, 4)
				want := make([]float32, len(local))
				client.NewTrainer(m, cfg.Train.BatchSize).Fisher(want, local, segs[0], limit, cfg.Train.Seed, c, 4)
				if u.Flags&protocol.FlagFisher == 0 {
					t.Errorf("%s limit %d client %d: update flags %b lack FlagFisher", name, limit, c, u.Flags)
				}
				f := clienttest.TensorOf(t, u, protocol.TensorFisher)
				if diff := clienttest.MaxAbsDiff(f, want); diff != 0 {
					t.Errorf("%s limit %d client %d: max |fisher - Trainer.Fisher(local)| = %v, want 0", name, limit, c, diff)
				}
				if clienttest.MaxAbs(f) == 0 {
					t.Errorf("%s limit %d client %d: Fisher is all zero", name, limit, c)
				}
			}
		}
	}
}

// Without FlagFisher a penalty method's client sends no Fisher.
func TestHostPenaltyNoFisherWithoutFlag(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 60, 1), 1, 15)
	for _, name := range []string{"ewc", "fedcurv"} {
		cfg := clienttest.HostConfig(0, 4, 2)
		cfg.Behaviour, _ = clBehaviour(t, name, nil, m, cfg.Train.BatchSize)
		rh := clienttest.StartHost(t, cfg, m, shards)
		rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 2}, clienttest.InitParams(m, 2), 0))
		rh.Stop(t)
		ups := rh.Updates.All()
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
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 160, 1)
	shards := clienttest.NewShards(d, 2, 15)
	cfg := clienttest.HostConfig(0, 4, 2)
	b, opts := clBehaviour(t, "fedcurv", map[string]any{"lambda": 50, "fisher_samples": 0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	lambda := float32(opts.(methods.PenaltyOptions).Lambda)
	rh := clienttest.StartHost(t, cfg, m, shards)

	// Round 0 (last of task 0): clients 0 and 1 send their Fisher; K = 2.
	g0 := clienttest.InitParams(m, 3)
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 1}, g0, protocol.FlagFisher))
	// Wait for both so that the server-side sums can be built from them.
	first := clienttest.ByClient(t, rh.Updates.WaitFor(t, 2, clienttest.HostTimeout), 0)
	np := m.NumParams()
	fisher, local := map[int][]float32{}, map[int][]float32{}
	for _, c := range []int{0, 1} {
		_, local[c], _, _ = clienttest.DirectDelta(m, g0, shards.Shard(0, c), cfg.Train, nil, c, 0)
		fisher[c] = clienttest.TensorOf(t, first[int32(c)], protocol.TensorFisher)
	}
	// The server's sums: U = (F0 + F1)/2, V = (F0 w0 + F1 w1)/2.
	u, v := make([]float32, np), make([]float32, np)
	for i := range u {
		u[i] = (fisher[0][i] + fisher[1][i]) / 2
		v[i] = (fisher[0][i]*local[0][i] + fisher[1][i]*local[1][i]) / 2
	}
	// Round 1 (task 1): client 0 took part in the Fisher round, client 2
	// did not.
	g1 := clienttest.InitParams(m, 4)
	quad := []transport.Tensor{
		{Name: protocol.TensorQuadU, Rows: 1, Cols: np, Data: u},
		{Name: protocol.TensorQuadV, Rows: 1, Cols: np, Data: v},
		// The server accepted both Fisher terms (K = 2).
		{Name: protocol.TensorCurvAccepted, Rows: 1, Cols: 2, Data: []float32{0, 1}},
	}
	rh.Send(t, clienttest.RoundMsg(1, 1, []int32{0, 2}, g1, 0, quad...))
	rh.Stop(t)
	got := clienttest.ByClient(t, rh.Updates.All(), 1)

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
		want, _, _, _ := clienttest.DirectDelta(m, g1, segs, cfg.Train, &client.Extras{Lambda: lambda, U: tc.u, V: tc.v}, tc.c, 1)
		delta := clienttest.TensorOf(t, up, protocol.TensorDelta)
		if diff := clienttest.MaxAbsDiff(delta, want); diff > clCurvDeltaTol {
			t.Errorf("client %d: max |delta - delta with expected U, V| = %v, want <= %v", tc.c, diff, clCurvDeltaTol)
		}
		ctrl, _, _, _ := clienttest.DirectDelta(m, g1, segs, cfg.Train, &client.Extras{Lambda: lambda, U: tc.control[0], V: tc.control[1]}, tc.c, 1)
		if diff := clienttest.MaxAbsDiff(delta, ctrl); diff < clControlMinDiff {
			t.Errorf("client %d: delta is within %v of the run with the wrong penalty; the test cannot tell them apart", tc.c, diff)
		}
	}
}

func TestHostPenaltyTensorLengthMismatchStopsHost(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 40, 1), 2, 5)
	cfg := clienttest.HostConfig(0, 2, 1)
	cfg.Behaviour, _ = clBehaviour(t, "ewc", map[string]any{"lambda": 1.0}, m, cfg.Train.BatchSize)
	rh := clienttest.StartHost(t, cfg, m, shards)
	g := clienttest.InitParams(m, 1)
	short := []transport.Tensor{{Name: protocol.TensorQuadU, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}, {Name: protocol.TensorQuadV, Rows: 1, Cols: 3, Data: []float32{1, 2, 3}}}
	rh.Send(t, clienttest.RoundMsg(0, 1, []int32{0}, g, 0, short...))
	ended, err := rh.Wait(clienttest.HostTimeout)
	if !ended {
		t.Fatal("host kept running after a round with mis-sized penalty tensors")
	}
	if err == nil || !strings.Contains(err.Error(), "penalty") {
		t.Errorf("Wait: got %v, want an error about the penalty tensors", err)
	}
	if n := len(rh.Updates.All()); n != 0 {
		t.Errorf("got %d updates, want 0", n)
	}
}

func TestHostFLwFTeacherIsFirstGlobalOfTask(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 100, 1)
	shards := clienttest.NewShards(d, 3, 15)
	cfg := clienttest.HostConfig(0, 3, 1)
	b, opts := clBehaviour(t, "flwf", map[string]any{"alpha": 2.0, "temperature": 2.0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	o := opts.(methods.FLwFOptions)
	rh := clienttest.StartHost(t, cfg, m, shards)
	globals := make([][]float32, 4)
	for i := range globals {
		globals[i] = clienttest.InitParams(m, uint64(40+i))
	}
	// Rounds 0 (task 0), 1 and 2 (task 1), 3 (task 2); client 1 each time.
	tasks := []int{0, 1, 1, 2}
	for r, task := range tasks {
		rh.Send(t, clienttest.RoundMsg(r, task, []int32{1}, globals[r], 0))
	}
	rh.Stop(t)
	ups := rh.Updates.All()
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
		u := clienttest.ByClient(t, ups, tc.round)[1]
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
		want, _, _, _ := clienttest.DirectDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.teacher), 1, tc.round)
		delta := clienttest.TensorOf(t, u, protocol.TensorDelta)
		if diff := clienttest.MaxAbsDiff(delta, want); diff != 0 {
			t.Errorf("round %d: max |delta - delta with the expected teacher| = %v, want 0", tc.round, diff)
		}
		wrong, _, _, _ := clienttest.DirectDelta(m, globals[tc.round], segs, cfg.Train, exFor(tc.wrong), 1, tc.round)
		if diff := clienttest.MaxAbsDiff(delta, wrong); diff < clControlMinDiff {
			t.Errorf("round %d: delta is within %v of the run with the wrong teacher", tc.round, diff)
		}
	}
}

// FedProx's clients add the proximal term towards the round's global model.
func TestHostFedProxProximalTerm(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 15)
	cfg := clienttest.HostConfig(0, 4, 2)
	b, opts := clBehaviour(t, "fedprox", map[string]any{"mu": 5.0}, m, cfg.Train.BatchSize)
	cfg.Behaviour = b
	mu := float32(opts.(methods.FedProxOptions).Mu)
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 7)
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 3}, global, 0))
	rh.Stop(t)
	got := clienttest.ByClient(t, rh.Updates.All(), 0)
	for _, c := range []int{0, 3} {
		u := got[int32(c)]
		if u == nil {
			t.Fatalf("no update of client %d", c)
		}
		segs := shards.Shard(0, c)
		want, _, _, _ := clienttest.DirectDelta(m, global, segs, cfg.Train, &client.Extras{Mu: mu, Global: global}, c, 0)
		delta := clienttest.TensorOf(t, u, protocol.TensorDelta)
		if diff := clienttest.MaxAbsDiff(delta, want); diff != 0 {
			t.Errorf("client %d: max |delta - delta with the proximal term| = %v, want 0", c, diff)
		}
		plain, _, _, _ := clienttest.DirectDelta(m, global, segs, cfg.Train, nil, c, 0)
		if diff := clienttest.MaxAbsDiff(delta, plain); diff < clControlMinDiff {
			t.Errorf("client %d: delta is within %v of plain local SGD", c, diff)
		}
	}
}

func TestHostWorkerCountIndependence(t *testing.T) {
	one := clienttest.CheckWorkerCountIndependence(t, func(m *nn.Model, batch int) client.Behaviour {
		b, _ := clBehaviour(t, "fot", map[string]any{"sketch": "uniform", "oversample": 1, "gpse_dropout": true}, m, batch)
		return b
	})
	// The round without FlagSketch carries no sketch.
	if u := one[100]; u.Flags&protocol.FlagSketch != 0 || u.Tensor(protocol.SketchTensor(0)) != nil {
		t.Errorf("round without FlagSketch: flags %b, sketch %v; want neither", u.Flags, u.Tensor(protocol.SketchTensor(0)))
	}
}
