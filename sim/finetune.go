package sim

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// fineTune is a run's pretraining and DP-SGD settings: the server side
// (each nil when unused) and the client side (PretrainLR 0 and DP nil when
// unused).
type fineTune struct {
	pretrain   *server.PretrainConfig
	dp         *server.DPConfig
	pretrainLR float32
	clientDP   *client.DPConfig
}

// fineTune returns the run's pretraining and DP-SGD settings, made on the
// first call: calibrating the clients' noise can take a while, and the
// server and the hosts of one process share it.
func (x *Experiment) fineTune() (*fineTune, error) {
	if x.ft != nil {
		return x.ft, nil
	}
	sc, m := x.Scenario, x.Run.Method
	var ft fineTune
	if p := sc.Pretrain; p.Tasks > 0 {
		if p.LR > 0 {
			ft.pretrainLR = float32(p.LR)
		}
		ft.pretrain = &server.PretrainConfig{Tasks: p.Tasks}
		if p.Mode == "central" {
			ft.pretrain.Central = x.pretrainCentral
		}
	}
	if d := sc.DPFor(m); d.On() {
		clients, perRound := population(sc, x.Spec)
		sigma, err := x.calibrate(x.trainConfig(), d, clients, perRound)
		if err != nil {
			return nil, err
		}
		ft.clientDP = &client.DPConfig{Clip: float32(d.Clip), Sigma: sigma}
		ft.dp = &server.DPConfig{Delta: d.Delta, Sigma: sigma}
	}
	x.ft = &ft
	return x.ft, nil
}

// pretrainCentral trains every base parameter of params (LoRA adapters
// untouched) on all of task's training data for pretrain.epochs epochs,
// as one learner: mini-batches of train.batch_size, plain SGD at
// pretrain.lr (0: train.lr) with train.weight_decay and train.momentum.
// Its shuffles and dropout come from the client streams of the pseudo
// client -1 and round = task.
func (x *Experiment) pretrainCentral(ctx context.Context, params []float32, task int) (float64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	sc := x.Scenario
	lr := sc.Pretrain.LR
	if lr <= 0 {
		lr = sc.Train.LR
	}
	v := x.Tasks[task].Train
	rows := make([]int32, v.Len())
	for i := range rows {
		rows[i] = int32(i)
	}
	cfg := client.Config{
		Seed: uint64(x.Run.Seed), Epochs: sc.Pretrain.Epochs, BatchSize: sc.Train.BatchSize,
		SGD:   nn.SGD{LR: float32(lr), WeightDecay: float32(sc.Train.WeightDecay), Momentum: float32(sc.Train.Momentum)},
		Train: x.Model.BaseParams(),
	}
	tr := client.NewTrainer(x.Model, sc.Train.BatchSize)
	var stop atomic.Bool // ctx ends (SIGINT): stop within a mini-batch
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	tr.StopOn(&stop)
	loss, _ := tr.Train(params, []client.Segment{{View: v, Rows: rows, Head: x.heads[task]}}, cfg, nil, -1, task)
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return loss, nil
}

// calibrate returns every client's DP-SGD noise multiplier for the target
// (epsilon, delta) of d (docs/ALGORITHMS.md §5): sigma is found once per client,
// before the run, for the steps that client will take in the whole run at
// its Poisson rate q_t = batch / |D_k,t| of each task t (dp.CalibrateSigma;
// when q changes with the task, a bisection between the sigmas calibrated
// at the smallest and the largest q, with the steps composed per task by a
// dp.Accountant).
//
// The steps are counted on the server's sampling schedule: it depends only
// on (seed, round) (server.Sample), never on data, so it is public and
// known in advance, and every client is calibrated for the rounds it is
// actually selected in times client.StepsPerRound. Counting the expected
// number of steps instead (rounds x clients_per_round / clients x steps
// per round) would let a client selected more often than average overspend
// its budget (with 6 clients, 3 per round and 100 rounds, a client picked
// 58 times instead of 50 spends about 7% more); counting the schedule makes
// the spent epsilon of every client that trains equal the target (within
// dp.CalibrateTol, never above it). Pretraining rounds are not DP and do
// not count. A client that is never selected gets sigma 1 (unused).
func (x *Experiment) calibrate(tcfg client.Config, d scenarios.DP, clients, perRound int) ([]float64, error) {
	sc := x.Scenario
	R := sc.Train.RoundsPerTask
	type part struct {
		q     float64
		steps int
	}
	plan := make([][]part, clients) // per client: steps at each sampling rate
	add := func(c int, q float64, steps int) {
		for i := range plan[c] {
			if plan[c][i].q == q {
				plan[c][i].steps += steps
				return
			}
		}
		plan[c] = append(plan[c], part{q, steps})
	}
	for t := sc.Pretrain.Tasks; t < len(x.Tasks); t++ {
		for r := range R {
			for _, c := range server.Sample(uint64(x.Run.Seed), t*R+r, clients, perRound) {
				n := int(x.samples(t, int(c)))
				if k := client.StepsPerRound(tcfg, n); k > 0 {
					add(int(c), client.DPRate(tcfg.BatchSize, n), k)
				}
			}
		}
	}
	sigma := make([]float64, clients)
	for c := range sigma {
		s, err := calibrateMixed(plan[c], d.Epsilon, d.Delta, func(p part) (float64, int) { return p.q, p.steps })
		if err != nil {
			return nil, fmt.Errorf("sim: DP noise of client %d (%v, epsilon %g, delta %g): %w", c, plan[c], d.Epsilon, d.Delta, err)
		}
		sigma[c] = s
	}
	return sigma, nil
}

// calibrateMixed returns the smallest sigma (to dp.CalibrateTol) at which
// the composition of the parts' (q, steps) spends at most eps at delta;
// 1 for no part.
func calibrateMixed[P any](parts []P, eps, delta float64, qs func(P) (float64, int)) (float64, error) {
	if len(parts) == 0 {
		return 1, nil
	}
	total := 0
	qmin, qmax := math.Inf(1), 0.0
	for _, p := range parts {
		q, k := qs(p)
		total += k
		qmin, qmax = min(qmin, q), max(qmax, q)
	}
	hi, err := dp.CalibrateSigma(qmax, total, eps, delta) // spends <= eps
	if err != nil || qmin == qmax {
		return hi, err
	}
	lo, err := dp.CalibrateSigma(qmin, total, eps, delta) // spends about eps at the smaller rate
	if err != nil {
		return 0, err
	}
	spent := func(sigma float64) (float64, error) {
		acc, err := dp.NewAccountant(nil)
		if err != nil {
			return 0, err
		}
		for _, p := range parts {
			q, k := qs(p)
			if err := acc.Compose(q, sigma, k); err != nil {
				return 0, err
			}
		}
		e, _, err := acc.Epsilon(delta)
		return e, err
	}
	lo *= 1 - dp.CalibrateTol // strictly over budget at lo
	for range 60 {
		e, err := spent(hi)
		if err != nil {
			return 0, err
		}
		if e >= (1-dp.CalibrateTol)*eps || hi/lo < 1+1e-9 {
			break
		}
		mid := math.Sqrt(lo * hi)
		em, err := spent(mid)
		if err != nil {
			return 0, err
		}
		if em > eps {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
