package methods_test

import (
	"testing"

	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/server"
)

// The fixtures of the tests of the methods' server rules
// (server_*_test.go) come from package servertest, shared with package
// server's own tests; what is here is about the methods only. Every
// identifier starts with srv so that the client-side test fixtures of this
// package cannot clash.

// srvRule builds the server rule of the registered method name with the
// options written (over the method's defaults; the FOT settings of the
// environment are methods.DefaultFOT()), as the simulator does. It also
// returns the method, whose Info().LoRA goes into server.Config.LoRA.
func srvRule(t *testing.T, name string, written map[string]any, e methods.Env) (methods.Method, server.Rule) {
	t.Helper()
	m, ok := methods.Lookup(name)
	if !ok {
		t.Fatalf("method %q is not registered", name)
	}
	opts, err := m.Resolve(nil, written)
	if err != nil {
		t.Fatalf("%s: Resolve(%v): %v", name, written, err)
	}
	if p := m.Check(opts); len(p) > 0 {
		t.Fatalf("%s: Check(%v): %v", name, written, p)
	}
	if e.FOT == (methods.FOTOptions{}) {
		e.FOT = methods.DefaultFOT()
	}
	if e.ServerLR == 0 {
		e.ServerLR = 1
	}
	r, err := m.Server(opts, e)
	if err != nil {
		t.Fatalf("%s: Server: %v", name, err)
	}
	if r == nil {
		t.Fatalf("%s: Server returned no rule", name)
	}
	return m, r
}
