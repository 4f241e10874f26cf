package methods

// FedAvg-LoRA (docs/ALGORITHMS.md §4): clients train LoRA A and B with the
// base frozen; the server averages A and B separately.
func init() {
	Register(Def[NoOptions]{
		Spec: Spec{
			Name:    "fedavg-lora",
			Summary: "FedAvg-LoRA: clients train LoRA A and B (base frozen), the server averages A and B separately (docs/ALGORITHMS.md 4)",
			LoRA:    "ab",
		},
		NewServer: newLoRARule[NoOptions]("fedavg-lora", nil),
	})
}
