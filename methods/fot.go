package methods

import (
	"fmt"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// FOT, Federated Orthogonal Training (docs/ALGORITHMS.md §3): clients
// train as in FedAvg and, on the last round of every task, send GPSE
// sketches of their layers' inputs; the server projects every aggregated
// update of a shared weight off the old tasks' input subspaces and grows
// those subspaces from the summed sketches.
func init() {
	Register(Def[FOTOptions]{
		Spec: Spec{
			Name:    "fot",
			Summary: "Federated Orthogonal Training: FedAvg + server-side projection on the old tasks' input subspaces, extracted by GPSE (docs/ALGORITHMS.md 3)",
			Block:   BlockFOT,
		},
		Defaults:  DefaultFOT(),
		Validate:  FOTOptions.Validate,
		NewClient: newFOTClient,
		NewServer: newFOTServer,
	})
}

// FOTOptions are FOT's settings: the scenario's fot: block, and the options
// of the methods that use it (fot, central-gpm), which override the block.
type FOTOptions struct {
	// Epsilon is the energy threshold of GPSE, in (0, 1].
	Epsilon float64 `yaml:"epsilon" short:"eps" doc:"GPSE energy threshold in (0, 1] (overrides fot.epsilon)"`
	// EpsInc is added to Epsilon after each task.
	EpsInc float64 `yaml:"eps_inc" doc:"added to epsilon after each task (overrides fot.eps_inc)"`
	// Criterion is fot (the paper's ratio rule) or gpm (squared ratio, Saha et al.).
	Criterion string `yaml:"criterion" allowed:"fot,gpm" doc:"subspace growth rule (overrides fot.criterion)"`
	// Sketch is the distribution of the private random matrix G: uniform
	// (U[-1,1], the MLP setting) or gaussian (N(0,1), the conv setting).
	Sketch string `yaml:"sketch" allowed:"uniform,gaussian" doc:"distribution of the GPSE random matrix (overrides fot.sketch)"`
	// Oversample sets the sketch width m = Oversample x d_in (the paper: 1
	// for MLPs, 5 for conv nets).
	Oversample int `yaml:"oversample" doc:"sketch width as a multiple of d_in (overrides fot.oversample)"`
	// GPSEDropout runs the GPSE forward pass in training mode, with earlier
	// dropouts active, as the authors' MLP code does.
	GPSEDropout bool `yaml:"gpse_dropout" doc:"GPSE pass in training mode (overrides fot.gpse_dropout)"`
	// GPSESamples caps the samples per client of the GPSE pass (their first
	// rows); 0 uses all the client's data of the task, as docs/ALGORITHMS.md
	// §3.2. Conv nets see one column per im2col patch, so GPM-style code
	// uses a small batch there (125 examples in Saha et al.).
	GPSESamples int `yaml:"gpse_samples" doc:"samples per client in the GPSE pass, 0 = all (overrides fot.gpse_samples)"`
}

// DefaultFOT returns FOT's default settings (the paper's MLP setting).
func DefaultFOT() FOTOptions {
	return FOTOptions{Epsilon: 0.96, EpsInc: 0, Criterion: "fot", Sketch: "uniform", Oversample: 1, GPSEDropout: true}
}

// Validate returns the invalid settings, keyed by their YAML keys.
func (f FOTOptions) Validate() []Problem {
	var out []Problem
	add := func(key, format string, args ...any) { out = append(out, Problem{key, fmt.Sprintf(format, args...)}) }
	if !(f.Epsilon > 0 && f.Epsilon <= 1) {
		add("epsilon", "must be in (0, 1], got %g", f.Epsilon)
	}
	if !(f.EpsInc >= 0 && f.EpsInc < 1) {
		add("eps_inc", "must be in [0, 1), got %g", f.EpsInc)
	}
	if f.Criterion != "fot" && f.Criterion != "gpm" {
		add("criterion", "unknown criterion %q (want fot or gpm)", f.Criterion)
	}
	if f.Sketch != "uniform" && f.Sketch != "gaussian" {
		add("sketch", "unknown sketch %q (want uniform or gaussian)", f.Sketch)
	}
	if f.Oversample < 1 {
		add("oversample", "must be at least 1, got %d", f.Oversample)
	}
	if f.GPSESamples < 0 {
		add("gpse_samples", "must be 0 (all) or more, got %d", f.GPSESamples)
	}
	return out
}

// gpseConfig is the client side of the settings.
func (f FOTOptions) gpseConfig() client.GPSEConfig {
	return client.GPSEConfig{Sketch: f.Sketch, Oversample: f.Oversample, TrainMode: f.GPSEDropout, Samples: f.GPSESamples}
}

func newFOTClient(o FOTOptions, e Env) (client.Behaviour, error) {
	return &fotClient{model: e.Model, cfg: o.gpseConfig(), batch: e.BatchSize}, nil
}

func newFOTServer(o FOTOptions, e Env) (server.Rule, error) {
	return newFOTState(o, e.Model), nil
}

// check returns the settings' first problem as an error.
func (f FOTOptions) check() error {
	if p := f.Validate(); len(p) > 0 {
		return fmt.Errorf("%w: fot %s: %s", ErrOptions, p[0].Key, p[0].Msg)
	}
	return nil
}

// fotClient is FOT's client side: on a round that asks for sketches
// (protocol.FlagSketch) every trained client runs GPSE on its local model.
type fotClient struct {
	BaseBehaviour
	model *nn.Model
	cfg   client.GPSEConfig
	batch int
}

func (*fotClient) Round(*transport.Message) error              { return nil }
func (*fotClient) Extras(*client.Work) (*client.Extras, error) { return nil, nil }

// Finish appends client w.Client's sketches and ratios to its update,
// with a GPSE kept per worker in w.State.
func (c *fotClient) Finish(w *client.Work) error {
	if w.Msg.Flags&protocol.FlagSketch == 0 {
		return nil
	}
	g, ok := w.State.(*client.GPSE)
	if !ok {
		var err error
		if g, err = client.NewGPSE(c.model, c.cfg, c.batch); err != nil {
			return fmt.Errorf("GPSE: %w", err)
		}
		w.State = g
	}
	return g.Sketch(w)
}

// fotState is FOT's server side: one basis per projected layer.
type fotState struct {
	gpse    aggregator.GPSEConfig
	over    int
	layers  []nn.ParamView
	bases   []*aggregator.Basis
	proj    *aggregator.Projector
	ysum    [][]float32
	acc     []float64
	removed []float64 // summed removed share per layer over the task's rounds
	rounds  int
}

func newFOTState(c FOTOptions, m *nn.Model) *fotState {
	f := &fotState{
		gpse:   aggregator.GPSEConfig{Epsilon: c.Epsilon, EpsInc: c.EpsInc, Criterion: c.Criterion},
		over:   c.Oversample,
		layers: protocol.Projected(m),
		proj:   aggregator.NewProjector(nn.ActiveBackend()),
	}
	for _, l := range f.layers {
		f.bases = append(f.bases, aggregator.NewBasis(l.Cols))
		f.ysum = append(f.ysum, make([]float32, l.Cols*aggregator.SketchCols(l.Cols, float64(f.over))))
	}
	f.removed = make([]float64, len(f.layers))
	return f
}

// AfterApply does nothing: FOT acts on the aggregate before it is applied.
func (f *fotState) AfterApply(*server.Applied) error { return nil }

// Flags asks for GPSE sketches on the last round of every task.
func (f *fotState) Flags(task int, last bool) uint32 {
	if last {
		return protocol.FlagSketch
	}
	return 0
}

// Broadcast adds the current bases to the last round's broadcast, so that
// the clients can compute their residuals.
func (f *fotState) Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if !last {
		return ts
	}
	for i, b := range f.bases {
		if b.K() == 0 {
			continue
		}
		ts = append(ts, transport.Tensor{Name: protocol.BasisTensor(i), Rows: b.Dim(), Cols: b.K(), Data: b.Float32()})
	}
	return ts
}

// BeforeApply applies FedProject to every projected layer of the
// aggregate of a round of task t > 0 (docs/ALGORITHMS.md §3.1) and records the
// removed share.
func (f *fotState) BeforeApply(agg []float32, task int) {
	if task == 0 {
		return
	}
	for i, l := range f.layers {
		d := agg[l.Offset : l.Offset+l.Rows*l.Cols]
		f.removed[i] += f.proj.Project(d, l.Rows, l.Cols, f.bases[i])
	}
	f.rounds++
}

// Check verifies that an update of a sketch round carries a well-shaped
// sketch and a ratio in [0, 1] for every projected layer.
func (f *fotState) Check(m *transport.Message, flags uint32) error {
	if flags&protocol.FlagSketch == 0 {
		return nil
	}
	for i, l := range f.layers {
		t := m.Tensor(protocol.SketchTensor(i))
		want := aggregator.SketchCols(l.Cols, float64(f.over))
		if t == nil {
			return fmt.Errorf("no %q tensor", protocol.SketchTensor(i))
		}
		if t.Rows != l.Cols || t.Cols != want {
			return fmt.Errorf("%q is %dx%d, want %dx%d", t.Name, t.Rows, t.Cols, l.Cols, want)
		}
		r, ok := m.Scalar(protocol.RatioScalar(i))
		if !ok || r < 0 || r > 1+1e-6 {
			return fmt.Errorf("%q missing or outside [0, 1]: %v", protocol.RatioScalar(i), r)
		}
	}
	return nil
}

// EndTask runs the server side of GPSE at the end of task t: sums the
// sketches (in client order), picks the threshold from the ratios and grows
// every basis; then fills the task's details.
func (f *fotState) EndTask(got []*transport.Message, _, _ []float32, t int, detail *results.TaskDetail) error {
	ns := make([]int64, 0, len(got))
	ratios := make([]float64, len(got))
	for _, m := range got {
		ns = append(ns, m.N)
	}
	detail.BasisDims = map[string]int{}
	detail.ProjectedFraction = map[string]float64{}
	detail.BasisCapacity = map[string]int{}
	for i, l := range f.layers {
		y := f.ysum[i]
		if len(f.acc) < len(y) {
			f.acc = make([]float64, len(y))
		}
		acc := f.acc[:len(y)]
		clear(acc)
		for k, m := range got {
			s := m.Tensor(protocol.SketchTensor(i))
			for j, v := range s.Data {
				acc[j] += float64(v)
			}
			ratios[k], _ = m.Scalar(protocol.RatioScalar(i))
		}
		for j, v := range acc {
			y[j] = float32(v)
		}
		if _, _, err := f.gpse.Extend(f.bases[i], y, l.Cols, len(y)/l.Cols, ratios, ns, t); err != nil {
			return fmt.Errorf("layer %s: %w", l.Name, err)
		}
		detail.BasisDims[l.Name] = f.bases[i].K()
		detail.BasisCapacity[l.Name] = f.bases[i].Dim()
		if f.rounds > 0 {
			detail.ProjectedFraction[l.Name] = f.removed[i] / float64(f.rounds)
		} else {
			detail.ProjectedFraction[l.Name] = 0
		}
	}
	clear(f.removed)
	f.rounds = 0
	return nil
}
