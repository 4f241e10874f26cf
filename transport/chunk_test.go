package transport

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// frames cuts msg into chunk frames of at most maxPayload bytes, as Publish does.
func frames(pub, seq uint64, msg []byte, maxPayload int) [][]byte {
	body := maxPayload - chunkHdrLen
	count := (len(msg) + body - 1) / body
	var out [][]byte
	for i := range count {
		piece := msg[i*body : min((i+1)*body, len(msg))]
		f := make([]byte, chunkHdrLen, chunkHdrLen+len(piece))
		putChunkHeader(f, chunkHeader{pub: pub, seq: seq, index: uint32(i), count: uint32(count), total: uint32(len(msg))})
		out = append(out, append(f, piece...))
	}
	return out
}

func feed(t *testing.T, a *assembler, f []byte, now time.Time) ([]byte, []error) {
	t.Helper()
	h, body, err := parseChunk(f)
	if err != nil {
		t.Fatalf("parseChunk: %v", err)
	}
	return a.add(h, body, now)
}

func payload(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestAssemblerInterleavedAnyOrder(t *testing.T) {
	now := time.Unix(0, 0)
	msgA, msgB := payload(1000, 1), payload(777, 2)
	fa, fb := frames(1, 5, msgA, 129), frames(2, 9, msgB, 129)
	// Interleave A forwards and B backwards.
	var order [][]byte
	for i := range max(len(fa), len(fb)) {
		if i < len(fa) {
			order = append(order, fa[i])
		}
		if i < len(fb) {
			order = append(order, fb[len(fb)-1-i])
		}
	}
	a := newAssembler()
	var got [][]byte
	for _, f := range order {
		msg, errs := feed(t, a, f, now)
		if len(errs) != 0 {
			t.Fatalf("errors: %v", errs)
		}
		if msg != nil {
			got = append(got, append([]byte(nil), msg...))
			a.release(msg)
		}
	}
	if len(got) != 2 {
		t.Fatalf("complete messages: got %d, want 2", len(got))
	}
	if !bytes.Equal(got[0], msgB) && !bytes.Equal(got[1], msgB) || !bytes.Equal(got[0], msgA) && !bytes.Equal(got[1], msgA) {
		t.Fatalf("reassembled messages differ from the originals")
	}
	if len(a.byPub) != 0 || a.pending != 0 {
		t.Fatalf("after completion: %d assemblies, %d pending bytes, want 0, 0", len(a.byPub), a.pending)
	}
}

func TestAssemblerDrops(t *testing.T) {
	t0 := time.Unix(0, 0)
	msg := payload(1000, 3)
	f := frames(1, 1, msg, 229) // 5 chunks of 200 bytes
	tests := []struct {
		name  string
		setup func(a *assembler)
		steps func(t *testing.T, a *assembler) []error
		want  []error // errors reported, in order
		left  int     // assemblies left
	}{
		{"superseded", nil, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[0], t0)
			g := frames(1, 2, msg, 229)
			var errs []error
			for _, x := range g {
				m, e := feed(t, a, x, t0)
				errs = append(errs, e...)
				if m != nil && !bytes.Equal(m, msg) {
					t.Fatalf("message after a dropped one differs")
				}
			}
			return errs
		}, []error{ErrIncomplete}, 0},
		{"timed out", nil, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[0], t0)
			_, errs := feed(t, a, frames(2, 1, msg, 229)[0], t0.Add(assemblyTimeout+time.Second))
			return errs
		}, []error{ErrIncomplete}, 1},
		{"repeated chunk", nil, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[1], t0)
			_, errs := feed(t, a, f[1], t0)
			return errs
		}, []error{ErrIncomplete}, 0},
		{"inconsistent count", nil, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[0], t0)
			_, errs := feed(t, a, frames(1, 1, msg[:900], 229)[1], t0)
			return errs
		}, []error{ErrIncomplete}, 0},
		{"uneven chunk sizes", nil, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[0], t0)
			_, errs := feed(t, a, frames(1, 1, msg, 129)[1], t0) // 100-byte chunk in a 5-chunk message
			return errs
		}, []error{ErrIncomplete}, 0},
		{"too many assemblies", func(a *assembler) { a.maxAssemblies = 2 }, func(t *testing.T, a *assembler) []error {
			var errs []error
			for pub := uint64(1); pub <= 3; pub++ {
				_, e := feed(t, a, frames(pub, 1, msg, 229)[0], t0.Add(time.Duration(pub)))
				errs = append(errs, e...)
			}
			if _, ok := a.byPub[1]; ok {
				t.Fatalf("oldest assembly was not the one evicted")
			}
			return errs
		}, []error{ErrIncomplete}, 2},
		{"too many bytes", func(a *assembler) { a.maxPending = 1500 }, func(t *testing.T, a *assembler) []error {
			feed(t, a, f[0], t0)
			_, errs := feed(t, a, frames(2, 1, msg, 229)[0], t0)
			return errs
		}, []error{ErrIncomplete}, 1},
		{"larger than the pending limit", func(a *assembler) { a.maxPending = 999 }, func(t *testing.T, a *assembler) []error {
			_, errs := feed(t, a, f[0], t0)
			return errs
		}, []error{ErrTooLarge}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newAssembler()
			if tc.setup != nil {
				tc.setup(a)
			}
			errs := tc.steps(t, a)
			if len(errs) != len(tc.want) {
				t.Fatalf("got errors %v, want %v", errs, tc.want)
			}
			for i := range errs {
				if !errors.Is(errs[i], tc.want[i]) {
					t.Fatalf("error %d: got %v, want %v", i, errs[i], tc.want[i])
				}
			}
			if len(a.byPub) != tc.left {
				t.Fatalf("assemblies left: got %d, want %d", len(a.byPub), tc.left)
			}
			sum := 0
			for _, as := range a.byPub {
				sum += len(as.buf)
			}
			if a.pending != sum {
				t.Fatalf("pending bytes: got %d, want %d", a.pending, sum)
			}
		})
	}
}

// FuzzAssemble feeds arbitrary frames (the input split at 0xff bytes) to a
// subscription's parse-and-reassemble path: it must never panic, and its
// byte accounting must stay exact.
func FuzzAssemble(f *testing.F) {
	msg := payload(300, 5)
	var seed []byte
	for _, fr := range frames(1, 1, msg, 100) {
		seed = append(append(seed, fr...), 0xff)
	}
	f.Add(seed)
	f.Add([]byte{frameChunk, 0xff, frameChunk})
	f.Fuzz(func(t *testing.T, in []byte) {
		a := newAssembler()
		a.maxPending = 1 << 16
		a.maxAssemblies = 3
		now := time.Unix(0, 0)
		for _, fr := range bytes.Split(in, []byte{0xff}) {
			now = now.Add(time.Second)
			h, body, err := parseChunk(fr)
			if err != nil {
				continue
			}
			if m, _ := a.add(h, body, now); m != nil {
				if len(m) != int(h.total) {
					t.Fatalf("complete message of %d bytes, header says %d", len(m), h.total)
				}
				a.release(m)
			}
			sum := 0
			for _, as := range a.byPub {
				sum += len(as.buf)
			}
			if a.pending != sum || sum > a.maxPending || len(a.byPub) > a.maxAssemblies {
				t.Fatalf("pending %d, held %d in %d assemblies; limits %d bytes, %d assemblies",
					a.pending, sum, len(a.byPub), a.maxPending, a.maxAssemblies)
			}
		}
	})
}
