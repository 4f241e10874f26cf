package client_test

import (
	"math"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/transport"
)

// step sends a secure aggregation message of the server to clients.
func step(t *testing.T, rh *clienttest.Host, round int32, clients []int32, name string, msg interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}) {
	t.Helper()
	ts, _, err := protocol.SecAggPayload(name, msg)
	if err != nil {
		t.Fatal(err)
	}
	rh.Send(t, &transport.Message{Kind: transport.KindRound, Round: round, Clients: clients, Flags: protocol.FlagSecAgg, Tensors: []transport.Tensor{ts}})
}

// A host's clients in a secure round send no delta, only their Advertise
// with the clear part of the update; driven through the protocol by a
// secagg server, their masked inputs sum to the weighted deltas, and
// messages the host cannot use are rejected and counted.
func TestHostSecureRound(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 200, 1)
	shards := clienttest.NewShards(d, 1, 12)
	cfg := clienttest.HostConfig(0, 4, 2)
	sa := &protocol.SecAgg{}
	cfg.SecAgg = sa
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 5)
	sel := []int32{0, 1, 2, 3}
	rh.Send(t, clienttest.RoundMsg(0, 0, sel, global, protocol.FlagSecAgg))
	ups := rh.Updates.WaitFor(t, 4, clienttest.HostTimeout)
	L := m.NumParams() + 1
	p := sa.Params(cfg.Train.Seed, 0, len(sel))
	srv, err := secagg.NewServer(L, p)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups {
		if u.Tensor(protocol.TensorDelta) != nil || u.Flags&protocol.FlagSecAgg == 0 || u.N < 1 {
			t.Fatalf("client %d: update with a delta, flags %b, N %d", u.Client, u.Flags, u.N)
		}
		var adv secagg.Advertise
		if err := protocol.SecAggUnpack(u, protocol.TensorSAAdvertise, &adv); err != nil || adv.From != secagg.ID(u.Client) {
			t.Fatalf("client %d: advertise %v from %d", u.Client, err, adv.From)
		}
		if err := srv.AddAdvertise(&adv); err != nil {
			t.Fatal(err)
		}
	}
	next := func(n int, name string) []*transport.Message {
		all := rh.Updates.WaitFor(t, n, clienttest.HostTimeout)
		out := all[n-len(sel):]
		for _, u := range out {
			if protocol.SecAggStep(u) != name {
				t.Fatalf("client %d sent %q, want %q", u.Client, protocol.SecAggStep(u), name)
			}
		}
		return out
	}
	kl, err := srv.KeyList()
	if err != nil {
		t.Fatal(err)
	}
	step(t, rh, 0, sel, protocol.TensorSAKeyList, kl)
	for _, u := range next(8, protocol.TensorSAShareKeys) {
		var x secagg.ShareKeys
		if err := protocol.SecAggUnpack(u, protocol.TensorSAShareKeys, &x); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddShareKeys(&x); err != nil {
			t.Fatal(err)
		}
	}
	dels, err := srv.Deliveries()
	if err != nil {
		t.Fatal(err)
	}
	for _, dl := range dels {
		step(t, rh, 0, []int32{int32(dl.To)}, protocol.TensorSADelivery, dl)
	}
	for _, u := range next(12, protocol.TensorSAMasked) {
		var x secagg.MaskedInput
		if err := protocol.SecAggUnpack(u, protocol.TensorSAMasked, &x); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddMaskedInput(&x); err != nil {
			t.Fatal(err)
		}
	}
	req, err := srv.UnmaskRequest()
	if err != nil {
		t.Fatal(err)
	}
	step(t, rh, 0, sel, protocol.TensorSAUnmask, req)
	for _, u := range next(16, protocol.TensorSAResponse) {
		var x secagg.UnmaskResponse
		if err := protocol.SecAggUnpack(u, protocol.TensorSAResponse, &x); err != nil {
			t.Fatal(err)
		}
		if err := srv.AddUnmaskResponse(&x); err != nil {
			t.Fatal(err)
		}
	}
	res, err := srv.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if w := res.Sum[L-1]; w != float64(len(sel)) {
		t.Fatalf("summed weight %v, want %d (uniform)", w, len(sel))
	}
	want := make([]float64, L-1)
	for _, c := range sel {
		delta, _, _, _ := clienttest.DirectDelta(m, global, shards.Shard(0, int(c)), cfg.Train, nil, int(c), 0)
		for i, v := range delta {
			want[i] += float64(v)
		}
	}
	for i := range want {
		if e := math.Abs(res.Sum[i] - want[i]); e > p.ErrorBound(len(sel)) {
			t.Fatalf("value %d: secure sum %g, deltas sum to %g (error %g above %g)", i, res.Sum[i], want[i], e, p.ErrorBound(len(sel)))
		}
	}

	// A payload that does not decode, and a step of another round.
	rh.Send(t, &transport.Message{Kind: transport.KindRound, Round: 0, Clients: sel, Flags: protocol.FlagSecAgg,
		Tensors: []transport.Tensor{{Name: protocol.TensorSAKeyList, Rows: 1, Cols: 2, Data: []float32{9, 0}}}})
	step(t, rh, 3, sel, protocol.TensorSAUnmask, req)
	rh.Stop(t)
	if r := rh.Rejected(); r[protocol.TensorSAKeyList] != 0 || r["secagg"] != 1 || r["round"] != 1 {
		t.Errorf("rejected %v, want one secagg and one round", r)
	}
}

// A host configured for secure aggregation never sends a delta in the
// clear: a round that does not aggregate securely ends it with an error.
func TestHostSecureRefusesPlainRound(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 100, 1), 1, 12)
	cfg := clienttest.HostConfig(0, 4, 2)
	cfg.SecAgg = &protocol.SecAgg{}
	rh := clienttest.StartHost(t, cfg, m, shards)
	rh.Send(t, clienttest.RoundMsg(0, 0, []int32{0, 1}, clienttest.InitParams(m, 5), 0))
	ended, err := rh.Wait(clienttest.HostTimeout)
	if !ended || err == nil || !strings.Contains(err.Error(), "does not aggregate securely") {
		t.Fatalf("host ended %v with %v, want the refusal", ended, err)
	}
	if n := len(rh.Updates.All()); n != 0 {
		t.Errorf("%d updates published", n)
	}
}
