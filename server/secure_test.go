package server_test

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// secureFed plays honest clients of a securely aggregated run with the
// secagg library: HonestDelta and HonestN, weighted as the host weights
// them, masked; it honours the round's simulated dropouts. forge, when
// set, is called with every message a client is about to send and returns
// extra messages to publish first (forgeries).
type secureFed struct {
	bus   *transporttest.Bus
	cfg   protocol.SecAgg
	seed  uint64
	forge func(step string, c int32, u *transport.Message) []*transport.Message

	mu      sync.Mutex
	clients map[int32]*secagg.Client
	vecs    map[int32][]uint64
	inputs  map[int32][]float64 // the unmasked (weighted) inputs, for the test
	drop    map[int32]bool
	round   *transport.Message
	up      int64 // EncodedLen of every secagg message sent
}

func newSecureFed(bus *transporttest.Bus, cfg protocol.SecAgg) *secureFed {
	f := &secureFed{bus: bus, cfg: cfg, seed: servertest.Seed}
	if _, err := bus.Subscribe(servertest.Subjects.Round, f.handle); err != nil {
		panic(err)
	}
	return f
}

func (f *secureFed) send(step string, c int32, u *transport.Message, n int) {
	if f.forge != nil {
		for _, x := range f.forge(step, c, u) {
			if _, err := f.bus.Publish(servertest.Subjects.Update, x); err != nil {
				panic(err)
			}
		}
	}
	f.mu.Lock()
	f.up += int64(n)
	f.mu.Unlock()
	if _, err := f.bus.Publish(servertest.Subjects.Update, u); err != nil {
		panic(err)
	}
}

func (f *secureFed) reply(r *transport.Message, c int32, name string, msg interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}) {
	t, n, err := protocol.SecAggPayload(name, msg)
	if err != nil {
		panic(err)
	}
	f.send(name, c, &transport.Message{Kind: transport.KindUpdate, Round: r.Round, Task: r.Task, Client: c, Flags: r.Flags, Tensors: []transport.Tensor{t}}, n)
}

func (f *secureFed) handle(m *transport.Message, err error) {
	if err != nil || m.Kind != transport.KindRound {
		return
	}
	switch step := protocol.SecAggStep(m); step {
	case "":
		f.start(m)
	case protocol.TensorSAKeyList:
		var kl secagg.KeyList
		must(protocol.SecAggUnpack(m, step, &kl))
		for _, k := range kl.Keys {
			sk, err := f.clients[int32(k.From)].ShareKeys(&kl)
			must(err)
			f.reply(m, int32(k.From), protocol.TensorSAShareKeys, sk)
		}
	case protocol.TensorSADelivery:
		var d secagg.ShareDelivery
		must(protocol.SecAggUnpack(m, step, &d))
		c := int32(d.To)
		if f.drop[c] {
			return
		}
		mi, err := f.clients[c].MaskInputRing(&d, f.vecs[c])
		must(err)
		f.reply(m, c, protocol.TensorSAMasked, mi)
	case protocol.TensorSAUnmask:
		var r secagg.UnmaskRequest
		must(protocol.SecAggUnpack(m, step, &r))
		for _, id := range r.Survivors {
			resp, err := f.clients[int32(id)].Unmask(&r)
			must(err)
			f.reply(m, int32(id), protocol.TensorSAResponse, resp)
		}
	}
}

// start answers a round broadcast: each client's clear update with its
// Advertise.
func (f *secureFed) start(m *transport.Message) {
	g := servertest.ParamsOf(m)
	p := f.cfg.Params(f.seed, int(m.Round), len(m.Clients))
	f.round = m
	f.clients, f.vecs, f.inputs, f.drop = map[int32]*secagg.Client{}, map[int32][]uint64{}, map[int32][]float64{}, map[int32]bool{}
	if t := m.Tensor(protocol.TensorSADrop); t != nil {
		for _, v := range t.Data {
			f.drop[int32(v)] = true
		}
	}
	scale, samples := m.Scalar(protocol.ScalarSAWeightScale)
	for _, c := range m.Clients {
		d := servertest.HonestDelta(c, m.Round, g)
		w := 1.0
		if samples {
			w = float64(servertest.HonestN(c)) / scale
		}
		x := make([]float64, len(d)+1)
		for i, v := range d {
			x[i] = w * float64(v)
		}
		x[len(d)] = w
		vec := make([]uint64, len(x))
		_, err := p.Encode64(vec, x)
		must(err)
		sc, err := secagg.NewClient(secagg.ID(c), len(x), p, protocol.SecAggRand(f.seed, int(m.Round), int(c)))
		must(err)
		adv, err := sc.Advertise()
		must(err)
		f.clients[c], f.vecs[c], f.inputs[c] = sc, vec, x
		t, n, err := protocol.SecAggPayload(protocol.TensorSAAdvertise, adv)
		must(err)
		f.send(protocol.TensorSAAdvertise, c, &transport.Message{
			Kind: transport.KindUpdate, Round: m.Round, Task: m.Task, Client: c, N: servertest.HonestN(c), Flags: m.Flags,
			Scalars: []transport.Scalar{{Name: protocol.ScalarLoss, Value: servertest.HonestLoss(c, m.Round)}},
			Tensors: []transport.Tensor{t},
		}, n)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// secureRun runs one round of a secure FedAvg over a secureFed and
// returns the server, the fed, the bus, the initial and final parameters
// and the record.
func secureRun(t *testing.T, sa protocol.SecAgg, weighting aggregator.Weighting, sys *server.System, forge func(string, int32, *transport.Message) []*transport.Message) (*server.Server, *secureFed, *transporttest.Bus, []float32, []float32, *results.Record) {
	t.Helper()
	bus := transporttest.NewBus()
	fed := newSecureFed(bus, sa)
	fed.forge = forge
	m := servertest.Model(t, 1)
	cfg := servertest.Config(1, 1)
	cfg.Clients, cfg.ClientsPerRound = 8, 5
	cfg.Weighting, cfg.SecAgg, cfg.System = weighting, &sa, sys
	cfg.Samples = func(task, c int) int64 { return servertest.HonestN(int32(c)) }
	s, err := server.New(cfg, m, servertest.Evaluator(m, 1), bus)
	if err != nil {
		t.Fatal(err)
	}
	init := servertest.InitParams(m, 1)
	params := slices.Clone(init)
	rec, err := s.Run(servertest.Context(t), params)
	if err != nil {
		t.Fatal(err)
	}
	return s, fed, bus, init, params, rec
}

// The securely aggregated mean is within SecureMeanError of the exact
// weighted mean of the survivors' deltas, for both rings and both
// weightings, and the applied model within float32 rounding of it.
func TestSecureMeanWithinBoundOfPlainMean(t *testing.T) {
	for _, ring := range []string{protocol.RingDefault, protocol.RingCompact} {
		for _, w := range []aggregator.Weighting{aggregator.Uniform, aggregator.Samples} {
			t.Run(fmt.Sprintf("%s/%v", ring, w), func(t *testing.T) {
				s, fed, _, init, params, _ := secureRun(t, protocol.SecAgg{Ring: ring}, w, nil, nil)
				sum, weight, n := s.LastSecureSum()
				sel := fed.round.Clients
				if n != len(sel) {
					t.Fatalf("%d survivors, want %d", n, len(sel))
				}
				var deltas [][]float32
				var ns []int64
				for _, c := range sel {
					deltas = append(deltas, servertest.HonestDelta(c, 0, init))
					ns = append(ns, servertest.HonestN(c))
				}
				p := protocol.SecAgg{Ring: ring}.Params(servertest.Seed, 0, len(sel))
				var worst, worstBound float64
				for i := range init {
					var exact, total float64
					for _, n := range ns {
						total += float64(n)
					}
					for k, d := range deltas {
						c := 1 / float64(len(deltas))
						if w == aggregator.Samples {
							c = float64(ns[k]) / total
						}
						exact += c * float64(d[i])
					}
					got := sum[i] / weight
					bound := server.SecureMeanError(p, n, weight, exact)
					if e := math.Abs(got - exact); e > bound {
						t.Fatalf("coordinate %d: secure mean %g, exact %g: error %g above the bound %g", i, got, exact, e, bound)
					} else if e > worst {
						worst, worstBound = e, bound
					}
					// The model: init + float32(mean), both float32-rounded.
					want := init[i] + float32(exact)
					tol := bound + math.Ldexp(math.Abs(float64(want)), -23) + math.Ldexp(math.Abs(exact), -23)
					if e := math.Abs(float64(params[i] - want)); e > tol {
						t.Fatalf("coordinate %d: model %g, plain %g: |diff| %g above %g", i, params[i], want, e, tol)
					}
				}
				t.Logf("%s ring, %v weights, %d clients: largest error %.3g (its bound %.3g)", ring, w, n, worst, worstBound)
			})
		}
	}
}

// The server never receives a delta: no message on the update subject
// carries one, and every masked input looks nothing like its client's
// weighted delta (decoded, its values are spread over the whole ring).
func TestSecureServerNeverSeesADelta(t *testing.T) {
	_, fed, bus, _, _, _ := secureRun(t, protocol.SecAgg{}, aggregator.Uniform, nil, nil)
	p := protocol.SecAgg{}.Params(servertest.Seed, 0, len(fed.round.Clients))
	masked := 0
	for _, s := range bus.Sent(servertest.Subjects.Update) {
		m := s.Msg
		if m.Tensor(protocol.TensorDelta) != nil {
			t.Fatalf("client %d sent a %q tensor", m.Client, protocol.TensorDelta)
		}
		if m.Tensor(protocol.TensorSAMasked) == nil {
			continue
		}
		var mi secagg.MaskedInput
		must(protocol.SecAggUnpack(m, protocol.TensorSAMasked, &mi))
		dec := make([]float64, len(mi.Values))
		p.Decode(dec, mi.Values)
		x := fed.inputs[m.Client]
		close := 0
		for i := range dec {
			if math.Abs(dec[i]-x[i]) < 1 {
				close++
			}
		}
		// A uniform value of the 64-bit ring decodes to within 1 of a
		// given value with probability 2^-31.
		if close > 0 {
			t.Errorf("client %d: %d of %d masked values within 1 of the input", m.Client, close, len(dec))
		}
		masked++
	}
	if masked != len(fed.round.Clients) {
		t.Fatalf("%d masked inputs, want %d", masked, len(fed.round.Clients))
	}
}

// A round whose system dropout fails clients after they shared their keys
// still gives the survivors' mean: their masks are removed with the
// others' shares.
func TestSecureDropoutRecovered(t *testing.T) {
	sys := &server.System{Availability: 1, Dropout: 0.3, Quorum: 1}
	sa := protocol.SecAgg{Threshold: 2}
	s, fed, _, init, _, rec := secureRun(t, sa, aggregator.Uniform, sys, nil)
	if len(fed.drop) == 0 {
		t.Fatal("no client dropped out in round 0: pick another dropout")
	}
	sum, weight, n := s.LastSecureSum()
	var surv []int32
	for _, c := range fed.round.Clients {
		if !fed.drop[c] {
			surv = append(surv, c)
		}
	}
	if n != len(surv) || rec.SecAggRecovered != len(fed.drop) {
		t.Fatalf("%d survivors and %d recovered, want %d and %d", n, rec.SecAggRecovered, len(surv), len(fed.drop))
	}
	if weight < float64(n)-1e-6 || weight > float64(n)+1e-6 {
		t.Fatalf("summed weight %g, want %d", weight, n)
	}
	p := sa.Params(servertest.Seed, 0, len(fed.round.Clients))
	for i := range init {
		var exact float64
		for _, c := range surv {
			exact += float64(servertest.HonestDelta(c, 0, init)[i]) / float64(len(surv))
		}
		if e := math.Abs(sum[i]/weight - exact); e > server.SecureMeanError(p, n, weight, exact) {
			t.Fatalf("coordinate %d: mean of the survivors %g, want %g", i, sum[i]/weight, exact)
		}
	}
	if d := rec.RoundsDetail[0]; d.Dropped != len(fed.drop) || d.Aggregated != n || d.Skipped {
		t.Errorf("round detail %+v, want %d dropped and %d aggregated", d, len(fed.drop), n)
	}
	t.Logf("%d of %d clients dropped after sharing keys; the sum of the other %d was recovered", len(fed.drop), len(fed.round.Clients), n)
}

// The record's secure aggregation bytes are the EncodedLen of every secagg
// message: those the clients sent, and those the server sent times their
// recipients; bytes_up and bytes_down include them.
func TestSecureBytesAreEncodedLen(t *testing.T) {
	_, fed, bus, _, _, rec := secureRun(t, protocol.SecAgg{}, aggregator.Samples, nil, nil)
	var down, bcast, clear int64
	for _, s := range bus.Sent(servertest.Subjects.Round) {
		m := s.Msg
		switch step := protocol.SecAggStep(m); step {
		case protocol.TensorSAKeyList:
			var x secagg.KeyList
			must(protocol.SecAggUnpack(m, step, &x))
			down += int64(x.EncodedLen() * len(m.Clients))
		case protocol.TensorSADelivery:
			var x secagg.ShareDelivery
			must(protocol.SecAggUnpack(m, step, &x))
			down += int64(x.EncodedLen() * len(m.Clients))
		case protocol.TensorSAUnmask:
			var x secagg.UnmaskRequest
			must(protocol.SecAggUnpack(m, step, &x))
			down += int64(x.EncodedLen() * len(m.Clients))
		case "":
			if m.Kind == transport.KindRound {
				bcast += int64(m.BodyLen() * len(m.Clients))
			}
		}
	}
	for _, s := range bus.Sent(servertest.Subjects.Update) {
		if m := s.Msg; m.Tensor(protocol.TensorSAAdvertise) != nil {
			c := *m
			c.Tensors = nil
			clear += int64(c.BodyLen())
		}
	}
	k := int64(len(fed.round.Clients))
	L := int64(servertest.Model(t, 1).NumParams() + 1)
	// The sizes of secagg's documentation: Advertise 109, ShareKeys
	// 17+94(k-1), MaskedInput 18+8L, UnmaskResponse 21+37k.
	formula := k * (109 + 17 + 94*(k-1) + 18 + 8*L + 21 + 37*k)
	if rec.SecAggBytesUp != fed.up || fed.up != formula {
		t.Errorf("secagg_bytes_up %d, the clients sent %d, the formula gives %d", rec.SecAggBytesUp, fed.up, formula)
	}
	if rec.BytesUp != clear+rec.SecAggBytesUp {
		t.Errorf("bytes_up %d, want the clear parts %d + secagg %d", rec.BytesUp, clear, rec.SecAggBytesUp)
	}
	if rec.SecAggBytesDown != down || rec.BytesDown != bcast+down {
		t.Errorf("secagg_bytes_down %d (bytes_down %d), want %d (+ broadcast %d)", rec.SecAggBytesDown, rec.BytesDown, down, bcast)
	}
	t.Logf("%d clients, %d values: %d B up (%d secagg), %d B down (%d secagg)", k, L, rec.BytesUp, rec.SecAggBytesUp, rec.BytesDown, rec.SecAggBytesDown)
}

// Forged and malformed secure aggregation messages are rejected and
// counted, never used: the round still gives the honest mean.
func TestSecureRejectsForgeries(t *testing.T) {
	var once sync.Map
	first := func(key string) bool { _, loaded := once.LoadOrStore(key, true); return !loaded }
	forger := func(step string, c int32, u *transport.Message) []*transport.Message {
		var out []*transport.Message
		switch step {
		case protocol.TensorSAAdvertise:
			if first("plain") {
				// An update in the clear.
				p := *u
				p.Flags &^= protocol.FlagSecAgg
				p.Tensors = []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: 1, Data: []float32{1}}}
				out = append(out, &p)
			}
		case protocol.TensorSAMasked:
			if first("masked") {
				var mi secagg.MaskedInput
				must(protocol.SecAggUnpack(u, step, &mi))
				// Wrong length, then a payload naming another client.
				short := mi
				short.Values = short.Values[:len(short.Values)-1]
				t1, _, err := protocol.SecAggPayload(step, &short)
				must(err)
				f1 := *u
				f1.Tensors = []transport.Tensor{t1}
				other := mi
				other.From++
				t2, _, err := protocol.SecAggPayload(step, &other)
				must(err)
				f2 := *u
				f2.Tensors = []transport.Tensor{t2}
				// Bytes that are not a packed payload.
				f3 := *u
				f3.Tensors = []transport.Tensor{{Name: step, Rows: 1, Cols: 3, Data: []float32{0.5, 0, 7}}}
				out = append(out, &f1, &f2, &f3)
			}
		case protocol.TensorSAResponse:
			if first("response") {
				var r secagg.UnmaskResponse
				must(protocol.SecAggUnpack(u, step, &r))
				// A mask-key share of a survivor: both secrets of one client.
				both := r
				both.KeyShares = append(slices.Clone(r.KeyShares), r.SeedShares[0])
				t1, _, err := protocol.SecAggPayload(step, &both)
				must(err)
				f1 := *u
				f1.Tensors = []transport.Tensor{t1}
				out = append(out, &f1)
			}
		}
		return out
	}
	s, fed, _, init, _, rec := secureRun(t, protocol.SecAgg{}, aggregator.Uniform, nil, forger)
	if got := rec.RejectedByReason[server.RejectSecAgg]; got != 5 || rec.RejectedUpdates != 5 {
		t.Errorf("rejected %d (%v), want 5 for %q", rec.RejectedUpdates, rec.RejectedByReason, server.RejectSecAgg)
	}
	sum, weight, n := s.LastSecureSum()
	if n != len(fed.round.Clients) {
		t.Fatalf("%d survivors, want %d", n, len(fed.round.Clients))
	}
	p := protocol.SecAgg{}.Params(servertest.Seed, 0, n)
	for i := range init {
		var exact float64
		for _, c := range fed.round.Clients {
			exact += float64(servertest.HonestDelta(c, 0, init)[i]) / float64(n)
		}
		if e := math.Abs(sum[i]/weight - exact); e > server.SecureMeanError(p, n, weight, exact) {
			t.Fatalf("coordinate %d: mean %g, want %g", i, sum[i]/weight, exact)
		}
	}
}
