package nn

// TrainFLOPs counts the floating-point operations of the matrix products of
// one training step on batch samples, 2*m*n*k per product: the forward and
// weight-gradient products of every layer, and the input-gradient product
// of every layer but the first (the input needs no gradient). Element-wise
// work (bias, ReLU, dropout, pooling, softmax) is not counted.
func (m *Model) TrainFLOPs(batch int) float64 {
	var f float64
	first := true
	layer := func(rows, dout, din int) {
		p := 2 * float64(rows) * float64(dout) * float64(din)
		f += 2 * p
		if !first {
			f += p
		}
		first = false
	}
	for _, l := range m.convs {
		layer(batch*l.outH*l.outW, l.outC, l.din())
	}
	for _, l := range m.hidden {
		layer(batch, l.dout, l.din)
	}
	h := m.heads[0]
	layer(batch, h.dout, h.din)
	return f
}
