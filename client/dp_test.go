package client

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Tolerances of the DP-SGD and LoRA training tests.
const (
	dpStepTol   = 1e-5 // relative: DP step without clipping and noise vs the summed gradient
	dpNoiseTol  = 0.15 // relative: empirical noise std vs sigma C / (q n)
	dpRateSigma = 4    // Poisson rate: allowed deviation in standard errors
)

// dpModel is a 16-8-4 MLP with rank-2 adapters on every weight, its
// parameters initialised and B set to random values (so that every LoRA
// gradient is non-zero), and a synthetic segment of n rows.
func dpModel(t testing.TB, n int) (*nn.Model, []float32, Segment) {
	t.Helper()
	m, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Classes: 4, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 2, Alpha: 4}})
	if err != nil {
		t.Fatal(err)
	}
	p := make([]float32, m.NumParams())
	r := rand.New(rand.NewPCG(3, 4))
	m.Init(p, r)
	for _, ad := range m.Adapters() {
		for i := ad.B.Offset; i < ad.B.Offset+ad.B.Rows*ad.B.Cols; i++ {
			p[i] = float32(r.NormFloat64() * 0.3)
		}
	}
	d, _ := data.Synthetic(data.SyntheticConfig{Train: n, Test: 4, Shape: [3]int{1, 4, 4}, Classes: 4, Noise: 1}, 5)
	rows := make([]int32, n)
	for i := range rows {
		rows[i] = int32(i)
	}
	return m, p, Segment{View: data.View{Base: d}, Rows: rows}
}

// With infinite clipping and no noise a DP-SGD step is the plain sum of
// the Poisson batch's gradients over the expected batch size q n, also
// when the Poisson batch is larger than the workspace and is cut into
// chunks.
func TestDPStepWithoutClipAndNoiseIsSummedGradient(t *testing.T) {
	const n, batch, client = 40, 8, 3
	m, p0, seg := dpModel(t, n)
	train := m.AdapterParams("ab")
	// The first round whose Poisson batch needs two chunks.
	round := 0
	for len(PoissonSample(nil, seg.Rows, DPRate(batch, n), rng.New(11, "poisson", client, round, 0))) <= batch+2 {
		round++
	}
	cfg := Config{Seed: 11, Epochs: 1, BatchSize: batch, Steps: 1, SGD: nn.SGD{LR: 0.1},
		Train: train, DP: &DPStep{Clip: float32(math.Inf(1)), Sigma: 0}}
	got := append([]float32(nil), p0...)
	loss, steps := NewTrainer(m, batch).Train(got, []Segment{seg}, cfg, nil, client, round)
	if steps != 1 || !(loss > 0) {
		t.Fatalf("steps %d loss %v, want 1 step and a positive loss", steps, loss)
	}

	// Reference: the same Poisson batch, one gradient over all of it.
	q := DPRate(batch, n)
	sel := PoissonSample(nil, seg.Rows, q, rng.New(cfg.Seed, "poisson", client, round, 0))
	if len(sel) <= batch {
		t.Fatalf("Poisson batch of %d rows, want more than %d to exercise the chunks (pick another seed)", len(sel), batch)
	}
	ws := m.NewWorkspace(len(sel))
	x := make([]float32, len(sel)*m.InputSize())
	y := make([]int32, len(sel))
	seg.View.Gather(x, y, sel)
	grad := make([]float32, m.NumParams())
	ws.LossGradRanges(p0, grad, x, y, len(sel), 0, nil, train)
	want := append([]float32(nil), p0...)
	scale := float32(len(sel)) / float32(q*n) // mean -> sum, / expected batch
	for _, r := range train {
		for i := r[0]; i < r[1]; i++ {
			want[i] -= cfg.SGD.LR * grad[i] * scale
		}
	}
	var maxDiff, maxStep float64
	for i := range want {
		maxDiff = max(maxDiff, math.Abs(float64(got[i]-want[i])))
		maxStep = max(maxStep, math.Abs(float64(want[i]-p0[i])))
	}
	if maxStep == 0 || maxDiff > dpStepTol*maxStep {
		t.Errorf("DP step differs from the summed gradient / (q n): max diff %g, max step %g (tol %g)", maxDiff, maxStep, dpStepTol)
	}
	for i := range p0[:m.NumBaseParams()] {
		if got[i] != p0[i] {
			t.Fatalf("base parameter %d changed (%v -> %v), want frozen", i, p0[i], got[i])
		}
	}
}

// The noise of a step is N(0, (sigma C)^2) per trained coordinate over the
// expected batch: the difference between a noisy step and the same step
// without noise (same Poisson batch, same clipping) has that spread.
func TestDPNoiseScale(t *testing.T) {
	const n, batch, sigma, clip, lr = 40, 10, 1.5, 0.5, 1.0
	m, p0, seg := dpModel(t, n)
	train := m.AdapterParams("ab")
	run := func(s float64) []float32 {
		p := append([]float32(nil), p0...)
		cfg := Config{Seed: 2, Epochs: 1, BatchSize: batch, Steps: 1, SGD: nn.SGD{LR: lr}, Train: train, DP: &DPStep{Clip: clip, Sigma: s}}
		NewTrainer(m, batch).Train(p, []Segment{seg}, cfg, nil, 0, 0)
		return p
	}
	noisy, clean := run(sigma), run(0)
	var ss float64
	k := 0
	for _, r := range train {
		for i := r[0]; i < r[1]; i++ {
			d := float64(noisy[i] - clean[i])
			ss += d * d
			k++
		}
	}
	got := math.Sqrt(ss / float64(k))
	want := lr * sigma * clip / (DPRate(batch, n) * n)
	if math.Abs(got-want) > dpNoiseTol*want {
		t.Errorf("noise std over %d coordinates = %.5f, want %.5f +- %g%%", k, got, want, 100*dpNoiseTol)
	}
}

// Poisson sampling keeps each row with probability q: the mean batch is q n.
func TestPoissonSampleRate(t *testing.T) {
	rows := make([]int32, 500)
	for i := range rows {
		rows[i] = int32(10 * i)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for _, q := range []float64{0.02, 0.128, 0.5} {
		const draws = 400
		var total int
		var buf []int32
		for range draws {
			buf = PoissonSample(buf, rows, q, r)
			for j := 1; j < len(buf); j++ {
				if buf[j] <= buf[j-1] {
					t.Fatalf("q %g: sample not in row order: %v", q, buf)
				}
			}
			total += len(buf)
		}
		mean := float64(total) / draws
		want := q * float64(len(rows))
		se := math.Sqrt(float64(len(rows))*q*(1-q)) / math.Sqrt(draws)
		if math.Abs(mean-want) > dpRateSigma*se {
			t.Errorf("q %g: mean batch %.2f, want %.2f +- %.2f", q, mean, want, dpRateSigma*se)
		}
	}
	if got := PoissonSample(nil, rows, 1, nil); len(got) != len(rows) {
		t.Errorf("q = 1 kept %d of %d rows, want all", len(got), len(rows))
	}
}

func TestDPRateAndStepsPerRound(t *testing.T) {
	cases := []struct {
		cfg       Config
		n         int
		rate      float64
		wantSteps int
	}{
		{Config{Epochs: 1, BatchSize: 128}, 4900, 128.0 / 4900, 39},
		{Config{Epochs: 2, BatchSize: 128}, 100, 1, 2},
		{Config{Epochs: 3, BatchSize: 128, Steps: 10}, 4900, 128.0 / 4900, 10},
		{Config{Epochs: 1, BatchSize: 128, Steps: 10}, 0, 0, 0},
	}
	for i, c := range cases {
		if got := DPRate(c.cfg.BatchSize, c.n); got != c.rate {
			t.Errorf("case %d: DPRate = %v, want %v", i, got, c.rate)
		}
		if got := StepsPerRound(c.cfg, c.n); got != c.wantSteps {
			t.Errorf("case %d: StepsPerRound = %d, want %d", i, got, c.wantSteps)
		}
	}
}

// Training restricted to ranges changes only those parameters, with and
// without DP; local_steps runs exactly that many steps, continuing the
// epoch shuffles (2 epochs' worth of steps equal 2 epochs).
func TestTrainRangesAndSteps(t *testing.T) {
	const n, batch = 30, 8
	m, p0, seg := dpModel(t, n)
	for _, dpOn := range []bool{false, true} {
		for _, which := range []string{"b", "ab"} {
			train := m.AdapterParams(which)
			cfg := Config{Seed: 1, Epochs: 1, BatchSize: batch, SGD: nn.SGD{LR: 0.1, WeightDecay: 0.01}, Train: train}
			if dpOn {
				cfg.DP = &DPStep{Clip: 1, Sigma: 0.5}
			}
			p := append([]float32(nil), p0...)
			NewTrainer(m, batch).Train(p, []Segment{seg}, cfg, nil, 0, 0)
			inside := 0
			for i := range p {
				in := false
				for _, r := range train {
					in = in || (i >= r[0] && i < r[1])
				}
				switch {
				case !in && p[i] != p0[i]:
					t.Fatalf("dp %v, train %s: parameter %d outside the ranges changed", dpOn, which, i)
				case in && p[i] != p0[i]:
					inside++
				}
			}
			if inside == 0 {
				t.Errorf("dp %v, train %s: nothing inside the ranges changed", dpOn, which)
			}
		}
	}

	per := (n + batch - 1) / batch
	cfgE := Config{Seed: 4, Epochs: 2, BatchSize: batch, SGD: nn.SGD{LR: 0.05}}
	cfgS := cfgE
	cfgS.Epochs, cfgS.Steps = 1, 2*per
	pe, ps := append([]float32(nil), p0...), append([]float32(nil), p0...)
	_, se := NewTrainer(m, batch).Train(pe, []Segment{seg}, cfgE, nil, 1, 2)
	_, ss := NewTrainer(m, batch).Train(ps, []Segment{seg}, cfgS, nil, 1, 2)
	if se != 2*per || ss != 2*per {
		t.Fatalf("steps %d (epochs) and %d (local_steps), want %d", se, ss, 2*per)
	}
	for i := range pe {
		if pe[i] != ps[i] {
			t.Fatalf("local_steps = 2 epochs of batches differs from 2 epochs at parameter %d", i)
		}
	}
	cfgS.Steps = per + 1
	if _, got := NewTrainer(m, batch).Train(append([]float32(nil), p0...), []Segment{seg}, cfgS, nil, 1, 2); got != per+1 {
		t.Errorf("local_steps %d ran %d steps", per+1, got)
	}
}

// A warm Trainer runs DP-SGD rounds without allocating.
func TestTrainDPAllocatesNothingWhenWarm(t *testing.T) {
	const n, batch = 60, 16
	m, p0, seg := dpModel(t, n)
	cfg := Config{Seed: 1, Epochs: 1, BatchSize: batch, Steps: 3, SGD: nn.SGD{LR: 0.1},
		Train: m.AdapterParams("b"), DP: &DPStep{Clip: 1, Sigma: 1}}
	tr := NewTrainer(m, batch)
	p := append([]float32(nil), p0...)
	segs := []Segment{seg}
	tr.Train(p, segs, cfg, nil, 0, 0)
	if a := testing.AllocsPerRun(5, func() { tr.Train(p, segs, cfg, nil, 0, 1) }); a != 0 {
		t.Errorf("warm DP-SGD round allocates %v times, want 0", a)
	}
}

func BenchmarkTrainDP(b *testing.B) {
	const n, batch = 512, 64
	m, p0, seg := dpModel(b, n)
	cfg := Config{Seed: 1, Epochs: 1, BatchSize: batch, Steps: 10, SGD: nn.SGD{LR: 0.1},
		Train: m.AdapterParams("b"), DP: &DPStep{Clip: 1, Sigma: 1}}
	tr := NewTrainer(m, batch)
	p := append([]float32(nil), p0...)
	segs := []Segment{seg}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.Train(p, segs, cfg, nil, 0, i)
	}
	b.ReportMetric(float64(b.N*cfg.Steps*batch)/b.Elapsed().Seconds(), "samples/s")
}
