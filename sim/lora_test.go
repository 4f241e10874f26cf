package sim

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// loraYAML is a small LoRA scenario on generated data: 2 task-incremental
// tasks of 2 classes with a shared 2-way head, a 64-64-2 MLP whose first
// layer (64 x 64) carries a rank-8 adapter, so A and B have the same size.
const loraYAML = `
name: lora-test
seeds: [0]
methods: [fedavg-lora]
data:
  dataset: synthetic
  stream: split
  tasks: 2
  classes_per_task: 2
  mode: task
  synthetic: {train: 1200, test: 300, classes: 4, dim: 64, noise: 1.0}
partition: {clients: 6, scheme: dirichlet, alpha: 0.5}
model: {arch: mlp, hidden: [64], lora: {rank: 8, alpha: 8, layers: [fc0.weight]}}
train: {rounds_per_task: 4, clients_per_round: 3, local_steps: 5, batch_size: 32, lr: 0.2, workers: 2}
eval: {every: 0, batch_size: 300}
`

// Tolerances of the LoRA tests.
const (
	orthoTol   = 1e-5 // |A A^T - I| entries after a FedSVD refactor (float32 factors)
	epsRelTol  = 0.01 // spent epsilon vs target: at most target (1 + epsRelTol), at least target (1 - epsRelTol)
	bytesRatio = 0.05 // ffa-lora/fedsvd bytes up vs half of fedavg-lora's
)

func loadLoRA(t *testing.T, sets ...string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse([]byte(loraYAML), "lora-test.yaml", sets)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// runLoRA runs the scenario's first run and returns the experiment (with
// its initial and final parameters) and the record.
func runLoRA(t *testing.T, sc *scenarios.Scenario, run scenarios.Run) (*Experiment, *results.Record) {
	t.Helper()
	x, err := NewEnv().Build(sc, run)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := x.Execute(context.Background(), Options{})
	if err != nil {
		t.Fatalf("%s: %v", run.Method.Label(), err)
	}
	return x, rec
}

// changed reports how many values of the view differ between a and b.
func changed(a, b []float32, v nn.ParamView) int {
	n := 0
	for i := v.Offset; i < v.Offset+v.Rows*v.Cols; i++ {
		if a[i] != b[i] {
			n++
		}
	}
	return n
}

// Every LoRA method trains only what it should: the base stays frozen
// except where FLoRA and FedEx-LoRA merge into the adapted W0, FFA-LoRA
// and FedSVD never send A (and FFA-LoRA's A never changes), and the bytes
// up of the B-only methods are half of FedAvg-LoRA's (A and B are the same
// size here).
func TestLoRAMethodsTrainOnlyTheirParameters(t *testing.T) {
	type want struct {
		aChanges, bChanges, w0Changes bool
		factors                       string
	}
	cases := map[string]want{
		"fedavg-lora": {aChanges: true, bChanges: true, factors: "ab"},
		"ffa-lora":    {bChanges: true, factors: "b"},
		"fedsvd":      {aChanges: true, bChanges: true, factors: "b"}, // A changes by the refactor only
		"flora":       {aChanges: true, w0Changes: true, factors: "ab"},
		"fedex-lora":  {aChanges: true, bChanges: true, w0Changes: true, factors: "ab"},
	}
	bytesUp := map[string]int64{}
	for _, name := range []string{"fedavg-lora", "ffa-lora", "fedsvd", "flora", "fedex-lora"} {
		w := cases[name]
		t.Run(name, func(t *testing.T) {
			sc := loadLoRA(t, "methods="+name)
			x, rec := runLoRA(t, sc, sc.Runs()[0])
			bytesUp[name] = rec.BytesUp
			m := x.Model
			ads := m.Adapters()
			if len(ads) != 1 || ads[0].Name != "fc0.weight" {
				t.Fatalf("adapters %+v, want one on fc0.weight", ads)
			}
			ad := ads[0]
			before, after := x.Params, x.Final
			for i, wv := range m.Weights() {
				got := changed(before, after, wv) > 0
				wantW := w.w0Changes && i == ad.Weight
				if got != wantW {
					t.Errorf("%s changed: got %v, want %v", wv.Name, got, wantW)
				}
			}
			for _, bv := range m.Biases() {
				if n := changed(before, after, bv); n != 0 {
					t.Errorf("bias %s: %d values changed, want 0 (biases are frozen)", bv.Name, n)
				}
			}
			if got := changed(before, after, ad.A) > 0; got != w.aChanges {
				t.Errorf("A changed: got %v, want %v", got, w.aChanges)
			}
			if got := changed(before, after, ad.B) > 0; got != w.bChanges {
				t.Errorf("B changed: got %v, want %v", got, w.bChanges)
			}
			if name == "flora" {
				b := after[ad.B.Offset : ad.B.Offset+ad.B.Rows*ad.B.Cols]
				for i, v := range b {
					if v != 0 {
						t.Fatalf("flora: B[%d] = %v after the round, want 0 (re-initialised)", i, v)
					}
				}
			}
			if want := m.AdapterParams(w.factors).Size(); rec.TrainableParams != want {
				t.Errorf("trainable_params %d, want %d", rec.TrainableParams, want)
			}
			if rec.RejectedUpdates != 0 || rec.LateUpdates != 0 {
				t.Errorf("rejected %d, late %d: want 0", rec.RejectedUpdates, rec.LateUpdates)
			}
			if !(rec.ACC > 0) {
				t.Errorf("ACC = %v, want > 0", rec.ACC)
			}
		})
	}
	// B only is half of A and B here; the fixed per-message overhead is small.
	for _, name := range []string{"ffa-lora", "fedsvd"} {
		if r := float64(bytesUp[name]) / float64(bytesUp["fedavg-lora"]); math.Abs(r-0.5) > bytesRatio {
			t.Errorf("%s bytes up = %.3f of fedavg-lora's (%d vs %d), want 0.5 +- %g", name, r, bytesUp[name], bytesUp["fedavg-lora"], bytesRatio)
		}
	}
}

// After a FedSVD round the global A has orthonormal rows (the refactor
// runs every round by default).
func TestFedSVDGlobalAOrthonormal(t *testing.T) {
	sc := loadLoRA(t, "methods=fedsvd")
	x, _ := runLoRA(t, sc, sc.Runs()[0])
	ad := x.Model.Adapters()[0]
	r, din := ad.A.Rows, ad.A.Cols
	a := x.Final[ad.A.Offset : ad.A.Offset+r*din]
	for i := range r {
		for j := range r {
			var dot float64
			for k := range din {
				dot += float64(a[i*din+k]) * float64(a[j*din+k])
			}
			want := 0.0
			if i == j {
				want = 1
			}
			if math.Abs(dot-want) > orthoTol {
				t.Errorf("(A A^T)[%d][%d] = %v, want %v", i, j, dot, want)
			}
		}
	}
}

// Pretraining trains the base on the first task (adapters untouched: B =
// 0, A at its start), the task stays a row and column of the accuracy
// matrix, and FinetuneACC is the accuracy on the later task.
func TestPretrainThenLoRA(t *testing.T) {
	for _, mode := range []string{"central", "federated"} {
		t.Run(mode, func(t *testing.T) {
			sc := loadLoRA(t, "methods=[ffa-lora]", "pretrain.tasks=1", "pretrain.mode="+mode, "pretrain.epochs=2", "pretrain.lr=0.1")
			x, rec := runLoRA(t, sc, sc.Runs()[0])
			m := x.Model
			ad := m.Adapters()[0]
			if n := changed(x.Params, x.Final, m.Weights()[0]); n == 0 {
				t.Error("pretraining left fc0.weight unchanged")
			}
			if n := changed(x.Params, x.Final, ad.A); n != 0 {
				t.Errorf("ffa-lora: %d values of A changed, want 0", n)
			}
			if rec.PretrainTasks != 1 || len(rec.AccMatrix) != 2 || math.IsNaN(rec.AccMatrix[0][0]) {
				t.Errorf("pretrain_tasks %d, matrix %v: want 1 and task 0 evaluated", rec.PretrainTasks, rec.AccMatrix)
			}
			if got, want := rec.FinetuneACC, rec.AccMatrix[1][1]; got != want {
				t.Errorf("finetune_acc %v, want acc[1][1] = %v", got, want)
			}
			wantRounds := sc.Train.RoundsPerTask // the LoRA task; central pretraining has no rounds
			if mode == "federated" {
				wantRounds *= 2
			}
			if rec.Rounds != wantRounds {
				t.Errorf("rounds %d, want %d", rec.Rounds, wantRounds)
			}
			if rec.AccMatrix[0][0] < 60 {
				t.Errorf("acc after pretraining %.2f%%, want >= 60%% (2 classes)", rec.AccMatrix[0][0])
			}
		})
	}
}

// FedSVD with FOT: after central pretraining the server collects GPSE
// sketches in a round without training, so the LoRA task projects its
// product off the pretrained task's input subspace.
func TestFedSVDWithFOTAfterPretraining(t *testing.T) {
	sc := loadLoRA(t, "methods=[{name: fedsvd, fot: true}]", "pretrain.tasks=1", "fot.epsilon=0.9")
	_, rec := runLoRA(t, sc, sc.Runs()[0])
	if rec.Rounds != sc.Train.RoundsPerTask+1 {
		t.Errorf("rounds %d, want %d (the sketch round after pretraining + the LoRA task)", rec.Rounds, sc.Train.RoundsPerTask+1)
	}
	d := rec.TasksDetail
	if len(d) != 2 || d[0].BasisDims["fc0.weight"] < 1 {
		t.Fatalf("tasks detail %+v: want a basis for fc0.weight after the pretraining task", d)
	}
	if f := d[1].ProjectedFraction["fc0.weight"]; !(f > 0 && f <= 1) {
		t.Errorf("projected fraction of fc0.weight in the LoRA task = %v, want in (0, 1]", f)
	}
}

// DP-SGD: every client that trained spent its target epsilon (sigma is
// calibrated for the steps it takes, to within 1%), never more; clients
// that never trained spent nothing.
func TestDPSpentEpsilon(t *testing.T) {
	const target = 4
	sc := loadLoRA(t, fmt.Sprintf("methods=[{name: fedsvd, dp_epsilon: %d}]", target), "dp.clip=1", "train.rounds_per_task=2", "partition.clients=12")
	_, rec := runLoRA(t, sc, sc.Runs()[0])
	d := rec.DP
	if d == nil {
		t.Fatal("no dp object in the record")
	}
	if d.EpsilonTarget != target || d.Delta != 1e-5 || d.Clip != 1 || len(d.EpsilonSpent) != 12 || len(d.Sigma) != 12 {
		t.Fatalf("dp record %+v: want target %d, delta 1e-5, clip 1, 12 clients", d, target)
	}
	trained := map[int]bool{}
	for r := range 2 * 2 {
		for _, c := range server.Sample(rec.Seed, r, 12, 3) {
			trained[int(c)] = true
		}
	}
	maxSpent := 0.0
	for c, e := range d.EpsilonSpent {
		maxSpent = max(maxSpent, e)
		switch {
		case trained[c] && !(e >= target*(1-epsRelTol) && e <= target*(1+epsRelTol)):
			t.Errorf("client %d spent epsilon %.4f, want %g within %g%%", c, e, float64(target), 100*epsRelTol)
		case !trained[c] && e != 0:
			t.Errorf("client %d never trained but spent %v", c, e)
		}
		if !(d.Sigma[c] > 0) {
			t.Errorf("client %d sigma %v, want > 0", c, d.Sigma[c])
		}
	}
	if len(trained) == 12 {
		t.Error("every client trained: the never-trained case is not exercised (change the seed or the rounds)")
	}
	if d.EpsilonSpentMax != maxSpent {
		t.Errorf("epsilon_spent_max %v, want %v", d.EpsilonSpentMax, maxSpent)
	}
	if rec.MethodLabel != "fedsvd(eps_dp=4)" {
		t.Errorf("label %q, want fedsvd(eps_dp=4)", rec.MethodLabel)
	}
	// Without DP there is no dp object.
	sc = loadLoRA(t, "methods=fedsvd")
	if _, rec := runLoRA(t, sc, sc.Runs()[0]); rec.DP != nil {
		t.Errorf("dp object %+v without DP", rec.DP)
	}
}

// LoRA with DP-SGD and pretraining is deterministic too: the same record
// whatever the number of workers and the transport.
func TestLoRADPDeterministic(t *testing.T) {
	sets := []string{"methods=[{name: fedsvd, dp_epsilon: 3}, {name: fedavg-lora, dp_epsilon: 3}, flora]", "pretrain.tasks=1"}
	records := func(extra ...string) map[string][]byte {
		sc := loadLoRA(t, append(append([]string{}, sets...), extra...)...)
		out := map[string][]byte{}
		env := NewEnv()
		for _, r := range sc.Runs() {
			rec, err := env.Run(context.Background(), sc, r, Options{})
			if err != nil {
				t.Fatalf("%s: %v", r.Method.Label(), err)
			}
			out[r.Method.Label()] = canonical(t, rec)
		}
		return out
	}
	ref := records("train.workers=1")
	emb, err := transport.StartEmbedded()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	for name, extra := range map[string][]string{
		"workers=3":     {"train.workers=3"},
		"external nats": {"train.workers=2", "transport.nats=" + emb.URL()},
	} {
		got := records(extra...)
		for k, want := range ref {
			if !bytes.Equal(got[k], want) {
				t.Errorf("%s, %s: record differs from the 1-worker embedded run:\ngot  %s\nwant %s", name, k, got[k], want)
			}
		}
	}
}

// calibrateMixed hits the target epsilon within dp.CalibrateTol (and never
// above it) for a client whose sampling rate changes with the task.
func TestCalibrateMixedRates(t *testing.T) {
	type part struct {
		q     float64
		steps int
	}
	const eps, delta = 3.0, 1e-5
	cases := [][]part{
		{{0.05, 200}},
		{{0.02, 300}, {0.1, 50}},
		{{0.5, 10}, {0.01, 1000}, {0.05, 20}},
	}
	for i, parts := range cases {
		sigma, err := calibrateMixed(parts, eps, delta, func(p part) (float64, int) { return p.q, p.steps })
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		acc, err := dp.NewAccountant(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			if err := acc.Compose(p.q, sigma, p.steps); err != nil {
				t.Fatal(err)
			}
		}
		got, _, err := acc.Epsilon(delta)
		if err != nil {
			t.Fatal(err)
		}
		if got > eps || got < (1-2*dp.CalibrateTol)*eps {
			t.Errorf("case %d: sigma %.4f spends epsilon %.5f, want in [%.5f, %g]", i, sigma, got, (1-2*dp.CalibrateTol)*eps, eps)
		}
	}
	if s, err := calibrateMixed([]part(nil), eps, delta, func(p part) (float64, int) { return p.q, p.steps }); err != nil || s != 1 {
		t.Errorf("no steps: sigma %v, err %v, want 1, nil", s, err)
	}
}
