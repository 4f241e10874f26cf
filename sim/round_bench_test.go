package sim

import (
	"context"
	"fmt"
	"testing"

	"github.com/fotsim/fotsim/scenarios"
)

// BenchmarkFedAvgRound times whole FedAvg rounds of the paper's shape (64
// of 125 clients, 480 samples each, the 784-400-400-400-10 MLP, batch 64)
// on generated data over embedded NATS: broadcast, local training,
// collection, aggregation. One b.N = one round; the task-end evaluation of
// 10,000 test samples is included once.
func BenchmarkFedAvgRound(b *testing.B) {
	benchRounds(b, "fedavg")
}

// (FOT's projected and GPSE rounds are timed apart by `fotsim bench`.)
func benchRounds(b *testing.B, method string) {
	y := fmt.Sprintf(`name: bench
methods: [%s]
data: {dataset: synthetic, stream: permuted, tasks: 1, synthetic: {train: 60000, test: 10000, classes: 10, dim: 784, noise: 1}}
partition: {clients: 125, scheme: iid}
model: {arch: mlp, hidden: [400, 400, 400], dropout: [0.2, 0.5, 0.5]}
train: {rounds_per_task: %d, clients_per_round: 64, batch_size: 64, lr: 0.01, weight_decay: 0.00001}
eval: {every: 0}
`, method, b.N)
	sc, err := scenarios.Parse([]byte(y), "bench", nil)
	if err != nil {
		b.Fatal(err)
	}
	x, err := NewEnv().Build(sc, sc.Runs()[0])
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	if _, err := x.Execute(context.Background(), Options{}); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N*64*480)/b.Elapsed().Seconds(), "samples/s")
}
