package client

// Internals for the external tests (package client_test), which use the
// shared fixtures of package clienttest and so cannot be in package client.

// SoftmaxMinusOneHot is softmaxMinusOneHot.
var SoftmaxMinusOneHot = softmaxMinusOneHot

// AddPenalties is addPenalties.
func (ex *Extras) AddPenalties(grad, w []float32) { ex.addPenalties(grad, w) }
