package client

import (
	"fmt"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// baseCache is the base a host keeps in a LoRA run: the global model of
// the last round that sent it whole (protocol.TensorParams) and its
// version (protocol.ScalarBaseVersion). A round that sends only the
// adapters (protocol.TensorAdapters) is turned back into a whole model
// with it.
type baseCache struct {
	params  []float32
	version float64
	ok      bool
}

// expand makes m carry the whole global model: a TensorParams round of a
// LoRA run is kept as the base; a TensorAdapters round gets a
// TensorParams tensor made of the base with the adapters written in (a
// new buffer, m keeps it). It fails for a TensorAdapters round whose base
// version this host does not have (it joined late, or missed the round
// that sent it): the server sends the round whole when it sends it again.
// The serve loop calls it, one message at a time.
func (h *Host) expand(m *transport.Message) error {
	v, versioned := m.Scalar(protocol.ScalarBaseVersion)
	if g := m.Tensor(protocol.TensorParams); g != nil {
		if versioned {
			h.base.params = append(h.base.params[:0], g.Data...)
			h.base.version, h.base.ok = v, true
		}
		return nil
	}
	ad := m.Tensor(protocol.TensorAdapters)
	if ad == nil {
		return nil // the size check reports it
	}
	if !h.base.ok || !versioned || v != h.base.version {
		return fmt.Errorf("round %d sends the adapters of base version %v; this host has %v", m.Round, v, h.baseVersion())
	}
	ranges := protocol.Trainable(h.model, "ab", 0)
	if len(ad.Data) != ranges.Size() {
		return fmt.Errorf("round %d sends %d adapter values, the model has %d", m.Round, len(ad.Data), ranges.Size())
	}
	global := append([]float32(nil), h.base.params...)
	k := 0
	for _, r := range ranges {
		k += copy(global[r[0]:r[1]], ad.Data[k:])
	}
	m.Tensors = append(m.Tensors, transport.Tensor{Name: protocol.TensorParams, Rows: 1, Cols: len(global), Data: global})
	return nil
}

// baseVersion describes the base this host has, for errors.
func (h *Host) baseVersion() string {
	if !h.base.ok {
		return "none"
	}
	return fmt.Sprint(h.base.version)
}

// KeepBase gives the host, before Start, the base of version version that
// its predecessor had: params' base (every parameter but the adapters). A
// run resumed from a checkpoint (server.State.BaseSent and not BaseDirty)
// calls it, so that its first adapters-only round trains as it would have.
func (h *Host) KeepBase(params []float32, version int) {
	h.base.params = append(h.base.params[:0], params...)
	h.base.version, h.base.ok = float64(version), true
}
