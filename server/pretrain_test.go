package server

import (
	"math"
	"testing"

	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// The DP accounts compose the steps of every update that reports its
// sampling rate and report each client's epsilon.
func TestDPAccounts(t *testing.T) {
	a := &dpAccounts{cfg: DPConfig{Delta: 1e-5, Sigma: []float64{1.1, 0.9, 1}}}
	up := func(c int, q float64, steps int) *transport.Message {
		return &transport.Message{Kind: transport.KindUpdate, Client: int32(c), Scalars: []transport.Scalar{
			{Name: protocol.ScalarSteps, Value: float64(steps)}, {Name: protocol.ScalarDPQ, Value: q}}}
	}
	for _, m := range []*transport.Message{up(0, 0.05, 10), up(1, 0.1, 10), up(0, 0.05, 10),
		{Kind: transport.KindUpdate, Client: 2, Scalars: []transport.Scalar{{Name: protocol.ScalarSteps, Value: 10}}}} {
		if err := a.add(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.add(up(7, 0.1, 1)); err == nil {
		t.Error("an update of a client without sigma was accounted")
	}
	rec, err := a.record()
	if err != nil {
		t.Fatal(err)
	}
	want0, _, _ := dp.Epsilon(0.05, 1.1, 20, 1e-5)
	want1, _, _ := dp.Epsilon(0.1, 0.9, 10, 1e-5)
	want := results.DP{Delta: 1e-5, Sigma: []float64{1.1, 0.9, 1}, EpsilonSpent: []float64{want0, want1, 0}, EpsilonSpentMax: max(want0, want1)}
	for c := range want.EpsilonSpent {
		if math.Abs(rec.EpsilonSpent[c]-want.EpsilonSpent[c]) > 1e-12*max(1, want.EpsilonSpent[c]) {
			t.Errorf("client %d spent %v, want %v", c, rec.EpsilonSpent[c], want.EpsilonSpent[c])
		}
	}
	if rec.EpsilonSpentMax != want.EpsilonSpentMax || rec.Delta != want.Delta || len(rec.Sigma) != 3 {
		t.Errorf("record %+v, want %+v", rec, want)
	}
}
