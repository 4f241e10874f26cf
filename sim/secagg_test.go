package sim

import (
	"bytes"
	"context"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// secaggSets make the synthetic scenario aggregate securely, 3 clients a
// round, FedAvg and FOT (whose task-end GPSE sketches are summed securely
// too).
var secaggSets = []string{"methods=[fedavg,fot]", "train.clients_per_round=3", "eval.every=1"}

// runParams runs r of sc and returns its record and the global model after
// every round (from the round loop's checkpoint hook), with the initial
// model first.
func runParams(t *testing.T, env *Env, sc *scenarios.Scenario, r scenarios.Run) (*results.Record, [][]float32) {
	t.Helper()
	x, err := env.Build(sc, r)
	if err != nil {
		t.Fatal(err)
	}
	models := [][]float32{slices.Clone(x.Params)}
	x.checkpoint = func(st *server.State) error {
		models = append(models, slices.Clone(st.Params))
		return nil
	}
	rec, err := x.Execute(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	return rec, models
}

// A securely aggregated run applies, in its first round, the plain run's
// mean within the fixed-point bound (plus float32 rounding of the model),
// and ends close to it: FedAvg, and FOT with its sketches summed securely.
func TestSecAggRunMatchesPlainRun(t *testing.T) {
	env := NewEnv()
	plain, err := scenarios.Load("synthetic", secaggSets)
	if err != nil {
		t.Fatal(err)
	}
	secure, err := scenarios.Load("synthetic", append(slices.Clone(secaggSets), "secagg={}"))
	if err != nil {
		t.Fatal(err)
	}
	k := plain.Train.ClientsPerRound
	p := protocol.SecAgg{}.Params(0, 0, k)
	for i, r := range plain.Runs() {
		pr, pm := runParams(t, env, plain, r)
		sr, sm := runParams(t, env, secure, secure.Runs()[i])
		if len(pm) != len(sm) {
			t.Fatalf("%s: %d and %d rounds", r.Method.Name, len(pm), len(sm))
		}
		// Round 0: |secure - plain| <= SecureMeanError (uniform weights:
		// the summed weight is k) + the float32 roundings of both means and
		// both models.
		var worst float64
		for j := range pm[1] {
			agg := float64(pm[1][j] - pm[0][j])
			tol := server.SecureMeanError(p, k, float64(k), agg) + math.Ldexp(math.Abs(agg), -22) + math.Ldexp(math.Abs(float64(pm[1][j])), -22)
			d := math.Abs(float64(sm[1][j] - pm[1][j]))
			if d > tol {
				t.Fatalf("%s: round 0, parameter %d: secure %g, plain %g: |diff| %g above %g", r.Method.Name, j, sm[1][j], pm[1][j], d, tol)
			}
			worst = max(worst, d)
		}
		var last float64
		for j := range pm[len(pm)-1] {
			last = max(last, math.Abs(float64(sm[len(sm)-1][j]-pm[len(pm)-1][j])))
		}
		t.Logf("%s: round 0 largest |secure - plain| %.3g; after %d rounds %.3g; ACC %.2f (plain %.2f)", r.Method.Name, worst, len(pm)-1, last, sr.ACC, pr.ACC)
		if math.Abs(sr.ACC-pr.ACC) > 2 {
			t.Errorf("%s: ACC %.2f securely, %.2f plainly", r.Method.Name, sr.ACC, pr.ACC)
		}
		for ti, d := range pr.TasksDetail {
			if !maps.Equal(d.BasisDims, sr.TasksDetail[ti].BasisDims) {
				t.Errorf("%s: task %d basis dims %v securely, %v plainly", r.Method.Name, ti, sr.TasksDetail[ti].BasisDims, d.BasisDims)
			}
		}
		if pr.SecAggBytesUp != 0 || sr.SecAggBytesUp == 0 || sr.BytesUp <= pr.BytesUp {
			t.Errorf("%s: bytes up %d (secagg %d) securely, %d (secagg %d) plainly", r.Method.Name, sr.BytesUp, sr.SecAggBytesUp, pr.BytesUp, pr.SecAggBytesUp)
		}
	}
}

// With system dropouts, clients that shared their keys and then failed
// are recovered from the survivors' shares in every round: the run ends,
// and each round aggregates exactly the clients that did not fail.
func TestSecAggDropoutRecoveryInARun(t *testing.T) {
	sc, err := scenarios.Load("synthetic", []string{"methods=[fedavg,fot]", "partition.clients=8", "train.clients_per_round=5",
		"system={dropout: 0.3}", "secagg={threshold: 2}"})
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv()
	for _, r := range sc.Runs() {
		rec, err := env.Run(context.Background(), sc, r, Options{})
		if err != nil {
			t.Fatalf("%s: %v", r.Method.Name, err)
		}
		dropped := 0
		for _, d := range rec.RoundsDetail {
			if !d.Skipped && d.Aggregated != d.Selected-d.Dropped-d.Late {
				t.Errorf("%s: round %d aggregated %d of %d selected, %d dropped", r.Method.Name, d.Round, d.Aggregated, d.Selected, d.Dropped)
			}
			if !d.Skipped {
				dropped += d.Dropped
			}
		}
		if dropped == 0 || rec.SecAggRecovered != dropped {
			t.Errorf("%s: %d clients recovered, %d dropped in aggregated rounds (want some, all recovered)", r.Method.Name, rec.SecAggRecovered, dropped)
		}
		t.Logf("%s: %d dropouts recovered over %d rounds, ACC %.2f", r.Method.Name, rec.SecAggRecovered, rec.Rounds, rec.ACC)
	}
}

// Same scenario and seed, same record, whatever the workers.
func TestSecAggDeterministic(t *testing.T) {
	env := NewEnv()
	var got [2]map[string][]byte
	for i, workers := range []string{"train.workers=1", "train.workers=2"} {
		sc, err := scenarios.Load("synthetic", append(slices.Clone(secaggSets), "secagg={ring: compact}", "methods=[fot]", workers))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "run")
		if _, err := env.Run(context.Background(), sc, sc.Runs()[0], Options{Out: out}); err != nil {
			t.Fatal(err)
		}
		got[i] = readRecordFiles(t, out)
	}
	for _, f := range recordFiles {
		if f == "scenario.yaml" {
			continue // names the workers
		}
		if !bytes.Equal(got[0][f], got[1][f]) {
			t.Errorf("%s differs between two runs:\n%.600s\n%.600s", f, got[0][f], got[1][f])
		}
	}
	if !bytes.Contains(got[0]["result.json"], []byte(`"secagg_bytes_up"`)) {
		t.Errorf("result.json has no secagg_bytes_up")
	}
}

// Secure aggregation keeps nothing across rounds: a run resumed from its
// checkpoints writes the uninterrupted run's record.
func TestSecAggResumeMatchesUninterruptedRun(t *testing.T) {
	if testing.Short() {
		t.Skip("several runs")
	}
	sc, err := scenarios.Load("synthetic", append(slices.Clone(secaggSets), "secagg={}"))
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv()
	for _, r := range sc.Runs() {
		t.Run(r.Method.Name, func(t *testing.T) { checkResume(t, env, sc, r, "") })
	}
}

// One round of the FOT paper's model and federation (784-400-400-400-10,
// 64 of 125 clients) on generated data, in the clear and securely: the
// bytes recorded, and the secure ones equal to the sizes of secagg's
// messages.
func TestSecAggPaperRoundBytes(t *testing.T) {
	if testing.Short() {
		t.Skip("a paper-size round")
	}
	sets := []string{"methods=[fedavg]", "data.dataset=synthetic", "data.tasks=1", "data.synthetic={train: 2500, test: 100, classes: 10, dim: 784}",
		"partition.clients=125", "model.hidden=[400,400,400]", "train.clients_per_round=64", "train.rounds_per_task=1", "eval.every=0"}
	env := NewEnv()
	var recs [3]*results.Record
	for i, extra := range [][]string{nil, {"secagg={}"}, {"secagg={ring: compact}"}} {
		sc, err := scenarios.Load("quickstart", append(slices.Clone(sets), extra...))
		if err != nil {
			t.Fatal(err)
		}
		if recs[i], err = env.Run(context.Background(), sc, sc.Runs()[0], Options{}); err != nil {
			t.Fatal(err)
		}
	}
	plain := recs[0]
	k, L := int64(64), int64(plain.TrainableParams+1)
	down := k * ((13 + 100*k) + (17 + 94*(k-1)) + (17 + 4*k))
	for i, w := range []int64{8, 4} {
		sec := recs[i+1]
		up := k * (109 + 17 + 94*(k-1) + 18 + w*L + 21 + 37*k)
		if sec.SecAggBytesUp != up || sec.SecAggBytesDown != down {
			t.Errorf("%d-byte ring: secagg bytes up %d, down %d; the message sizes give %d and %d", w, sec.SecAggBytesUp, sec.SecAggBytesDown, up, down)
		}
		t.Logf("paper-size round (%d params, %d clients): plain %d B up, %d B down, %.2f s; secure, %d-byte ring: %d B up (%d secagg), %d B down (%d secagg), %.2f s; up x%.3f, down x%.4f",
			plain.TrainableParams, k, plain.BytesUp, plain.BytesDown, plain.WallSeconds, w, sec.BytesUp, sec.SecAggBytesUp, sec.BytesDown, sec.SecAggBytesDown,
			sec.WallSeconds, float64(sec.BytesUp)/float64(plain.BytesUp), float64(sec.BytesDown)/float64(plain.BytesDown))
	}
}

// Signed messages (every secagg step of the server and of each client is
// signed and checked) give the same record: signatures are left out of
// the byte counts.
func TestSecAggSignedMatchesUnsigned(t *testing.T) {
	sc, err := scenarios.Load("synthetic", append(slices.Clone(secaggSets), "secagg={}", "methods=[fot]"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv()
	var got [2]map[string][]byte
	for i, k := range []*auth.Keys{nil, keys} {
		out := filepath.Join(t.TempDir(), "run")
		rec, err := env.Run(context.Background(), sc, sc.Runs()[0], Options{Out: out, Keys: k})
		if err != nil {
			t.Fatal(err)
		}
		if rec.RejectedUpdates != 0 || rec.RejectedBroadcasts != 0 {
			t.Errorf("keys %v: rejected %v and broadcasts %v", k != nil, rec.RejectedByReason, rec.RejectedBroadcastsByReason)
		}
		got[i] = readRecordFiles(t, out)
	}
	compareFiles(t, "signed run", got[0], got[1])
}

// The methods that need only sums run securely with LoRA, central and
// federated pretraining (FOT's no-train sketch round after a central
// pretraining task) and DP-SGD, and end close to their plain runs.
func TestSecAggMethodsMatchPlainRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("a dozen runs")
	}
	groups := [][]string{
		{"methods=[fedavg-lora,ffa-lora,fedsvd,{name: fedsvd, fot: true, period: 2},{name: fedavg-lora, dp_epsilon: 6}]",
			"model.lora={rank: 4}", "pretrain={tasks: 1, mode: central}", "data.tasks=3"},
		{"methods=[fot,fedprox,flwf,{name: fedavg, dp_epsilon: 6}]", "pretrain={tasks: 1, mode: federated}", "data.tasks=3", "train.weighting=samples"},
		{"methods=[fot]", "pretrain={tasks: 1, mode: central}", "data.tasks=3"},
	}
	env := NewEnv()
	for _, sets := range groups {
		sets = append(slices.Clone(sets), "train.clients_per_round=3")
		plain, err := scenarios.Load("synthetic", sets)
		if err != nil {
			t.Fatal(err)
		}
		secure, err := scenarios.Load("synthetic", append(slices.Clone(sets), "secagg={}"))
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range plain.Runs() {
			pr, err := env.Run(context.Background(), plain, r, Options{})
			if err != nil {
				t.Fatal(err)
			}
			sr, err := env.Run(context.Background(), secure, secure.Runs()[i], Options{})
			if err != nil {
				t.Fatalf("%s securely: %v", r.Method.Label(), err)
			}
			t.Logf("%s: ACC %.2f securely, %.2f plainly; %d B up securely (%d secagg), %d plainly", r.Method.Label(), sr.ACC, pr.ACC, sr.BytesUp, sr.SecAggBytesUp, pr.BytesUp)
			if math.Abs(sr.ACC-pr.ACC) > 3 || sr.SecAggBytesUp == 0 {
				t.Errorf("%s: ACC %.2f securely, %.2f plainly (secagg bytes %d)", r.Method.Label(), sr.ACC, pr.ACC, sr.SecAggBytesUp)
			}
		}
	}
}
