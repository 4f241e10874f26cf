package methods_test

import (
	"testing"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/nn"
)

// The fixtures of the client-side host tests (client_host_test.go) come
// from package clienttest, shared with package client's own tests; what is
// here is about the methods only. Every identifier starts with cl so that
// the server-side test fixtures of this package cannot clash.

// clBehaviour builds the client side of the registered method name with
// the written options laid over its defaults, and returns it with the
// resolved options.
func clBehaviour(t *testing.T, name string, written map[string]any, m *nn.Model, batch int) (client.Behaviour, any) {
	t.Helper()
	def, ok := methods.Lookup(name)
	if !ok {
		t.Fatalf("method %q is not registered", name)
	}
	opts, err := def.Resolve(nil, written)
	if err != nil {
		t.Fatalf("%s: Resolve(%v): %v", name, written, err)
	}
	if p := def.Check(opts); len(p) > 0 {
		t.Fatalf("%s: options %+v: %v", name, opts, p)
	}
	b, err := def.Client(opts, methods.Env{Model: m, Seed: clienttest.Seed, BatchSize: batch})
	if err != nil {
		t.Fatalf("%s: Client: %v", name, err)
	}
	if b == nil {
		t.Fatalf("%s: no client behaviour", name)
	}
	return b, opts
}
