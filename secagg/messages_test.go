package secagg

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"encoding"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
)

type codec interface {
	wire
	encoding.BinaryUnmarshaler
}

// samples returns one message of every type, filled with random bytes.
func samples() []codec {
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(r.Uint32())
		}
	}
	adv := func(id ID) Advertise {
		a := Advertise{Session: 42, From: id}
		fill(a.ChannelKey[:])
		fill(a.MaskKey[:])
		fill(a.SeedCommit[:])
		return a
	}
	es := make([]EncryptedShare, 3)
	for i := range es {
		es[i].Peer = ID(i + 7)
		fill(es[i].Sealed[:])
	}
	sh := make([]Share, 2)
	for i := range sh {
		sh[i].Of = ID(i)
		fill(sh[i].Value[:])
	}
	a := adv(3)
	return []codec{
		&a,
		&KeyList{Session: 42, Keys: []Advertise{adv(1), adv(2)}},
		&ShareKeys{Session: 42, From: 1, Shares: es},
		&ShareDelivery{Session: 42, To: 2, Shares: es[:2]},
		&MaskedInput{Session: 42, From: 5, RingBits: 64, Values: []uint64{1, 1 << 63, 3}},
		&MaskedInput{Session: 42, From: 5, RingBits: 32, Values: []uint64{1, 1 << 31, 3, 4}},
		&UnmaskRequest{Session: 42, Survivors: []ID{1, 2, 3}, Dropped: []ID{4}},
		&UnmaskResponse{Session: 42, From: 1, SeedShares: sh, KeyShares: sh[:1]},
	}
}

func fresh(m codec) codec { return reflect.New(reflect.TypeOf(m).Elem()).Interface().(codec) }

// TestCodecRoundTrip: decode(encode(m)) == m and EncodedLen == len.
func TestCodecRoundTrip(t *testing.T) {
	for _, m := range samples() {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != m.EncodedLen() {
			t.Errorf("%T: EncodedLen %d, encoding %d", m, m.EncodedLen(), len(b))
		}
		got := fresh(m)
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("%T: %v", m, err)
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("%T: round trip\n got %+v\nwant %+v", m, got, m)
		}
	}
}

// TestCodecRejects: every truncation, any trailing byte, a wrong type
// tag, an oversized count and a bad ring width fail with ErrEncoding and
// leave the destination untouched.
func TestCodecRejects(t *testing.T) {
	for _, m := range samples() {
		b, _ := m.MarshalBinary()
		for n := range len(b) {
			if err := fresh(m).UnmarshalBinary(b[:n]); !errors.Is(err, ErrEncoding) {
				t.Fatalf("%T truncated to %d of %d bytes: err %v", m, n, len(b), err)
			}
		}
		if err := fresh(m).UnmarshalBinary(append(bytes.Clone(b), 0)); !errors.Is(err, ErrEncoding) {
			t.Fatalf("%T with a trailing byte: err %v", m, err)
		}
		bad := bytes.Clone(b)
		bad[0] ^= 0x40
		if err := fresh(m).UnmarshalBinary(bad); !errors.Is(err, ErrEncoding) {
			t.Fatalf("%T with a wrong tag: err %v", m, err)
		}
		// The first count field (after the header and, except for
		// KeyList and UnmaskRequest, a 4-byte id; after the ring byte
		// for MaskedInput) set to 2^32-1 must fail before allocating.
		off := hdrLen + 4
		switch m.(type) {
		case *KeyList, *UnmaskRequest:
			off = hdrLen
		case *MaskedInput:
			off = hdrLen + 5
		case *Advertise:
			continue
		}
		huge := bytes.Clone(b)
		binary.BigEndian.PutUint32(huge[off:], ^uint32(0))
		dst := fresh(m)
		if err := dst.UnmarshalBinary(huge); !errors.Is(err, ErrEncoding) {
			t.Fatalf("%T with a huge count: err %v", m, err)
		}
		if !reflect.DeepEqual(dst, fresh(m)) {
			t.Fatalf("%T: a failed decode changed the destination", m)
		}
	}
	mi := &MaskedInput{Session: 1, RingBits: 64, Values: []uint64{1}}
	b, _ := mi.MarshalBinary()
	b[hdrLen+4] = 16
	if err := new(MaskedInput).UnmarshalBinary(b); !errors.Is(err, ErrEncoding) {
		t.Fatalf("ring bits 16: err %v", err)
	}
	if _, err := (&MaskedInput{RingBits: 32, Values: []uint64{1 << 32}}).MarshalBinary(); !errors.Is(err, ErrEncoding) {
		t.Fatalf("encoding a 33-bit value in the 32-bit ring: err %v", err)
	}
}

// FuzzDecode: no input panics any decoder, and whatever decodes encodes
// back to the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	for _, m := range samples() {
		b, _ := m.MarshalBinary()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range samples() {
			d := fresh(m)
			if d.UnmarshalBinary(b) != nil {
				continue
			}
			out, err := d.MarshalBinary()
			if err != nil {
				t.Fatalf("%T: re-encoding a decoded message: %v", d, err)
			}
			if !bytes.Equal(out, b) || d.EncodedLen() != len(b) {
				t.Fatalf("%T: decode-encode changes the bytes", d)
			}
		}
	})
}

// TestMaskStreamSpec: the mask of a seed is the AES-256-CTR keystream
// with a zero counter, read as little-endian words, whatever the chunking
// and the worker count (the documented PRG, reproducible elsewhere).
func TestMaskStreamSpec(t *testing.T) {
	seed := [32]byte{1, 2, 3}
	for _, w := range []int{4, 8} {
		const n = 3*chunkValues + 5
		b, _ := aes.NewCipher(seed[:])
		ks := make([]byte, n*w)
		cipher.NewCTR(b, make([]byte, 16)).XORKeyStream(ks, ks)
		for _, workers := range []int{1, 2, 4} {
			got := make([]uint64, n)
			applyMasks(got, []mask{newMask(seed, false)}, w, workers)
			for i := range got {
				want := binary.LittleEndian.Uint64(append(ks[i*w:i*w+w:i*w+w], make([]byte, 8-w)...))
				if got[i] != want {
					t.Fatalf("word %d, width %d, workers %d: %#x, want %#x", i, w, workers, got[i], want)
				}
			}
			applyMasks(got, []mask{newMask(seed, true)}, w, workers)
			for i := range got {
				if got[i] != 0 {
					t.Fatalf("adding and subtracting a mask leaves %#x at %d", got[i], i)
				}
			}
		}
	}
}

// TestAddWordsPortable: the portable word reader (big-endian hosts)
// agrees with the in-place one.
func TestAddWordsPortable(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	for _, w := range []int{4, 8} {
		for _, sub := range []bool{false, true} {
			const n = 37
			words := make([]uint64, n)
			for i := range words {
				words[i] = r.Uint64()
			}
			ks := make([]byte, 8*n)
			for i, x := range words {
				binary.LittleEndian.PutUint64(ks[8*i:], x)
			}
			a, b := make([]uint64, n), make([]uint64, n)
			for i := range a {
				a[i] = r.Uint64()
				b[i] = a[i]
			}
			addWords(a, ks, w, sub)
			if littleEndian {
				addNative(b, words, w, sub)
			} else {
				t.Skip("big-endian host")
			}
			for i := range a {
				if a[i] != b[i] {
					t.Fatalf("width %d sub %v: word %d differs", w, sub, i)
				}
			}
		}
	}
}
