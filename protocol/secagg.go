package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/transport"
)

// FlagSecAgg marks the messages of a round that aggregates securely
// (package secagg): the round broadcast, the secure aggregation steps the
// server sends on the round subject, and every client message of such a
// round. Its updates carry no delta: the server only ever sees the sum.
const FlagSecAgg = FlagNoTrain << 1

// Names of the secure aggregation payloads: each is one secagg message's
// binary form, packed by PackBytes into a float32 tensor. A message of
// FlagSecAgg carries exactly one of them.
//
// Client -> server (update subject), in order: SAAdvertise with the clear
// part of the update (N, loss, steps, ratios, SALayout), SAShareKeys,
// SAMasked, SAResponse. Server -> clients (round subject, KindRound without
// a model, Clients = the recipients): SAKeyList (to U1), SADelivery (to
// one client), SAUnmask (to the survivors).
const (
	TensorSAAdvertise = "secagg/advertise"
	TensorSAShareKeys = "secagg/share_keys"
	TensorSAMasked    = "secagg/masked"
	TensorSAResponse  = "secagg/response"
	TensorSAKeyList   = "secagg/key_list"
	TensorSADelivery  = "secagg/delivery"
	TensorSAUnmask    = "secagg/unmask"
	// TensorSALayout (update, with SAAdvertise) lists rows and columns of
	// each tensor summed after the delta (the GPSE sketches of a sketch
	// round, in Projected order), as float32 integers.
	TensorSALayout = "secagg/layout"
	// TensorSADrop (round broadcast) lists, as float32 ids, the selected
	// clients that will fail after sharing their keys (scenario
	// system.dropout): a simulated dropout the survivors' shares recover.
	TensorSADrop = "secagg/drop"
	// ScalarSAWeightScale (round broadcast, weighting by samples) is the
	// common scale s of the weights: client k sends (n_k/s) delta_k and
	// n_k/s, so that values stay within the fixed-point range.
	ScalarSAWeightScale = "secagg/weight_scale"
)

// SecAggSteps are the payload tensor names, clients' first.
var SecAggSteps = []string{TensorSAAdvertise, TensorSAShareKeys, TensorSAMasked, TensorSAResponse,
	TensorSAKeyList, TensorSADelivery, TensorSAUnmask}

// SecAggStep returns the name of the payload tensor of m ("" if none).
func SecAggStep(m *transport.Message) string {
	for _, t := range m.Tensors {
		for _, s := range SecAggSteps {
			if t.Name == s {
				return s
			}
		}
	}
	return ""
}

// Rings of secure aggregation (scenario secagg.ring).
const (
	RingDefault = "default" // secagg.DefaultParams: 64-bit ring, 32 fractional bits
	RingCompact = "compact" // secagg.CompactParams: 32-bit ring, 16 fractional bits
)

// SecAgg configures secure aggregation; server and client hosts of a run
// share it.
type SecAgg struct {
	// Ring is RingDefault or RingCompact ("" is RingDefault).
	Ring string
	// Threshold is the Shamir threshold t; 0 is max(2, k/2+1) for the k
	// clients a round lists (see ThresholdFor).
	Threshold int
}

// ErrSecAgg reports an unusable secure aggregation setting.
var ErrSecAgg = errors.New("protocol: secure aggregation")

// Validate reports an unusable configuration.
func (c SecAgg) Validate() error {
	if c.Ring != "" && c.Ring != RingDefault && c.Ring != RingCompact {
		return fmt.Errorf("%w: ring %q (want %s or %s)", ErrSecAgg, c.Ring, RingDefault, RingCompact)
	}
	if c.Threshold != 0 && c.Threshold < 2 {
		return fmt.Errorf("%w: threshold %d (want 0 for the default, or >= 2)", ErrSecAgg, c.Threshold)
	}
	return nil
}

// ThresholdFor returns the threshold of a round listing k clients: the
// configured one, or max(2, floor(k/2)+1) (an honest majority).
func (c SecAgg) ThresholdFor(k int) int {
	if c.Threshold > 0 {
		return c.Threshold
	}
	return max(2, k/2+1)
}

// Params returns the secagg parameters of round in a run of seed, whose
// broadcast lists k clients. The session is a hash of (seed, "secagg",
// round), so no two rounds share keys or masks.
func (c SecAgg) Params(seed uint64, round, k int) secagg.Params {
	s, _ := rng.Key(seed, "secagg", round)
	if c.Ring == RingCompact {
		return secagg.CompactParams(s, c.ThresholdFor(k))
	}
	return secagg.DefaultParams(s, c.ThresholdFor(k))
}

// SecAggRand returns the randomness of client's secure aggregation in
// round: a ChaCha8 stream keyed by (seed, "secagg-client", round, client),
// so that a run is reproducible. (A simulation: anyone who knows the seed
// knows the keys; a deployment would read crypto/rand.)
func SecAggRand(seed uint64, round, client int) *rand.ChaCha8 {
	var key [32]byte
	a, b := rng.Key(seed, "secagg-client", round, client)
	c, d := rng.Key(seed, "secagg-client", round, client, 1)
	binary.LittleEndian.PutUint64(key[0:], a)
	binary.LittleEndian.PutUint64(key[8:], b)
	binary.LittleEndian.PutUint64(key[16:], c)
	binary.LittleEndian.PutUint64(key[24:], d)
	return rand.NewChaCha8(key)
}

// PackBytes packs b into float32 values that every transport accepts
// (finite, exact): two values for the length (its low and high 24 bits),
// then three bytes per value, as an integer in [0, 2^24). dst is reused.
func PackBytes(dst []float32, b []byte) []float32 {
	n := 2 + (len(b)+2)/3
	if cap(dst) < n {
		dst = make([]float32, n)
	}
	dst = dst[:n]
	dst[0], dst[1] = float32(len(b)&(1<<24-1)), float32(len(b)>>24)
	k := 2
	for i := 0; i < len(b); i += 3 {
		v := uint32(b[i])
		if i+1 < len(b) {
			v |= uint32(b[i+1]) << 8
		}
		if i+2 < len(b) {
			v |= uint32(b[i+2]) << 16
		}
		dst[k] = float32(v)
		k++
	}
	return dst
}

// ErrPacked reports a tensor that PackBytes did not produce.
var ErrPacked = errors.New("protocol: bad packed bytes")

// UnpackBytes is the inverse of PackBytes; it refuses any other tensor
// (wrong length, values that are not integers in [0, 2^24), non-zero
// padding), so that a payload has one encoding only.
func UnpackBytes(v []float32) ([]byte, error) {
	if len(v) < 2 {
		return nil, fmt.Errorf("%w: %d values", ErrPacked, len(v))
	}
	word := func(x float32) (uint32, bool) {
		if !(x >= 0 && x < 1<<24) || x != float32(math.Trunc(float64(x))) {
			return 0, false
		}
		return uint32(x), true
	}
	lo, ok1 := word(v[0])
	hi, ok2 := word(v[1])
	if !ok1 || !ok2 || hi > 1<<6 {
		return nil, fmt.Errorf("%w: length words %v %v", ErrPacked, v[0], v[1])
	}
	n := int(lo) | int(hi)<<24
	if len(v) != 2+(n+2)/3 {
		return nil, fmt.Errorf("%w: %d values for %d bytes", ErrPacked, len(v), n)
	}
	b := make([]byte, n)
	for i, x := range v[2:] {
		w, ok := word(x)
		if !ok {
			return nil, fmt.Errorf("%w: value %v", ErrPacked, x)
		}
		for j := 0; j < 3; j++ {
			if k := 3*i + j; k < n {
				b[k] = byte(w >> (8 * j))
			} else if byte(w>>(8*j)) != 0 {
				return nil, fmt.Errorf("%w: non-zero padding", ErrPacked)
			}
		}
	}
	return b, nil
}

// SecAggPayload returns a tensor called name holding m's binary form, and
// m's EncodedLen (what the record counts for it).
func SecAggPayload(name string, m interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}) (transport.Tensor, int, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return transport.Tensor{}, 0, err
	}
	v := PackBytes(nil, b)
	return transport.Tensor{Name: name, Rows: 1, Cols: len(v), Data: v}, m.EncodedLen(), nil
}

// SecAggUnpack decodes the payload tensor called name of m into dst (a
// secagg message).
func SecAggUnpack(m *transport.Message, name string, dst interface{ UnmarshalBinary([]byte) error }) error {
	t := m.Tensor(name)
	if t == nil {
		return fmt.Errorf("%w: no %q tensor", ErrPacked, name)
	}
	b, err := UnpackBytes(t.Data)
	if err != nil {
		return err
	}
	return dst.UnmarshalBinary(b)
}
