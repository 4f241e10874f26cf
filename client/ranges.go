package client

import (
	"fmt"

	"github.com/fotsim/fotsim/nn"
)

// Trainable returns the parameters a client trains in a round with the
// given flags, which are also the values its update's delta tensor carries
// (in offset order, see Compact): every base parameter in a pretraining
// round (FlagBase; the LoRA adapters keep B = 0 there), else the LoRA
// factors of a LoRA method (lora "ab": every A and B; "b": every B), else
// every parameter. The server calls it too, to check and scatter updates.
func Trainable(m *nn.Model, lora string, flags uint32) nn.Ranges {
	switch {
	case flags&FlagBase != 0:
		return m.BaseParams()
	case lora != "":
		return m.AdapterParams(lora)
	}
	return m.AllParams()
}

// Compact writes the values of x inside r, range after range, into dst
// (len r.Size()) and returns it. It panics if the lengths do not fit.
func Compact(dst, x []float32, r nn.Ranges) []float32 {
	if len(dst) != r.Size() {
		panic(fmt.Sprintf("client: Compact dst has %d values, ranges %d", len(dst), r.Size()))
	}
	k := 0
	for _, q := range r {
		k += copy(dst[k:], x[q[0]:q[1]])
	}
	return dst
}

// Scatter is the inverse of Compact: it writes compact's values into dst
// at the offsets of r and leaves the rest of dst alone. It panics if the
// lengths do not fit.
func Scatter(dst, compact []float32, r nn.Ranges) {
	if len(compact) != r.Size() {
		panic(fmt.Sprintf("client: Scatter has %d values, ranges %d", len(compact), r.Size()))
	}
	k := 0
	for _, q := range r {
		k += copy(dst[q[0]:q[1]], compact[k:k+q[1]-q[0]])
	}
}
