package protocol

import (
	"fmt"

	"github.com/fotsim/fotsim/nn"
)

// Flags set by the server on a round broadcast (transport.Message.Flags);
// a client echoes FlagSketch and FlagFisher on updates that carry them.
const (
	// FlagSketch asks the selected clients to run GPSE after training and
	// send their activation sketches with the update.
	FlagSketch uint32 = 1 << iota
	// FlagFisher asks the selected clients to send the diagonal Fisher
	// information of their local model (EWC, FedCurv).
	FlagFisher
	// FlagBase marks a pretraining round (scenario pretrain:, federated
	// mode): the clients train every base parameter, LoRA adapters left
	// alone, with plain SGD (never DP), and send that delta.
	FlagBase
	// FlagNoTrain asks the selected clients not to train: they send a zero
	// delta and whatever else the flags ask for (GPSE sketches, Fisher) on
	// the global model. The server uses it after a central pretraining
	// task, so that FOT and EWC learn about that task too.
	FlagNoTrain
)

// Tensor and scalar names of rounds and updates.
const (
	TensorParams = "params" // round: the global model
	// TensorAdapters is, in the round of a LoRA run whose base did not
	// change since the last TensorParams, the LoRA factors alone (A and B
	// of every adapter, in Trainable(model, "ab", 0) order) instead of
	// TensorParams: the host puts them into the base it keeps.
	TensorAdapters = "adapters"
	// ScalarBaseVersion numbers, in LoRA rounds, the base (every parameter
	// but the adapters) a round's model has: a host keeps the base of the
	// last TensorParams with its version and uses it for a TensorAdapters
	// round of the same version only.
	ScalarBaseVersion = "base_version"
	TensorDelta       = "delta" // update: local minus global parameters (Trainable ones)
	ScalarLoss        = "loss"  // update: mean training loss
	ScalarSteps       = "steps" // update: SGD steps taken
	ScalarDPQ         = "dp_q"  // update, DP-SGD only: the Poisson sampling rate of those steps
	// ScalarTrainSeconds is the client's local training wall time (for
	// timing reports only; it never enters a result).
	ScalarTrainSeconds = "train_seconds"
	TensorFisher       = "fisher" // update: diagonal Fisher of the local model
	TensorQuadU        = "quad/u" // round: quadratic penalty weights U (EWC, FedCurv)
	TensorQuadV        = "quad/v" // round: quadratic penalty centre term V
	// TensorCurvAccepted lists (as float32 ids) the clients whose Fisher
	// the server added to FedCurv's sums at the end of the last task; the
	// sums are means over them.
	TensorCurvAccepted = "curv/accepted"
)

// Names of the GPSE tensors and scalars of projected layer i (its index in
// Projected): the round's basis, the update's sketch and residual ratio.
func BasisTensor(i int) string  { return fmt.Sprintf("basis/%d", i) }
func SketchTensor(i int) string { return fmt.Sprintf("sketch/%d", i) }
func RatioScalar(i int) string  { return fmt.Sprintf("ratio/%d", i) }

// Projected returns the weight matrices FOT projects, in order: every
// shared weight (trunk layers and a single shared head), never per-task
// heads. Their position in this list names their tensors on the wire.
func Projected(m *nn.Model) []nn.ParamView {
	var out []nn.ParamView
	for _, w := range m.Weights() {
		if w.Shared {
			out = append(out, w)
		}
	}
	return out
}

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
		panic(fmt.Sprintf("protocol: Compact dst has %d values, ranges %d", len(dst), r.Size()))
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
		panic(fmt.Sprintf("protocol: Scatter has %d values, ranges %d", len(compact), r.Size()))
	}
	k := 0
	for _, q := range r {
		k += copy(dst[q[0]:q[1]], compact[k:k+q[1]-q[0]])
	}
}
