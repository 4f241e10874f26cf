package nn

import (
	"errors"
	"fmt"
	"math"
)

// ErrSpec is wrapped by every error Spec.Validate and Build return.
var ErrSpec = errors.New("nn: invalid spec")

// Shape is the shape of one input sample: channels, height, width.
// Samples are stored channel-major, (C, H, W), like PyTorch.
type Shape struct{ C, H, W int }

// Size returns C*H*W, the number of values in one sample.
func (s Shape) Size() int { return s.C * s.H * s.W }

// ConvSpec is one convolution block of a "cnn": conv -> ReLU -> optional max-pool.
type ConvSpec struct {
	Out    int // output channels
	Kernel int // square kernel side kh = kw
	Stride int // 0 means 1
	Pad    int // zero padding on every side
	Pool   int // 0 or 1: no pooling; p > 1: max-pool p x p with stride p (floor mode)
}

// stride returns the effective stride.
func (c ConvSpec) stride() int {
	if c.Stride == 0 {
		return 1
	}
	return c.Stride
}

// pool returns the effective pool size, 0 meaning none.
func (c ConvSpec) pool() int {
	if c.Pool <= 1 {
		return 0
	}
	return c.Pool
}

// Spec describes a model.
//
//	mlp: Flatten(In) -> [Linear -> ReLU -> Dropout]* per Hidden -> head(s)
//	cnn: [Conv -> ReLU -> MaxPool?]* per Conv -> Flatten -> as mlp
//
// Every head is a Linear layer of Classes outputs on the last hidden layer
// (or on the flattened input/feature map when Hidden is empty).
type Spec struct {
	Arch    string     // "mlp" | "cnn"
	In      Shape      // e.g. {1, 28, 28}
	Conv    []ConvSpec // cnn only: conv -> ReLU -> (maxpool) blocks, then Flatten
	Hidden  []int      // fully connected hidden widths (mlp; also cnn after the convs)
	Dropout []float64  // len == len(Hidden) (or empty = none): dropout after that hidden layer's ReLU
	Classes int        // outputs of one head
	Heads   int        // 1 = one shared head; T = one head per task (task-incremental)
	LoRA    *LoRASpec  // nil = no adapters; else LoRA adapters on the named weights, see LoRASpec
}

// Validate reports every problem of s at once, each wrapping ErrSpec.
func (s Spec) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: "+format, append([]any{ErrSpec}, args...)...))
	}
	switch s.Arch {
	case "mlp":
		if len(s.Conv) > 0 {
			bad("arch mlp has %d conv blocks, want 0", len(s.Conv))
		}
	case "cnn":
		if len(s.Conv) == 0 {
			bad("arch cnn has no conv blocks")
		}
	default:
		bad("arch %q, want mlp or cnn", s.Arch)
	}
	if s.In.C < 1 || s.In.H < 1 || s.In.W < 1 {
		bad("input shape %+v, want every side >= 1", s.In)
	}
	if s.Arch == "cnn" && s.In.C >= 1 && s.In.H >= 1 && s.In.W >= 1 {
		h, w := s.In.H, s.In.W
		for i, c := range s.Conv {
			if c.Out < 1 {
				bad("conv[%d].out %d, want >= 1", i, c.Out)
			}
			if c.Kernel < 1 {
				bad("conv[%d].kernel %d, want >= 1", i, c.Kernel)
			}
			if c.Stride < 0 {
				bad("conv[%d].stride %d, want >= 0", i, c.Stride)
			}
			if c.Pad < 0 {
				bad("conv[%d].pad %d, want >= 0", i, c.Pad)
			}
			if c.Pool < 0 {
				bad("conv[%d].pool %d, want >= 0", i, c.Pool)
			}
			if c.Out < 1 || c.Kernel < 1 || c.Stride < 0 || c.Pad < 0 || c.Pool < 0 {
				break // later sizes are meaningless
			}
			if h+2*c.Pad < c.Kernel || w+2*c.Pad < c.Kernel {
				bad("conv[%d]: kernel %d larger than padded input %dx%d", i, c.Kernel, h+2*c.Pad, w+2*c.Pad)
				break
			}
			h, w = convOut(h, c.Kernel, c.stride(), c.Pad), convOut(w, c.Kernel, c.stride(), c.Pad)
			if p := c.pool(); p > 0 {
				if h < p || w < p {
					bad("conv[%d]: pool %d larger than feature map %dx%d", i, p, h, w)
					break
				}
				h, w = h/p, w/p
			}
		}
	}
	for i, n := range s.Hidden {
		if n < 1 {
			bad("hidden[%d] = %d, want >= 1", i, n)
		}
	}
	if len(s.Dropout) != 0 && len(s.Dropout) != len(s.Hidden) {
		bad("%d dropout rates for %d hidden layers, want %d or none", len(s.Dropout), len(s.Hidden), len(s.Hidden))
	}
	for i, p := range s.Dropout {
		if !(p >= 0 && p < 1) {
			bad("dropout[%d] = %v, want in [0, 1)", i, p)
		}
	}
	if s.Classes < 1 {
		bad("classes %d, want >= 1", s.Classes)
	}
	if s.Heads < 1 {
		bad("heads %d, want >= 1", s.Heads)
	}
	if s.LoRA != nil {
		s.validateLoRA(bad)
	}
	return errors.Join(errs...)
}

// validateLoRA reports the problems of s.LoRA through bad.
func (s Spec) validateLoRA(bad func(format string, args ...any)) {
	l := s.LoRA
	if l.Rank < 0 {
		bad("lora rank %d, want >= 1 (or 0 for the default %d)", l.Rank, DefaultLoRARank)
	}
	if !(l.Alpha >= 0) || math.IsInf(l.Alpha, 0) {
		bad("lora alpha %v, want finite and > 0 (or 0 for the default %v)", l.Alpha, DefaultLoRAAlpha)
	}
	names, shared := s.weightNames()
	known := make(map[string]bool, len(names))
	for _, n := range names {
		known[n] = true
	}
	seen := make(map[string]bool, len(l.Layers))
	for i, n := range l.Layers {
		switch {
		case !known[n]:
			bad("lora layers[%d] %q is not a weight of the model (have %v)", i, n, names)
		case seen[n]:
			bad("lora layers[%d] %q listed twice", i, n)
		}
		seen[n] = true
	}
	if len(l.Layers) == 0 {
		some := false
		for _, sh := range shared {
			some = some || sh
		}
		if !some {
			bad("lora adapts every shared weight, but the model has none (name the per-task heads in lora layers)")
		}
	}
}

// weightNames returns the names of the weight matrices Build lays out, in
// the order of Model.Weights, and whether each is shared.
func (s Spec) weightNames() (names []string, shared []bool) {
	for i := range s.Conv {
		names, shared = append(names, fmt.Sprintf("conv%d.weight", i)), append(shared, true)
	}
	for i := range s.Hidden {
		names, shared = append(names, fmt.Sprintf("fc%d.weight", i)), append(shared, true)
	}
	for t := 0; t < s.Heads; t++ {
		names, shared = append(names, headName(t, s.Heads)+".weight"), append(shared, s.Heads == 1)
	}
	return names, shared
}

// headName is the layer name of head t of heads: "head" or "head<t>".
func headName(t, heads int) string {
	if heads == 1 {
		return "head"
	}
	return fmt.Sprintf("head%d", t)
}

// convOut is the output side of a convolution: (in + 2*pad - k)/stride + 1.
func convOut(in, k, stride, pad int) int { return (in+2*pad-k)/stride + 1 }
