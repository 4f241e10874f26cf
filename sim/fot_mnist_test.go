package sim

import (
	"context"
	"errors"
	"testing"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/scenarios"
)

// A reduced, seeded Permuted MNIST: FedAvg learns each task to above 85%
// and forgets; FOT, run exactly as the paper defines it, keeps its
// forgetting to at most a third of FedAvg's. Both ACCs are logged, not
// asserted: with short training FOT's bases can fill up and leave later
// tasks little room (docs/ALGORITHMS.md 3; README "FOT on short runs").
func TestFOTReducesForgettingOnPermutedMNIST(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on real MNIST for about a minute")
	}
	sc, err := scenarios.Load("quickstart", []string{
		"methods=[fedavg, fot]", "seeds=[1]", "data.tasks=3",
		"train.rounds_per_task=10", "train.clients_per_round=5", "eval.every=0",
		"fot.epsilon=0.96",
	})
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv()
	fgt := map[string]float64{}
	for _, r := range sc.Runs() {
		rec, err := env.Run(context.Background(), sc, r, Options{})
		if errors.Is(err, data.ErrNoMNIST) {
			t.Skipf("MNIST not available: %v", err)
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: ACC %.2f FGT %.2f matrix %v", r.Method.Name, rec.ACC, rec.FGT, rec.AccMatrix)
		if r.Method.Name == "fedavg" {
			for j := range rec.AccMatrix {
				if a := rec.AccMatrix[j][j]; a <= 85 {
					t.Errorf("FedAvg reached %.2f%% on task %d just after learning it, want > 85%% (train longer)", a, j)
				}
			}
		}
		fgt[r.Method.Name] = rec.FGT
	}
	if fgt["fedavg"] <= 1 {
		t.Fatalf("FedAvg forgot only %.2f points: the test cannot tell FOT apart", fgt["fedavg"])
	}
	if fgt["fot"] > fgt["fedavg"]/3 {
		t.Errorf("FOT FGT %.2f, want at most a third of FedAvg's %.2f", fgt["fot"], fgt["fedavg"])
	}
}
