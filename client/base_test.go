package client_test

import (
	"math"
	"testing"

	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// A LoRA host keeps the base of the last whole round: a round that sends
// only the adapters (with that base's version) trains exactly as the whole
// model would (same update bits); one whose base it does not have (it
// joined late, or the version differs) is rejected and trains nothing,
// until the round comes whole.
func TestHostAdaptersOnlyRounds(t *testing.T) {
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{clienttest.Hidden}, Classes: clienttest.Classes, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 2, Alpha: 4}})
	if err != nil {
		t.Fatal(err)
	}
	d := clienttest.Dataset(t, 200, 1)
	shards := clienttest.NewShards(d, 1, 4)
	cfg := clienttest.HostConfig(0, 4, 2)
	cfg.LoRA = "ab"
	g1 := clienttest.InitParams(m, 3)
	ranges := protocol.Trainable(m, "ab", 0)
	// g2: g1 with other adapters (FedAvg-LoRA's next round), same base.
	g2 := append([]float32(nil), g1...)
	var ad []float32
	for _, r := range ranges {
		for i := r[0]; i < r[1]; i++ {
			g2[i] += 0.01 * float32(i%7+1)
			ad = append(ad, g2[i])
		}
	}
	version := func(v float64) []transport.Scalar {
		return []transport.Scalar{{Name: protocol.ScalarBaseVersion, Value: v}}
	}
	whole := func(round int, g []float32, v float64) *transport.Message {
		msg := clienttest.RoundMsg(round, 0, []int32{1, 2}, g, 0)
		msg.Scalars = version(v)
		return msg
	}
	adapters := func(round int, v float64) *transport.Message {
		return &transport.Message{Kind: transport.KindRound, Round: int32(round), Clients: []int32{1, 2}, Scalars: version(v),
			Tensors: []transport.Tensor{{Name: protocol.TensorAdapters, Rows: 1, Cols: len(ad), Data: append([]float32(nil), ad...)}}}
	}

	ref := clienttest.StartHost(t, cfg, m, shards) // g2 whole in round 1
	ref.Send(t, whole(0, g1, 1))
	ref.Send(t, whole(1, g2, 1))
	ref.Stop(t)
	want := clienttest.ByClient(t, ref.Updates.All(), 1)

	h := clienttest.StartHost(t, cfg, m, shards) // g2 as adapters on g1's base
	h.Send(t, whole(0, g1, 1))
	h.Send(t, adapters(1, 1))
	h.Send(t, adapters(2, 7)) // a base version this host never got
	h.Stop(t)
	got := clienttest.ByClient(t, h.Updates.All(), 1)
	for _, c := range []int32{1, 2} {
		if got[c] == nil || want[c] == nil {
			t.Fatalf("client %d: no update of round 1", c)
		}
		a, b := clienttest.TensorOf(t, got[c], protocol.TensorDelta), clienttest.TensorOf(t, want[c], protocol.TensorDelta)
		for i := range a {
			if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
				t.Fatalf("client %d: delta %d from the adapters-only round %v, from the whole round %v", c, i, a[i], b[i])
			}
		}
	}
	if n := len(clienttest.ByClient(t, h.Updates.All(), 2)); n != 0 {
		t.Errorf("%d updates of round 2, whose base version the host lacks", n)
	}
	if h.Rejected()["params"] != 1 {
		t.Errorf("rejected %v, want one round for its params", h.Rejected())
	}

	late := clienttest.StartHost(t, cfg, m, shards) // joined after the whole round
	late.Send(t, adapters(1, 1))
	late.Send(t, whole(1, g2, 1)) // the server's resend: whole
	late.Stop(t)
	if got := clienttest.ByClient(t, late.Updates.All(), 1); len(got) != 2 {
		t.Errorf("a late host trained %d clients of the round resent whole, want 2", len(got))
	}
	if late.Rejected()["params"] != 1 {
		t.Errorf("late host rejected %v, want the adapters-only round", late.Rejected())
	}
}
