package clienttest

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
)

// The test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	In      = 16
	Hidden  = 8
	Classes = 4
	Seed    = 42
)

// Dataset is a synthetic training set of train rows of the test problem
// with the given noise, drawn from Seed.
func Dataset(t testing.TB, train int, noise float64) *data.Dataset {
	t.Helper()
	tr, _ := data.Synthetic(data.SyntheticConfig{
		Train: train, Test: 8, Shape: [3]int{1, 4, 4}, Classes: Classes, Noise: noise,
	}, Seed)
	return tr
}

// Model is the test problem's MLP with heads heads, with dropout 0.5 on
// its hidden layer when dropout is set.
func Model(t testing.TB, heads int, dropout bool) *nn.Model {
	t.Helper()
	s := nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{Hidden}, Classes: Classes, Heads: heads}
	if dropout {
		s.Dropout = []float64{0.5}
	}
	m, err := nn.Build(s)
	if err != nil {
		t.Fatalf("nn.Build: %v", err)
	}
	return m
}

// InitParams returns m's parameters initialised from seed.
func InitParams(m *nn.Model, seed uint64) []float32 {
	p := make([]float32, m.NumParams())
	m.Init(p, rand.New(rand.NewPCG(seed, 1)))
	return p
}

// PermutedView returns a view of d whose pixels are permuted by a fixed
// permutation drawn from seed (seed 0: identity).
func PermutedView(d *data.Dataset, seed uint64) data.View {
	if seed == 0 {
		return data.View{Base: d}
	}
	r := rand.New(rand.NewPCG(seed, 2))
	perm := make([]int32, d.Dim())
	for i := range perm {
		perm[i] = int32(i)
	}
	r.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	return data.View{Base: d, Perm: perm}
}

// RowRange returns the rows lo, lo+1, ..., hi-1.
func RowRange(lo, hi int) []int32 {
	out := make([]int32, 0, hi-lo)
	for i := lo; i < hi; i++ {
		out = append(out, int32(i))
	}
	return out
}

// Shards gives client c of task t the rows [c*per, (c+1)*per) of task t's
// view (PermutedView of the dataset with seed t), trained on head 0.
type Shards struct {
	views []data.View
	heads []int
	per   int
}

// NewShards returns the Shards of tasks tasks over d, per rows a client.
func NewShards(d *data.Dataset, tasks, per int) *Shards {
	s := &Shards{per: per}
	for t := 0; t < tasks; t++ {
		s.views = append(s.views, PermutedView(d, uint64(t)))
		s.heads = append(s.heads, 0)
	}
	return s
}

// Shard implements client.Shards.
func (s *Shards) Shard(task, c int) []client.Segment {
	return []client.Segment{{View: s.views[task], Rows: RowRange(c*s.per, (c+1)*s.per), Head: s.heads[task]}}
}

// TrainConfig is the local training of the tests: 2 epochs of batches of
// 5, SGD with learning rate 0.05 and weight decay 1e-4.
func TrainConfig() client.Config {
	return client.Config{Seed: Seed, Epochs: 2, BatchSize: 5, SGD: nn.SGD{LR: 0.05, WeightDecay: 1e-4}}
}

// HostConfig is a host of clients [first, last) on workers goroutines
// training with TrainConfig, plain local SGD until a test sets a
// Behaviour.
func HostConfig(first, last, workers int) client.HostConfig {
	return client.HostConfig{First: first, Last: last, Workers: workers, Train: TrainConfig()}
}

// DirectDelta trains client c as a host should, with a Trainer driven
// directly, and returns local - global, the local model, and Train's loss
// and steps.
func DirectDelta(m *nn.Model, global []float32, segs []client.Segment, cfg client.Config, ex *client.Extras, c, round int) (delta, local []float32, loss float64, steps int) {
	tr := client.NewTrainer(m, cfg.BatchSize)
	local = slices.Clone(global)
	loss, steps = tr.Train(local, segs, cfg, ex, c, round)
	delta = make([]float32, len(local))
	for i := range local {
		delta[i] = local[i] - global[i]
	}
	return delta, local, loss, steps
}

// MaxAbsDiff returns max |a[i] - b[i]| in float64, +Inf if the lengths
// differ.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(float64(a[i])-float64(b[i])))
	}
	return d
}

// MaxAbs returns max |a[i]|.
func MaxAbs(a []float32) float64 {
	var d float64
	for _, v := range a {
		d = max(d, math.Abs(float64(v)))
	}
	return d
}
