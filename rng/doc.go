// Package rng derives the independent, reproducible random streams that every
// part of fotsim draws from.
//
// A stream is named by the scenario seed, a purpose string ("sample",
// "dropout", "shuffle", ...) and any number of integer ids (client, round,
// task). The same name always yields the same stream, whatever goroutine or
// machine asks for it, which is what makes a run bit-identical across worker
// counts and host layouts.
//
//	r := rng.New(seed, "shuffle", client, round)
//	r.Shuffle(len(idx), func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
package rng
