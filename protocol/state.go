package protocol

import "io"

// Stateful is implemented by a method's side (a server.Rule or a
// client.Behaviour) that keeps state from one round to the next which the
// round messages alone do not rebuild: FOT's bases, EWC's Fisher sums,
// FLwF's teacher. A checkpoint saves it after a round (SaveState) and a
// resumed run loads it into a freshly built side (LoadState) before the
// next round; LoadState of SaveState's bytes must give a side that behaves
// exactly, bit for bit, as the saved one. Sides that keep nothing across
// rounds (buffers only) do not implement it.
type Stateful interface {
	SaveState(w io.Writer) error
	LoadState(r io.Reader) error
}

// HasState reports whether a method's side keeps state across rounds.
func HasState(side any) bool {
	_, ok := side.(Stateful)
	return ok
}
