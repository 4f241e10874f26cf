package scenarios_test

import (
	"fmt"

	"github.com/fotsim/fotsim/scenarios"
)

func ExampleParse() {
	src := []byte(`
name: demo
seeds: [0, 1]
methods: [fedavg, {name: fot, epsilon: 0.9}]
data: {dataset: synthetic, tasks: 2}
partition: {clients: 4}
train: {clients_per_round: 2}
`)
	s, err := scenarios.Parse(src, "demo.yaml", []string{"fot.eps_inc=0.01"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range s.Runs() {
		fmt.Println(r.Method.Label(), r.Seed)
	}
	f := s.FOTFor(s.Methods[1])
	fmt.Println(f.Epsilon, f.EpsInc, s.Model.Dropout)
	// Output:
	// fedavg 0
	// fedavg 1
	// fot(eps=0.9) 0
	// fot(eps=0.9) 1
	// 0.9 0.01 [0 0]
}

func ExampleParse_errors() {
	src := []byte(`name: broken
methods: [fedavg, fott]
data:
  tasks: 0
train:
  lr: fast
  rouds_per_task: 3
`)
	_, err := scenarios.Parse(src, "broken.yaml", []string{"partition.clients=2"})
	fmt.Println(err)
	// Output:
	// broken.yaml:2:19: methods[1]: unknown method "fott" (known: fedavg, fot, fedprox, ewc, fedcurv, flwf, central-seq, central-joint, central-gpm, fedavg-lora, ffa-lora, fedsvd, flora, fedex-lora, opcm, fisher-avg, sculpt, econtrol); did you mean "fot"?
	// broken.yaml:4:10: data.tasks: must be at least 1, got 0
	// broken.yaml:6:7: train.lr: want a number, got "fast"
	// broken.yaml:7:3: train.rouds_per_task: unknown key; did you mean "train.rounds_per_task"?
	// --set partition.clients=2: train.clients_per_round (5) is larger than partition.clients (2): lower it or add clients
}
