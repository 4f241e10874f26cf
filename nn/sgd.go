package nn

import "fmt"

// SGD is stochastic gradient descent with PyTorch's semantics (dampening 0,
// no Nesterov).
type SGD struct {
	LR          float32 // learning rate
	WeightDecay float32 // L2 penalty coefficient, added to the gradient
	Momentum    float32 // 0 = plain SGD
}

// Step updates params in place from grad, element by element:
//
//	g = grad + WeightDecay*p
//	if Momentum > 0: v = Momentum*v + g; g = v
//	p = p - LR*g
//
// grad is not modified. velocity holds the momentum buffer (start it at
// zero, as PyTorch's first step v = g is then the same formula); it may be
// nil when Momentum == 0. It panics on length mismatch.
func (o SGD) Step(params, grad, velocity []float32) {
	if len(grad) != len(params) {
		panic(fmt.Sprintf("nn: grad has %d values, params %d", len(grad), len(params)))
	}
	if o.Momentum != 0 && len(velocity) != len(params) {
		panic(fmt.Sprintf("nn: velocity has %d values, params %d", len(velocity), len(params)))
	}
	o.step(params, grad, velocity)
}

// StepRanges is Step restricted to the parameters inside r: params[i] and
// velocity[i] change only for i in r (weight decay too applies only
// there); the rest of params and velocity is left as it is, whatever grad
// holds outside r. grad is not modified; velocity may be nil when
// Momentum == 0. It allocates nothing and panics on length mismatch or if
// r does not fit len(params).
func (o SGD) StepRanges(params, grad, velocity []float32, r Ranges) {
	if len(grad) != len(params) {
		panic(fmt.Sprintf("nn: grad has %d values, params %d", len(grad), len(params)))
	}
	if o.Momentum != 0 && len(velocity) != len(params) {
		panic(fmt.Sprintf("nn: velocity has %d values, params %d", len(velocity), len(params)))
	}
	r.check(len(params))
	for _, q := range r {
		var v []float32
		if o.Momentum != 0 {
			v = velocity[q[0]:q[1]]
		}
		o.step(params[q[0]:q[1]], grad[q[0]:q[1]], v)
	}
}

// step is Step on checked slices; velocity is unused when Momentum == 0.
func (o SGD) step(params, grad, velocity []float32) {
	if n := stepSIMD(o, params, grad, velocity); n > 0 {
		// The vector kernel did the first n values with the same
		// operations in the same order (no fused multiply-add): the
		// same bits as the loops below.
		params, grad = params[n:], grad[n:len(params)]
		if o.Momentum != 0 {
			velocity = velocity[n:]
		}
	}
	stepGo(o, params, grad, velocity)
}

// stepGo is step in plain Go.
func stepGo(o SGD, params, grad, velocity []float32) {
	lr, wd, mom := o.LR, o.WeightDecay, o.Momentum
	grad = grad[:len(params)]
	if mom == 0 {
		for i, p := range params {
			params[i] = p - lr*(grad[i]+wd*p)
		}
		return
	}
	velocity = velocity[:len(params)]
	for i, p := range params {
		v := mom*velocity[i] + grad[i] + wd*p
		velocity[i] = v
		params[i] = p - lr*v
	}
}
