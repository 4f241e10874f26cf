package methods

import (
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server"
)

// FLoRA (docs/ALGORITHMS.md §4): the server merges the clients' own
// products into W0 and starts new adapters every round.
func init() {
	Register(Def[NoOptions]{
		Spec: Spec{
			Name:     "flora",
			Summary:  "FLoRA: clients train A and B; the server merges sum_k p_k s B_k A_k into W0 and re-initialises A (random) and B = 0",
			LoRA:     "ab",
			NoSecAgg: "its server merges each client's own product B_k A_k (the individual updates)",
		},
		NewServer: newLoRARule[NoOptions]("flora", floraAfter),
	})
}

// floraAfter merges lr s sum_k p_k B_k A_k into W0, then draws A anew from
// the stream (seed, "lora-reinit", round) and sets B = 0.
func floraAfter(l *loraState, a *server.Applied) error {
	l.mergeClients(a.Params, a.Before, a.Ups, a.Agg, float64(l.lr), false)
	l.model.InitAdapters(a.Params, rng.New(l.seed, "lora-reinit", a.Round))
	return nil
}
