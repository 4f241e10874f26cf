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
	lr, wd, mom := o.LR, o.WeightDecay, o.Momentum
	grad = grad[:len(params)]
	if mom == 0 {
		for i, p := range params {
			params[i] = p - lr*(grad[i]+wd*p)
		}
		return
	}
	if len(velocity) != len(params) {
		panic(fmt.Sprintf("nn: velocity has %d values, params %d", len(velocity), len(params)))
	}
	velocity = velocity[:len(params)]
	for i, p := range params {
		v := mom*velocity[i] + grad[i] + wd*p
		velocity[i] = v
		params[i] = p - lr*v
	}
}
