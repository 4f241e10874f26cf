package nn_test

import (
	"fmt"
	"math"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Fine-tune only the LoRA B matrices of a small MLP (as FFA-LoRA and
// FedSVD clients do), fold the adapters into the weights, then take one
// DP-SGD gradient with per-sample clipping.
func Example_lora() {
	m, err := nn.Build(nn.Spec{
		Arch:    "mlp",
		In:      nn.Shape{C: 1, H: 2, W: 2},
		Hidden:  []int{8},
		Classes: 3,
		Heads:   1,
		LoRA:    &nn.LoRASpec{Rank: 4, Alpha: 8},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	params := make([]float32, m.NumParams())
	m.Init(params, rng.New(1, "init"))
	for _, ad := range m.Adapters() {
		fmt.Printf("%s: A %dx%d, B %dx%d, scale %v\n", ad.Name, ad.A.Rows, ad.A.Cols, ad.B.Rows, ad.B.Cols, ad.Scale)
	}
	x := []float32{
		1, 0, 0, 1, // class 0
		0, 1, 1, 0, // class 1
		1, 1, 1, 1, // class 2
	}
	y := []int32{0, 1, 2}

	ws := m.NewWorkspace(len(y))
	grad := make([]float32, m.NumParams())
	train := m.AdapterParams("b")
	opt := nn.SGD{LR: 0.5}
	for step := 0; step < 300; step++ {
		ws.LossGradRanges(params, grad, x, y, len(y), 0, nil, train)
		opt.StepRanges(params, grad, nil, train)
	}
	pred := make([]int32, len(y))
	ws.Predict(params, x, len(y), 0, pred)
	fmt.Println("predicted:", pred)

	m.MergeAdapters(params) // W0 += s B A, B = 0: same function
	ws.Predict(params, x, len(y), 0, pred)
	fmt.Println("after merge:", pred)

	const clip = 0.1
	_, norms := ws.LossGradClipped(params, grad, x, y, len(y), 0, nil, clip, m.AllParams())
	var sq float64
	for _, g := range grad {
		sq += float64(g) * float64(g)
	}
	fmt.Println("per-sample norms:", len(norms), "sum norm <= batch*C:", math.Sqrt(sq) <= float64(len(y))*clip*1.0001)
	// Output:
	// fc0.weight: A 4x4, B 8x4, scale 2
	// head.weight: A 4x8, B 3x4, scale 2
	// predicted: [0 1 2]
	// after merge: [0 1 2]
	// per-sample norms: 3 sum norm <= batch*C: true
}
