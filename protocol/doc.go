// Package protocol is the vocabulary that the server and the client hosts
// share on top of the wire codec (package transport): the flags of a round,
// the names of the tensors and scalars that rounds and updates carry, and
// the layout of an update's delta (Trainable, Compact, Scatter; the
// weights FOT projects, Projected).
//
// It is a leaf of the project's own packages: it imports only nn (for the
// parameter layout) and transport, so that server/ and client/ agree on the
// protocol without importing each other.
//
//	train := protocol.Trainable(model, "b", m.Flags) // what a delta carries
//	protocol.Scatter(full, compact, train)
package protocol
