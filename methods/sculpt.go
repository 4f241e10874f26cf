package methods

import (
	"fmt"
	"io"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// Sculpting-Subspaces-style constrained full fine-tuning (Nayak et al.,
// "Sculpting Subspaces: Constrained Full Fine-Tuning in LLMs for Continual
// Learning", 2025; docs/ALGORITHMS.md §9): at the end of every task the
// server takes the SVD of every shared weight matrix and freezes its
// leading singular directions; in later rounds every aggregated update of
// that matrix is projected off them on both sides.
func init() {
	Register(Def[SculptOptions]{
		Spec: Spec{
			Name:    "sculpt",
			Summary: "Sculpting Subspaces: after each task freeze every weight matrix's top singular directions (energy share); later aggregated updates are projected off them on both sides, dW <- (I - U U^T) dW (I - V V^T) (docs/ALGORITHMS.md 9)",
		},
		Defaults: SculptOptions{Energy: 0.5},
		Validate: SculptOptions.Validate,
		NewServer: func(o SculptOptions, e Env) (server.Rule, error) {
			return newSculptRule(o, e.Model), nil
		},
	})
}

// SculptOptions are sculpt's options.
type SculptOptions struct {
	Energy float64 `yaml:"energy" doc:"share of a weight matrix's squared singular values whose leading directions are frozen at a task's end, in (0, 1)"`
}

// Validate returns the invalid options.
func (o SculptOptions) Validate() []Problem {
	if !(o.Energy > 0 && o.Energy < 1) {
		return []Problem{{"energy", fmt.Sprintf("must be in (0, 1), got %g", o.Energy)}}
	}
	return nil
}

// sculptRule is sculpt's server side: per shared weight matrix the frozen
// left (d_out x k) and right (d_in x k) singular vectors, and the task's
// removed shares (protocol.Stateful).
type sculptRule struct {
	BaseRule
	energy  float64
	layers  []nn.ParamView
	left    []*aggregator.Basis
	right   []*aggregator.Basis
	proj    *aggregator.TwoSidedProjector
	removed []float64
	rounds  int
}

func newSculptRule(o SculptOptions, m *nn.Model) *sculptRule {
	r := &sculptRule{energy: o.Energy, layers: protocol.Projected(m), proj: aggregator.NewTwoSidedProjector(nn.ActiveBackend())}
	for _, l := range r.layers {
		r.left = append(r.left, aggregator.NewBasis(l.Rows))
		r.right = append(r.right, aggregator.NewBasis(l.Cols))
	}
	r.removed = make([]float64, len(r.layers))
	return r
}

// BeforeApply projects every frozen weight's aggregated update,
// D <- (I - U U^T) D (I - V V^T), and records the removed share. Rounds
// before the first task's end (nothing frozen yet) are left alone.
func (r *sculptRule) BeforeApply(agg []float32, task int) {
	frozen := false
	for i, l := range r.layers {
		if r.left[i].K() == 0 {
			continue
		}
		frozen = true
		d := agg[l.Offset : l.Offset+l.Rows*l.Cols]
		r.removed[i] += r.proj.Project(d, l.Rows, l.Cols, r.left[i], r.right[i])
	}
	if frozen {
		r.rounds++
	}
}

// EndTask replaces the frozen subspaces by those of the global model after
// the task: thin SVD W = U S V^T of every shared weight, k = the fewest
// leading directions holding the energy share of sum S^2
// (aggregator.TopSubspaces). A pretraining task's end freezes the
// pretrained weights' directions too. It fills the task's details: k per
// layer, out of min(d_out, d_in), and the mean removed share.
func (r *sculptRule) EndTask(_ []*transport.Message, _, after []float32, _ int, detail *results.TaskDetail) error {
	detail.BasisDims = map[string]int{}
	detail.BasisCapacity = map[string]int{}
	detail.ProjectedFraction = map[string]float64{}
	for i, l := range r.layers {
		w := after[l.Offset : l.Offset+l.Rows*l.Cols]
		u, v, _, err := aggregator.TopSubspaces(w, l.Rows, l.Cols, r.energy)
		if err != nil {
			return fmt.Errorf("sculpt: layer %s: %w", l.Name, err)
		}
		left, right := aggregator.NewBasis(l.Rows), aggregator.NewBasis(l.Cols)
		if u != nil {
			left.Set(u)
			right.Set(v)
		}
		r.left[i], r.right[i] = left, right
		detail.BasisDims[l.Name] = left.K()
		detail.BasisCapacity[l.Name] = min(l.Rows, l.Cols)
		if r.rounds > 0 {
			detail.ProjectedFraction[l.Name] = r.removed[i] / float64(r.rounds)
		} else {
			detail.ProjectedFraction[l.Name] = 0
		}
	}
	clear(r.removed)
	r.rounds = 0
	return nil
}

// sculptSaved is sculptRule's state.
type sculptSaved struct {
	Left, Right []*aggregator.Basis
	Removed     []float64
	Rounds      int
}

func (r *sculptRule) SaveState(w io.Writer) error {
	return save(w, sculptSaved{Left: r.left, Right: r.right, Removed: r.removed, Rounds: r.rounds})
}

func (r *sculptRule) LoadState(rd io.Reader) error {
	var s sculptSaved
	if err := load(rd, &s); err != nil {
		return fmt.Errorf("sculpt state: %w", err)
	}
	n := len(r.layers)
	if len(s.Left) != n || len(s.Right) != n || len(s.Removed) != n {
		return fmt.Errorf("sculpt state has %d, %d bases and %d shares for %d layers", len(s.Left), len(s.Right), len(s.Removed), n)
	}
	for i, l := range r.layers {
		if s.Left[i] == nil || s.Right[i] == nil || s.Left[i].Dim() != l.Rows || s.Right[i].Dim() != l.Cols || s.Left[i].K() != s.Right[i].K() {
			return fmt.Errorf("sculpt state: bases %d do not fit layer %s (%dx%d)", i, l.Name, l.Rows, l.Cols)
		}
	}
	r.left, r.right, r.removed, r.rounds = s.Left, s.Right, s.Removed, s.Rounds
	return nil
}
