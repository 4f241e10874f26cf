package server

import (
	"math"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// baseTracker decides, in a LoRA run, whether a round sends the whole
// model or only the adapters: the base (every parameter but the adapters'
// A and B) is sent again only when it changed since it was last sent
// (pretraining, FLoRA's and FedEx-LoRA's merges into W0), so the bytes
// down of fedavg-lora, ffa-lora and fedsvd rounds are the factors'.
type baseTracker struct {
	on      bool
	ranges  nn.Ranges // the adapters' parameter ranges (Trainable "ab")
	base    []float32 // the global model last sent whole
	version int       // the base's version, bumped when it changes
	sent    bool      // a whole model was sent
	dirty   bool      // base is not what was sent (a resumed run: State.BaseDirty)
}

// modelTensor returns the tensor of the global model params for a round
// message, and the base version scalar of a LoRA run (ok false
// otherwise): TensorParams, or TensorAdapters when the base is unchanged
// since the last TensorParams. whole forces TensorParams.
func (s *Server) modelTensor(params []float32, whole bool) (t transport.Tensor, v transport.Scalar, ok bool) {
	b := &s.base
	full := transport.Tensor{Name: protocol.TensorParams, Rows: 1, Cols: len(params), Data: params}
	if s.cfg.LoRA == "" {
		return full, v, false
	}
	if !b.on {
		b.on, b.ranges = true, protocol.Trainable(s.model, "ab", 0)
	}
	same := b.sent && !b.dirty && b.sameBase(params)
	b.dirty = false
	if !same {
		b.base = append(b.base[:0], params...)
		b.version++
		b.sent = true
	}
	v = transport.Scalar{Name: protocol.ScalarBaseVersion, Value: float64(b.version)}
	if !same || whole {
		return full, v, true
	}
	ad := make([]float32, 0, b.ranges.Size())
	for _, r := range b.ranges {
		ad = append(ad, params[r[0]:r[1]]...)
	}
	return transport.Tensor{Name: protocol.TensorAdapters, Rows: 1, Cols: len(ad), Data: ad}, v, true
}

// sameBase reports whether params has the base last sent (everything
// outside the adapters' ranges, bit for bit).
func (b *baseTracker) sameBase(params []float32) bool {
	if len(params) != len(b.base) {
		return false
	}
	lo := 0
	for _, r := range append(b.ranges[:len(b.ranges):len(b.ranges)], [2]int{len(params), len(params)}) {
		for i := lo; i < r[0]; i++ {
			if math.Float32bits(params[i]) != math.Float32bits(b.base[i]) {
				return false
			}
		}
		lo = r[1]
	}
	return true
}
