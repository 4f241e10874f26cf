package methods

import (
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/server"
)

// FedCurv (docs/ALGORITHMS.md §6): as EWC, but each client's penalty is
// built from the other clients' Fisher terms, anchored at their local
// models (penaltyState and penaltyClient with curv set).
func init() {
	Register(Def[PenaltyOptions]{
		Spec: Spec{
			Name:     "fedcurv",
			Summary:  "FedCurv: EWC-style penalty built from the other clients' Fisher terms, anchored at their local models",
			NoSecAgg: "its server anchors each client's Fisher at that client's own local model (the individual deltas)",
		},
		Defaults: defaultPenalty(),
		Validate: PenaltyOptions.Validate,
		NewClient: func(o PenaltyOptions, _ Env) (client.Behaviour, error) {
			return curvClient{newPenaltyClient(true, o)}, nil
		},
		NewServer: func(_ PenaltyOptions, e Env) (server.Rule, error) {
			return newPenaltyState(true, e.Model.NumParams()), nil
		},
	})
}
