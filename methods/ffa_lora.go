package methods

// FFA-LoRA (docs/ALGORITHMS.md §4): clients train only B, A stays at its
// random start; the server averages B.
func init() {
	Register(Def[NoOptions]{
		Spec: Spec{
			Name:    "ffa-lora",
			Summary: "FFA-LoRA: clients train only B, A stays at its random start; the server averages B",
			LoRA:    "b",
		},
		NewServer: newLoRARule[NoOptions]("ffa-lora", nil),
	})
}
