package server

// LastSecureSum returns the decoded sum of the last secure round (the
// weighted deltas, the weight, the summed tensors), its summed weight and
// the number of survivors.
func (s *Server) LastSecureSum() (sum []float64, weight float64, survivors int) {
	return s.lastSecure.Sum, s.lastSecure.Weight, s.lastSecure.Survivors
}
