package transport

import (
	"bytes"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

// updateMessage is a client update of the given values and scalars.
func updateMessage(data []float32, scalars ...Scalar) *Message {
	return &Message{
		Kind: KindUpdate, Round: 7, Task: 2, Client: 5, N: 480,
		Scalars: scalars,
		Tensors: []Tensor{{Name: "delta", Rows: 1, Cols: len(data), Data: data}},
	}
}

// wantBytes is AppendBinary's encoding of m, which a Frame must reproduce.
func wantBytes(t *testing.T, m *Message) []byte {
	t.Helper()
	b, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestFrameInPlace fills a frame's values in place, message after message,
// and checks each encoding against AppendBinary's, that the values stay
// where they are and that re-encoding allocates nothing.
func TestFrameInPlace(t *testing.T) {
	if !nativeLE {
		t.Skip("values are written in place on little-endian hosts only")
	}
	r := rand.New(rand.NewPCG(1, 1))
	const n = 1001
	var f Frame
	if f.Values(0) != nil || f.Bytes() != nil || f.Len() != 0 {
		t.Fatal("the zero Frame is not empty")
	}
	m := updateMessage(randData(r, n), Scalar{"loss", 0.5})
	if err := f.Encode(m); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(f.Bytes(), wantBytes(t, m)) || f.Len() != m.EncodedLen() {
		t.Fatal("first encoding differs from AppendBinary's")
	}
	for round := range 3 {
		v := f.Values(0)
		if len(v) != n {
			t.Fatalf("round %d: Values(0) has %d values, want %d", round, len(v), n)
		}
		want := randData(r, n)
		copy(v, want)
		m.Tensors[0].Data = v
		m.Scalars[0].Value = float64(round)
		if err := f.Encode(m); err != nil {
			t.Fatal(err)
		}
		if &f.Values(0)[0] != &v[0] {
			t.Fatalf("round %d: the values moved", round)
		}
		m.Tensors[0].Data = want
		if !bytes.Equal(f.Bytes(), wantBytes(t, m)) {
			t.Fatalf("round %d: encoding differs from AppendBinary's", round)
		}
	}
	m.Tensors[0].Data = f.Values(0)
	if allocs := testing.AllocsPerRun(10, func() { _ = f.Encode(m) }); allocs != 0 {
		t.Fatalf("in-place Encode allocates %v times, want 0", allocs)
	}
	if f.Values(1) != nil || f.Values(-1) != nil {
		t.Fatal("Values of a missing tensor is not nil")
	}
}

// TestFrameLayoutChange encodes messages whose values lie in the frame but
// not where the new layout puts them: they must be moved, not overwritten.
func TestFrameLayoutChange(t *testing.T) {
	if !nativeLE {
		t.Skip("values are written in place on little-endian hosts only")
	}
	r := rand.New(rand.NewPCG(2, 2))
	const n = 257
	for _, tc := range []struct {
		name   string
		change func(m *Message)
	}{
		{"values move up", func(m *Message) { m.Scalars = append(m.Scalars, Scalar{"dp_q", 0.01}) }},
		{"values move down", func(m *Message) { m.Scalars = m.Scalars[:0] }},
		{"buffer grows", func(m *Message) {
			m.Tensors = append(m.Tensors, Tensor{Name: "sketch", Rows: 40, Cols: 100, Data: randData(r, 4000)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var f Frame
			m := updateMessage(randData(r, n), Scalar{"loss", 0.5})
			if err := f.Encode(m); err != nil {
				t.Fatal(err)
			}
			v := f.Values(0)
			want := randData(r, n)
			copy(v, want)
			m.Tensors[0].Data = v
			tc.change(m)
			if err := f.Encode(m); err != nil {
				t.Fatal(err)
			}
			m.Tensors[0].Data = want
			if !bytes.Equal(f.Bytes(), wantBytes(t, m)) {
				t.Fatal("encoding differs from AppendBinary's")
			}
			if got := f.Values(0); len(got) != n || got[0] != want[0] || got[n-1] != want[n-1] {
				t.Fatal("Values(0) does not hold the values after the change")
			}
		})
	}
}

// TestFrameRejects checks that a frame refuses what AppendBinary refuses,
// values written in place included, and that an empty frame is not
// published.
func TestFrameRejects(t *testing.T) {
	var f Frame
	m := updateMessage(make([]float32, 64))
	if err := f.Encode(m); err != nil {
		t.Fatal(err)
	}
	v := f.Values(0)
	if v == nil {
		v = make([]float32, 64)
	}
	v[40] = float32(math.Inf(-1))
	m.Tensors[0].Data = v
	if err := f.Encode(m); !errors.Is(err, ErrNonFinite) {
		t.Fatalf("Encode with -Inf in place: got %v, want %v", err, ErrNonFinite)
	}
	if f.Len() != 0 || f.Bytes() != nil || f.Values(0) != nil {
		t.Fatalf("failed Encode left %d bytes in the frame", f.Len())
	}
	e := startEmbedded(t, EmbeddedOptions{})
	c := connect(t, e, "host")
	if _, err := c.PublishFrame("fotsim.frame.update", &f); !errors.Is(err, ErrLength) {
		t.Fatalf("PublishFrame of an empty frame: got %v, want %v", err, ErrLength)
	}
	if err := f.Encode(&Message{Kind: 0}); !errors.Is(err, ErrKind) {
		t.Fatalf("Encode of kind 0: got %v, want %v", err, ErrKind)
	}
}

// TestPublishFrame sends frames whole and in chunks and checks what arrives.
func TestPublishFrame(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	for _, maxPayload := range []int{0, 1000} {
		e := startEmbedded(t, EmbeddedOptions{MaxPayload: maxPayload})
		srv, host := connect(t, e, "server"), connect(t, e, "host")
		ch := collect(t, srv, "fotsim.frame.update")
		var f Frame
		m := updateMessage(randData(r, 3000), Scalar{"loss", 1})
		for round := range 3 {
			want := randData(r, 3000)
			if v := f.Values(0); v != nil {
				copy(v, want)
				m.Tensors[0].Data = v
			} else {
				m.Tensors[0].Data = want
			}
			m.Round = int32(round)
			if err := f.Encode(m); err != nil {
				t.Fatal(err)
			}
			n, err := host.PublishFrame("fotsim.frame.update", &f)
			if err != nil {
				t.Fatalf("max payload %d, round %d: %v", maxPayload, round, err)
			}
			if n != m.EncodedLen() {
				t.Fatalf("max payload %d: PublishFrame returned %d, want %d", maxPayload, n, m.EncodedLen())
			}
			d := next(t, ch)
			if d.err != nil {
				t.Fatalf("max payload %d, round %d: received error %v", maxPayload, round, d.err)
			}
			m.Tensors[0].Data = want
			if diff := sameMessage(d.m, m); diff != "" {
				t.Fatalf("max payload %d, round %d: %s", maxPayload, round, diff)
			}
		}
	}
}
