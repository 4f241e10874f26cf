package methods

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/server"
	"gonum.org/v1/gonum/mat"
)

// FedSVD with FOT projects the adapters' products off the FOT bases after
// every LoRA round, not only in refactor rounds: with period 100 (no
// refactor) the first round of a task with a grown basis removes the
// product's share in span(U) (recorded in the task's projected fraction),
// after it B A U = 0, and a later round whose B moved removes nothing more.
func TestFedSVDFOTProjectsEveryRound(t *testing.T) {
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 3, W: 4}, Hidden: []int{10}, Classes: 3, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 4, Alpha: 8}})
	if err != nil {
		t.Fatal(err)
	}
	def, _ := Lookup("fedsvd")
	opts, err := def.Resolve(nil, map[string]any{"fot": true, "period": 100})
	if err != nil {
		t.Fatal(err)
	}
	rule, err := def.Server(opts, Env{Model: m, Seed: 5, ServerLR: 1, FOT: DefaultFOT(), Clients: 2})
	if err != nil {
		t.Fatal(err)
	}
	l := rule.(*loraState)
	r := rand.New(rand.NewPCG(7, 8))
	params := make([]float32, m.NumParams())
	for i := range params {
		params[i] = float32(r.NormFloat64())
	}
	ad := m.Adapters()[0] // the 12 -> 10 layer
	k := l.fotLayer[0]
	// A basis of 3 directions of the layer's 12 inputs, as GPSE would grow.
	q := mat.NewDense(12, 3, nil)
	for i := range 12 {
		for j := range 3 {
			q.Set(i, j, r.NormFloat64())
		}
	}
	var qr mat.QR
	qr.Factorize(q)
	var u mat.Dense
	qr.QTo(&u)
	l.fot.bases[k].Set(u.Slice(0, 12, 0, 3))
	share := func() float64 { // ||B A U||_F / ||B A||_F in float64
		b := params[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols]
		a := params[ad.A.Offset : ad.A.Offset+ad.A.Rows*ad.A.Cols]
		var gone, total float64
		for o := range ad.B.Rows {
			row := make([]float64, ad.A.Cols)
			for q := range ad.A.Rows {
				for j := range ad.A.Cols {
					row[j] += float64(b[o*ad.A.Rows+q]) * float64(a[q*ad.A.Cols+j])
				}
			}
			for c := range 3 {
				var s float64
				for j, v := range row {
					s += v * u.At(j, c)
				}
				gone += s * s
			}
			for _, v := range row {
				total += v * v
			}
		}
		return math.Sqrt(gone / total)
	}
	before := share()
	if before < 0.1 {
		t.Fatalf("the random product has only %v in span(U)", before)
	}
	round := func(i int) {
		if err := rule.AfterApply(&server.Applied{Round: i, Params: params, Before: params, Ups: []aggregator.Update{}, Agg: make([]float32, len(params))}); err != nil {
			t.Fatal(err)
		}
	}
	round(0)
	if s := share(); s > 1e-6 {
		t.Errorf("after a round without refactor, %v of B A is in span(U)", s)
	}
	if got := l.fot.removed[k]; math.Abs(got-before) > 1e-6 || l.fot.rounds != 1 {
		t.Errorf("recorded removed share %v over %d rounds, want %v over 1", got, l.fot.rounds, before)
	}
	// Clients move B (FedSVD trains B only): the product stays off span(U).
	for i := ad.B.Offset; i < ad.B.Offset+ad.B.Rows*ad.B.Cols; i++ {
		params[i] += float32(0.5 * r.NormFloat64())
	}
	if s := share(); s > 1e-6 {
		t.Errorf("a step on B alone put %v of B A into span(U)", s)
	}
	round(1)
	if got := l.fot.removed[k] - before; got > 1e-6 {
		t.Errorf("the second round removed %v more", got)
	}
}
