// Package server runs the federated round loop of one experiment
// (docs/ALGORITHMS.md §1): seeded client sampling, the model broadcast, update
// collection with an optional deadline, aggregation, FOT's projection and
// subspace growth, evaluation and the accuracy matrix.
//
// Config.LoRA runs a LoRA method (FedAvg-LoRA, FFA-LoRA, FedSVD with its
// refactor and optional FOT projection, FLoRA, FedEx-LoRA; see LoRAConfig),
// Config.Pretrain pretrains the base on the first tasks, and Config.DP
// accounts each client's DP-SGD steps and reports the epsilon it spent.
//
// The server talks to client hosts only through the small Transport
// interface it defines, so the same code drives in-process hosts over an
// embedded NATS server and remote hosts over a NATS cluster.
//
//	s, err := server.New(cfg, model, eval, conn)
//	rec, err := s.Run(ctx, params)
package server
