package servertest

import (
	"slices"
	"testing"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// Run runs a server of cfg with m and Evaluator(m, cfg.Tasks) over bus,
// from InitParams(m, seed), under Context(t). It fails the test if New or
// Run returns an error, and returns the initial parameters, the final ones
// and the run's record.
func Run(t *testing.T, cfg server.Config, m *nn.Model, bus *transporttest.Bus, seed uint64) (init, params []float32, rec *results.Record) {
	t.Helper()
	s, err := server.New(cfg, m, Evaluator(m, cfg.Tasks), bus)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	init = InitParams(m, seed)
	params = slices.Clone(init)
	rec, err = s.Run(Context(t), params)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return init, params, rec
}

// ParamsAfter returns the global parameters after round r (0-based) of a
// run whose round broadcasts are bc and whose final parameters are final:
// those broadcast in round r+1, or final after the last round.
func ParamsAfter(bc []*transport.Message, final []float32, r int) []float32 {
	if r == len(bc)-1 {
		return final
	}
	return ParamsOf(bc[r+1])
}
