package methods

import "github.com/fotsim/fotsim/server"

// FedEx-LoRA (docs/ALGORITHMS.md §4): the averaged adapters plus the exact
// residual of the average of products, merged into W0.
func init() {
	Register(Def[NoOptions]{
		Spec: Spec{
			Name:     "fedex-lora",
			Summary:  "FedEx-LoRA: clients train A and B; the server averages A and B and merges the residual s (sum_k p_k B_k A_k - B_avg A_avg) into W0",
			LoRA:     "ab",
			NoSecAgg: "its server merges the residual of each client's own product B_k A_k (the individual updates)",
		},
		NewServer: newLoRARule[NoOptions]("fedex-lora", fedexAfter),
	})
}

// fedexAfter merges s (sum_k p_k B_k A_k - B_avg A_avg) into W0.
func fedexAfter(l *loraState, a *server.Applied) error {
	l.mergeClients(a.Params, a.Before, a.Ups, a.Agg, 1, true)
	return nil
}
