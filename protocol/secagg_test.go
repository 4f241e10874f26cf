package protocol

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/transport"
)

// PackBytes round-trips through UnpackBytes for every length, and
// UnpackBytes refuses every tensor PackBytes cannot produce.
func TestPackBytesRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := range 50 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		v := PackBytes(nil, b)
		got, err := UnpackBytes(v)
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("%d bytes: got %v, %v", n, got, err)
		}
	}
	good := PackBytes(nil, []byte{1, 2, 3, 4})
	for name, v := range map[string][]float32{
		"short":     {4},
		"length":    {7, 0, good[2], good[3]},
		"fraction":  {4, 0, 0.5, good[3]},
		"negative":  {4, 0, -1, good[3]},
		"too large": {4, 0, 1 << 24, good[3]},
		"padding":   {4, 0, good[2], good[3] + 256},
		"extra":     append(append([]float32{}, good...), 0),
	} {
		if _, err := UnpackBytes(v); !errors.Is(err, ErrPacked) {
			t.Errorf("%s: got %v, want ErrPacked", name, err)
		}
	}
}

func TestSecAggThresholdAndParams(t *testing.T) {
	for k, want := range map[int]int{2: 2, 3: 2, 4: 3, 5: 3, 64: 33} {
		if got := (SecAgg{}).ThresholdFor(k); got != want {
			t.Errorf("k=%d: threshold %d, want %d", k, got, want)
		}
	}
	if got := (SecAgg{Threshold: 4}).ThresholdFor(10); got != 4 {
		t.Errorf("configured threshold: got %d", got)
	}
	a, b := SecAgg{}.Params(1, 0, 5), SecAgg{}.Params(1, 1, 5)
	if a.Session == b.Session || a.RingBits != 64 || (SecAgg{Ring: RingCompact}).Params(1, 0, 5).RingBits != 32 {
		t.Errorf("params: %+v %+v", a, b)
	}
	if a != (SecAgg{}).Params(1, 0, 5) {
		t.Errorf("params differ for the same seed and round")
	}
	for _, bad := range []SecAgg{{Ring: "huge"}, {Threshold: 1}} {
		if err := bad.Validate(); !errors.Is(err, ErrSecAgg) {
			t.Errorf("%+v: got %v", bad, err)
		}
	}
	// A payload round-trips through a message.
	adv := &secagg.Advertise{Session: 7, From: 3}
	ts, n, err := SecAggPayload(TensorSAAdvertise, adv)
	if err != nil || n != adv.EncodedLen() {
		t.Fatal(err, n)
	}
	var back secagg.Advertise
	m := messageWith(ts)
	if err := SecAggUnpack(m, TensorSAAdvertise, &back); err != nil || back != *adv || SecAggStep(m) != TensorSAAdvertise {
		t.Errorf("got %+v, %v", back, err)
	}
}

func messageWith(ts ...transport.Tensor) *transport.Message {
	return &transport.Message{Tensors: ts}
}
