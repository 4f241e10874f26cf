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
package sim
