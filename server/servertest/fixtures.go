package servertest

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// The test problem: 16 inputs (1x4x4), 4 classes; the MLP is 16-8-4.
const (
	In      = 16
	Classes = 4
	Seed    = 42
)

// Tolerances and limits.
const (
	ParamTol   = 1e-6 // max |server params - replayed params|
	RunTimeout = 20 * time.Second
)

// Subjects are the subjects of Config and of a Fed.
var Subjects = transport.SubjectsFor("servertest")

// Model is the test problem's MLP with heads heads.
func Model(t testing.TB, heads int) *nn.Model {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Classes: Classes, Heads: heads})
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

// Data returns synthetic training and test sets of the test problem, drawn
// from Seed.
func Data(train, test int) (*data.Dataset, *data.Dataset) {
	return data.Synthetic(data.SyntheticConfig{Train: train, Test: test, Shape: [3]int{1, 4, 4}, Classes: Classes, Noise: 1}, Seed)
}

// PermutedView returns a view of d with a fixed pixel permutation drawn
// from seed (seed 0: identity).
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

// Evaluator evaluates on tasks test views (PermutedView of 60 test rows
// with seed t), all on head 0.
func Evaluator(m *nn.Model, tasks int) *server.Evaluator {
	_, test := Data(8, 60)
	views := make([]data.View, tasks)
	heads := make([]int, tasks)
	for t := range views {
		views[t] = PermutedView(test, uint64(t))
	}
	return server.NewEvaluator(m, views, heads, 16, 2)
}

// Config is a small FedAvg run on Subjects: tasks tasks of rounds rounds,
// 6 clients, 3 per round, uniform weights, server learning rate 1.
func Config(tasks, rounds int) server.Config {
	return server.Config{
		Subjects: Subjects, Seed: Seed, Tasks: tasks, RoundsPerTask: rounds,
		Clients: 6, ClientsPerRound: 3, Weighting: aggregator.Uniform, ServerLR: 1,
	}
}

// Context ends after RunTimeout, so that a server waiting for updates that
// never come fails the test instead of hanging it.
func Context(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), RunTimeout)
	t.Cleanup(cancel)
	return ctx
}

// MeanApply returns params + lr * sum_k c_k delta_k with c_k = 1/K or
// n_k / sum n (samples), computed in float64 per element, updates in the
// given (client-id) order: what FedAvg must do.
func MeanApply(params []float32, deltas [][]float32, ns []int64, samples bool, lr float32) []float32 {
	var total float64
	for _, n := range ns {
		total += float64(n)
	}
	out := slices.Clone(params)
	for i := range out {
		var a float64
		for k, d := range deltas {
			c := 1 / float64(len(deltas))
			if samples {
				c = float64(ns[k]) / total
			}
			a += c * float64(d[i])
		}
		out[i] += lr * float32(a)
	}
	return out
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
