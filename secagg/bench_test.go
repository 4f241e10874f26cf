package secagg

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
)

// BenchmarkMaskExpand: expanding one mask into a 2e6-value vector
// (AES-256-CTR keystream, added into the accumulator); ns/value is per
// mask and value.
func BenchmarkMaskExpand(b *testing.B) {
	const n = 2_000_000
	for _, bits := range []int{64, 32} {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("ring%d/workers%d", bits, workers), func(b *testing.B) {
				acc := make([]uint64, n)
				m := []mask{newMask([32]byte{1}, false)}
				b.SetBytes(int64(n * bits / 8))
				for b.Loop() {
					applyMasks(acc, m, bits/8, workers)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/value")
			})
		}
	}
}

// BenchmarkClientMaskInput: round 2 of one client among 10 (one self
// mask, nine pairwise masks) on a 2e6-value float32 update, encoding
// included; ns/value/mask divides by the 10 masks.
func BenchmarkClientMaskInput(b *testing.B) {
	const clients, n = 10, 2_000_000
	for _, p := range []Params{DefaultParams(1, 6), CompactParams(1, 6)} {
		b.Run(fmt.Sprintf("ring%d", p.RingBits), func(b *testing.B) {
			_, cl, ds := setup(b, p, clients, n)
			x := randInputs(rand.New(rand.NewPCG(1, 1)), 1, n, 1)[0]
			c0 := *cl[0]
			for b.Loop() {
				c := c0
				c.held = map[ID]held{0: c0.held[0]}
				if _, err := c.MaskInput(ds[0], x); err != nil {
					b.Fatal(err)
				}
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			b.ReportMetric(ns/n, "ns/value")
			b.ReportMetric(ns/n/clients, "ns/value/mask")
		})
	}
}

// BenchmarkServerFinish: unmasking with 10 clients of which 2 dropped
// after sharing keys: 8 self masks and 2x8 pairwise masks to remove from a
// 2e6-value sum, plus 10 Shamir reconstructions.
func BenchmarkServerFinish(b *testing.B) {
	const clients, n = 10, 2_000_000
	p := DefaultParams(1, 6)
	srv, cl, ds := setup(b, p, clients, n)
	x := make([]float32, n)
	for _, d := range ds[:clients-2] {
		m, err := cl[d.To].MaskInput(d, x)
		if err != nil {
			b.Fatal(err)
		}
		srv.AddMaskedInput(m)
	}
	req, _ := srv.UnmaskRequest()
	for _, id := range req.Survivors {
		r, _ := cl[id].Unmask(req)
		srv.AddUnmaskResponse(r)
	}
	saved := append([]uint64(nil), srv.sum...)
	for b.Loop() {
		copy(srv.sum, saved)
		srv.stage = collectUnmask
		if _, err := srv.Finish(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/value")
}

// BenchmarkShareKeys: round 1 of one client among 100 (two Shamir
// sharings over GF(2^256+297) and 99 X25519 agreements and AES-GCM
// seals).
func BenchmarkShareKeys(b *testing.B) {
	const clients = 100
	p := DefaultParams(1, 51)
	srv, _ := NewServer(1, p)
	var cl []*Client
	for i := range clients {
		c, _ := NewClient(ID(i), 1, p, seeded(1, ID(i)))
		a, _ := c.Advertise()
		srv.AddAdvertise(a)
		cl = append(cl, c)
	}
	kl, _ := srv.KeyList()
	for b.Loop() {
		c := *cl[0]
		if _, err := c.ShareKeys(kl); err != nil {
			b.Fatal(err)
		}
	}
}
