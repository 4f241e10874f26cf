package transport

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"
)

// modelParams is the size of the reference model used in benchmarks.
const modelParams = 478410

// sameMessage reports how got differs from want ("" when equal). Nil and
// empty slices are equal; floats are compared bit for bit.
func sameMessage(got, want *Message) string {
	if got.Kind != want.Kind || got.Round != want.Round || got.Task != want.Task ||
		got.Client != want.Client || got.N != want.N || got.Flags != want.Flags {
		return fmt.Sprintf("header: got %v/%d/%d/%d/%d/%d, want %v/%d/%d/%d/%d/%d",
			got.Kind, got.Round, got.Task, got.Client, got.N, got.Flags,
			want.Kind, want.Round, want.Task, want.Client, want.N, want.Flags)
	}
	if len(got.Clients) != len(want.Clients) {
		return fmt.Sprintf("clients: got %v, want %v", got.Clients, want.Clients)
	}
	for i := range got.Clients {
		if got.Clients[i] != want.Clients[i] {
			return fmt.Sprintf("clients: got %v, want %v", got.Clients, want.Clients)
		}
	}
	if len(got.Scalars) != len(want.Scalars) {
		return fmt.Sprintf("scalars: got %d, want %d", len(got.Scalars), len(want.Scalars))
	}
	for i := range got.Scalars {
		g, w := got.Scalars[i], want.Scalars[i]
		if g.Name != w.Name || math.Float64bits(g.Value) != math.Float64bits(w.Value) {
			return fmt.Sprintf("scalar %d: got %+v, want %+v", i, g, w)
		}
	}
	if len(got.Tensors) != len(want.Tensors) {
		return fmt.Sprintf("tensors: got %d, want %d", len(got.Tensors), len(want.Tensors))
	}
	if !bytes.Equal(got.Sig, want.Sig) {
		return fmt.Sprintf("sig: got %x, want %x", got.Sig, want.Sig)
	}
	for i := range got.Tensors {
		g, w := got.Tensors[i], want.Tensors[i]
		if g.Name != w.Name || g.Rows != w.Rows || g.Cols != w.Cols || len(g.Data) != len(w.Data) {
			return fmt.Sprintf("tensor %d: got %q %dx%d (%d values), want %q %dx%d (%d values)",
				i, g.Name, g.Rows, g.Cols, len(g.Data), w.Name, w.Rows, w.Cols, len(w.Data))
		}
		for j := range g.Data {
			if math.Float32bits(g.Data[j]) != math.Float32bits(w.Data[j]) {
				return fmt.Sprintf("tensor %d %q value %d: got %v, want %v", i, g.Name, j, g.Data[j], w.Data[j])
			}
		}
	}
	return ""
}

func randData(r *rand.Rand, n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(r.NormFloat64())
	}
	return d
}

// testMessages covers every kind, empty and nil slices, zero-sized tensors
// and extreme header values.
func testMessages() []struct {
	name string
	m    *Message
} {
	r := rand.New(rand.NewPCG(1, 2))
	return []struct {
		name string
		m    *Message
	}{
		{"zero round", &Message{Kind: KindRound}},
		{"empty slices", &Message{Kind: KindUpdate, Clients: []int32{}, Scalars: []Scalar{}, Tensors: []Tensor{}}},
		{"stop", &Message{Kind: KindStop, Round: 99, Flags: 1}},
		{"round", &Message{
			Kind: KindRound, Round: 7, Task: 2, Clients: []int32{0, 5, 63, -1},
			Tensors: []Tensor{{Name: "model", Rows: 1000, Cols: 1, Data: randData(r, 1000)}},
		}},
		{"update", &Message{
			Kind: KindUpdate, Round: 7, Task: 2, Client: 5, N: 600, Flags: 0xdeadbeef,
			Scalars: []Scalar{{"loss", 0.25}, {"", -1e300}, {"ναμε", math.SmallestNonzeroFloat64}},
			Tensors: []Tensor{
				{Name: "delta", Rows: 10, Cols: 33, Data: randData(r, 330)},
				{Name: "empty", Rows: 0, Cols: 0},
				{Name: "zero rows", Rows: 0, Cols: 12, Data: []float32{}},
				{Name: "odd", Rows: 3, Cols: 1, Data: []float32{-0, math.MaxFloat32, -math.SmallestNonzeroFloat32}},
				{Name: strings.Repeat("n", MaxNameLen), Rows: 1, Cols: 1, Data: []float32{1}},
			},
		}},
		{"extremes", &Message{
			Kind: KindUpdate, Round: math.MaxInt32, Task: math.MinInt32, Client: -7,
			N: math.MinInt64, Flags: math.MaxUint32, Clients: []int32{math.MinInt32, math.MaxInt32},
		}},
		{"signed update", &Message{
			Kind: KindUpdate, Round: 3, Task: 1, Client: 2, N: 50,
			Scalars: []Scalar{{"loss", 0.5}},
			Tensors: []Tensor{{Name: "delta", Rows: 1, Cols: 7, Data: randData(r, 7)}},
			Sig:     bytes.Repeat([]byte{0xa5}, 64),
		}},
		{"longest signature", &Message{Kind: KindStop, Round: 9, Sig: bytes.Repeat([]byte{1}, MaxSigLen)}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range testMessages() {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []byte("prefix")
			b, err := tc.m.AppendBinary(append([]byte(nil), prefix...))
			if err != nil {
				t.Fatalf("AppendBinary: %v", err)
			}
			if !bytes.HasPrefix(b, prefix) {
				t.Fatalf("AppendBinary clobbered dst: got %q", b[:len(prefix)])
			}
			enc := b[len(prefix):]
			if got, want := len(enc), tc.m.EncodedLen(); got != want {
				t.Fatalf("encoded length: got %d, want %d", got, want)
			}
			var fresh Message
			if err := Decode(enc, &fresh); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if d := sameMessage(&fresh, tc.m); d != "" {
				t.Fatalf("fresh decode: %s", d)
			}
			// Decode into a message that already holds something else.
			reused := &Message{
				Kind: KindStop, Round: 1, Clients: make([]int32, 9), N: 4,
				Scalars: []Scalar{{"x", 1}, {"y", 2}, {"z", 3}, {"w", 4}},
				Tensors: []Tensor{{Name: "a", Rows: 1, Cols: 2000, Data: make([]float32, 2000)}, {Name: "b"}},
			}
			if err := Decode(enc, reused); err != nil {
				t.Fatalf("Decode into used message: %v", err)
			}
			if d := sameMessage(reused, tc.m); d != "" {
				t.Fatalf("reused decode: %s", d)
			}
			again, err := fresh.AppendBinary(nil)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(again, enc) {
				t.Fatalf("re-encoding differs: got %d bytes, want %d", len(again), len(enc))
			}
		})
	}
}

// base is the message whose encoding TestDecodeCorrupt damages. Its layout:
// header 0..42, clients 42..50, scalar "loss" 50..64, tensor "w" 64..104
// (its values 4-byte aligned after 1 byte of padding at 79), signature
// length 104..106, signature 106..109.
func base() *Message {
	return &Message{
		Kind: KindUpdate, Round: 3, Client: 1, N: 10,
		Clients: []int32{1, 2},
		Scalars: []Scalar{{"loss", 0.5}},
		Tensors: []Tensor{{Name: "w", Rows: 2, Cols: 3, Data: []float32{1, 2, 3, 4, 5, 6}}},
		Sig:     []byte{7, 8, 9},
	}
}

const (
	offClients    = 30
	offScalars    = 34
	offTensors    = 38
	offScalarName = 50
	offScalarVal  = 56
	offTensorName = 64
	offRows       = 67
	offCols       = 71
	offN          = 75
	offPad        = 79
	offData       = 80
	offSigLen     = 104
	baseLen       = 109
)

func TestDecodeCorrupt(t *testing.T) {
	enc, err := base().AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(enc) != baseLen {
		t.Fatalf("base encoding: got %d bytes, want %d", len(enc), baseLen)
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint32(b[off:], v); return b }
	}
	put16 := func(off int, v uint16) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint16(b[off:], v); return b }
	}
	putF32 := func(off int, v float32) func([]byte) []byte { return put32(off, math.Float32bits(v)) }
	putF64 := func(off int, v float64) func([]byte) []byte {
		return func(b []byte) []byte { le.PutUint64(b[off:], math.Float64bits(v)); return b }
	}
	setByte := func(off int, v byte) func([]byte) []byte {
		return func(b []byte) []byte { b[off] = v; return b }
	}
	cut := func(n int) func([]byte) []byte { return func(b []byte) []byte { return b[:n] } }
	tests := []struct {
		name   string
		damage func([]byte) []byte
		want   error
	}{
		{"empty", cut(0), ErrTruncated},
		{"magic only", cut(4), ErrTruncated},
		{"short header", cut(20), ErrTruncated},
		{"bad magic", setByte(0, 'X'), ErrMagic},
		{"bad partial magic", func(b []byte) []byte { return []byte("FX") }, ErrMagic},
		{"json", func([]byte) []byte { return []byte(`{"kind":1}`) }, ErrMagic},
		{"version 0", setByte(4, 0), ErrVersion},
		{"version 1", setByte(4, 1), ErrVersion},
		{"version 2", setByte(4, 2), ErrVersion},
		{"version 4", setByte(4, 4), ErrVersion},
		{"kind 0", setByte(5, 0), ErrKind},
		{"kind 4", setByte(5, 4), ErrKind},
		{"kind 255", setByte(5, 255), ErrKind},
		{"clients over limit", put32(offClients, MaxClients+1), ErrLength},
		{"clients past end", put32(offClients, 1000), ErrTruncated},
		{"scalars over limit", put32(offScalars, math.MaxUint32), ErrLength},
		{"scalars past end", put32(offScalars, 9), ErrTruncated},
		{"tensors over limit", put32(offTensors, MaxTensors+1), ErrLength},
		{"tensors past end", put32(offTensors, 3), ErrTruncated},
		{"scalar name over limit", put16(offScalarName, MaxNameLen+1), ErrLength},
		{"scalar name past end", put16(offScalarName, 200), ErrTruncated},
		{"tensor name past end", put16(offTensorName, 60), ErrTruncated},
		{"rows*cols != n", put32(offRows, 3), ErrShape},
		{"n != rows*cols", put32(offN, 5), ErrShape},
		{"rows over limit", put32(offRows, 1<<31), ErrLength},
		{"cols over limit", put32(offCols, math.MaxUint32), ErrLength},
		{"data past end", func(b []byte) []byte {
			le.PutUint32(b[offRows:], 7)
			le.PutUint32(b[offCols:], 1)
			le.PutUint32(b[offN:], 7)
			return b
		}, ErrTruncated},
		{"huge data past end", func(b []byte) []byte {
			le.PutUint32(b[offRows:], 1<<20)
			le.PutUint32(b[offCols:], 1<<10)
			le.PutUint32(b[offN:], 1<<30)
			return b
		}, ErrTruncated},
		{"last byte cut", cut(baseLen - 1), ErrTruncated},
		{"in tensor dims", cut(offCols + 2), ErrTruncated},
		{"before padding", cut(offPad), ErrTruncated},
		{"non-zero padding", setByte(offPad, 1), ErrPadding},
		{"in scalar value", cut(offScalarVal + 3), ErrTruncated},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, ErrTrailing},
		{"no signature trailer", cut(offSigLen), ErrTruncated},
		{"half a signature length", cut(offSigLen + 1), ErrTruncated},
		{"signature past end", put16(offSigLen, 4), ErrTruncated},
		{"signature over limit", put16(offSigLen, MaxSigLen+1), ErrLength},
		{"signature shorter than declared", put16(offSigLen, 2), ErrTrailing},
		{"second message appended", func(b []byte) []byte { return append(b, b...) }, ErrTrailing},
		{"NaN value", putF32(offData+8, float32(math.NaN())), ErrNonFinite},
		{"+Inf value", putF32(offData, float32(math.Inf(1))), ErrNonFinite},
		{"-Inf last value", putF32(offData+20, float32(math.Inf(-1))), ErrNonFinite},
		{"NaN with payload", put32(offData+4, 0xffc00001), ErrNonFinite},
		{"NaN scalar", putF64(offScalarVal, math.NaN()), ErrNonFinite},
		{"Inf scalar", putF64(offScalarVal, math.Inf(-1)), ErrNonFinite},
	}
	decoders := []struct {
		name   string
		decode func([]byte, *Message) error
	}{{"Decode", Decode}, {"DecodeShared", DecodeShared}}
	for _, tc := range tests {
		for _, d := range decoders {
			t.Run(tc.name+"/"+d.name, func(t *testing.T) {
				b := tc.damage(append([]byte(nil), enc...))
				var m Message
				err := d.decode(b, &m)
				if !errors.Is(err, tc.want) {
					t.Fatalf("got error %v, want %v", err, tc.want)
				}
				for _, other := range []error{ErrMagic, ErrVersion, ErrKind, ErrTruncated, ErrLength, ErrShape, ErrPadding, ErrTrailing, ErrNonFinite} {
					if other != tc.want && errors.Is(err, other) {
						t.Fatalf("error %v also wraps %v", err, other)
					}
				}
			})
		}
	}
}

// TestDecodeShared checks that DecodeShared gives what Decode gives, with
// the tensor values left in b when b is 4-byte aligned and copied when it
// is not.
func TestDecodeShared(t *testing.T) {
	if !nativeLE {
		t.Skip("values are shared on little-endian hosts only")
	}
	for _, tc := range testMessages() {
		enc, err := tc.m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for off := range 4 {
			// The message at offset off of an 8-byte aligned buffer.
			buf := make([]byte, off+len(enc))
			b := buf[off:]
			copy(b, enc)
			var m Message
			if err := DecodeShared(b, &m); err != nil {
				t.Fatalf("%s at offset %d: %v", tc.name, off, err)
			}
			if d := sameMessage(&m, tc.m); d != "" {
				t.Fatalf("%s at offset %d: %s", tc.name, off, d)
			}
			for i, tn := range m.Tensors {
				if len(tn.Data) == 0 {
					continue
				}
				p := uintptr(unsafe.Pointer(&tn.Data[0]))
				inB := p >= uintptr(unsafe.Pointer(&b[0])) && p < uintptr(unsafe.Pointer(&b[0]))+uintptr(len(b))
				if want := off == 0; inB != want {
					t.Fatalf("%s at offset %d: tensor %d values inside b: got %v, want %v", tc.name, off, i, inB, want)
				}
				if p%4 != 0 {
					t.Fatalf("%s at offset %d: tensor %d values at address %#x, not 4-byte aligned", tc.name, off, i, p)
				}
			}
		}
	}
}

func TestAppendBinaryRejects(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	tests := []struct {
		name string
		m    Message
		want error
	}{
		{"kind 0", Message{}, ErrKind},
		{"kind 9", Message{Kind: 9}, ErrKind},
		{"long scalar name", Message{Kind: KindUpdate, Scalars: []Scalar{{Name: strings.Repeat("x", MaxNameLen+1)}}}, ErrLength},
		{"long tensor name", Message{Kind: KindUpdate, Tensors: []Tensor{{Name: strings.Repeat("x", MaxNameLen+1)}}}, ErrLength},
		{"negative rows", Message{Kind: KindUpdate, Tensors: []Tensor{{Rows: -1, Cols: -1, Data: []float32{1}}}}, ErrLength},
		{"shape", Message{Kind: KindUpdate, Tensors: []Tensor{{Rows: 2, Cols: 2, Data: []float32{1, 2, 3}}}}, ErrShape},
		{"too many clients", Message{Kind: KindRound, Clients: make([]int32, MaxClients+1)}, ErrLength},
		{"NaN scalar", Message{Kind: KindUpdate, Scalars: []Scalar{{"loss", math.NaN()}}}, ErrNonFinite},
		{"Inf scalar", Message{Kind: KindUpdate, Scalars: []Scalar{{"loss", math.Inf(1)}}}, ErrNonFinite},
		{"NaN tensor", Message{Kind: KindUpdate, Tensors: []Tensor{{Rows: 1, Cols: 3, Data: []float32{0, 0, nan}}}}, ErrNonFinite},
		{"Inf tensor", Message{Kind: KindUpdate, Tensors: []Tensor{{Rows: 3, Cols: 1, Data: []float32{inf, 0, 0}}}}, ErrNonFinite},
		{"long signature", Message{Kind: KindStop, Sig: make([]byte, MaxSigLen+1)}, ErrLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			got, err := tc.m.AppendBinary(dst)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got error %v, want %v", err, tc.want)
			}
			if string(got) != "keep" {
				t.Fatalf("dst on error: got %q, want %q", got, "keep")
			}
		})
	}
}

// TestFirstNonFinite checks the two-at-a-time scan against a plain loop, on
// aligned and misaligned slices, with the bad value at every position class.
func TestFirstNonFinite(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	bad := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), math.Float32frombits(0x7f800001), math.Float32frombits(0xffffffff)}
	naive := func(v []float32) int {
		for i, x := range v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return i
			}
		}
		return -1
	}
	base := randData(r, 1000)
	base[10] = math.MaxFloat32
	base[11] = -math.MaxFloat32
	for _, shift := range []int{0, 1, 2, 3} {
		for _, n := range []int{0, 1, 2, 3, 127, 128, 129, 300, 997} {
			v := base[shift : shift+n]
			if got, want := firstNonFinite(v), naive(v); got != want {
				t.Fatalf("shift %d n %d clean: got %d, want %d", shift, n, got, want)
			}
			for _, pos := range []int{0, 1, n / 2, n - 2, n - 1} {
				if pos < 0 || pos >= n {
					continue
				}
				for _, x := range bad {
					w := append([]float32(nil), base...)[shift : shift+n]
					w[pos] = x
					if n > 5 && pos > 3 {
						w[pos-3] = x // an earlier one wins
					}
					if got, want := firstNonFinite(w), naive(w); got != want {
						t.Fatalf("shift %d n %d pos %d value %x: got %d, want %d", shift, n, pos, math.Float32bits(x), got, want)
					}
				}
			}
		}
	}
}

// TestFirstNonFiniteEveryPosition puts one non-finite value at every
// position of slices around the vector scan's 32-value steps, at every
// alignment, and checks the assembly scan (where the CPU has it) against
// the Go one.
func TestFirstNonFiniteEveryPosition(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 7))
	base := randData(r, 200)
	for _, shift := range []int{0, 1, 2, 3} {
		for _, n := range []int{31, 32, 33, 64, 100, 131} {
			if got := firstNonFinite(base[shift : shift+n]); got != -1 {
				t.Fatalf("shift %d n %d clean: got %d, want -1", shift, n, got)
			}
			for pos := range n {
				w := append([]float32(nil), base...)[shift : shift+n]
				w[pos] = float32(math.Inf(-1 + 2*(pos%2)))
				if got := firstNonFinite(w); got != pos {
					t.Fatalf("shift %d n %d: non-finite at %d, got %d", shift, n, pos, got)
				}
				if got := firstNonFiniteGo(w); got != pos {
					t.Fatalf("Go scan, shift %d n %d: non-finite at %d, got %d", shift, n, pos, got)
				}
			}
		}
	}
}

func TestDecodeReuseAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	m := modelMessage(r, 10000)
	enc, err := m.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	var dst Message
	if err := Decode(enc, &dst); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(20, func() {
		if err := Decode(enc, &dst); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("Decode into a same-shaped message: got %v allocs, want 0", allocs)
	}
	buf := make([]byte, 0, len(enc))
	allocs = testing.AllocsPerRun(20, func() {
		if _, err := m.AppendBinary(buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("AppendBinary into a large enough buffer: got %v allocs, want 0", allocs)
	}
}

// modelMessage is a round message carrying an n-parameter model.
func modelMessage(r *rand.Rand, n int) *Message {
	clients := make([]int32, 64)
	for i := range clients {
		clients[i] = int32(i)
	}
	return &Message{
		Kind: KindRound, Round: 12, Task: 3, Clients: clients,
		Scalars: []Scalar{{"lr", 0.01}},
		Tensors: []Tensor{{Name: "params", Rows: n, Cols: 1, Data: randData(r, n)}},
	}
}

func FuzzDecode(f *testing.F) {
	for _, tc := range testMessages() {
		b, err := tc.m.AppendBinary(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	b, _ := base().AppendBinary(nil)
	f.Add(b)
	f.Add(b[:len(b)-1])
	f.Add(append(append([]byte(nil), b...), 0))
	f.Add([]byte{})
	f.Add([]byte("FOTS"))
	f.Add([]byte("FOTS\x01\x02"))
	reused := &Message{Clients: make([]int32, 4), Scalars: make([]Scalar, 2), Tensors: make([]Tensor, 2)}
	f.Fuzz(func(t *testing.T, b []byte) {
		var m, shared Message
		err := Decode(b, &m)
		errReused := Decode(b, reused)
		errShared := DecodeShared(b, &shared)
		if (err == nil) != (errReused == nil) || (err == nil) != (errShared == nil) {
			t.Fatalf("fresh, reused and shared decode disagree: %v vs %v vs %v", err, errReused, errShared)
		}
		if err != nil {
			return
		}
		if d := sameMessage(reused, &m); d != "" {
			t.Fatalf("reused decode: %s", d)
		}
		if d := sameMessage(&shared, &m); d != "" {
			t.Fatalf("shared decode: %s", d)
		}
		again, err := m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("re-encode of a decoded message: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("encoding is not canonical: got %x, want %x", again, b)
		}
	})
}

// TestSigningDigest checks that SigningDigest is the SHA-256 of the
// encoding's first BodyLen bytes, whatever the signature, and that it
// changes with any field or value.
func TestSigningDigest(t *testing.T) {
	for _, tc := range testMessages() {
		enc, err := tc.m.AppendBinary(nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got, want := tc.m.BodyLen(), len(enc)-2-len(tc.m.Sig); got != want {
			t.Fatalf("%s: BodyLen %d, want %d", tc.name, got, want)
		}
		want := sha256.Sum256(enc[:tc.m.BodyLen()])
		got, err := tc.m.SigningDigest()
		if err != nil || got != want {
			t.Fatalf("%s: SigningDigest = %x, %v; want %x", tc.name, got, err, want)
		}
		var dec Message
		if err := Decode(enc, &dec); err != nil {
			t.Fatal(err)
		}
		dec.Sig = []byte("another signature")
		if again, err := dec.SigningDigest(); err != nil || again != want {
			t.Fatalf("%s: digest of the decoded message with another signature: %x, %v; want %x", tc.name, again, err, want)
		}
	}
	m := base()
	d0, _ := m.SigningDigest()
	for name, change := range map[string]func(*Message){
		"round":  func(m *Message) { m.Round++ },
		"client": func(m *Message) { m.Client++ },
		"n":      func(m *Message) { m.N++ },
		"flags":  func(m *Message) { m.Flags ^= 1 },
		"value":  func(m *Message) { m.Tensors[0].Data[5] = math.Nextafter32(6, 7) },
		"scalar": func(m *Message) { m.Scalars[0].Value = 0.25 },
	} {
		m := base()
		change(m)
		if d, _ := m.SigningDigest(); d == d0 {
			t.Errorf("changing %s leaves the digest unchanged", name)
		}
	}
	if _, err := (&Message{Kind: 9}).SigningDigest(); !errors.Is(err, ErrKind) {
		t.Errorf("digest of kind 9: got %v, want ErrKind", err)
	}
}

func BenchmarkSigningDigest(b *testing.B) {
	m := modelMessage(rand.New(rand.NewPCG(7, 8)), modelParams)
	b.SetBytes(int64(m.BodyLen()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.SigningDigest(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	m := modelMessage(rand.New(rand.NewPCG(7, 8)), modelParams)
	buf := make([]byte, 0, m.EncodedLen())
	b.SetBytes(int64(m.EncodedLen()))
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = m.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecode(b *testing.B) {
	m := modelMessage(rand.New(rand.NewPCG(7, 8)), modelParams)
	enc, err := m.AppendBinary(nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("reuse", func(b *testing.B) {
		var dst Message
		b.SetBytes(int64(len(enc)))
		b.ReportAllocs()
		for b.Loop() {
			if err := Decode(enc, &dst); err != nil {
				b.Fatal(err)
			}
		}
	})
	// Into a new Message each time: "shared" is what a subscription does
	// with a received payload.
	for _, bc := range []struct {
		name   string
		decode func([]byte, *Message) error
	}{{"fresh", Decode}, {"shared", DecodeShared}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(enc)))
			b.ReportAllocs()
			for b.Loop() {
				var dst Message
				if err := bc.decode(enc, &dst); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFirstNonFinite(b *testing.B) {
	v := randData(rand.New(rand.NewPCG(9, 10)), modelParams)
	b.SetBytes(int64(4 * len(v)))
	b.ReportAllocs()
	for b.Loop() {
		if firstNonFinite(v) >= 0 {
			b.Fatal("unexpected non-finite value")
		}
	}
}
