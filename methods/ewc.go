package methods

import (
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/server"
)

// FL+EWC (docs/ALGORITHMS.md §6): local loss + (lambda/2) sum_t F_t (w - w*_t)^2
// with F_t the clients' diagonal Fisher averaged by sample count at the end
// of task t and w*_t the global model after it.
func init() {
	Register(Def[PenaltyOptions]{
		Spec: Spec{
			Name:     "ewc",
			Summary:  "FL+EWC: local loss + (lambda/2) sum_t sum_i F_t,i (w_i - w*_t,i)^2, Fisher averaged over clients, w*_t the global model after task t",
			NoSecAgg: "its server adds each client's diagonal Fisher, weighted by its samples, at a task's end (not summed securely yet)",
		},
		Defaults: defaultPenalty(),
		Validate: PenaltyOptions.Validate,
		NewClient: func(o PenaltyOptions, _ Env) (client.Behaviour, error) {
			return newPenaltyClient(false, o), nil
		},
		NewServer: func(_ PenaltyOptions, e Env) (server.Rule, error) {
			return newPenaltyState(false, e.Model.NumParams()), nil
		},
	})
}
