package server

import (
	"fmt"
	"math"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/transport"
)

// FOTConfig is the server side of FOT (ALGORITHMS.md §3).
type FOTConfig struct {
	Epsilon    float64 // energy threshold of the first task
	EpsInc     float64 // added to the threshold after every task
	Criterion  string  // "fot" (the paper) or "gpm"
	Oversample int     // sketch width m = Oversample * d_in, as the clients use
}

// Validate reports an unusable FOT configuration.
func (c FOTConfig) Validate() error {
	if c.Oversample < 1 {
		return fmt.Errorf("%w: fot oversample %d < 1", ErrConfig, c.Oversample)
	}
	return aggregator.GPSEConfig{Epsilon: c.Epsilon, EpsInc: c.EpsInc, Criterion: c.Criterion}.Validate()
}

// fotState is FOT's memory: one basis per projected layer.
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

func newFOTState(c FOTConfig, m *nn.Model) *fotState {
	f := &fotState{
		gpse:   aggregator.GPSEConfig{Epsilon: c.Epsilon, EpsInc: c.EpsInc, Criterion: c.Criterion},
		over:   c.Oversample,
		layers: client.Projected(m),
		proj:   aggregator.NewProjector(nn.ActiveBackend()),
	}
	for _, l := range f.layers {
		f.bases = append(f.bases, aggregator.NewBasis(l.Cols))
		f.ysum = append(f.ysum, make([]float32, l.Cols*aggregator.SketchCols(l.Cols, float64(f.over))))
	}
	f.removed = make([]float64, len(f.layers))
	return f
}

// flags asks for GPSE sketches on the last round of every task.
func (f *fotState) flags(task int, last bool) uint32 {
	if last {
		return client.FlagSketch
	}
	return 0
}

// broadcast adds the current bases to the last round's broadcast, so that
// the clients can compute their residuals.
func (f *fotState) broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	if !last {
		return ts
	}
	for i, b := range f.bases {
		if b.K() == 0 {
			continue
		}
		ts = append(ts, transport.Tensor{Name: client.BasisTensor(i), Rows: b.Dim(), Cols: b.K(), Data: b.Float32()})
	}
	return ts
}

// beforeApply applies FedProject to every projected layer of the
// aggregate of a round of task t > 0 (ALGORITHMS.md §3.1) and records the
// removed share.
func (f *fotState) beforeApply(agg []float32, task int) {
	if task == 0 {
		return
	}
	for i, l := range f.layers {
		d := agg[l.Offset : l.Offset+l.Rows*l.Cols]
		f.removed[i] += f.proj.Project(d, l.Rows, l.Cols, f.bases[i])
	}
	f.rounds++
}

// check verifies that an update of a sketch round carries a well-shaped
// sketch and a ratio in [0, 1] for every projected layer.
func (f *fotState) check(m *transport.Message, flags uint32) error {
	if flags&client.FlagSketch == 0 {
		return nil
	}
	for i, l := range f.layers {
		t := findTensor(m.Tensors, client.SketchTensor(i))
		want := aggregator.SketchCols(l.Cols, float64(f.over))
		if t == nil {
			return fmt.Errorf("no %q tensor", client.SketchTensor(i))
		}
		if t.Rows != l.Cols || t.Cols != want {
			return fmt.Errorf("%q is %dx%d, want %dx%d", t.Name, t.Rows, t.Cols, l.Cols, want)
		}
		r, ok := findScalar(m.Scalars, client.RatioScalar(i))
		if !ok || r < 0 || r > 1+1e-6 {
			return fmt.Errorf("%q missing or outside [0, 1]: %v", client.RatioScalar(i), r)
		}
	}
	return nil
}

// endTask runs the server side of GPSE at the end of task t: sums the
// sketches (in client order), picks the threshold from the ratios and grows
// every basis; then fills the task's details.
func (f *fotState) endTask(got []*transport.Message, _, _ []float32, t int, detail *results.TaskDetail) error {
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
			s := findTensor(m.Tensors, client.SketchTensor(i))
			for j, v := range s.Data {
				acc[j] += float64(v)
			}
			ratios[k], _ = findScalar(m.Scalars, client.RatioScalar(i))
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

func findScalar(ss []transport.Scalar, name string) (float64, bool) {
	for _, s := range ss {
		if s.Name == name {
			return s.Value, true
		}
	}
	return math.NaN(), false
}
