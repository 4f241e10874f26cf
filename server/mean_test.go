package server

import (
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
)

// TestMeanSplitMatchesAggregator checks that the server's mean, cut into
// ranges on several goroutines, has the same bits as one aggregator.Mean.
func TestMeanSplitMatchesAggregator(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	const n = 4*minMeanPart + 13 // four uneven parts
	r := rand.New(rand.NewPCG(3, 4))
	s := &Server{}
	s.cfg.Weighting = aggregator.Samples
	for k := range 9 {
		d := make([]float32, n)
		for i := range d {
			d[i] = float32(r.NormFloat64())
		}
		s.ups = append(s.ups, aggregator.Update{Client: k, N: int64(1 + r.IntN(600)), Delta: d})
	}
	want := make([]float32, n)
	aggregator.Mean(want, s.ups, s.cfg.Weighting)
	got := make([]float32, n)
	for range 2 { // the second call reuses the range buffers
		s.mean(got)
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("dst[%d] = %v, want %v", i, got[i], want[i])
			}
		}
	}
	if len(s.partUps) < 4*len(s.ups) {
		t.Fatalf("mean used %d range updates, want 4 parts of %d", len(s.partUps), len(s.ups))
	}
}
