package methods

import (
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// BaseRule implements every server.Rule method as FedAvg does (nothing):
// embed it in a method's rule and write only the hooks the method needs.
type BaseRule struct{}

func (BaseRule) Flags(task int, last bool) uint32 { return 0 }
func (BaseRule) Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	return ts
}
func (BaseRule) Check(m *transport.Message, flags uint32) error { return nil }
func (BaseRule) BeforeApply(agg []float32, task int)            {}
func (BaseRule) AfterApply(a *server.Applied) error             { return nil }
func (BaseRule) EndTask(got []*transport.Message, before, after []float32, task int, detail *results.TaskDetail) error {
	return nil
}

// BaseBehaviour implements every client.Behaviour method as plain local
// SGD does (nothing): embed it in a method's client side and write only the
// hooks the method needs.
type BaseBehaviour struct{}

func (BaseBehaviour) Round(m *transport.Message) error              { return nil }
func (BaseBehaviour) Extras(w *client.Work) (*client.Extras, error) { return nil, nil }
func (BaseBehaviour) Finish(w *client.Work) error                   { return nil }
