package results

import (
	"bytes"
	"flag"
	"math"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites the file with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatalf("update %s: %v", path, err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: output differs from golden file (run go test -update if intended)\ngot:\n%s\nwant:\n%s", name, got, want)
	}
}

// sampleRecord is a fully populated record: every field non-zero, NaN in
// the matrix, a curve and a task detail.
func sampleRecord() *Record {
	n := math.NaN()
	r := &Record{
		Schema:          Schema,
		Scenario:        "pmnist-iid-small",
		Method:          "fot",
		Seed:            7,
		Tasks:           3,
		AccMatrix:       Matrix{{97.5, n, n}, {90, 96, n}, {85.25, 91, 95.5}},
		Rounds:          30,
		Clients:         20,
		ClientsPerRound: 8,
		BytesUp:         123456789,
		BytesDown:       987654321,
		WallSeconds:     12.345,
		Curves: []Curve{
			{Round: 4, Task: 0, Acc: []float64{91.5}},
			{Round: 9, Task: 0, Acc: []float64{97.5}},
			{Round: 14, Task: 1, Acc: []float64{93.125, n}},
			{Round: 19, Task: 1, Acc: []float64{90, 96}},
			{Round: 29, Task: 2, Acc: []float64{85.25, 91, 95.5}},
		},
		MethodLabel:     "FOT (eps=0.96)",
		Dataset:         "synthetic",
		Stream:          "permuted",
		Backend:         "gonum",
		RejectedUpdates: 2,
		LateUpdates:     1,
		TasksDetail: []TaskDetail{
			{Task: 0, Rounds: 10, TrainLoss: 0.3125},
			{Task: 1, Rounds: 10, TrainLoss: 0.25,
				BasisDims:         map[string]int{"fc2": 31, "fc1": 12, "out": 5},
				ProjectedFraction: map[string]float64{"out": 0.5, "fc1": 0.125, "fc2": n}},
			{Task: 2, Rounds: 10, TrainLoss: n,
				BasisDims:         map[string]int{"fc1": 20},
				ProjectedFraction: map[string]float64{"fc1": 0.0625}},
		},
		FotsimVersion:   "v0.1.0-test",
		TrainableParams: 3280,
		PretrainTasks:   1,
		DP: &DP{EpsilonTarget: 6, Delta: 1e-5, Clip: 2, Sigma: []float64{0.75, 0.5},
			EpsilonSpent: []float64{5.994, 0}, EpsilonSpentMax: 5.994},
		RejectedByReason:           map[string]int{"signature": 1, "norm": 1},
		RejectedBroadcasts:         3,
		RejectedBroadcastsByReason: map[string]int{"task": 1, "signature": 2},
		System:                     &SystemTotals{Selected: 5, Dropped: 1, Late: 1, Aggregated: 2, SkippedRounds: 1},
		RoundsDetail: []RoundDetail{
			{Round: 0, Task: 0, Available: 4, Selected: 3, Dropped: 1, Aggregated: 2},
			{Round: 1, Task: 0, Available: 2, Selected: 2, Late: 1, Skipped: true},
		},
		SecAggBytesUp: 4242, SecAggBytesDown: 2121, SecAggRecovered: 1,
	}
	r.FillMetrics()
	return r
}
