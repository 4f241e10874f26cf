package rng

import (
	"math/rand/v2"
	"testing"
)

func TestStreamsAreReproducibleAndDistinct(t *testing.T) {
	draw := func(r *rand.Rand) [4]uint64 {
		var v [4]uint64
		for i := range v {
			v[i] = r.Uint64()
		}
		return v
	}
	a := draw(New(7, "shuffle", 3, 9))
	if b := draw(New(7, "shuffle", 3, 9)); a != b {
		t.Fatalf("same name gave different streams: %v vs %v", a, b)
	}
	others := []*rand.Rand{
		New(8, "shuffle", 3, 9),
		New(7, "dropout", 3, 9),
		New(7, "shuffle", 9, 3),
		New(7, "shuffle", 3),
		New(7, "shuffle", 3, 9, 0),
	}
	for i, r := range others {
		if b := draw(r); a == b {
			t.Errorf("stream %d equals the reference stream", i)
		}
	}
}

func TestReseedMatchesNew(t *testing.T) {
	src := rand.NewPCG(0, 0)
	Reseed(src, 1, "x", 2)
	r1, r2 := rand.New(src), New(1, "x", 2)
	for i := 0; i < 10; i++ {
		if a, b := r1.Uint64(), r2.Uint64(); a != b {
			t.Fatalf("draw %d: got %d, want %d", i, a, b)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Reseed(src, 3, "y", 4, 5) }); n != 0 {
		t.Errorf("Reseed allocates %v times, want 0", n)
	}
}
