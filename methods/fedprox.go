package methods

import (
	"fmt"

	"github.com/fotsim/fotsim/client"
)

// FedProx (docs/ALGORITHMS.md §6): local loss + (mu/2)||w - w_global||^2;
// the server is FedAvg.
func init() {
	Register(Def[FedProxOptions]{
		Spec: Spec{
			Name:    "fedprox",
			Summary: "FedProx: local loss + (mu/2)||w - w_global||^2",
		},
		Defaults: FedProxOptions{Mu: 0.01},
		Validate: func(o FedProxOptions) []Problem {
			if !(o.Mu >= 0) {
				return []Problem{{"mu", fmt.Sprintf("must be >= 0, got %g", o.Mu)}}
			}
			return nil
		},
		NewClient: func(o FedProxOptions, _ Env) (client.Behaviour, error) {
			return fedProxClient{mu: float32(o.Mu)}, nil
		},
	})
}

// FedProxOptions are FedProx's options.
type FedProxOptions struct {
	Mu float64 `yaml:"mu" doc:"proximal coefficient (>= 0)"`
}

// fedProxClient adds the proximal term towards the round's global model.
type fedProxClient struct {
	BaseBehaviour
	mu float32
}

func (c fedProxClient) Extras(w *client.Work) (*client.Extras, error) {
	w.Extras = client.Extras{Mu: c.mu, Global: w.Global}
	return &w.Extras, nil
}
