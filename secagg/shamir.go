package secagg

import (
	"fmt"
	"io"
	"math/big"
)

// Shamir secret sharing of 32-byte secrets over GF(p), p = 2^256 + 297,
// the smallest prime above 2^256 (so every 32-byte string is a field
// element). The share of client v is the polynomial's value at v's ID+1,
// written as 33 big-endian bytes.

// ShareLen is the size of one Shamir share.
const ShareLen = 33

var prime = func() *big.Int {
	p := new(big.Int).Lsh(big.NewInt(1), 256)
	return p.Add(p, big.NewInt(297))
}()

// shareValue is one share: the polynomial's value as 33 big-endian bytes.
type shareValue [ShareLen]byte

func xOf(id ID) *big.Int { return new(big.Int).SetUint64(uint64(id) + 1) }

// randField draws a uniform element of GF(p) by rejection: 257 random
// bits, kept when below p (probability about 1/2).
func randField(r io.Reader) (*big.Int, error) {
	var b [ShareLen]byte
	for {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, fmt.Errorf("secagg: reading randomness: %w", err)
		}
		b[0] &= 1
		v := new(big.Int).SetBytes(b[:])
		if v.Cmp(prime) < 0 {
			return v, nil
		}
	}
}

// split shares secret among ids with threshold t: a random polynomial of
// degree t-1 with the secret as constant term, evaluated at each ID+1.
func split(secret [32]byte, ids []ID, t int, r io.Reader) ([]shareValue, error) {
	if t < 1 || t > len(ids) {
		return nil, fmt.Errorf("%w: threshold %d of %d shares", ErrBelowThreshold, t, len(ids))
	}
	coef := make([]*big.Int, t)
	coef[0] = new(big.Int).SetBytes(secret[:])
	for i := 1; i < t; i++ {
		c, err := randField(r)
		if err != nil {
			return nil, err
		}
		coef[i] = c
	}
	out := make([]shareValue, len(ids))
	y := new(big.Int)
	for k, id := range ids {
		x := xOf(id)
		y.Set(coef[t-1])
		for i := t - 2; i >= 0; i-- {
			y.Mul(y, x)
			y.Add(y, coef[i])
			y.Mod(y, prime)
		}
		y.FillBytes(out[k][:])
	}
	return out, nil
}

// valid reports whether a share is a field element (below p).
func (s *shareValue) valid() bool {
	return new(big.Int).SetBytes(s[:]).Cmp(prime) < 0
}

// combine reconstructs a secret from the first t shares (at the points of
// ids) by Lagrange interpolation at 0. It fails below t shares, on
// repeated points, and when the result is not a 32-byte string (which only
// inconsistent, i.e. forged, shares produce).
func combine(ids []ID, ys []shareValue, t int) ([32]byte, error) {
	var out [32]byte
	if len(ids) != len(ys) {
		return out, fmt.Errorf("secagg: combine: %d points, %d values", len(ids), len(ys))
	}
	if len(ys) < t {
		return out, fmt.Errorf("%w: %d shares, need %d", ErrBelowThreshold, len(ys), t)
	}
	xs := make([]*big.Int, t)
	for i := range t {
		xs[i] = xOf(ids[i])
		for j := range i {
			if xs[i].Cmp(xs[j]) == 0 {
				return out, fmt.Errorf("%w: two shares from client %d", ErrProtocol, ids[i])
			}
		}
	}
	sum, num, den, tmp := new(big.Int), new(big.Int), new(big.Int), new(big.Int)
	for i := range t {
		num.SetInt64(1)
		den.SetInt64(1)
		for j := range t {
			if j == i {
				continue
			}
			num.Mul(num, xs[j])
			num.Mod(num, prime)
			tmp.Sub(xs[j], xs[i])
			den.Mul(den, tmp)
			den.Mod(den, prime)
		}
		den.ModInverse(den, prime)
		tmp.SetBytes(ys[i][:])
		tmp.Mul(tmp, num)
		tmp.Mod(tmp, prime)
		tmp.Mul(tmp, den)
		sum.Add(sum, tmp)
		sum.Mod(sum, prime)
	}
	if sum.BitLen() > 256 {
		return out, fmt.Errorf("%w: shares reconstruct to a value outside the secret space (forged share)", ErrAuth)
	}
	sum.FillBytes(out[:])
	return out, nil
}
