package client_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

// Tolerances.
const (
	fdStep64      = 1e-5 // central-difference step on float64 logits
	distillTol    = 2e-6 // |DistillGrad - finite difference| (float32 output)
	ceTol         = 1e-6 // |returned CE - float64 CE|
	penaltyTol    = 1e-6 // relative error of the penalty gradient (float32)
	fdStep32      = 3e-3 // central-difference step on float32 parameters
	fdModelTol    = 3e-4 // |analytic - finite difference| through the float32 model
	stepTol       = 2e-6 // one SGD step vs the hand-computed one (summation order)
	fisherRelTol  = 1e-5 // Fisher vs independent per-sample gradients
	fisherAbsTol  = 1e-9
	lossDropRatio = 0.5 // the last epoch's loss is below this share of the first's
)

// refDistill returns, in float64, the mean over rows of CE(z_i, y_i) +
// alpha T^2 KL(softmax(zt_i/T) || softmax(z_i/T)), and the mean CE alone.
func refDistill(z []float64, zt []float32, y []int32, n, c int, alpha, temp float64) (total, ce float64) {
	lse := func(v []float64, s float64) float64 {
		m := math.Inf(-1)
		for _, x := range v {
			m = max(m, x/s)
		}
		var sum float64
		for _, x := range v {
			sum += math.Exp(x/s - m)
		}
		return m + math.Log(sum)
	}
	for i := 0; i < n; i++ {
		zi := z[i*c : (i+1)*c]
		ti := make([]float64, c)
		for j := range ti {
			ti[j] = float64(zt[i*c+j])
		}
		ceI := lse(zi, 1) - zi[y[i]]
		lz, lt := lse(zi, temp), lse(ti, temp)
		var kl float64
		for j := 0; j < c; j++ {
			logq := ti[j]/temp - lt
			logp := zi[j]/temp - lz
			kl += math.Exp(logq) * (logq - logp)
		}
		ce += ceI
		total += ceI + alpha*temp*temp*kl
	}
	return total / float64(n), ce / float64(n)
}

func TestDistillGradFiniteDifference(t *testing.T) {
	const n, c = 5, 4
	r := rand.New(rand.NewPCG(1, 2))
	z := make([]float32, n*c)
	zt := make([]float32, n*c)
	for i := range z {
		z[i] = float32(2 * r.NormFloat64())
		zt[i] = float32(2 * r.NormFloat64())
	}
	y := []int32{0, 3, 1, 2, 3}
	tests := []struct {
		name        string
		alpha, temp float32
		refTemp     float64 // the temperature the formula uses
	}{
		{"alpha0", 0, 1, 1},
		{"alpha0.5-T2", 0.5, 2, 2},
		{"alpha1-T1", 1, 1, 1},
		{"alpha2-T4", 2, 4, 4},
		{"alpha1-T0.5", 1, 0.5, 0.5},
		{"T0-means-1", 0.3, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, n*c)
			got := client.DistillGrad(dst, z, zt, y, n, c, tc.alpha, tc.temp)
			z64 := make([]float64, n*c)
			for i, v := range z {
				z64[i] = float64(v)
			}
			_, wantCE := refDistill(z64, zt, y, n, c, float64(tc.alpha), tc.refTemp)
			if math.Abs(float64(got)-wantCE) > ceTol {
				t.Errorf("returned loss: got %v, want mean CE %v", got, wantCE)
			}
			for i := range z64 {
				orig := z64[i]
				z64[i] = orig + fdStep64
				lp, _ := refDistill(z64, zt, y, n, c, float64(tc.alpha), tc.refTemp)
				z64[i] = orig - fdStep64
				lm, _ := refDistill(z64, zt, y, n, c, float64(tc.alpha), tc.refTemp)
				z64[i] = orig
				fd := (lp - lm) / (2 * fdStep64)
				if math.Abs(float64(dst[i])-fd) > distillTol {
					t.Errorf("d/dz[%d]: got %v, want %v (finite difference)", i, dst[i], fd)
				}
			}
			if tc.alpha != 0 {
				return
			}
			// alpha = 0: exactly the softmax cross-entropy gradient / n.
			want := make([]float32, c)
			for i := 0; i < n; i++ {
				client.SoftmaxMinusOneHot(want, z[i*c:(i+1)*c], y[i])
				for j := range want {
					if w := want[j] / n; math.Abs(float64(dst[i*c+j]-w)) > 1e-7 {
						t.Errorf("alpha 0: d/dz[%d,%d]: got %v, want (softmax-onehot)/n = %v", i, j, dst[i*c+j], w)
					}
				}
			}
		})
	}
}

func TestDistillGradTeacherEqualsStudent(t *testing.T) {
	// When the teacher's logits equal the student's, the KL term and its
	// gradient vanish whatever alpha and T.
	const n, c = 3, 4
	z := []float32{1, -2, 0.5, 3, 0, 0, 0, 0, -1, 2, 2, -4}
	y := []int32{3, 1, 0}
	plain := make([]float32, n*c)
	client.DistillGrad(plain, z, z, y, n, c, 0, 1)
	for _, tc := range []struct{ alpha, temp float32 }{{1, 1}, {3, 2}, {0.5, 5}} {
		dst := make([]float32, n*c)
		client.DistillGrad(dst, z, z, y, n, c, tc.alpha, tc.temp)
		if d := clienttest.MaxAbsDiff(dst, plain); d > 1e-7 {
			t.Errorf("alpha %v T %v: max |grad - CE grad| = %v, want 0", tc.alpha, tc.temp, d)
		}
	}
}

func TestAddPenalties(t *testing.T) {
	const n = 7
	r := rand.New(rand.NewPCG(3, 4))
	vec := func(scale float64, positive bool) []float32 {
		v := make([]float32, n)
		for i := range v {
			x := scale * r.NormFloat64()
			if positive {
				x = math.Abs(x)
			}
			v[i] = float32(x)
		}
		return v
	}
	w, g0, global, u, v := vec(1, false), vec(1, false), vec(1, false), vec(1, true), vec(1, false)
	tests := []struct {
		name string
		ex   client.Extras
		mu   float64 // expected FedProx coefficient in effect
		lam  float64 // expected quadratic coefficient in effect
	}{
		{"zero", client.Extras{}, 0, 0},
		{"prox", client.Extras{Mu: 0.3, Global: global}, 0.3, 0},
		{"prox-without-global", client.Extras{Mu: 0.3}, 0, 0},
		{"quad", client.Extras{Lambda: 2.5, U: u, V: v}, 0, 2.5},
		{"quad-lambda0", client.Extras{U: u, V: v}, 0, 0},
		{"both", client.Extras{Mu: 0.1, Global: global, Lambda: 4, U: u, V: v}, 0.1, 4},
		{"teacher-only", client.Extras{Teacher: global, Alpha: 1, Temp: 2}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grad := slices.Clone(g0)
			tc.ex.AddPenalties(grad, w)
			for i := range grad {
				want := float64(g0[i]) + tc.mu*(float64(w[i])-float64(global[i])) + tc.lam*(float64(u[i])*float64(w[i])-float64(v[i]))
				if tc.mu == 0 && tc.lam == 0 {
					if grad[i] != g0[i] {
						t.Errorf("grad[%d]: got %v, want it unchanged (%v)", i, grad[i], g0[i])
					}
					continue
				}
				if math.Abs(float64(grad[i])-want) > penaltyTol*(1+math.Abs(want)) {
					t.Errorf("grad[%d]: got %v, want %v", i, grad[i], want)
				}
			}
		})
	}
}

// ceLoss64 is the mean cross-entropy of the model's eval-mode logits (a
// model without dropout: the same as training mode), in float64.
func ceLoss64(ws *nn.Workspace, params, x []float32, y []int32, n, head int) float64 {
	z := ws.Forward(params, x, n, head, false, nil)
	c := len(z) / n
	var loss float64
	for i := 0; i < n; i++ {
		zi := z[i*c : (i+1)*c]
		m := math.Inf(-1)
		for _, v := range zi {
			m = max(m, float64(v))
		}
		var s float64
		for _, v := range zi {
			s += math.Exp(float64(v) - m)
		}
		loss += m + math.Log(s) - float64(zi[y[i]])
	}
	return loss / float64(n)
}

func TestPenalisedGradientFiniteDifference(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 40, 1)
	const n = 6
	x := make([]float32, n*clienttest.In)
	y := make([]int32, n)
	data.View{Base: d}.Gather(x, y, clienttest.RowRange(0, n))
	params := clienttest.InitParams(m, 5)
	np := m.NumParams()
	r := rand.New(rand.NewPCG(6, 7))
	global, u, v := make([]float32, np), make([]float32, np), make([]float32, np)
	for i := range global {
		global[i] = params[i] + float32(0.3*r.NormFloat64())
		u[i] = float32(math.Abs(r.NormFloat64()))
		v[i] = float32(r.NormFloat64())
	}
	ex := &client.Extras{Mu: 0.5, Global: global, Lambda: 0.7, U: u, V: v}
	penalty := func(w []float32) float64 {
		var p float64
		for i := range w {
			dw := float64(w[i]) - float64(global[i])
			p += 0.5*float64(ex.Mu)*dw*dw + 0.5*float64(ex.Lambda)*(float64(u[i])*float64(w[i])*float64(w[i])-2*float64(v[i])*float64(w[i]))
		}
		return p
	}
	ws := m.NewWorkspace(n)
	grad := make([]float32, np)
	ws.LossGrad(params, grad, x, y, n, 0, rand.New(rand.NewPCG(0, 0)))
	ex.AddPenalties(grad, params)

	w := slices.Clone(params)
	for i := range w {
		orig := w[i]
		w[i] = orig + fdStep32
		lp := ceLoss64(ws, w, x, y, n, 0) + penalty(w)
		hp := float64(w[i])
		w[i] = orig - fdStep32
		lm := ceLoss64(ws, w, x, y, n, 0) + penalty(w)
		hm := float64(w[i])
		w[i] = orig
		fd := (lp - lm) / (hp - hm)
		if math.Abs(float64(grad[i])-fd) > fdModelTol*(1+math.Abs(fd)) {
			t.Errorf("param %d: got gradient %v, want %v (finite difference)", i, grad[i], fd)
		}
	}
}

// oneBatch returns a segment of the first n rows of d and those rows
// gathered in segment order.
func oneBatch(d *data.Dataset, n int) (client.Segment, []float32, []int32) {
	s := client.Segment{View: data.View{Base: d}, Rows: clienttest.RowRange(0, n)}
	x := make([]float32, n*d.Dim())
	y := make([]int32, n)
	s.View.Gather(x, y, s.Rows)
	return s, x, y
}

func TestTrainOneStepAppliesExtras(t *testing.T) {
	// One epoch with the whole segment in one batch is one SGD step on
	// the full-batch gradient, whatever the shuffle: the step must be
	// params - lr (grad + penalties + wd params).
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 40, 1)
	const n = 12
	seg, x, y := oneBatch(d, n)
	params := clienttest.InitParams(m, 11)
	np := m.NumParams()
	r := rand.New(rand.NewPCG(12, 13))
	global, u, v, teacher := make([]float32, np), make([]float32, np), make([]float32, np), clienttest.InitParams(m, 99)
	for i := range global {
		global[i] = params[i] + float32(0.5*r.NormFloat64())
		u[i] = float32(math.Abs(r.NormFloat64()))
		v[i] = float32(r.NormFloat64())
	}
	cfg := client.Config{Seed: 1, Epochs: 1, BatchSize: n, SGD: nn.SGD{LR: 0.2, WeightDecay: 0.01}}
	ws := m.NewWorkspace(n)
	tests := []struct {
		name    string
		ex      *client.Extras
		distill bool
	}{
		{"nil", nil, false},
		{"zero", &client.Extras{}, false},
		{"fedprox", &client.Extras{Mu: 0.5, Global: global}, false},
		{"quadratic", &client.Extras{Lambda: 0.8, U: u, V: v}, false},
		{"distill", &client.Extras{Teacher: teacher, Alpha: 0.7, Temp: 2}, true},
		{"distill-alpha0-is-plain", &client.Extras{Teacher: teacher, Alpha: 0, Temp: 2}, false},
		{"distill+prox", &client.Extras{Teacher: teacher, Alpha: 1.5, Temp: 3, Mu: 0.2, Global: global}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grad := make([]float32, np)
			var wantLoss float32
			if tc.distill {
				c := clienttest.Classes
				zt := slices.Clone(ws.Forward(tc.ex.Teacher, x, n, 0, false, nil))
				z := ws.Forward(params, x, n, 0, true, nil)
				dl := make([]float32, n*c)
				wantLoss = client.DistillGrad(dl, z, zt, y, n, c, tc.ex.Alpha, tc.ex.Temp)
				ws.Backward(params, grad, dl)
			} else {
				wantLoss = ws.LossGrad(params, grad, x, y, n, 0, nil)
			}
			want := slices.Clone(params)
			for i := range want {
				g := float64(grad[i]) + float64(cfg.SGD.WeightDecay)*float64(params[i])
				if tc.ex != nil && tc.ex.Global != nil {
					g += float64(tc.ex.Mu) * (float64(params[i]) - float64(global[i]))
				}
				if tc.ex != nil && tc.ex.U != nil {
					g += float64(tc.ex.Lambda) * (float64(u[i])*float64(params[i]) - float64(v[i]))
				}
				want[i] = float32(float64(params[i]) - float64(cfg.SGD.LR)*g)
			}
			got := slices.Clone(params)
			loss, steps := client.NewTrainer(m, n).Train(got, []client.Segment{seg}, cfg, tc.ex, 3, 4)
			if steps != 1 {
				t.Fatalf("steps: got %d, want 1", steps)
			}
			if math.Abs(loss-float64(wantLoss)) > 1e-5 {
				t.Errorf("loss: got %v, want %v (the data term)", loss, wantLoss)
			}
			if d := clienttest.MaxAbsDiff(got, want); d > stepTol {
				t.Errorf("params after one step: max |got - want| = %v, want <= %v", d, stepTol)
			}
		})
	}
}

func TestFisherMatchesPerSampleGradients(t *testing.T) {
	// The Fisher is computed in evaluation mode, so a model with dropout
	// must give the Fisher of the same parameters without dropout.
	mDrop := clienttest.Model(t, 1, true)
	mPlain := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 60, 1)
	params := clienttest.InitParams(mPlain, 21)
	seg := client.Segment{View: clienttest.PermutedView(d, 3), Rows: clienttest.RowRange(10, 40)}
	const seed, clientID, round = 77, 5, 9

	// Independent reference: per-sample gradients with batch 1.
	ws := mPlain.NewWorkspace(1)
	grad := make([]float32, mPlain.NumParams())
	x := make([]float32, clienttest.In)
	y := make([]int32, 1)
	fisherOf := func(rows []int32) []float64 {
		f := make([]float64, len(grad))
		for _, row := range rows {
			seg.View.Gather(x, y, []int32{row})
			ws.LossGrad(params, grad, x, y, 1, 0, nil)
			for j, g := range grad {
				f[j] += float64(g) * float64(g)
			}
		}
		for j := range f {
			f[j] /= float64(len(rows))
		}
		return f
	}
	// The rows a limit selects: the first of a shuffle by (seed, "fisher",
	// client, round).
	shuffled := slices.Clone(seg.Rows)
	sr := rng.New(seed, "fisher", clientID, round)
	sr.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	tests := []struct {
		name   string
		model  *nn.Model
		limit  int
		wantN  int
		sample []int32
	}{
		{"all", mPlain, 0, 30, seg.Rows},
		{"all-dropout-model", mDrop, 0, 30, seg.Rows},
		{"limit7", mPlain, 7, 7, shuffled[:7]},
		{"limit-above-n", mPlain, 100, 30, seg.Rows},
		{"limit-equals-n", mDrop, 30, 30, seg.Rows},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]float32, len(grad))
			for i := range dst {
				dst[i] = 123 // must be overwritten
			}
			n := client.NewTrainer(tc.model, 4).Fisher(dst, params, seg, tc.limit, seed, clientID, round)
			if n != tc.wantN {
				t.Fatalf("samples: got %d, want %d", n, tc.wantN)
			}
			want := fisherOf(tc.sample)
			for j := range want {
				if math.Abs(float64(dst[j])-want[j]) > fisherRelTol*want[j]+fisherAbsTol {
					t.Errorf("F[%d]: got %v, want %v", j, dst[j], want[j])
				}
			}
		})
	}
	// A limit really selects a subset: its Fisher differs from the full one.
	full, part := make([]float32, len(grad)), make([]float32, len(grad))
	tr := client.NewTrainer(mPlain, 4)
	tr.Fisher(full, params, seg, 0, seed, clientID, round)
	tr.Fisher(part, params, seg, 7, seed, clientID, round)
	if clienttest.MaxAbsDiff(full, part) == 0 {
		t.Error("Fisher on 7 of 30 rows equals the Fisher on all rows")
	}
}

func TestFisherEmptySegment(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 20, 1)
	dst := make([]float32, m.NumParams())
	dst[0] = 5
	n := client.NewTrainer(m, 4).Fisher(dst, clienttest.InitParams(m, 1), client.Segment{View: data.View{Base: d}}, 0, 1, 0, 0)
	if n != 0 || clienttest.MaxAbs(dst) != 0 {
		t.Errorf("empty segment: got n=%d, max |F|=%v, want 0 and 0", n, clienttest.MaxAbs(dst))
	}
}

func TestTrainDeterminism(t *testing.T) {
	m := clienttest.Model(t, 1, true) // dropout: masks must be seeded too
	d := clienttest.Dataset(t, 60, 1)
	segs := []client.Segment{{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 37)}}
	start := clienttest.InitParams(m, 3)
	cfg := clienttest.TrainConfig()
	shared := client.NewTrainer(m, cfg.BatchSize)
	run := func(tr *client.Trainer, c, round int) []float32 {
		p := slices.Clone(start)
		tr.Train(p, segs, cfg, nil, c, round)
		return p
	}
	base := run(shared, 2, 5)
	tests := []struct {
		name      string
		tr        *client.Trainer
		c, round  int
		wantEqual bool
	}{
		{"same-fresh-trainer", client.NewTrainer(m, cfg.BatchSize), 2, 5, true},
		{"same-reused-trainer", shared, 2, 5, true},
		{"same-bigger-trainer", client.NewTrainer(m, 16), 2, 5, true},
		{"other-client", shared, 3, 5, false},
		{"other-round", shared, 2, 6, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Interleave an unrelated run to catch state leaking between calls.
			run(tc.tr, 9, 9)
			got := run(tc.tr, tc.c, tc.round)
			diff := clienttest.MaxAbsDiff(got, base)
			if tc.wantEqual && diff != 0 {
				t.Errorf("max |diff| = %v, want bit-identical parameters", diff)
			}
			if !tc.wantEqual && diff == 0 {
				t.Errorf("parameters identical to (client 2, round 5), want different")
			}
		})
	}
	// The seed names the streams too.
	cfg2 := cfg
	cfg2.Seed++
	p := slices.Clone(start)
	shared.Train(p, segs, cfg2, nil, 2, 5)
	if clienttest.MaxAbsDiff(p, base) == 0 {
		t.Error("another seed gave identical parameters")
	}
}

// referenceTrain is the documented algorithm for one segment: per epoch e
// the rows are shuffled by (seed, "shuffle", client, round, e) and cut in
// order into batches; dropout masks come from (seed, "dropout", client,
// round), one stream for the whole call.
func referenceTrain(m *nn.Model, params []float32, s client.Segment, cfg client.Config, c, round int) {
	ws := m.NewWorkspace(cfg.BatchSize)
	grad := make([]float32, m.NumParams())
	dr := rng.New(cfg.Seed, "dropout", c, round)
	x := make([]float32, cfg.BatchSize*m.InputSize())
	y := make([]int32, cfg.BatchSize)
	for e := 0; e < cfg.Epochs; e++ {
		o := slices.Clone(s.Rows)
		sr := rng.New(cfg.Seed, "shuffle", c, round, e)
		sr.Shuffle(len(o), func(i, j int) { o[i], o[j] = o[j], o[i] })
		for lo := 0; lo < len(o); lo += cfg.BatchSize {
			hi := min(lo+cfg.BatchSize, len(o))
			n := hi - lo
			s.View.Gather(x[:n*m.InputSize()], y[:n], o[lo:hi])
			ws.LossGrad(params, grad, x[:n*m.InputSize()], y[:n], n, s.Head, dr)
			cfg.SGD.Step(params, grad, nil)
		}
	}
}

func TestTrainFollowsDocumentedStreams(t *testing.T) {
	m := clienttest.Model(t, 1, true)
	d := clienttest.Dataset(t, 60, 1)
	s := client.Segment{View: clienttest.PermutedView(d, 4), Rows: clienttest.RowRange(3, 26)}
	cfg := clienttest.TrainConfig()
	cfg.Epochs = 3
	want := clienttest.InitParams(m, 8)
	got := slices.Clone(want)
	referenceTrain(m, want, s, cfg, 6, 2)
	_, steps := client.NewTrainer(m, cfg.BatchSize).Train(got, []client.Segment{s}, cfg, nil, 6, 2)
	if wantSteps := cfg.Epochs * 5; steps != wantSteps { // ceil(23/5) = 5
		t.Errorf("steps: got %d, want %d", steps, wantSteps)
	}
	if diff := clienttest.MaxAbsDiff(got, want); diff != 0 {
		t.Errorf("max |Train - reference| = %v, want bit-identical", diff)
	}
}

func TestTrainSegmentsUseTheirHeads(t *testing.T) {
	// Three per-task heads; the client has data of tasks 0 and 1 only.
	m := clienttest.Model(t, 3, false)
	d := clienttest.Dataset(t, 80, 1)
	segs := []client.Segment{
		{View: clienttest.PermutedView(d, 0), Rows: clienttest.RowRange(0, 9), Head: 0},
		{View: clienttest.PermutedView(d, 1), Rows: clienttest.RowRange(20, 29), Head: 1},
	}
	start := clienttest.InitParams(m, 4)
	cfg := client.Config{Seed: 5, Epochs: 2, BatchSize: 4, SGD: nn.SGD{LR: 0.1}} // no weight decay
	got := slices.Clone(start)
	_, steps := client.NewTrainer(m, cfg.BatchSize).Train(got, segs, cfg, nil, 1, 1)
	// Batches never straddle segments: ceil(9/4) + ceil(9/4) = 6 per
	// epoch, where mixing the 18 rows would give ceil(18/4) = 5.
	if want := 2 * 6; steps != want {
		t.Errorf("steps: got %d, want %d (one segment per batch)", steps, want)
	}
	for h := 0; h < 3; h++ {
		off, n := m.HeadRange(h)
		changed := clienttest.MaxAbsDiff(got[off:off+n], start[off:off+n]) != 0
		if want := h < 2; changed != want {
			t.Errorf("head %d changed: got %v, want %v", h, changed, want)
		}
	}

	// Each segment trains through its own head only: a batch of segment
	// 0 leaves head 1 alone, so training on segment 0 alone changes head
	// 0 and nothing of head 1, and vice versa.
	for si, seg := range segs {
		p := slices.Clone(start)
		client.NewTrainer(m, cfg.BatchSize).Train(p, []client.Segment{seg}, cfg, nil, 1, 1)
		for h := 0; h < 3; h++ {
			off, n := m.HeadRange(h)
			changed := clienttest.MaxAbsDiff(p[off:off+n], start[off:off+n]) != 0
			if want := h == seg.Head; changed != want {
				t.Errorf("segment %d alone: head %d changed: got %v, want %v", si, h, changed, want)
			}
		}
	}
}

func TestTrainLossDecreases(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 200, 0.5)
	segs := []client.Segment{{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 200)}}
	cfg := client.Config{Seed: 1, Epochs: 1, BatchSize: 10, SGD: nn.SGD{LR: 0.1}}
	p := clienttest.InitParams(m, 2)
	tr := client.NewTrainer(m, cfg.BatchSize)
	var losses []float64
	for e := 0; e < 8; e++ {
		loss, _ := tr.Train(p, segs, cfg, nil, 0, e)
		losses = append(losses, loss)
	}
	if !(losses[len(losses)-1] < lossDropRatio*losses[0]) {
		t.Errorf("losses over epochs %v: got last %v, want < %v x first", losses, losses[len(losses)-1], lossDropRatio)
	}
	for i := 1; i < len(losses); i++ {
		if losses[i] > losses[i-1]*1.05 {
			t.Errorf("loss rose from %v to %v at epoch %d", losses[i-1], losses[i], i)
		}
	}
	// More epochs in one call also reduce the full-data loss.
	ws := m.NewWorkspace(200)
	x := make([]float32, 200*clienttest.In)
	y := make([]int32, 200)
	segs[0].View.Gather(x, y, segs[0].Rows)
	q := clienttest.InitParams(m, 2)
	before := ceLoss64(ws, q, x, y, 200, 0)
	cfg.Epochs = 5
	tr.Train(q, segs, cfg, nil, 0, 0)
	if after := ceLoss64(ws, q, x, y, 200, 0); !(after < lossDropRatio*before) {
		t.Errorf("full-data loss after 5 epochs: got %v, want < %v x %v", after, lossDropRatio, before)
	}
}

func TestTrainMomentumResetsBetweenCalls(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	d := clienttest.Dataset(t, 40, 1)
	segs := []client.Segment{{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 20)}}
	cfg := client.Config{Seed: 1, Epochs: 1, BatchSize: 5, SGD: nn.SGD{LR: 0.05, Momentum: 0.9}}
	start := clienttest.InitParams(m, 1)
	tr := client.NewTrainer(m, 5)
	a := slices.Clone(start)
	tr.Train(a, segs, cfg, nil, 0, 0)
	b := slices.Clone(start)
	tr.Train(b, segs, cfg, nil, 0, 0) // velocity must start at zero again
	if diff := clienttest.MaxAbsDiff(a, b); diff != 0 {
		t.Errorf("second call with momentum: max |diff| = %v, want 0", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	ok := clienttest.TrainConfig()
	tests := []struct {
		name    string
		edit    func(*client.Config)
		wantErr bool
	}{
		{"ok", func(*client.Config) {}, false},
		{"epochs0", func(c *client.Config) { c.Epochs = 0 }, true},
		{"batch0", func(c *client.Config) { c.BatchSize = 0 }, true},
		{"lr0", func(c *client.Config) { c.SGD.LR = 0 }, true},
		{"lrNaN", func(c *client.Config) { c.SGD.LR = float32(math.NaN()) }, true},
	}
	for _, tc := range tests {
		c := ok
		tc.edit(&c)
		err := c.Validate()
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: got error %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestTrainAllocatesNothingWhenWarm(t *testing.T) {
	m := clienttest.Model(t, 2, true)
	d := clienttest.Dataset(t, 60, 1)
	segs := []client.Segment{
		{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 23), Head: 0},
		{View: clienttest.PermutedView(d, 1), Rows: clienttest.RowRange(23, 40), Head: 1},
	}
	other := clienttest.InitParams(m, 2)
	ones := make([]float32, len(other))
	for i := range ones {
		ones[i] = 1
	}
	tests := []struct {
		name string
		ex   *client.Extras
		bug  string
	}{
		{"plain", nil, ""},
		{"fedprox", &client.Extras{Mu: 0.1, Global: other}, ""},
		{"quadratic", &client.Extras{Lambda: 0.1, U: ones, V: other}, ""},
		{"distill", &client.Extras{Teacher: other, Alpha: 1, Temp: 2}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip(tc.bug)
			}
			cfg := clienttest.TrainConfig()
			tr := client.NewTrainer(m, cfg.BatchSize)
			p := clienttest.InitParams(m, 1)
			tr.Train(p, segs, cfg, tc.ex, 0, 0) // warm-up: sizes the buffers
			if a := testing.AllocsPerRun(5, func() { tr.Train(p, segs, cfg, tc.ex, 0, 1) }); a != 0 {
				t.Errorf("Train: got %v allocations per call, want 0", a)
			}
		})
	}
}

func BenchmarkTrain(b *testing.B) {
	m := clienttest.Model(b, 1, true)
	d := clienttest.Dataset(b, 512, 1)
	segs := []client.Segment{{View: data.View{Base: d}, Rows: clienttest.RowRange(0, 512)}}
	cfg := client.Config{Seed: 1, Epochs: 1, BatchSize: 32, SGD: nn.SGD{LR: 0.01}}
	tr := client.NewTrainer(m, cfg.BatchSize)
	p := clienttest.InitParams(m, 1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		tr.Train(p, segs, cfg, nil, 0, i)
	}
	b.ReportMetric(float64(b.N*len(segs[0].Rows))/b.Elapsed().Seconds(), "samples/s")
}
