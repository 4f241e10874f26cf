package sim

import (
	"context"
	"math"
	"testing"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/transport"
)

// TestEControlBytesUp runs EControl with each compressor and checks that
// bytes_up is exactly what its updates cost on the wire: every update is
// the three scalars and the compressed tensors (top-k: k indices and k
// values; quant: a scale per 256 entries and bits-bit codes packed 24 bits
// to a value), whose encoded size transport.Message.BodyLen gives.
func TestEControlBytesUp(t *testing.T) {
	for _, tc := range []struct {
		method  string
		tensors func(n int) []transport.Tensor
	}{
		{"{name: econtrol, ratio: 0.05}", func(n int) []transport.Tensor {
			k := int(math.Round(0.05 * float64(n)))
			return []transport.Tensor{{Name: "ec_index", Rows: 1, Cols: k, Data: make([]float32, k)}, {Name: "ec_value", Rows: 1, Cols: k, Data: make([]float32, k)}}
		}},
		{"{name: econtrol, compressor: quant, bits: 5}", func(n int) []transport.Tensor {
			nb, words := (n+255)/256, (n*5+23)/24
			return []transport.Tensor{{Name: "ec_scale", Rows: 1, Cols: nb, Data: make([]float32, nb)}, {Name: "ec_codes", Rows: 1, Cols: words, Data: make([]float32, words)}}
		}},
	} {
		sc, err := scenarios.Load("synthetic", []string{"methods=[" + tc.method + "]"})
		if err != nil {
			t.Fatal(err)
		}
		run := sc.Runs()[0]
		x, err := NewEnv().Build(sc, run)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := x.Execute(context.Background(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rec.RejectedUpdates != 0 {
			t.Fatalf("%s: %d updates rejected", tc.method, rec.RejectedUpdates)
		}
		u := transport.Message{Kind: transport.KindUpdate, Scalars: []transport.Scalar{{Name: protocol.ScalarLoss}, {Name: protocol.ScalarSteps}, {Name: protocol.ScalarTrainSeconds}},
			Tensors: tc.tensors(x.Model.NumParams())}
		updates := int64(rec.Rounds * rec.ClientsPerRound)
		if want := updates * int64(u.BodyLen()); rec.BytesUp != want {
			t.Errorf("%s: bytes_up %d, want %d updates of %d bytes = %d", tc.method, rec.BytesUp, updates, u.BodyLen(), want)
		}
		dense := int64(4 * x.Model.NumParams())
		t.Logf("%s: %d bytes per update, %.1fx less than the dense delta's %d", tc.method, u.BodyLen(), float64(dense)/float64(u.BodyLen()), dense)
	}
}
