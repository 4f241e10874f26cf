package client

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// DPStep configures DP-SGD (Abadi et al. 2016) as FedSVD uses it
// (docs/ALGORITHMS.md §5). Every step
//
//  1. samples each of the client's n training rows independently with
//     probability q = DPRate(batch, n) (Poisson sampling, stream
//     (seed, "poisson", client, round, step));
//  2. sums the per-sample gradients of the trained parameters (Config.Train,
//     all of them together) clipped to L2 norm Clip (nn's
//     LossGradClipped; a batch larger than the workspace is cut into
//     chunks, whose clipped sums add up);
//  3. adds Gaussian noise N(0, (Sigma Clip)^2) to every trained coordinate
//     (stream (seed, "dp-noise", client, round), drawn in parameter order);
//  4. divides by the expected batch size q n and takes an SGD step (plus the
//     method's penalties, which depend on the model only).
//
// Sigma is the noise multiplier, calibrated by the caller for the client's
// target (epsilon, delta) (package dp). Clip may be +Inf (no clipping) and
// Sigma 0 (no noise): the step is then the plain summed gradient over the
// expected batch, which the tests use.
type DPStep struct {
	Clip  float32
	Sigma float64
}

// DPRate returns DP-SGD's Poisson sampling rate for a client with n
// training rows and mini-batch size batch: min(1, batch/n), so that the
// expected batch is min(batch, n). It returns 0 for n = 0.
func DPRate(batch, n int) float64 {
	if n <= 0 {
		return 0
	}
	return min(1, float64(batch)/float64(n))
}

// StepsPerRound returns the local SGD steps a client with n training rows
// takes in one round: cfg.Steps when set, else cfg.Epochs epochs of
// ceil(n/BatchSize) batches (with DP, the expected number of Poisson
// batches in an epoch). Clients without data take none.
func StepsPerRound(cfg Config, n int) int {
	switch {
	case n <= 0:
		return 0
	case cfg.Steps > 0:
		return cfg.Steps
	}
	return cfg.Epochs * ((n + cfg.BatchSize - 1) / cfg.BatchSize)
}

// PoissonSample appends to dst[:0] every row of rows kept by an
// independent Bernoulli(q) draw from r, in order, and returns it: one draw
// per row (none when q >= 1, which keeps every row).
func PoissonSample(dst, rows []int32, q float64, r *rand.Rand) []int32 {
	dst = dst[:0]
	if q >= 1 {
		return append(dst, rows...)
	}
	for _, row := range rows {
		if r.Float64() < q {
			dst = append(dst, row)
		}
	}
	return dst
}

// dpState is a Trainer's DP-SGD buffers.
type dpState struct {
	sum  []float32 // clipped-gradient sum, then the noisy mean step
	sel  []int32   // the Poisson batch of one segment
	nsrc *rand.PCG
	nr   *rand.Rand
}

// ranges returns train, or nil when it is nil or covers every parameter
// (the plain LossGrad path).
func (t *Trainer) ranges(train nn.Ranges) nn.Ranges {
	if train == nil || (len(train) == 1 && train[0] == [2]int{0, len(t.grad)}) {
		return nil
	}
	return train
}

// trainDP is Train with DP-SGD (see DPStep): StepsPerRound(cfg, total)
// steps on the parameters in train (nil: all). The loss returned is the
// mean cross-entropy over the sampled examples.
func (t *Trainer) trainDP(params []float32, segs []Segment, total int, cfg Config, train nn.Ranges, ex *Extras, client, round int) (loss float64, steps int) {
	if train == nil {
		train = t.model.AllParams()
	}
	clip, sigma := cfg.DP.Clip, cfg.DP.Sigma
	if !(clip > 0) || !(sigma >= 0) || math.IsInf(sigma, 0) {
		panic(fmt.Sprintf("client: DP clip %v and sigma %v, want clip > 0 and a finite sigma >= 0", clip, sigma))
	}
	if t.dp == nil {
		src := rand.NewPCG(0, 0)
		t.dp = &dpState{sum: make([]float32, len(t.grad)), nsrc: src, nr: rand.New(src)}
	}
	d := t.dp
	q := DPRate(cfg.BatchSize, total)
	steps = StepsPerRound(cfg, total)
	if steps == 0 {
		return 0, 0
	}
	inv := 1 / (q * float64(total)) // 1 / expected batch
	noise := sigma * float64(clip)
	in := t.model.InputSize()
	rng.Reseed(t.dsrc, cfg.Seed, "dropout", client, round)
	rng.Reseed(d.nsrc, cfg.Seed, "dp-noise", client, round)
	var lossSum float64
	var seen int
	for step := 0; step < steps; step++ {
		if t.stopped() {
			return 0, step
		}
		rng.Reseed(t.src, cfg.Seed, "poisson", client, round, step)
		train.Zero(d.sum)
		for _, s := range segs {
			d.sel = PoissonSample(d.sel, s.Rows, q, t.r)
			for lo := 0; lo < len(d.sel); lo += t.batch {
				n := min(t.batch, len(d.sel)-lo)
				x, y := t.x[:n*in], t.y[:n]
				s.View.Gather(x, y, d.sel[lo:lo+n])
				l, _ := t.ws.LossGradClipped(params, t.grad, x, y, n, s.Head, t.dsrc, clip, train)
				for _, r := range train {
					g, acc := t.grad[r[0]:r[1]], d.sum[r[0]:r[1]]
					for i, v := range g {
						acc[i] += v
					}
				}
				lossSum += float64(l) * float64(n)
				seen += n
			}
		}
		for _, r := range train {
			acc := d.sum[r[0]:r[1]]
			for i, v := range acc {
				g := float64(v)
				if noise > 0 {
					g += noise * d.nr.NormFloat64()
				}
				acc[i] = float32(g * inv)
			}
		}
		if ex != nil {
			ex.addPenalties(d.sum, params)
		}
		cfg.SGD.StepRanges(params, d.sum, t.vel, train)
	}
	if seen > 0 {
		loss = lossSum / float64(seen)
	}
	return loss, steps
}
