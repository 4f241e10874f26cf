// Package servertest provides fixtures for testing the server's round loop
// and the methods' server rules: the tests of package server and the
// server tests of package methods share them, as net/http/httptest serves
// the tests of HTTP code.
//
// A Fed plays the clients on an in-memory transporttest.Bus: it answers
// each round broadcast with the updates a function returns, such as
// HonestRespond (HonestUpdate: a deterministic step towards each client's
// own target), so that a test can replay what the server must have done
// with HonestMeanApply or MeanApply and compare parameters. Everything is deterministic: the test
// problem (Model, Data: a 16-8-4 MLP on synthetic 1x4x4 inputs), the
// initial parameters and the fake clients' updates are fixed by their
// arguments and Seed.
//
//	m := servertest.Model(t, 1)
//	bus := transporttest.NewBus()
//	f := servertest.NewFed(bus, servertest.HonestRespond)
//	init, params, rec := servertest.Run(t, servertest.Config(2, 3), m, bus, 1)
//	bc := f.Broadcasts() // replay: HonestMeanApply round by round from init
//
// The package is for tests only, never for production code. It imports
// package server (and the packages below it), never client or methods.
package servertest
