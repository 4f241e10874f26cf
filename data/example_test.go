package data_test

import (
	"fmt"

	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/rng"
)

// Build a task-incremental split stream from synthetic data, deal the first
// task to clients and gather one client's first mini-batch.
func ExampleBuildStream() {
	const seed = 1
	train, test := data.Synthetic(data.SyntheticConfig{
		Train: 1000, Test: 200, Shape: [3]int{1, 8, 8}, Classes: 10, Noise: 1,
	}, seed)
	tasks, err := data.BuildStream(train, test, data.StreamConfig{
		Kind: data.KindSplit, ClassesPerTask: 2, Mode: data.ModeTask,
	}, seed)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tasks {
		fmt.Printf("task %d: head %d, classes %v, %d train, %d test\n", t.ID, t.Head, t.Classes, t.Train.Len(), t.Test.Len())
	}

	task := tasks[2]
	parts, err := data.Partition(task.Train, 4, data.PartitionConfig{Scheme: data.SchemeIID}, rng.New(seed, "partition", task.ID))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("client sizes:", len(parts[0]), len(parts[1]), len(parts[2]), len(parts[3]))

	batch := parts[0][:8]
	x := make([]float32, len(batch)*train.Dim())
	y := make([]int32, len(batch))
	task.Train.Gather(x, y, batch)
	inRange := true
	for _, label := range y {
		inRange = inRange && label >= 0 && label < 2
	}
	fmt.Println("batch labels remapped to 0..1:", inRange)
	// Output:
	// task 0: head 0, classes [0 1], 200 train, 40 test
	// task 1: head 1, classes [2 3], 200 train, 40 test
	// task 2: head 2, classes [4 5], 200 train, 40 test
	// task 3: head 3, classes [6 7], 200 train, 40 test
	// task 4: head 4, classes [8 9], 200 train, 40 test
	// client sizes: 50 50 50 50
	// batch labels remapped to 0..1: true
}

// A permuted-MNIST-style stream: task 0 is the original data, later tasks
// permute the pixels with a permutation fixed by (seed, task).
func ExampleBuildStream_permuted() {
	train, test := data.Synthetic(data.SyntheticConfig{Train: 100, Test: 20, Shape: [3]int{1, 4, 4}}, 7)
	tasks, err := data.BuildStream(train, test, data.StreamConfig{Kind: data.KindPermuted, Tasks: 3}, 7)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range tasks {
		fmt.Printf("task %d: identity %v, %d pixels\n", t.ID, t.Train.Perm == nil, train.Dim())
	}
	// Output:
	// task 0: identity true, 16 pixels
	// task 1: identity false, 16 pixels
	// task 2: identity false, 16 pixels
}
