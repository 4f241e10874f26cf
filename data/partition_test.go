package data

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/rng"
)

// labelled returns a view over a dataset with the given labels (and a
// one-pixel image per sample).
func labelled(labels []int32, classes int) View {
	return View{Base: &Dataset{Name: "l", X: make([]float32, len(labels)), Y: labels, Shape: [3]int{1, 1, 1}, Classes: classes}}
}

// balancedLabels returns classes*per labels, class k repeated per times,
// shuffled by r.
func balancedLabels(classes, per int, r *rand.Rand) []int32 {
	y := make([]int32, 0, classes*per)
	for k := 0; k < classes; k++ {
		for i := 0; i < per; i++ {
			y = append(y, int32(k))
		}
	}
	r.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
	return y
}

// checkCoverage verifies that parts use every index of 0..n-1 exactly once,
// that no client is empty and that each client's indices ascend.
func checkCoverage(t *testing.T, parts [][]int32, n, clients int) {
	t.Helper()
	if len(parts) != clients {
		t.Fatalf("got %d clients, want %d", len(parts), clients)
	}
	seen := make([]int, n)
	for c, p := range parts {
		if len(p) == 0 {
			t.Errorf("client %d is empty", c)
		}
		if !slices.IsSorted(p) {
			t.Errorf("client %d: indices not ascending", c)
		}
		for _, i := range p {
			if i < 0 || int(i) >= n {
				t.Fatalf("client %d: index %d out of [0, %d)", c, i, n)
			}
			seen[i]++
		}
	}
	for i, s := range seen {
		if s != 1 {
			t.Fatalf("index %d used %d times, want 1", i, s)
		}
	}
}

func distinctLabels(v View, p []int32) int {
	set := map[int32]bool{}
	for _, i := range p {
		set[v.Label(int(i))] = true
	}
	return len(set)
}

func TestPartitionCoverage(t *testing.T) {
	r0 := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name    string
		n       int
		clients int
		cfg     PartitionConfig
	}{
		{"iid even", 100, 10, PartitionConfig{Scheme: SchemeIID}},
		{"iid remainder", 103, 10, PartitionConfig{Scheme: SchemeIID}},
		{"iid one client", 7, 1, PartitionConfig{Scheme: SchemeIID}},
		{"iid one each", 9, 9, PartitionConfig{Scheme: SchemeIID}},
		{"shards default", 600, 30, PartitionConfig{Scheme: SchemeShards}},
		{"shards uneven", 611, 7, PartitionConfig{Scheme: SchemeShards, ShardsPerClient: 3}},
		{"shards one sample each", 20, 10, PartitionConfig{Scheme: SchemeShards}},
		{"dirichlet 0.5", 500, 20, PartitionConfig{Scheme: SchemeDirichlet, Alpha: 0.5}},
		{"dirichlet tiny alpha", 500, 20, PartitionConfig{Scheme: SchemeDirichlet, Alpha: 0.001}},
		{"dirichlet as many clients as samples", 30, 30, PartitionConfig{Scheme: SchemeDirichlet, Alpha: 0.1}},
		{"dirichlet huge alpha", 500, 20, PartitionConfig{Scheme: SchemeDirichlet, Alpha: 1e6}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := labelled(balancedLabels(10, (tc.n+9)/10, r0)[:tc.n], 10)
			parts, err := Partition(v, tc.clients, tc.cfg, rand.New(rand.NewPCG(5, 6)))
			if err != nil {
				t.Fatal(err)
			}
			checkCoverage(t, parts, tc.n, tc.clients)
		})
	}
}

func TestPartitionIIDSizes(t *testing.T) {
	v := labelled(balancedLabels(10, 10, rng.New(1, "labels")), 10)
	for _, clients := range []int{1, 3, 7, 10, 33, 100} {
		parts, err := Partition(v, clients, PartitionConfig{Scheme: SchemeIID}, rng.New(1, "iid"))
		if err != nil {
			t.Fatal(err)
		}
		lo, hi := math.MaxInt, 0
		for _, p := range parts {
			lo, hi = min(lo, len(p)), max(hi, len(p))
		}
		if hi-lo > 1 || lo != 100/clients {
			t.Errorf("%d clients: sizes in [%d, %d], want [%d, %d]", clients, lo, hi, 100/clients, (100+clients-1)/clients)
		}
	}
	// The deal is a shuffle: the first client is not simply 0..9.
	parts, _ := Partition(v, 10, PartitionConfig{Scheme: SchemeIID}, rng.New(1, "iid"))
	if slices.Equal(parts[0], []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
		t.Error("iid partition is not shuffled")
	}
}

func TestPartitionShardsLabelSkew(t *testing.T) {
	// Class sizes that are multiples of the shard size: every shard holds one
	// label, so a client holds at most ShardsPerClient labels.
	t.Run("aligned", func(t *testing.T) {
		for _, s := range []int{1, 2, 3} {
			clients := 20
			per := 2 * s * clients / 10 * 3 // class size: a multiple of the shard size
			v := labelled(balancedLabels(10, per, rng.New(2, "labels")), 10)
			shardSize := v.Len() / (s * clients)
			if per%shardSize != 0 {
				t.Fatalf("bad setup: class size %d, shard size %d", per, shardSize)
			}
			parts, err := Partition(v, clients, PartitionConfig{Scheme: SchemeShards, ShardsPerClient: s}, rng.New(2, "shards"))
			if err != nil {
				t.Fatal(err)
			}
			checkCoverage(t, parts, v.Len(), clients)
			for c, p := range parts {
				if len(p) != s*shardSize {
					t.Errorf("s=%d client %d: got %d samples, want %d", s, c, len(p), s*shardSize)
				}
				if k := distinctLabels(v, p); k > s {
					t.Errorf("s=%d client %d: got %d labels, want <= %d", s, c, k, s)
				}
			}
		}
	})
	// Unequal classes, each at least one shard long: a shard spans at most
	// two labels, so a client holds at most 2*ShardsPerClient labels, and
	// summed over clients the extra labels are at most one per class
	// boundary that falls inside a shard: sum <= shards + classes - 1.
	t.Run("unaligned", func(t *testing.T) {
		r := rng.New(3, "labels")
		const classes, clients, s = 10, 25, 2
		var y []int32
		for k := 0; k < classes; k++ {
			for i := 0; i < 37+r.IntN(40); i++ {
				y = append(y, int32(k))
			}
		}
		r.Shuffle(len(y), func(i, j int) { y[i], y[j] = y[j], y[i] })
		v := labelled(y, classes)
		parts, err := Partition(v, clients, PartitionConfig{Scheme: SchemeShards}, rng.New(3, "shards"))
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, parts, v.Len(), clients)
		shards := s * clients
		lo, hi := v.Len()/shards, (v.Len()+shards-1)/shards
		total := 0
		for c, p := range parts {
			if len(p) < s*lo || len(p) > s*hi {
				t.Errorf("client %d: got %d samples, want in [%d, %d]", c, len(p), s*lo, s*hi)
			}
			k := distinctLabels(v, p)
			if k > 2*s {
				t.Errorf("client %d: got %d labels, want <= %d", c, k, 2*s)
			}
			total += k
		}
		if total > shards+classes-1 {
			t.Errorf("labels summed over clients: got %d, want <= %d", total, shards+classes-1)
		}
	})
}

func TestPartitionDirichletSkew(t *testing.T) {
	v := labelled(balancedLabels(10, 100, rng.New(4, "labels")), 10)
	meanLabels := func(alpha float64) float64 {
		parts, err := Partition(v, 10, PartitionConfig{Scheme: SchemeDirichlet, Alpha: alpha}, rng.New(4, "dirichlet"))
		if err != nil {
			t.Fatal(err)
		}
		checkCoverage(t, parts, v.Len(), 10)
		s := 0
		for _, p := range parts {
			s += distinctLabels(v, p)
		}
		return float64(s) / 10
	}
	// Named bounds: Dir(0.05) puts almost all of a class on one or two
	// clients; Dir(1000) is close to uniform, so every client sees every class.
	const skewedMax, uniformMin = 4.0, 10.0
	if got := meanLabels(0.05); got > skewedMax {
		t.Errorf("alpha 0.05: got %.1f labels per client, want <= %v", got, skewedMax)
	}
	if got := meanLabels(1000); got < uniformMin {
		t.Errorf("alpha 1000: got %.1f labels per client, want %v", got, uniformMin)
	}
}

func TestPartitionDeterministic(t *testing.T) {
	v := labelled(balancedLabels(10, 50, rng.New(5, "labels")), 10)
	for _, cfg := range []PartitionConfig{{Scheme: SchemeIID}, {Scheme: SchemeShards}, {Scheme: SchemeDirichlet, Alpha: 0.3}} {
		a, _ := Partition(v, 13, cfg, rng.New(7, "partition", 1))
		b, _ := Partition(v, 13, cfg, rng.New(7, "partition", 1))
		c, _ := Partition(v, 13, cfg, rng.New(7, "partition", 2))
		if !slices.EqualFunc(a, b, slices.Equal) {
			t.Errorf("%s: same rng gave different partitions", cfg.Scheme)
		}
		if slices.EqualFunc(a, c, slices.Equal) {
			t.Errorf("%s: different rng gave the same partition", cfg.Scheme)
		}
	}
}

func TestPartitionUsesViewLabels(t *testing.T) {
	// A task-mode split view remaps labels; shards must sort by the view's
	// labels and index the view, not the base dataset.
	train, test := smallSynthetic()
	tasks, err := BuildStream(train, test, StreamConfig{Kind: KindSplit, ClassesPerTask: 2, Mode: ModeTask}, 1)
	if err != nil {
		t.Fatal(err)
	}
	v := tasks[3].Train
	parts, err := Partition(v, 4, PartitionConfig{Scheme: SchemeShards, ShardsPerClient: 1}, rng.New(1, "p"))
	if err != nil {
		t.Fatal(err)
	}
	checkCoverage(t, parts, v.Len(), 4)
	for c, p := range parts {
		if k := distinctLabels(v, p); k != 1 {
			t.Errorf("client %d: got %d labels, want 1 (classes are 20 samples, shards 10)", c, k)
		}
	}
}

func TestPartitionErrors(t *testing.T) {
	v := labelled(balancedLabels(2, 5, rng.New(1, "x")), 2)
	tests := []struct {
		name    string
		clients int
		cfg     PartitionConfig
		want    string
	}{
		{"no clients", 0, PartitionConfig{Scheme: SchemeIID}, "clients = 0"},
		{"negative clients", -3, PartitionConfig{Scheme: SchemeIID}, "clients = -3"},
		{"more clients than samples", 11, PartitionConfig{Scheme: SchemeIID}, "11 clients but only 10 samples"},
		{"unknown scheme", 2, PartitionConfig{Scheme: "pathological"}, `unknown scheme "pathological"`},
		{"empty scheme", 2, PartitionConfig{}, `unknown scheme ""`},
		{"zero alpha", 2, PartitionConfig{Scheme: SchemeDirichlet}, "alpha = 0"},
		{"negative alpha", 2, PartitionConfig{Scheme: SchemeDirichlet, Alpha: -1}, "alpha = -1"},
		{"nan alpha", 2, PartitionConfig{Scheme: SchemeDirichlet, Alpha: math.NaN()}, "alpha = NaN"},
		{"too many shards", 4, PartitionConfig{Scheme: SchemeShards, ShardsPerClient: 3}, "12 shards but only 10 samples"},
		{"negative shards", 2, PartitionConfig{Scheme: SchemeShards, ShardsPerClient: -1}, "shards per client = -1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Partition(v, tc.clients, tc.cfg, rng.New(1, "p"))
			if !errors.Is(err, ErrPartition) {
				t.Fatalf("got %v, want ErrPartition", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

// gammaSE is how many standard errors a sample moment may stray from its
// expectation in TestGammaMoments.
const gammaSE = 5

func TestGammaMoments(t *testing.T) {
	const n = 200000
	r := rng.New(1, "gamma")
	for _, a := range []float64{0.05, 0.3, 1, 2.5, 10} {
		var s, ss float64
		for i := 0; i < n; i++ {
			x := math.Exp(logGamma(a, r)) // a Gamma(a, 1) draw
			if !(x >= 0) || math.IsInf(x, 0) {
				t.Fatalf("shape %v: draw %v", a, x)
			}
			s += x
			ss += x * x
		}
		mean := s / n
		v := ss/n - mean*mean
		// Gamma(a, 1): mean a, variance a, fourth central moment 3a^2 + 6a.
		seMean := math.Sqrt(a / n)
		seVar := math.Sqrt((2*a*a + 6*a) / n)
		if math.Abs(mean-a) > gammaSE*seMean {
			t.Errorf("shape %v: mean got %.4f, want %.4f +- %.4f", a, mean, a, gammaSE*seMean)
		}
		if math.Abs(v-a) > gammaSE*seVar {
			t.Errorf("shape %v: variance got %.4f, want %.4f +- %.4f", a, v, a, gammaSE*seVar)
		}
	}
}

// dirichletTol bounds the deviation of the Dirichlet sample mean from 1/K.
const dirichletTol = 0.01

func TestDirichletDraw(t *testing.T) {
	r := rng.New(2, "dirichlet")
	for _, alpha := range []float64{1e-4, 0.1, 1, 50} {
		const k, n = 5, 20000
		p := make([]float64, k)
		mean := make([]float64, k)
		for i := 0; i < n; i++ {
			dirichlet(p, alpha, r)
			s := 0.0
			for _, x := range p {
				if !(x >= 0 && x <= 1) {
					t.Fatalf("alpha %v: component %v", alpha, x)
				}
				s += x
			}
			if math.Abs(s-1) > 1e-12 {
				t.Fatalf("alpha %v: components sum to %v", alpha, s)
			}
			for j, x := range p {
				mean[j] += x / n
			}
		}
		for j, m := range mean {
			if math.Abs(m-1.0/k) > dirichletTol {
				t.Errorf("alpha %v: mean of component %d: got %.4f, want %.4f +- %v", alpha, j, m, 1.0/k, dirichletTol)
			}
		}
	}
}

func BenchmarkPartition(b *testing.B) {
	v := labelled(balancedLabels(10, 6000, rng.New(1, "labels")), 10)
	for _, cfg := range []PartitionConfig{{Scheme: SchemeIID}, {Scheme: SchemeShards}, {Scheme: SchemeDirichlet, Alpha: 0.5}} {
		b.Run(cfg.Scheme, func(b *testing.B) {
			b.ReportAllocs()
			r := rng.New(1, "bench")
			for b.Loop() {
				if _, err := Partition(v, 125, cfg, r); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*v.Len())/b.Elapsed().Seconds(), "samples/s")
		})
	}
}
