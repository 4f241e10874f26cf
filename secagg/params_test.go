package secagg

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, p := range []Params{DefaultParams(1, 2), CompactParams(1, 2)} {
		if err := p.Validate(); err != nil {
			t.Fatalf("%+v: %v", p, err)
		}
		// One more client would let the sum wrap around.
		p.MaxClients++
		if err := p.Validate(); err == nil {
			t.Fatalf("%+v: overflow not detected", p)
		}
	}
	for _, mod := range []func(*Params){
		func(p *Params) { p.RingBits = 48 },
		func(p *Params) { p.Threshold = 1 },
		func(p *Params) { p.Clip = math.NaN() },
		func(p *Params) { p.FracBits = 63 },
		func(p *Params) { p.MaxClients = 1 },
	} {
		p := DefaultParams(1, 2)
		mod(&p)
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

// TestEncodeExtremes: the largest sum of MaxClients clipped inputs decodes
// without wrapping; out-of-range values clip, NaN fails.
func TestEncodeExtremes(t *testing.T) {
	for _, p := range []Params{DefaultParams(1, 2), CompactParams(1, 2)} {
		x := []float32{float32(math.Inf(1)), -1e30, float32(p.Clip), -float32(p.Clip), 0.25}
		v := make([]uint64, len(x))
		k, err := p.Encode(v, x)
		if err != nil || k != 2 {
			t.Fatalf("ring %d: clipped %d, err %v", p.RingBits, k, err)
		}
		sum := make([]uint64, len(x))
		for range p.MaxClients {
			for j := range v {
				sum[j] = (sum[j] + v[j]) & p.ringMask()
			}
		}
		got := make([]float64, len(x))
		p.Decode(got, sum)
		m := float64(p.MaxClients)
		want := []float64{m * p.Clip, -m * p.Clip, m * p.Clip, -m * p.Clip, m * 0.25}
		for j := range want {
			if math.Abs(got[j]-want[j]) > p.ErrorBound(p.MaxClients) {
				t.Fatalf("ring %d: coordinate %d: %g, want %g", p.RingBits, j, got[j], want[j])
			}
		}
		if _, err := p.Encode(v[:1], []float32{float32(math.NaN())}); err == nil {
			t.Fatal("NaN encoded")
		}
		v64 := make([]uint64, 2)
		if k, err := p.Encode64(v64, []float64{1e300, 0.5}); err != nil || k != 1 {
			t.Fatalf("Encode64: clipped %d, err %v", k, err)
		}
		f32 := make([]float32, 2)
		p.Decode32(f32, v64)
		if f32[0] != float32(p.Clip) || f32[1] != 0.5 {
			t.Fatalf("Decode32: %v", f32)
		}
	}
}

// TestShamir: any t of n shares reconstruct the secret, t-1 do not (an
// error), and t-1 shares are consistent with every secret (a share set
// of t-1 plus a forged point reconstructs something else).
func TestShamir(t *testing.T) {
	r := rand.NewChaCha8([32]byte{9})
	var secret [32]byte
	for i := range secret {
		secret[i] = 0xff // the largest 32-byte secret
	}
	ids := []ID{0, 3, 4, 9, 100, 1<<32 - 1}
	const th = 4
	ys, err := split(secret, ids, th, r)
	if err != nil {
		t.Fatal(err)
	}
	rr := rand.New(rand.NewPCG(1, 1))
	for range 20 {
		perm := rr.Perm(len(ids))[:th]
		var xs []ID
		var vs []shareValue
		for _, k := range perm {
			xs, vs = append(xs, ids[k]), append(vs, ys[k])
		}
		got, err := combine(xs, vs, th)
		if err != nil || got != secret {
			t.Fatalf("subset %v: %x, %v", perm, got, err)
		}
	}
	if _, err := combine(ids[:th-1], ys[:th-1], th); !errors.Is(err, ErrBelowThreshold) {
		t.Fatalf("t-1 shares: err %v", err)
	}
	if _, err := combine([]ID{0, 0, 3, 4}, []shareValue{ys[0], ys[0], ys[1], ys[2]}, th); !errors.Is(err, ErrProtocol) {
		t.Fatalf("repeated point: err %v", err)
	}
	forged := append([]shareValue(nil), ys[:th]...)
	forged[0][ShareLen-1] ^= 1
	if got, err := combine(ids[:th], forged, th); err == nil && got == secret {
		t.Fatal("a forged share reconstructs the secret")
	}
	if _, err := split(secret, ids[:2], 3, r); !errors.Is(err, ErrBelowThreshold) {
		t.Fatalf("split below threshold: err %v", err)
	}
}
