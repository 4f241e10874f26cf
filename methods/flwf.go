package methods

import (
	"fmt"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// FLwF (docs/ALGORITHMS.md §6): local loss + alpha T^2 KL(teacher || model)
// on the current task's data, the teacher being the global model that
// ended the previous task; the server is FedAvg.
func init() {
	Register(Def[FLwFOptions]{
		Spec: Spec{
			Name:       "flwf",
			Summary:    "FLwF: local loss + alpha T^2 KL(previous-task model || model) on current data (shared head)",
			NoDP:       "its distillation gradient is not clipped per sample",
			SharedHead: "flwf distils the shared head",
		},
		Defaults: FLwFOptions{Alpha: 1, Temperature: 2},
		Validate: func(o FLwFOptions) []Problem {
			var out []Problem
			if !(o.Alpha >= 0) {
				out = append(out, Problem{"alpha", fmt.Sprintf("must be >= 0, got %g", o.Alpha)})
			}
			if !(o.Temperature > 0) {
				out = append(out, Problem{"temperature", fmt.Sprintf("must be > 0, got %g", o.Temperature)})
			}
			return out
		},
		NewClient: func(o FLwFOptions, _ Env) (client.Behaviour, error) {
			return &flwfClient{alpha: float32(o.Alpha), temp: float32(o.Temperature)}, nil
		},
	})
}

// FLwFOptions are FLwF's options.
type FLwFOptions struct {
	Alpha       float64 `yaml:"alpha" doc:"distillation weight (>= 0)"`
	Temperature float64 `yaml:"temperature" short:"T" doc:"distillation temperature (> 0)"`
}

// flwfClient distils from the teacher once a task has ended.
type flwfClient struct {
	BaseBehaviour
	alpha, temp float32
	teacher     []float32 // the global model at the start of the current task
	teacherTask int
}

// Round takes the first broadcast of a new task, the model that ended the
// last one, as the teacher.
func (c *flwfClient) Round(m *transport.Message) error {
	if int(m.Task) > c.teacherTask {
		c.teacher = append(c.teacher[:0], m.Tensor(protocol.TensorParams).Data...)
		c.teacherTask = int(m.Task)
	}
	return nil
}

func (c *flwfClient) Extras(w *client.Work) (*client.Extras, error) {
	if c.teacher == nil {
		return nil, nil
	}
	w.Extras = client.Extras{Teacher: c.teacher, Alpha: c.alpha, Temp: c.temp}
	return &w.Extras, nil
}
