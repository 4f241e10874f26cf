// Package server runs the federated round loop of one experiment
// (docs/ALGORITHMS.md §1): seeded client sampling, the model broadcast, update
// collection with an optional deadline, the FedAvg mean and its application,
// evaluation and the accuracy matrix.
//
// A method's server side is a Rule (Config.Rule; package methods builds
// them: FOT's projection and subspace growth, EWC's penalty, the LoRA
// refactors and merges); nil is plain FedAvg. Config.LoRA names the LoRA
// factors the clients train and send, Config.Pretrain pretrains the base on
// the first tasks, and Config.DP accounts each client's DP-SGD steps and
// reports the epsilon it spent. The server shares the wire vocabulary with
// the clients through package protocol and never imports package client.
//
// The server talks to client hosts only through the small Transport
// interface it defines, so the same code drives in-process hosts over an
// embedded NATS server and remote hosts over a NATS cluster. It checks
// every update before it uses it (check.go): client id, signature
// (Config.Auth: package auth, ed25519 with per-client keys), task, sample
// count (Config.Samples), scalars and delta norm (Config.MaxUpdateNorm),
// then the open round, the selection, the shape and the Rule's Check; it
// counts what it rejects by reason (Reject...) in the record. With Auth it
// signs every message it publishes.
//
// With Config.SecAgg every round aggregates securely (secure.go, package
// secagg): the server relays keys and shares, adds up masked inputs and
// removes the masks, so that it holds the sum of the clients' weighted
// deltas and weights (and of their GPSE sketches) and never one client's;
// clients that drop out after sharing their keys are recovered from the
// survivors' shares. Rule.EndTask then sees the clear parts of the
// updates, the first carrying the sketches' sums; Applied.Ups is nil.
//
//	s, err := server.New(cfg, model, eval, conn)
//	rec, err := s.Run(ctx, params)
package server
