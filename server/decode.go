package server

import (
	"fmt"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Decoder is implemented by a Rule whose clients send their delta in a
// form of their own (compressed: top-k entries, quantised codes) instead
// of a protocol.TensorDelta tensor. The server calls DecodeUpdate for
// every update of a normal round, under the collection lock and after
// the sender and round checks; it returns the update's compact delta
// (n values, protocol.Trainable's layout) decoded from m's tensors, in
// storage the update may keep, or an error naming what is malformed (the
// update is then rejected under RejectRule). The bytes the update is
// counted for are its encoding as received.
type Decoder interface {
	DecodeUpdate(m *transport.Message, n int) ([]float32, error)
}

// decodeUpdate turns the method's own delta encoding of update m into its
// protocol.TensorDelta tensor, when the Rule is a Decoder; s.mu is held.
func (s *Server) decodeUpdate(m *transport.Message) (reason string, err error) {
	d, ok := s.rule.(Decoder)
	if !ok {
		return "", nil
	}
	if s.col.flags&(protocol.FlagBase|protocol.FlagNoTrain) != 0 {
		if m.Tensor(protocol.TensorDelta) == nil { // pretraining rounds send the plain delta
			return RejectShape, fmt.Errorf("no %q tensor", protocol.TensorDelta)
		}
		return "", nil
	}
	if m.Tensor(protocol.TensorDelta) != nil {
		return RejectShape, fmt.Errorf("a %q tensor, but the method sends its delta encoded", protocol.TensorDelta)
	}
	n := protocol.Trainable(s.model, s.cfg.LoRA, s.col.flags).Size()
	delta, err := d.DecodeUpdate(m, n)
	if err != nil {
		return RejectRule, err
	}
	if len(delta) != n {
		return RejectRule, fmt.Errorf("the decoded delta has %d values, want %d", len(delta), n)
	}
	m.Tensors = append(m.Tensors, transport.Tensor{Name: protocol.TensorDelta, Rows: 1, Cols: n, Data: delta})
	return s.checkNorm(&m.Tensors[len(m.Tensors)-1])
}
