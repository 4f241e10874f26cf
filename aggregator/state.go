package aggregator

import (
	"bytes"
	"encoding/gob"
	"fmt"
)

// basisState is the saved form of a Basis: its exact float64 vectors and
// the singular values of its last extension (the float32 copy is rebuilt).
type basisState struct {
	Dim, K int
	U      []float64
	SV     []float64
}

// GobEncode saves b exactly (for checkpoints): restoring it gives a basis
// whose projections and extensions have the same bits.
func (b *Basis) GobEncode() ([]byte, error) {
	var buf bytes.Buffer
	err := gob.NewEncoder(&buf).Encode(basisState{Dim: b.dim, K: b.k, U: b.u, SV: b.sv})
	return buf.Bytes(), err
}

// GobDecode restores a basis saved by GobEncode.
func (b *Basis) GobDecode(data []byte) error {
	var s basisState
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&s); err != nil {
		return fmt.Errorf("aggregator: saved basis: %w", err)
	}
	if s.Dim < 1 || s.K < 0 || s.K > s.Dim || len(s.U) < s.Dim*s.K {
		return fmt.Errorf("aggregator: saved basis of %d vectors of length %d with %d values", s.K, s.Dim, len(s.U))
	}
	*b = Basis{dim: s.Dim, sv: s.SV}
	b.setRaw(s.U, s.K)
	return nil
}
