package methods_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// Tests that run the server against real client.Hosts.

// srvHostShards gives client c the rows rows[c] of task t's view, on head 0.
type srvHostShards struct {
	views []data.View
	rows  [][]int32
}

func (s *srvHostShards) Shard(task, c int) []client.Segment {
	return []client.Segment{{View: s.views[task], Rows: s.rows[c]}}
}

// newSrvHostShards deals clients unequal runs of rows: client c gets 10+2c.
func newSrvHostShards(tasks, clients int) *srvHostShards {
	train, _ := servertest.Data(400, 8)
	s := &srvHostShards{}
	for t := 0; t < tasks; t++ {
		s.views = append(s.views, servertest.PermutedView(train, uint64(t)))
	}
	off := 0
	for c := 0; c < clients; c++ {
		n := 10 + 2*c
		var rows []int32
		for i := off; i < off+n; i++ {
			rows = append(rows, int32(i))
		}
		s.rows = append(s.rows, rows)
		off += n
	}
	return s
}

func srvHostTrainConfig() client.Config {
	return client.Config{Seed: servertest.Seed, Epochs: 2, BatchSize: 4, SGD: nn.SGD{LR: 0.05}}
}

// srvStartHosts starts one Host per range over its own transport, each
// with its own client side of the method built from opts (as the
// simulator builds one per host), and returns a function that waits for
// them all (after the server's Stop).
func srvStartHosts(t *testing.T, ctx context.Context, m *nn.Model, shards client.Shards, method methods.Method, opts any, subj transport.Subjects, ranges [][2]int, trs []client.Transport) func() []error {
	t.Helper()
	var hosts []*client.Host
	for i, r := range ranges {
		b, err := method.Client(opts, methods.Env{Model: m, Seed: servertest.Seed, BatchSize: srvHostTrainConfig().BatchSize, FOT: methods.DefaultFOT()})
		if err != nil {
			t.Fatal(err)
		}
		h, err := client.NewHost(client.HostConfig{
			Subjects: subj, First: r[0], Last: r[1], Workers: 1 + i, Train: srvHostTrainConfig(), Behaviour: b, LoRA: method.Info().LoRA,
		}, m, shards, trs[i])
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Start(ctx); err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, h)
	}
	return func() []error {
		var errs []error
		for _, h := range hosts {
			done := make(chan error, 1)
			go func() { done <- h.Wait() }()
			select {
			case err := <-done:
				errs = append(errs, err)
			case <-time.After(servertest.RunTimeout):
				t.Fatal("a host did not stop after the server's Stop")
			}
		}
		return errs
	}
}

func TestServerWithHostsOverEmbeddedNATS(t *testing.T) {
	e, err := transport.StartEmbedded()
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(e.Shutdown)
	conn := func(name string) *transport.Conn {
		c, err := e.Connect(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		return c
	}
	const T, R = 2, 2
	m := servertest.Model(t, 1)
	shards := newSrvHostShards(T, 4)
	subj := transport.SubjectsFor("server-nats-test")
	ctx, cancel := context.WithTimeout(context.Background(), servertest.RunTimeout)
	defer cancel()
	fedavg, ok := methods.Lookup("fedavg")
	if !ok {
		t.Fatal("fedavg is not registered")
	}
	opts, err := fedavg.Resolve(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	wait := srvStartHosts(t, ctx, m, shards, fedavg, opts, subj, [][2]int{{0, 2}, {2, 4}},
		[]client.Transport{conn("host-a"), conn("host-b")})

	cfg := server.Config{Subjects: subj, Seed: servertest.Seed, Tasks: T, RoundsPerTask: R, Clients: 4, ClientsPerRound: 3,
		Weighting: aggregator.Samples, ServerLR: 1}
	// FedAvg has no server rule.
	if rule, err := fedavg.Server(opts, methods.Env{Model: m, Seed: servertest.Seed, Weighting: cfg.Weighting, ServerLR: cfg.ServerLR}); rule != nil || err != nil {
		t.Fatalf("fedavg: Server = (%v, %v), want no rule", rule, err)
	}
	s, err := server.New(cfg, m, servertest.Evaluator(m, T), conn("server"))
	if err != nil {
		t.Fatal(err)
	}
	init := servertest.InitParams(m, 8)
	params := slices.Clone(init)
	rec, err := s.Run(ctx, params)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for i, err := range wait() {
		if err != nil {
			t.Errorf("host %d: Wait: got %v, want nil", i, err)
		}
	}
	// Replay with Trainers: each selected client trains from the global
	// model; the server averages by sample count.
	want := slices.Clone(init)
	tr := client.NewTrainer(m, 4)
	for r := 0; r < T*R; r++ {
		var deltas [][]float32
		var ns []int64
		for _, c := range server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound) {
			segs := shards.Shard(r/R, int(c))
			local := slices.Clone(want)
			tr.Train(local, segs, srvHostTrainConfig(), nil, int(c), r)
			d := make([]float32, len(local))
			for i := range d {
				d[i] = local[i] - want[i]
			}
			deltas = append(deltas, d)
			ns = append(ns, int64(len(segs[0].Rows)))
		}
		want = servertest.MeanApply(want, deltas, ns, true, 1)
	}
	if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
		t.Errorf("final params: max |got - Trainer replay| = %v, want <= %v", d, servertest.ParamTol)
	}
	if d := servertest.MaxAbsDiff(params, init); d < 1e-3 {
		t.Errorf("params moved only %v", d)
	}
	if rec.Rounds != T*R || rec.RejectedUpdates != 0 || rec.LateUpdates != 0 || rec.BytesUp <= 0 || rec.BytesDown <= 0 {
		t.Errorf("record: rounds %d rejected %d late %d up %d down %d, want %d 0 0 >0 >0",
			rec.Rounds, rec.RejectedUpdates, rec.LateUpdates, rec.BytesUp, rec.BytesDown, T*R)
	}
}

func TestFedCurvOwnTermThroughHosts(t *testing.T) {
	// Every update arrives: each client's penalty is the server's sums
	// minus exactly its own share.
	srvTestFedCurvOwnTerm(t, false)
}

func TestFedCurvOwnTermWhenAnUpdateIsLost(t *testing.T) {

	// Client 2's update of the Fisher round (round 0) is lost, so the
	// server's sums use K = 2.
	srvTestFedCurvOwnTerm(t, true)
}

// srvTestFedCurvOwnTerm runs FedCurv with one host owning clients 0-2, all
// selected in every round, one round per task; with lose, client 2's
// update of the Fisher round never arrives.
func srvTestFedCurvOwnTerm(t *testing.T, lose bool) {
	const T, R, lambda = 2, 1, 50
	m := servertest.Model(t, 1)
	shards := newSrvHostShards(T, 3)
	bus := transporttest.NewBus()
	if lose {
		bus.Drop = func(subject string, msg *transport.Message) bool {
			return subject == servertest.Subjects.Update && msg.Round == 0 && msg.Client == 2
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), servertest.RunTimeout)
	defer cancel()
	// The old client.Method{Name: "fedcurv", Lambda: lambda} (Fisher on
	// all samples) and server PenaltyConfig{Kind: "fedcurv"}.
	written := map[string]any{"lambda": float64(lambda), "fisher_samples": 0}
	fedcurv, rule := srvRule(t, "fedcurv", written, methods.Env{Model: m, Seed: servertest.Seed, ServerLR: 1})
	opts, err := fedcurv.Resolve(nil, written)
	if err != nil {
		t.Fatal(err)
	}
	wait := srvStartHosts(t, ctx, m, shards, fedcurv, opts, servertest.Subjects, [][2]int{{0, 3}}, []client.Transport{bus})
	cfg := server.Config{Subjects: servertest.Subjects, Seed: servertest.Seed, Tasks: T, RoundsPerTask: R, Clients: 3, ClientsPerRound: 3,
		ServerLR: 1, Deadline: 200 * time.Millisecond, Rule: rule, LoRA: fedcurv.Info().LoRA}
	s, err := server.New(cfg, m, servertest.Evaluator(m, T), bus)
	if err != nil {
		t.Fatal(err)
	}
	params := servertest.InitParams(m, 9)
	if _, err := s.Run(ctx, params); err != nil {
		t.Fatalf("Run: %v", err)
	}
	wait()

	var round1 *transport.Message
	ups := map[[2]int32]*transport.Message{}
	for _, x := range bus.Sent(servertest.Subjects.Update) {
		ups[[2]int32{x.Msg.Round, x.Msg.Client}] = x.Msg
	}
	for _, x := range bus.Sent(servertest.Subjects.Round) {
		if x.Msg.Kind == transport.KindRound && x.Msg.Round == 1 {
			round1 = x.Msg
		}
	}
	var round0 *transport.Message
	for _, x := range bus.Sent(servertest.Subjects.Round) {
		if x.Msg.Kind == transport.KindRound && x.Msg.Round == 0 {
			round0 = x.Msg
		}
	}
	u := round1.Tensor(protocol.TensorQuadU).Data
	v := round1.Tensor(protocol.TensorQuadV).Data
	g0, g1 := servertest.ParamsOf(round0), servertest.ParamsOf(round1)
	for c := int32(0); c < 3; c++ {
		// What the client must train with: the server's sums minus exactly
		// the share of its own term that the server added (1/K with K the
		// accepted updates; nothing for a lost client).
		k := float32(3)
		if lose {
			k = 2
		}
		uc, vc := slices.Clone(u), slices.Clone(v)
		if !lose || c != 2 {
			up := ups[[2]int32{0, c}]
			f := up.Tensor(protocol.TensorFisher).Data
			d := up.Tensor(protocol.TensorDelta).Data
			for i := range uc {
				uc[i] -= f[i] / k
				vc[i] -= f[i] * (g0[i] + d[i]) / k
			}
		}
		local := slices.Clone(g1)
		client.NewTrainer(m, 4).Train(local, shards.Shard(1, int(c)), srvHostTrainConfig(),
			&client.Extras{Lambda: lambda, U: uc, V: vc}, int(c), 1)
		got := ups[[2]int32{1, c}].Tensor(protocol.TensorDelta).Data
		plain := slices.Clone(g1)
		client.NewTrainer(m, 4).Train(plain, shards.Shard(1, int(c)), srvHostTrainConfig(),
			&client.Extras{Lambda: lambda, U: u, V: v}, int(c), 1)
		if !lose || c != 2 {
			if d := servertest.MaxAbsDiff(plain, local); d < 1e-4 {
				t.Errorf("client %d: removing the own term moves the model by only %v; the test cannot see it", c, d)
			}
		}
		for i := range got {
			if w := local[i] - g1[i]; srvAbs32(got[i]-w) > 1e-5 {
				t.Errorf("client %d: delta[%d] = %v, want %v (own term removed with the server's weight)", c, i, got[i], w)
				break
			}
		}
	}
}

func srvAbs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
