package gemm_test

import (
	"fmt"

	"github.com/fotsim/fotsim/nn/gemm"
)

// A Linear layer's forward pass for a batch of 2: Y = X * W^T, with W
// stored d_out x d_in as fotsim stores it.
func Example() {
	be, err := gemm.Lookup("simd")
	if err != nil {
		panic(err)
	}
	x := []float32{ // 2 x 3
		1, 2, 3,
		4, 5, 6,
	}
	w := []float32{ // 2 x 3 (d_out x d_in)
		1, 0, -1,
		0.5, 0.5, 0.5,
	}
	y := make([]float32, 2*2)
	be.Sgemm(false, true, 2, 2, 3, 1, x, 3, w, 3, 0, y, 2)
	fmt.Println(y)
	// Output: [-2 3 -2 7.5]
}
