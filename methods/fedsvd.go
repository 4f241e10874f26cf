package methods

import (
	"fmt"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/server"
)

// FedSVD (docs/ALGORITHMS.md §4): clients train only B; the server averages
// B and refactors every adapter's B A by SVD, optionally projecting it off
// FOT's bases first (option fot, settings from the scenario's fot: block).
func init() {
	Register(Def[FedSVDOptions]{
		Spec: Spec{
			Name:    "fedsvd",
			Summary: "FedSVD: clients train only B; the server averages B and refactors B A = U S V^T into A = V_r^T (orthonormal rows), B = U_r S_r",
			LoRA:    "b",
		},
		Defaults: FedSVDOptions{Period: 1},
		Validate: func(o FedSVDOptions) []Problem {
			var out []Problem
			if o.Period < 1 {
				out = append(out, Problem{"period", fmt.Sprintf("must be at least 1, got %d", o.Period)})
			}
			if o.Warmup < 0 {
				out = append(out, Problem{"warmup", fmt.Sprintf("must be at least 0, got %d", o.Warmup)})
			}
			return out
		},
		NewClient: func(o FedSVDOptions, e Env) (client.Behaviour, error) {
			if !o.FOT {
				return nil, nil
			}
			return newFOTClient(e.FOT, e)
		},
		NewServer: func(o FedSVDOptions, e Env) (server.Rule, error) {
			var fot *FOTOptions
			if o.FOT {
				fot = &e.FOT
			}
			return loraRule(newLoRAState("fedsvd", e, fot, func(l *loraState, a *server.Applied) error {
				projected := l.fot != nil && l.projectAdapters(a.Params) // every round, off the bases so far
				j := l.rounds - 1                                        // this round's index among the LoRA rounds
				if j < o.Warmup || (j+1-o.Warmup)%o.Period != 0 {
					return nil
				}
				return l.refactor(a.Params, !projected)
			}))
		},
	})
}

// FedSVDOptions are FedSVD's options.
type FedSVDOptions struct {
	Period int  `yaml:"period" doc:"refactor every period rounds (>= 1)"`
	Warmup int  `yaml:"warmup" doc:"LoRA rounds before the first refactor (>= 0)"`
	FOT    bool `yaml:"fot" doc:"combine with FOT: project B A off the old tasks' input subspaces (fot: block, GPSE at task ends) after every round and before each refactor"`
}
