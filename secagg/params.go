package secagg

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// ID names a client within one aggregation. Its Shamir evaluation point is
// ID+1, so every uint32 is usable.
type ID uint32

// Params fixes one aggregation: the session it belongs to, the Shamir
// threshold and the fixed-point ring. Server and clients must use equal
// Params (Workers aside, which only sets local parallelism).
type Params struct {
	// Session names the aggregation (e.g. a hash of run and round). It
	// enters every key derivation and message, so masks and encrypted
	// shares of one session are useless in another.
	Session uint64
	// Threshold t: the number of shares that reconstruct a secret. The
	// protocol survives up to n-t dropouts and keeps a client's input
	// private against the server colluding with fewer than t clients.
	Threshold int
	// RingBits is 32 or 64: the ring Z_2^RingBits of the masked vectors
	// (and their size on the wire: 4 or 8 bytes a value).
	RingBits int
	// FracBits: a value x is encoded as round(x * 2^FracBits).
	FracBits int
	// Clip: inputs are clamped to [-Clip, Clip] before encoding.
	Clip float64
	// MaxClients bounds the number of clients, so that the sum of n
	// clipped inputs cannot wrap around the ring (see Validate).
	MaxClients int
	// Workers is the number of goroutines that expand masks (<= 0: one).
	// It never changes a result.
	Workers int
}

// DefaultParams is the 64-bit ring: 32 fractional bits (a resolution of
// 2.3e-10), inputs clipped to +-65536, up to 32767 clients
// (15 + 16 + 32 = 63 bits). The masked input costs 8 bytes a value.
func DefaultParams(session uint64, threshold int) Params {
	return Params{Session: session, Threshold: threshold, RingBits: 64, FracBits: 32, Clip: 1 << 16, MaxClients: 1<<15 - 1}
}

// CompactParams is the 32-bit ring, as many bytes as a plain float32
// update: 16 fractional bits (resolution 1.5e-5), inputs clipped to +-256,
// up to 127 clients (7 + 8 + 16 = 31 bits).
func CompactParams(session uint64, threshold int) Params {
	return Params{Session: session, Threshold: threshold, RingBits: 32, FracBits: 16, Clip: 1 << 8, MaxClients: 1<<7 - 1}
}

// Errors callers can test for with errors.Is.
var (
	// ErrBelowThreshold: fewer than Threshold clients or shares are
	// available for a step that needs Threshold of them.
	ErrBelowThreshold = errors.New("secagg: below threshold")
	// ErrBothShares: a request would reveal both the self-mask seed and
	// the mask key of one client, which would unmask its input.
	ErrBothShares = errors.New("secagg: refused to reveal both shares of one client")
	// ErrAuth: a message or share failed authentication or a consistency
	// check (tampered, forged or replayed from another session).
	ErrAuth = errors.New("secagg: authentication failed")
	// ErrProtocol: a message out of order, from an unknown or duplicate
	// sender, or of the wrong shape.
	ErrProtocol = errors.New("secagg: protocol violation")
	// ErrEncoding: a message's binary form is truncated, oversized or
	// malformed.
	ErrEncoding = errors.New("secagg: bad encoding")
)

// maxQ is the largest encoded magnitude, round(Clip * 2^FracBits).
func (p Params) maxQ() float64 { return math.Round(p.Clip * math.Ldexp(1, p.FracBits)) }

// Validate checks that the parameters are usable, in particular that the
// sum of MaxClients inputs in [-Clip, Clip] cannot overflow the signed
// range of the ring: MaxClients * round(Clip*2^FracBits) <= 2^(RingBits-1)-1.
func (p Params) Validate() error {
	if p.RingBits != 32 && p.RingBits != 64 {
		return fmt.Errorf("secagg: RingBits %d (want 32 or 64)", p.RingBits)
	}
	if p.FracBits < 0 || p.FracBits >= p.RingBits-1 {
		return fmt.Errorf("secagg: FracBits %d out of [0, %d)", p.FracBits, p.RingBits-1)
	}
	if !(p.Clip > 0) || math.IsInf(p.Clip, 0) {
		return fmt.Errorf("secagg: Clip %v (want a positive finite number)", p.Clip)
	}
	if p.Threshold < 2 {
		return fmt.Errorf("secagg: Threshold %d (want >= 2: with 1 any share is the secret)", p.Threshold)
	}
	if p.MaxClients < p.Threshold {
		return fmt.Errorf("secagg: MaxClients %d below Threshold %d", p.MaxClients, p.Threshold)
	}
	q := p.maxQ()
	if q >= math.Ldexp(1, 63) {
		return fmt.Errorf("secagg: Clip*2^FracBits = %g does not fit the ring", q)
	}
	hi, lo := bits.Mul64(uint64(p.MaxClients), uint64(q))
	limit := uint64(1)<<(p.RingBits-1) - 1
	if hi != 0 || lo > limit {
		return fmt.Errorf("secagg: %d clients x Clip %g x 2^%d overflow the signed %d-bit ring; lower one of them or use RingBits 64",
			p.MaxClients, p.Clip, p.FracBits, p.RingBits)
	}
	return nil
}

// ringMask keeps the low RingBits bits.
func (p Params) ringMask() uint64 {
	if p.RingBits == 64 {
		return ^uint64(0)
	}
	return 1<<p.RingBits - 1
}

// wordBytes is the size of one ring element on the wire and in the mask
// stream.
func (p Params) wordBytes() int { return p.RingBits / 8 }

// Encode writes the fixed-point encoding of x into dst (len(dst) ==
// len(x)): round-half-to-even of clamp(x, -Clip, Clip) * 2^FracBits, as a
// ring element. It returns how many values were clipped, and an error for
// NaN (which has no encoding).
func (p Params) Encode(dst []uint64, x []float32) (clipped int, err error) {
	if len(dst) != len(x) {
		return 0, fmt.Errorf("secagg: Encode: %d values into %d slots", len(x), len(dst))
	}
	scale, q, mask := math.Ldexp(1, p.FracBits), p.maxQ(), p.ringMask()
	for i, v := range x {
		f := math.RoundToEven(float64(v) * scale)
		switch {
		case f > q:
			f, clipped = q, clipped+1
		case f < -q:
			f, clipped = -q, clipped+1
		case f != f:
			return clipped, fmt.Errorf("secagg: Encode: NaN at index %d", i)
		}
		dst[i] = uint64(int64(f)) & mask
	}
	return clipped, nil
}

// Encode64 is Encode for float64 inputs.
func (p Params) Encode64(dst []uint64, x []float64) (clipped int, err error) {
	if len(dst) != len(x) {
		return 0, fmt.Errorf("secagg: Encode64: %d values into %d slots", len(x), len(dst))
	}
	scale, q, mask := math.Ldexp(1, p.FracBits), p.maxQ(), p.ringMask()
	for i, v := range x {
		f := math.RoundToEven(v * scale)
		switch {
		case f > q:
			f, clipped = q, clipped+1
		case f < -q:
			f, clipped = -q, clipped+1
		case f != f:
			return clipped, fmt.Errorf("secagg: Encode64: NaN at index %d", i)
		}
		dst[i] = uint64(int64(f)) & mask
	}
	return clipped, nil
}

// signed reads a ring element as a two's-complement integer.
func (p Params) signed(v uint64) int64 {
	if p.RingBits == 32 {
		return int64(int32(uint32(v)))
	}
	return int64(v)
}

// Decode turns a ring vector (an encoding or a sum of encodings) back
// into reals: signed(v) * 2^-FracBits.
func (p Params) Decode(dst []float64, v []uint64) {
	inv := math.Ldexp(1, -p.FracBits)
	for i, w := range v {
		dst[i] = float64(p.signed(w)) * inv
	}
}

// Decode32 is Decode to float32 (one more rounding, of relative size
// 2^-24, on top of ErrorBound).
func (p Params) Decode32(dst []float32, v []uint64) {
	inv := math.Ldexp(1, -p.FracBits)
	for i, w := range v {
		dst[i] = float32(float64(p.signed(w)) * inv)
	}
}

// ErrorBound is the largest difference, per coordinate, between the
// decoded (float64) secure sum of n clients and the exact sum of their
// inputs, provided every input lies in [-Clip, Clip]: each encoding rounds
// by at most half a unit, 2^-(FracBits+1), and the ring sum is exact
// (masks cancel exactly); converting a sum beyond 2^53 units to float64
// adds at most n*Clip*2^-53.
func (p Params) ErrorBound(n int) float64 {
	b := float64(n) * math.Ldexp(1, -(p.FracBits+1))
	if float64(n)*p.maxQ() > math.Ldexp(1, 53) {
		b += float64(n) * p.Clip * math.Ldexp(1, -53)
	}
	return b
}
