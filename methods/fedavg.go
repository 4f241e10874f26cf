package methods

// FedAvg (docs/ALGORITHMS.md §1): clients run local SGD from the global
// model; the server applies the mean of their deltas. It needs no client
// behaviour and no server rule: the round loop is FedAvg.
func init() {
	Register(Def[NoOptions]{Spec: Spec{
		Name:    "fedavg",
		Summary: "FedAvg: clients run local SGD, the server averages their models (docs/ALGORITHMS.md 1)",
	}})
}
