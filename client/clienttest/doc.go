// Package clienttest provides fixtures for testing client hosts and the
// client sides of the methods: the tests of package client and the host
// tests of package methods share them, as net/http/httptest serves the
// tests of HTTP code.
//
// Everything here is deterministic: the problem (Model, Dataset: a 16-8-4
// MLP on synthetic 1x4x4 inputs), the shards, the initial parameters and
// the training configuration are fixed by their arguments and Seed, and a
// Host runs a client.Host over an in-memory transporttest.Bus, so a test
// can compare a host's updates bit for bit with DirectDelta's reference
// training.
//
//	h := clienttest.StartHost(t, clienttest.HostConfig(0, 4, 2), m, shards)
//	h.Send(t, clienttest.RoundMsg(0, 0, []int32{1, 3}, global, 0))
//	h.Stop(t)
//	ups := clienttest.ByClient(t, h.Updates.All(), 0)
//
// The package is for tests only, never for production code. It imports
// package client (and the packages below it), never server or methods.
package clienttest
