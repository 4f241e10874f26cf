package secagg

import (
	"bytes"
	"encoding"
	"io"
	"math/rand/v2"
	"testing"
)

// seeded returns a deterministic randomness source.
func seeded(seed uint64, id ID) io.Reader {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
		s[8+i] = byte(uint64(id) >> (8 * i))
	}
	return rand.NewChaCha8(s)
}

type wire interface {
	encoding.BinaryMarshaler
	EncodedLen() int
}

// send passes m through its binary encoding, as a transport would, checks
// that EncodedLen is the encoding's length, and counts the bytes.
func send[T any, PT interface {
	*T
	wire
	encoding.BinaryUnmarshaler
}](t testing.TB, m PT, bytesSent *int, log *bytes.Buffer) PT {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatalf("%T.MarshalBinary: %v", m, err)
	}
	if len(b) != m.EncodedLen() {
		t.Fatalf("%T: EncodedLen %d, encoding %d bytes", m, m.EncodedLen(), len(b))
	}
	*bytesSent += len(b)
	if log != nil {
		log.Write(b)
	}
	var out PT = new(T)
	if err := out.UnmarshalBinary(b); err != nil {
		t.Fatalf("%T.UnmarshalBinary: %v", m, err)
	}
	return out
}

// plan is one run of the protocol with dropouts at each round.
type plan struct {
	p        Params
	n        int // clients 0..n-1
	length   int
	seed     uint64
	noShare  map[ID]bool // advertise, then drop before round 1
	noMask   map[ID]bool // share keys, then drop before round 2
	noUnmask map[ID]bool // send a masked input, then drop before round 3
	// inputs: float32 vectors, or ring vectors when ring is set
	inputs [][]float32
	ring   [][]uint64
}

// traffic counts the bytes of each round: up[r] client->server, down[r]
// server->clients (r = 0 keys, 1 shares, 2 masked inputs, 3 unmasking).
type traffic struct {
	up, down [4]int
	log      bytes.Buffer
}

// run drives clients and server through the four rounds, every message
// through its encoding.
func (pl *plan) run(t testing.TB) (*Result, *traffic, error) {
	t.Helper()
	tr := &traffic{}
	srv, err := NewServer(pl.length, pl.p)
	if err != nil {
		return nil, tr, err
	}
	cl := make([]*Client, pl.n)
	for i := range cl {
		if cl[i], err = NewClient(ID(i), pl.length, pl.p, seeded(pl.seed, ID(i))); err != nil {
			return nil, tr, err
		}
		a, err := cl[i].Advertise()
		if err != nil {
			return nil, tr, err
		}
		if err := srv.AddAdvertise(send(t, a, &tr.up[0], &tr.log)); err != nil {
			return nil, tr, err
		}
	}
	kl, err := srv.KeyList()
	if err != nil {
		return nil, tr, err
	}
	for i, c := range cl {
		if pl.noShare[ID(i)] {
			continue
		}
		sk, err := c.ShareKeys(send(t, kl, &tr.down[0], &tr.log))
		if err != nil {
			return nil, tr, err
		}
		if err := srv.AddShareKeys(send(t, sk, &tr.up[1], &tr.log)); err != nil {
			return nil, tr, err
		}
	}
	ds, err := srv.Deliveries()
	if err != nil {
		return nil, tr, err
	}
	for _, d := range ds {
		c := cl[d.To]
		d = send(t, d, &tr.down[1], &tr.log)
		if pl.noMask[c.ID()] {
			continue
		}
		var m *MaskedInput
		if pl.ring != nil {
			m, err = c.MaskInputRing(d, pl.ring[c.ID()])
		} else {
			m, err = c.MaskInput(d, pl.inputs[c.ID()])
		}
		if err != nil {
			return nil, tr, err
		}
		if err := srv.AddMaskedInput(send(t, m, &tr.up[2], &tr.log)); err != nil {
			return nil, tr, err
		}
	}
	req, err := srv.UnmaskRequest()
	if err != nil {
		return nil, tr, err
	}
	for _, id := range req.Survivors {
		r := send(t, req, &tr.down[2], &tr.log)
		if pl.noUnmask[id] {
			continue
		}
		resp, err := cl[id].Unmask(r)
		if err != nil {
			return nil, tr, err
		}
		if err := srv.AddUnmaskResponse(send(t, resp, &tr.up[3], &tr.log)); err != nil {
			return nil, tr, err
		}
	}
	res, err := srv.Finish()
	return res, tr, err
}

func randInputs(r *rand.Rand, n, length int, scale float64) [][]float32 {
	out := make([][]float32, n)
	for i := range out {
		out[i] = make([]float32, length)
		for j := range out[i] {
			out[i][j] = float32((2*r.Float64() - 1) * scale)
		}
	}
	return out
}

func randRing(r *rand.Rand, p Params, n, length int) [][]uint64 {
	out := make([][]uint64, n)
	for i := range out {
		out[i] = make([]uint64, length)
		for j := range out[i] {
			out[i][j] = r.Uint64() & p.ringMask()
		}
	}
	return out
}

func set(ids ...ID) map[ID]bool {
	m := map[ID]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}
