package servertest

import (
	"slices"
	"sync"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// Fed plays the clients: it answers every round broadcast on Subjects by
// publishing the updates respond returns, in order, and remembers every
// broadcast.
type Fed struct {
	bus     *transporttest.Bus
	mu      sync.Mutex
	rounds  []*transport.Message
	respond func(m *transport.Message) []*transport.Message
}

// NewFed subscribes a Fed that answers with respond to bus's round
// subject.
func NewFed(bus *transporttest.Bus, respond func(m *transport.Message) []*transport.Message) *Fed {
	f := &Fed{bus: bus, respond: respond}
	if _, err := bus.Subscribe(Subjects.Round, f.handle); err != nil {
		panic(err)
	}
	return f
}

func (f *Fed) handle(m *transport.Message, err error) {
	if err != nil || m.Kind != transport.KindRound {
		return
	}
	f.mu.Lock()
	f.rounds = append(f.rounds, m)
	f.mu.Unlock()
	for _, u := range f.respond(m) {
		if _, err := f.bus.Publish(Subjects.Update, u); err != nil {
			panic(err)
		}
	}
}

// Broadcasts returns the round broadcasts received so far, in order.
func (f *Fed) Broadcasts() []*transport.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.rounds)
}

// HonestN is the sample count fake client c reports.
func HonestN(c int32) int64 { return 5 + 3*int64(c) }

// HonestDelta is fake client c's update in round for the global model g:
// a step of 0.2 towards the client's own target plus a little noise.
func HonestDelta(c int32, round int32, g []float32) []float32 {
	tr := rng.New(7, "fake-target", int(c))
	nr := rng.New(7, "fake-noise", int(c), int(round))
	d := make([]float32, len(g))
	for i := range d {
		target := float32(tr.NormFloat64())
		d[i] = 0.2*(target-g[i]) + float32(0.01*nr.NormFloat64())
	}
	return d
}

// HonestLoss is the training loss fake client c reports in round.
func HonestLoss(c, round int32) float64 { return 1 + 0.1*float64(c) + 0.01*float64(round) }

// HonestUpdate is the update of client c for round broadcast m: HonestN,
// HonestLoss and HonestDelta of m's params.
func HonestUpdate(m *transport.Message, c int32) *transport.Message {
	g := ParamsOf(m)
	d := HonestDelta(c, m.Round, g)
	return &transport.Message{
		Kind: transport.KindUpdate, Round: m.Round, Task: m.Task, Client: c, N: HonestN(c),
		Scalars: []transport.Scalar{{Name: protocol.ScalarLoss, Value: HonestLoss(c, m.Round)}},
		Tensors: []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: len(d), Data: d}},
	}
}

// ParamsOf returns the data of m's params tensor, nil if it has none.
func ParamsOf(m *transport.Message) []float32 {
	if t := m.Tensor(protocol.TensorParams); t != nil {
		return t.Data
	}
	return nil
}

// HonestMeanApply is MeanApply of params with the honest updates of
// clients in round for the global model g (HonestDelta of g, HonestN), in
// the given order: the replay of a FedAvg round that they answered.
func HonestMeanApply(params []float32, clients []int32, round int32, g []float32, samples bool, lr float32) []float32 {
	var deltas [][]float32
	var ns []int64
	for _, c := range clients {
		deltas = append(deltas, HonestDelta(c, round, g))
		ns = append(ns, HonestN(c))
	}
	return MeanApply(params, deltas, ns, samples, lr)
}

// HonestRespond answers every selected client of m honestly.
func HonestRespond(m *transport.Message) []*transport.Message {
	var out []*transport.Message
	for _, c := range m.Clients {
		out = append(out, HonestUpdate(m, c))
	}
	return out
}

// Signed wraps respond so that every update it returns is signed with the
// key of its client in run (protocol.Sign): the honest clients of a run
// whose server.Config.Auth is keys.
func Signed(respond func(m *transport.Message) []*transport.Message, keys *auth.Keys, run string) func(m *transport.Message) []*transport.Message {
	return func(m *transport.Message) []*transport.Message {
		out := respond(m)
		for _, u := range out {
			if err := protocol.Sign(u, run, keys.ClientKey(int(u.Client))); err != nil {
				panic(err)
			}
		}
		return out
	}
}
