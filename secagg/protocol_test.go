package secagg

import (
	"bytes"
	"errors"
	"math"
	"math/big"
	"math/rand/v2"
	"slices"
	"testing"
)

// exactSum is the sum of the survivors' float32 inputs in exact
// arithmetic, rounded once to float64.
func exactSum(inputs [][]float32, skip map[ID]bool, j int) float64 {
	s := new(big.Float).SetPrec(2000)
	for i, x := range inputs {
		if !skip[ID(i)] {
			s.Add(s, big.NewFloat(float64(x[j])))
		}
	}
	f, _ := s.Float64()
	return f
}

func union(ms ...map[ID]bool) map[ID]bool {
	out := map[ID]bool{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// TestSumWithinErrorBound: the decoded secure sum of random float32
// inputs (over the whole clip range, and small ones) is within
// ErrorBound(n) of the exact sum, for both rings, and the bound is not
// vacuous (the observed error comes within a factor 4 of it). In the
// 64-bit ring, float32 values of magnitude >= 2^-9 are multiples of 2^-32
// and encode exactly.
func TestSumWithinErrorBound(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Params
		scale float64
		tight bool // the bound is approached (false: float32 inputs this large are exact in the ring)
	}{
		{"ring64/full-range", DefaultParams(1, 4), 1 << 16, false},
		{"ring64/small", DefaultParams(2, 4), 1e-3, true},
		{"ring32/full-range", CompactParams(3, 4), 256, true},
		{"ring32/small", CompactParams(4, 4), 1e-2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n, length = 7, 3000
			r := rand.New(rand.NewPCG(11, 12))
			pl := &plan{p: tc.p, n: n, length: length, seed: 5, inputs: randInputs(r, n, length, tc.scale)}
			res, _, err := pl.run(t)
			if err != nil {
				t.Fatal(err)
			}
			bound := tc.p.ErrorBound(n)
			worst := 0.0
			for j := range length {
				worst = max(worst, math.Abs(res.Sum[j]-exactSum(pl.inputs, nil, j)))
			}
			t.Logf("max error %.3g, bound %.3g", worst, bound)
			if worst > bound {
				t.Fatalf("max error %g exceeds ErrorBound(%d) = %g", worst, n, bound)
			}
			if tc.tight && worst < bound/4 {
				t.Fatalf("max error %g is far below the bound %g: the bound or the encoding is off", worst, bound)
			}
		})
	}
}

// TestMasksCancelExactly: inputs given directly in the ring sum exactly,
// with no error at all, with and without dropouts, for both rings and a
// length that is not a multiple of the expansion chunk.
func TestMasksCancelExactly(t *testing.T) {
	for _, p := range []Params{DefaultParams(7, 3), CompactParams(8, 3)} {
		for _, drop := range []map[ID]bool{nil, set(2), set(0, 4)} {
			const n, length = 6, 2*chunkValues + 13
			r := rand.New(rand.NewPCG(uint64(p.RingBits), uint64(len(drop))))
			pl := &plan{p: p, n: n, length: length, seed: 9, noMask: drop, ring: randRing(r, p, n, length)}
			res, _, err := pl.run(t)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]uint64, length)
			for i, v := range pl.ring {
				if drop[ID(i)] {
					continue
				}
				for j := range v {
					want[j] = (want[j] + v[j]) & p.ringMask()
				}
			}
			if !slices.Equal(res.Ring, want) {
				t.Fatalf("ring %d, dropped %v: ring sum differs from the plain sum", p.RingBits, drop)
			}
			if len(res.Survivors) != n-len(drop) || len(res.Dropped) != len(drop) {
				t.Fatalf("survivors %v dropped %v", res.Survivors, res.Dropped)
			}
		}
	}
}

// TestMaskedInputsMask: the masks do something: a masked input differs
// from its encoding, and the plain sum of masked inputs (without unmasking)
// differs from the sum.
func TestMaskedInputsMask(t *testing.T) {
	p := DefaultParams(1, 2)
	srv, _ := NewServer(8, p)
	var cl []*Client
	for i := range 3 {
		c, _ := NewClient(ID(i), 8, p, seeded(1, ID(i)))
		a, _ := c.Advertise()
		srv.AddAdvertise(a)
		cl = append(cl, c)
	}
	kl, _ := srv.KeyList()
	for _, c := range cl {
		sk, _ := c.ShareKeys(kl)
		srv.AddShareKeys(sk)
	}
	ds, _ := srv.Deliveries()
	sum := make([]uint64, 8)
	for _, d := range ds {
		m, err := cl[d.To].MaskInputRing(d, make([]uint64, 8))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(m.Values, make([]uint64, 8)) {
			t.Fatal("masked zero input is zero")
		}
		for j, v := range m.Values {
			sum[j] += v
		}
	}
	if slices.Equal(sum, make([]uint64, 8)) {
		t.Fatal("masked inputs sum to the plain sum without unmasking: self masks missing")
	}
}

// TestDropout: dropping 1..n-t clients after they sent their shares (so
// their pairwise masks are in the survivors' inputs) still yields the
// survivors' sum; so do clients that leave before sharing keys and
// survivors that do not answer the unmask request, while t remain.
func TestDropout(t *testing.T) {
	const n, th, length = 8, 5, 500
	p := DefaultParams(21, th)
	r := rand.New(rand.NewPCG(1, 2))
	inputs := randInputs(r, n, length, 10)
	for d := 1; d <= n-th; d++ {
		drop := map[ID]bool{}
		for _, i := range r.Perm(n)[:d] {
			drop[ID(i)] = true
		}
		pl := &plan{p: p, n: n, length: length, seed: uint64(d), noMask: drop, inputs: inputs}
		res, tr, err := pl.run(t)
		if err != nil {
			t.Fatalf("%d dropouts %v: %v", d, drop, err)
		}
		checkSum(t, res, inputs, drop, p.ErrorBound(n-d))
		t.Logf("%d dropouts: bytes up %v down %v", d, tr.up, tr.down)
	}
	// One client leaves before sharing keys, one after, one survivor
	// does not answer the unmask request: 8-2 = 6 survivors, 5 answer.
	pl := &plan{p: p, n: n, length: length, seed: 99, noShare: set(1), noMask: set(6), noUnmask: set(3), inputs: inputs}
	res, _, err := pl.run(t)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.Dropped, []ID{6}) {
		t.Fatalf("dropped %v, want [6] (1 never shared keys, so it is not in U2)", res.Dropped)
	}
	checkSum(t, res, inputs, set(1, 6), p.ErrorBound(6))
}

func checkSum(t *testing.T, res *Result, inputs [][]float32, drop map[ID]bool, bound float64) {
	t.Helper()
	for j := range res.Sum {
		if e := math.Abs(res.Sum[j] - exactSum(inputs, drop, j)); e > bound {
			t.Fatalf("dropped %v: coordinate %d off by %g > %g", drop, j, e, bound)
		}
	}
}

// TestBelowThreshold: each step that needs t clients or shares fails with
// ErrBelowThreshold when it has fewer.
func TestBelowThreshold(t *testing.T) {
	const n, th = 6, 4
	p := DefaultParams(3, th)
	in := randInputs(rand.New(rand.NewPCG(3, 3)), n, 10, 1)
	cases := []struct {
		name string
		pl   plan
	}{
		{"too few masked inputs", plan{noMask: set(0, 1, 2)}},
		{"too few shared keys", plan{noShare: set(0, 1, 2)}},
		{"too few unmask answers", plan{noMask: set(0), noUnmask: set(1, 2)}},
		{"too few unmask answers, no dropout", plan{noUnmask: set(1, 2, 3)}},
	}
	for _, tc := range cases {
		pl := tc.pl
		pl.p, pl.n, pl.length, pl.seed, pl.inputs = p, n, 10, 1, in
		_, _, err := pl.run(t)
		if !errors.Is(err, ErrBelowThreshold) {
			t.Errorf("%s: err %v, want ErrBelowThreshold", tc.name, err)
		}
	}
	pl := plan{p: p, n: th - 1, length: 10, seed: 1, inputs: in}
	if _, _, err := pl.run(t); !errors.Is(err, ErrBelowThreshold) {
		t.Errorf("too few clients: err %v, want ErrBelowThreshold", err)
	}
	// Exactly t everywhere works.
	pl = plan{p: p, n: n, length: 10, seed: 1, inputs: in, noMask: set(0), noUnmask: set(1)}
	if _, _, err := pl.run(t); err != nil {
		t.Errorf("t survivors, t answers: %v", err)
	}
}

// setup runs rounds 0 and 1 for n clients and returns them with their
// deliveries, ready for round 2.
func setup(t testing.TB, p Params, n, length int) (*Server, []*Client, []*ShareDelivery) {
	t.Helper()
	srv, err := NewServer(length, p)
	if err != nil {
		t.Fatal(err)
	}
	cl := make([]*Client, n)
	for i := range cl {
		cl[i], _ = NewClient(ID(i), length, p, seeded(77, ID(i)))
		a, _ := cl[i].Advertise()
		if err := srv.AddAdvertise(a); err != nil {
			t.Fatal(err)
		}
	}
	kl, err := srv.KeyList()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cl {
		sk, err := c.ShareKeys(kl)
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.AddShareKeys(sk); err != nil {
			t.Fatal(err)
		}
	}
	ds, err := srv.Deliveries()
	if err != nil {
		t.Fatal(err)
	}
	return srv, cl, ds
}

// TestRefuseBothShares: a client refuses a request naming one client as
// survivor and dropped, or asking for the other share of a client than an
// earlier request did; the server refuses a response carrying the wrong
// kind of share.
func TestRefuseBothShares(t *testing.T) {
	p := DefaultParams(5, 3)
	srv, cl, ds := setup(t, p, 5, 4)
	for _, d := range ds[:4] { // client 4 drops
		m, err := cl[d.To].MaskInput(d, make([]float32, 4))
		if err != nil {
			t.Fatal(err)
		}
		srv.AddMaskedInput(m)
	}
	req, err := srv.UnmaskRequest()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(req.Survivors, []ID{0, 1, 2, 3}) || !slices.Equal(req.Dropped, []ID{4}) {
		t.Fatalf("request %+v", req)
	}
	both := &UnmaskRequest{Session: p.Session, Survivors: []ID{0, 1, 2, 3}, Dropped: []ID{2, 4}}
	if _, err := cl[0].Unmask(both); !errors.Is(err, ErrBothShares) {
		t.Fatalf("overlapping request: err %v, want ErrBothShares", err)
	}
	if _, err := cl[0].Unmask(req); err != nil {
		t.Fatal(err)
	}
	// A second request that now calls survivor 2 dropped.
	later := &UnmaskRequest{Session: p.Session, Survivors: []ID{0, 1, 3}, Dropped: []ID{2, 4}}
	if _, err := cl[0].Unmask(later); !errors.Is(err, ErrBothShares) {
		t.Fatalf("conflicting second request: err %v, want ErrBothShares", err)
	}
	// Repeating the same request is harmless and allowed.
	if _, err := cl[0].Unmask(req); err != nil {
		t.Fatalf("repeated request: %v", err)
	}
	// Server side: a response carrying a mask-key share of a survivor.
	resp, _ := cl[1].Unmask(req)
	bad := *resp
	bad.KeyShares = append(slices.Clone(bad.KeyShares), Share{Of: 2, Value: cl[1].held[2].key})
	if err := srv.AddUnmaskResponse(&bad); !errors.Is(err, ErrBothShares) {
		t.Fatalf("server accepted a survivor's key share: %v", err)
	}
	bad = *resp
	bad.SeedShares = append(slices.Clone(bad.SeedShares), Share{Of: 4, Value: cl[1].held[4].seed})
	if err := srv.AddUnmaskResponse(&bad); !errors.Is(err, ErrBothShares) {
		t.Fatalf("server accepted a dropped client's seed share: %v", err)
	}
	if err := srv.AddUnmaskResponse(resp); err != nil {
		t.Fatal(err)
	}
	// A client listed as dropped although it sent its input refuses.
	self := &UnmaskRequest{Session: p.Session, Survivors: []ID{0, 1, 2}, Dropped: []ID{3, 4}}
	if _, err := cl[3].Unmask(self); err == nil {
		t.Fatal("client 3 revealed shares while listed as dropped")
	}
}

// TestTampering: a flipped bit in a sealed share, a message of another
// session, a forged revealed share, a forged key list and a low-order
// public key are all detected.
func TestTampering(t *testing.T) {
	p := DefaultParams(6, 3)
	t.Run("sealed share", func(t *testing.T) {
		_, cl, ds := setup(t, p, 4, 4)
		d := *ds[1]
		d.Shares = slices.Clone(d.Shares)
		d.Shares[0].Sealed[17] ^= 1
		if _, err := cl[1].MaskInput(&d, make([]float32, 4)); !errors.Is(err, ErrAuth) {
			t.Fatalf("err %v, want ErrAuth", err)
		}
		// The untampered delivery still works afterwards.
		if _, err := cl[1].MaskInput(ds[1], make([]float32, 4)); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("share resent under another sender", func(t *testing.T) {
		_, cl, ds := setup(t, p, 4, 4)
		d := *ds[1]
		d.Shares = slices.Clone(d.Shares)
		d.Shares[0].Sealed = d.Shares[1].Sealed
		if _, err := cl[1].MaskInput(&d, make([]float32, 4)); !errors.Is(err, ErrAuth) {
			t.Fatalf("err %v, want ErrAuth", err)
		}
	})
	t.Run("session", func(t *testing.T) {
		srv, cl, ds := setup(t, p, 4, 4)
		d := *ds[0]
		d.Session++
		if _, err := cl[0].MaskInput(&d, make([]float32, 4)); !errors.Is(err, ErrAuth) {
			t.Fatalf("delivery: err %v, want ErrAuth", err)
		}
		m, _ := cl[0].MaskInput(ds[0], make([]float32, 4))
		m.Session++
		if err := srv.AddMaskedInput(m); !errors.Is(err, ErrAuth) {
			t.Fatalf("masked input: err %v, want ErrAuth", err)
		}
	})
	for _, forge := range []string{"seed", "key"} {
		t.Run("forged "+forge+" share", func(t *testing.T) {
			srv, cl, ds := setup(t, p, 5, 4)
			for _, d := range ds[:4] {
				m, _ := cl[d.To].MaskInput(d, []float32{1, 2, 3, 4})
				srv.AddMaskedInput(m)
			}
			req, _ := srv.UnmaskRequest()
			for _, id := range req.Survivors[:3] {
				resp, err := cl[id].Unmask(req)
				if err != nil {
					t.Fatal(err)
				}
				if id == 1 {
					list := resp.SeedShares
					if forge == "key" {
						list = resp.KeyShares
					}
					list[0].Value[ShareLen-1] ^= 1
				}
				if err := srv.AddUnmaskResponse(resp); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := srv.Finish(); !errors.Is(err, ErrAuth) {
				t.Fatalf("err %v, want ErrAuth", err)
			}
		})
	}
	t.Run("key list", func(t *testing.T) {
		srv, _ := NewServer(4, p)
		var cl []*Client
		for i := range 3 {
			c, _ := NewClient(ID(i), 4, p, seeded(3, ID(i)))
			a, _ := c.Advertise()
			srv.AddAdvertise(a)
			cl = append(cl, c)
		}
		kl, _ := srv.KeyList()
		kl.Keys[0].MaskKey = kl.Keys[1].MaskKey
		if _, err := cl[0].ShareKeys(kl); !errors.Is(err, ErrAuth) {
			t.Fatalf("err %v, want ErrAuth", err)
		}
		kl.Keys[0].MaskKey[0] ^= 1
		if _, err := cl[0].ShareKeys(kl); !errors.Is(err, ErrAuth) {
			t.Fatalf("altered own key: err %v, want ErrAuth", err)
		}
	})
	t.Run("low-order key", func(t *testing.T) {
		srv, _ := NewServer(4, p)
		c, _ := NewClient(0, 4, p, seeded(3, 0))
		a, _ := c.Advertise()
		a.MaskKey = [32]byte{} // the identity: every agreement with it is zero
		if err := srv.AddAdvertise(a); err != nil {
			// crypto/ecdh accepts the bytes; agreement fails later.
			t.Logf("rejected at once: %v", err)
		}
		priv, _ := newKey(seeded(4, 0))
		if _, err := agree(priv, a.MaskKey); !errors.Is(err, ErrAuth) {
			t.Fatalf("agreement with a low-order key: err %v, want ErrAuth", err)
		}
	})
}

// TestMaskedInputUniform: a single masked input reveals nothing obvious.
// The input is the worst case, a constant; the top byte of each masked
// value must pass a chi-square test for uniformity and the mean of the
// values must be that of the uniform ring. The same test rejects the
// unmasked encoding of random inputs (so it can fail).
func TestMaskedInputUniform(t *testing.T) {
	const length = 1 << 16
	for _, p := range []Params{DefaultParams(8, 2), CompactParams(8, 2)} {
		_, cl, ds := setup(t, p, 3, length)
		x := make([]float32, length)
		for i := range x {
			x[i] = 0.5
		}
		m, err := cl[0].MaskInput(ds[0], x)
		if err != nil {
			t.Fatal(err)
		}
		chi, mean := uniformity(m.Values, p.RingBits)
		t.Logf("ring %d: chi2 %.1f (df 255), mean/2^bits %.4f", p.RingBits, chi, mean)
		// chi2(255) 99.9th percentile ~ 330.5; mean sd = 1/sqrt(12 n).
		if chi > 330.5 {
			t.Errorf("ring %d: masked input not uniform: chi2 %.1f", p.RingBits, chi)
		}
		if sd := 1 / math.Sqrt(12*length); math.Abs(mean-0.5) > 5*sd {
			t.Errorf("ring %d: mean %.5f not 0.5 +- 5 sd %.5f", p.RingBits, mean, 5*sd)
		}
		enc := make([]uint64, length)
		in := randInputs(rand.New(rand.NewPCG(1, 1)), 1, length, 1)[0]
		p.Encode(enc, in)
		if chi, _ := uniformity(enc, p.RingBits); chi < 330.5 {
			t.Errorf("ring %d: the unmasked encoding passes the test (chi2 %.1f): the test is too weak", p.RingBits, chi)
		}
	}
}

func uniformity(v []uint64, bits int) (chi, mean float64) {
	var bins [256]float64
	for _, x := range v {
		bins[x>>(bits-8)]++
		mean += math.Ldexp(float64(x), -bits)
	}
	e := float64(len(v)) / 256
	for _, o := range bins {
		chi += (o - e) * (o - e) / e
	}
	return chi, mean / float64(len(v))
}

// TestDeterministic: equal seeds give byte-identical traffic and sums;
// another seed gives other traffic and, within the bound, the same sum.
func TestDeterministic(t *testing.T) {
	p := DefaultParams(4, 3)
	in := randInputs(rand.New(rand.NewPCG(4, 4)), 5, 100, 3)
	var logs [3][]byte
	var sums [3][]float64
	for k, seed := range []uint64{1, 1, 2} {
		pl := &plan{p: p, n: 5, length: 100, seed: seed, noMask: set(3), inputs: in}
		res, tr, err := pl.run(t)
		if err != nil {
			t.Fatal(err)
		}
		logs[k], sums[k] = tr.log.Bytes(), res.Sum
	}
	if !bytes.Equal(logs[0], logs[1]) || !slices.Equal(sums[0], sums[1]) {
		t.Fatal("equal seeds, different runs")
	}
	if bytes.Equal(logs[0], logs[2]) {
		t.Fatal("different seeds, identical traffic")
	}
	if !slices.Equal(sums[0], sums[2]) {
		t.Fatal("the sum depends on the masks' seed")
	}
}

// TestWorkers: parallel mask expansion gives the same sum and traffic.
func TestWorkers(t *testing.T) {
	const length = 5*chunkValues + 7
	var sums [][]uint64
	var logs [][]byte
	for _, w := range []int{1, 3} {
		p := DefaultParams(4, 2)
		p.Workers = w
		pl := &plan{p: p, n: 3, length: length, seed: 1, noMask: set(1), ring: randRing(rand.New(rand.NewPCG(1, 1)), p, 3, length)}
		res, tr, err := pl.run(t)
		if err != nil {
			t.Fatal(err)
		}
		sums, logs = append(sums, res.Ring), append(logs, tr.log.Bytes())
	}
	if !slices.Equal(sums[0], sums[1]) || !bytes.Equal(logs[0], logs[1]) {
		t.Fatal("Workers changes the result or the traffic")
	}
}

// TestByteCounts: every message's EncodedLen equals its encoding (send
// checks this on every message of a run) and the per-round totals follow
// the formulas of the package documentation.
func TestByteCounts(t *testing.T) {
	const n, length = 5, 1000
	for _, p := range []Params{DefaultParams(1, 3), CompactParams(1, 3)} {
		pl := &plan{p: p, n: n, length: length, seed: 1, noMask: set(4), inputs: randInputs(rand.New(rand.NewPCG(1, 1)), n, length, 1)}
		_, tr, err := pl.run(t)
		if err != nil {
			t.Fatal(err)
		}
		w := p.RingBits / 8
		want := traffic{
			up:   [4]int{n * 109, n * (17 + (n-1)*94), (n - 1) * (18 + w*length), (n - 1) * (21 + (n-1)*37 + 37)},
			down: [4]int{n * (13 + n*100), n * (17 + (n-1)*94), (n - 1) * (17 + 4*n)},
		}
		if tr.up != want.up || tr.down != want.down {
			t.Fatalf("ring %d: bytes up %v down %v, want up %v down %v", p.RingBits, tr.up, tr.down, want.up, want.down)
		}
	}
}
