// Package client trains simulated federated clients.
//
// A Trainer runs a client's local epochs of mini-batch SGD on its shard of
// the current task, starting from the global model, with no allocation per
// step (all buffers live in the Trainer, one per worker). A Host runs many
// simulated clients behind one transport connection: it receives each
// round's broadcast once, trains the selected clients it owns on a pool of
// workers and publishes one Update per client. A method's client side is a
// Behaviour (HostConfig.Behaviour; package methods builds them): what it
// keeps from each round message, what it adds to local training (Extras:
// proximal term, quadratic penalty, distillation) and to the update (GPSE
// sketches, the Fisher); nil is plain local SGD.
//
// A client trains the parameters protocol.Trainable gives for the round (every
// parameter, the LoRA factors of a LoRA method, or the base in a
// pretraining round) and sends only those in its delta (protocol.Compact), so bytes
// up are what the method really sends. Config.Steps runs a fixed number of
// local steps instead of epochs; Config.DP (DPStep) runs DP-SGD: Poisson
// sampling, per-sample clipping over all trained tensors together, Gaussian
// noise, division by the expected batch.
//
// A Host checks every message of the round subject before it queues it
// (verify.go): with HostConfig.Auth, the server's signature (a forged Stop
// or round is rejected), then the round index (no replays), task, client
// list and model size; Host.Rejected counts what it refused by reason.
// With Auth it signs each update with its client's key (package auth).
//
// With HostConfig.SecAgg (secure.go) a client never sends its delta: it
// encodes its weighted delta, its weight and its GPSE sketches in the
// fixed-point ring of package secagg, sends the clear part of its update
// (N, loss, steps, ratios) with its keys, answers the server's key list,
// share delivery and unmask request on its behalf, and sends the input
// masked; a round that does not aggregate securely ends the host.
//
// Every random draw of a client (shuffling, dropout, GPSE sketches) comes
// from a stream named by (seed, purpose, client, round), so a client's
// update is the same whichever worker or host trains it.
//
//	h, err := client.NewHost(cfg, model, shards, conn)
//	err = h.Start(ctx)
//	err = h.Wait() // nil once the server sends Stop
package client
