package nn_test

import (
	"fmt"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Build a small MLP, initialise it and take SGD steps on a tiny batch.
func Example() {
	m, err := nn.Build(nn.Spec{
		Arch:    "mlp",
		In:      nn.Shape{C: 1, H: 2, W: 2},
		Hidden:  []int{8},
		Dropout: []float64{0.1},
		Classes: 3,
		Heads:   1,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	params := make([]float32, m.NumParams())
	m.Init(params, rng.New(1, "init"))
	x := []float32{
		1, 0, 0, 1, // class 0
		0, 1, 1, 0, // class 1
		1, 1, 1, 1, // class 2
	}
	y := []int32{0, 1, 2}

	ws := m.NewWorkspace(len(y))
	grad := make([]float32, m.NumParams())
	opt := nn.SGD{LR: 0.5}
	dropout := rng.New(1, "dropout")
	for step := 0; step < 50; step++ {
		ws.LossGrad(params, grad, x, y, len(y), 0, dropout)
		opt.Step(params, grad, nil)
	}
	pred := make([]int32, len(y))
	ws.Predict(params, x, len(y), 0, pred)
	fmt.Println("parameters:", m.NumParams())
	fmt.Println("predicted:", pred)
	// Output:
	// parameters: 67
	// predicted: [0 1 2]
}
