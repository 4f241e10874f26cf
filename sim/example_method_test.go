package sim_test

import (
	"context"
	"fmt"

	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/sim"
)

// DampedOptions are the options of the example method: what a scenario
// may write as {name: damped, factor: 0.5}.
type DampedOptions struct {
	Factor float64 `yaml:"factor" short:"f" doc:"share of the mean update the server applies, in (0, 1]"`
}

// dampedRule is the example method's server side: FedAvg that applies
// only Factor of the mean update. BaseRule supplies the other hooks.
type dampedRule struct {
	methods.BaseRule
	factor float32
}

func (r dampedRule) BeforeApply(agg []float32, task int) {
	for i := range agg {
		agg[i] *= r.factor
	}
}

// A new method is one registration (in its own file of package methods;
// here in a test): its Spec, its options with defaults and checks, and its
// client and server sides. Scenarios can name it at once.
func Example_addingAMethod() {
	methods.Register(methods.Def[DampedOptions]{
		Spec:     methods.Spec{Name: "damped", Summary: "FedAvg applying a share of the mean update"},
		Defaults: DampedOptions{Factor: 1},
		Validate: func(o DampedOptions) []methods.Problem {
			if !(o.Factor > 0 && o.Factor <= 1) {
				return []methods.Problem{{Key: "factor", Msg: fmt.Sprintf("must be in (0, 1], got %g", o.Factor)}}
			}
			return nil
		},
		NewServer: func(o DampedOptions, _ methods.Env) (server.Rule, error) {
			return dampedRule{factor: float32(o.Factor)}, nil
		},
	})
	defer methods.Unregister("damped")

	sc, err := scenarios.Load("synthetic", []string{"methods=[fedavg, {name: damped, factor: 0.5}]"})
	if err != nil {
		fmt.Println(err)
		return
	}
	env := sim.NewEnv()
	for _, run := range sc.Runs() {
		rec, err := env.Run(context.Background(), sc, run, sim.Options{})
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %d rounds, %d tasks evaluated\n", rec.MethodLabel, rec.Rounds, len(rec.AccMatrix))
	}
	_, err = scenarios.Load("synthetic", []string{"methods=[{name: damped, factor: 2}]"})
	fmt.Println(err)
	// Output:
	// fedavg: 6 rounds, 2 tasks evaluated
	// damped(f=0.5): 6 rounds, 2 tasks evaluated
	// --set methods=[{name: damped, factor: 2}]: methods[0].factor: must be in (0, 1], got 2
}
