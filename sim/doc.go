// Package sim builds and runs one experiment (one scenario x one method x
// one seed): it loads the data, builds the task stream and the per-task
// client partitions, the model and its initial parameters, starts the
// transport (an embedded NATS server by default), the client host and the
// server, runs every round and returns the run record.
//
//	env := sim.NewEnv()
//	rec, err := env.Run(ctx, sc, run, sim.Options{Progress: os.Stderr})
//
// An Env caches loaded datasets, so the runs of one scenario share them.
//
// LoRA methods run on the model with model.lora's adapters, the other
// methods on the base model alone (same base parameters). With pretrain:,
// the first tasks train the base centrally (one learner, in process) or by
// FedAvg rounds. With DP-SGD, every client's noise multiplier is calibrated
// before the run for the steps the server's (data-independent) sampling
// schedule gives it, so that each client that trains spends its target
// epsilon; the server accounts the steps actually taken (see calibrate).
package sim
