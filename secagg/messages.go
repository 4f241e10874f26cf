package secagg

import (
	"encoding/binary"
	"fmt"
)

// Wire format. Every message starts with a one-byte type tag and the
// 8-byte session; integers are big-endian, ring elements little-endian
// (as the mask stream). Lists carry a 4-byte count. EncodedLen is the
// exact length of MarshalBinary's output, computed without encoding.

const (
	tagAdvertise byte = 1 + iota
	tagKeyList
	tagShareKeys
	tagShareDelivery
	tagMaskedInput
	tagUnmaskRequest
	tagUnmaskResponse
)

const (
	hdrLen      = 1 + 8         // tag, session
	keyEntryLen = 4 + 3*32      // id, channel key, mask key, seed commitment
	sealedEntry = 4 + SealedLen // peer id, sealed shares
	shareEntry  = 4 + ShareLen  // client id, share
)

// Advertise is round 0, client -> server: the client's two X25519 public
// keys and a commitment to its self-mask seed.
type Advertise struct {
	Session uint64
	From    ID
	// ChannelKey (c_PK) keys the encryption of shares between clients.
	ChannelKey [32]byte
	// MaskKey (s_PK) keys the pairwise masks; its private half is what
	// is secret-shared.
	MaskKey [32]byte
	// SeedCommit is SHA-256 of the self-mask seed b (with session and
	// id), which lets the server check a reconstructed b.
	SeedCommit [32]byte
}

// KeyList is the server's broadcast after round 0: every advertisement
// it accepted (the set U1), in increasing ID order.
type KeyList struct {
	Session uint64
	Keys    []Advertise // Session fields are not encoded per entry
}

// EncryptedShare is one client's shares (of its mask key and of its
// self-mask seed) sealed for one other client.
type EncryptedShare struct {
	// Peer is the recipient in ShareKeys and the sender in ShareDelivery.
	Peer   ID
	Sealed [SealedLen]byte
}

// ShareKeys is round 1, client -> server: the client's shares for every
// other client of the KeyList, each sealed for its recipient.
type ShareKeys struct {
	Session uint64
	From    ID
	Shares  []EncryptedShare
}

// ShareDelivery is the server's message to one client after round 1: the
// shares sealed for it by every client that completed round 1 (U2).
type ShareDelivery struct {
	Session uint64
	To      ID
	Shares  []EncryptedShare
}

// MaskedInput is round 2, client -> server: the masked fixed-point input,
// RingBits/8 bytes a value.
type MaskedInput struct {
	Session  uint64
	From     ID
	RingBits uint8
	Values   []uint64
}

// UnmaskRequest is the server's broadcast after round 2: which clients
// sent a masked input (Survivors, U3) and which completed round 1 but not
// round 2 (Dropped). A client reveals self-mask shares of survivors and
// mask-key shares of dropped clients, never both for one client.
type UnmaskRequest struct {
	Session   uint64
	Survivors []ID
	Dropped   []ID
}

// Share is a revealed Shamir share of client Of's secret.
type Share struct {
	Of    ID
	Value [ShareLen]byte
}

// UnmaskResponse is round 3, client -> server.
type UnmaskResponse struct {
	Session uint64
	From    ID
	// SeedShares are shares of the self-mask seeds of survivors.
	SeedShares []Share
	// KeyShares are shares of the mask keys of dropped clients.
	KeyShares []Share
}

// EncodedLen is the length of the binary encoding in bytes.
func (m *Advertise) EncodedLen() int     { return hdrLen + keyEntryLen }
func (m *KeyList) EncodedLen() int       { return hdrLen + 4 + keyEntryLen*len(m.Keys) }
func (m *ShareKeys) EncodedLen() int     { return hdrLen + 4 + 4 + sealedEntry*len(m.Shares) }
func (m *ShareDelivery) EncodedLen() int { return hdrLen + 4 + 4 + sealedEntry*len(m.Shares) }
func (m *MaskedInput) EncodedLen() int   { return hdrLen + 4 + 1 + 4 + int(m.RingBits/8)*len(m.Values) }
func (m *UnmaskRequest) EncodedLen() int {
	return hdrLen + 4 + 4*len(m.Survivors) + 4 + 4*len(m.Dropped)
}
func (m *UnmaskResponse) EncodedLen() int {
	return hdrLen + 4 + 4 + shareEntry*len(m.SeedShares) + 4 + shareEntry*len(m.KeyShares)
}

type enc []byte

func header(tag byte, session uint64, n int) enc {
	b := make(enc, 0, n)
	b = append(b, tag)
	return binary.BigEndian.AppendUint64(b, session)
}

func (b enc) u32(v uint32) enc { return binary.BigEndian.AppendUint32(b, v) }

func (b enc) entry(k *Advertise) enc {
	b = b.u32(uint32(k.From))
	b = append(b, k.ChannelKey[:]...)
	b = append(b, k.MaskKey[:]...)
	return append(b, k.SeedCommit[:]...)
}

func (b enc) sealed(s []EncryptedShare) enc {
	b = b.u32(uint32(len(s)))
	for i := range s {
		b = b.u32(uint32(s[i].Peer))
		b = append(b, s[i].Sealed[:]...)
	}
	return b
}

func (b enc) shares(s []Share) enc {
	b = b.u32(uint32(len(s)))
	for i := range s {
		b = b.u32(uint32(s[i].Of))
		b = append(b, s[i].Value[:]...)
	}
	return b
}

func (b enc) ids(s []ID) enc {
	b = b.u32(uint32(len(s)))
	for _, id := range s {
		b = b.u32(uint32(id))
	}
	return b
}

// MarshalBinary encodes the message.
func (m *Advertise) MarshalBinary() ([]byte, error) {
	return header(tagAdvertise, m.Session, m.EncodedLen()).entry(m), nil
}

func (m *KeyList) MarshalBinary() ([]byte, error) {
	b := header(tagKeyList, m.Session, m.EncodedLen()).u32(uint32(len(m.Keys)))
	for i := range m.Keys {
		b = b.entry(&m.Keys[i])
	}
	return b, nil
}

func (m *ShareKeys) MarshalBinary() ([]byte, error) {
	return header(tagShareKeys, m.Session, m.EncodedLen()).u32(uint32(m.From)).sealed(m.Shares), nil
}

func (m *ShareDelivery) MarshalBinary() ([]byte, error) {
	return header(tagShareDelivery, m.Session, m.EncodedLen()).u32(uint32(m.To)).sealed(m.Shares), nil
}

func (m *MaskedInput) MarshalBinary() ([]byte, error) {
	if m.RingBits != 32 && m.RingBits != 64 {
		return nil, fmt.Errorf("%w: MaskedInput RingBits %d", ErrEncoding, m.RingBits)
	}
	b := header(tagMaskedInput, m.Session, m.EncodedLen()).u32(uint32(m.From))
	b = append(b, m.RingBits)
	b = b.u32(uint32(len(m.Values)))
	if m.RingBits == 64 {
		for _, v := range m.Values {
			b = binary.LittleEndian.AppendUint64(b, v)
		}
	} else {
		for _, v := range m.Values {
			if v>>32 != 0 {
				return nil, fmt.Errorf("%w: MaskedInput value %#x outside the 32-bit ring", ErrEncoding, v)
			}
			b = binary.LittleEndian.AppendUint32(b, uint32(v))
		}
	}
	return b, nil
}

func (m *UnmaskRequest) MarshalBinary() ([]byte, error) {
	return header(tagUnmaskRequest, m.Session, m.EncodedLen()).ids(m.Survivors).ids(m.Dropped), nil
}

func (m *UnmaskResponse) MarshalBinary() ([]byte, error) {
	return header(tagUnmaskResponse, m.Session, m.EncodedLen()).u32(uint32(m.From)).shares(m.SeedShares).shares(m.KeyShares), nil
}

// dec reads a message, remembering the first error.
type dec struct {
	what string
	b    []byte
	off  int
	err  error
}

func (d *dec) fail(format string, a ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s: "+format, append([]any{ErrEncoding, d.what}, a...)...)
	}
}

func (d *dec) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b)-d.off {
		d.fail("truncated at byte %d: need %d more, have %d", d.off, n, len(d.b)-d.off)
		return nil
	}
	s := d.b[d.off : d.off+n]
	d.off += n
	return s
}

func (d *dec) u8() uint8 {
	if s := d.take(1); s != nil {
		return s[0]
	}
	return 0
}

func (d *dec) u32() uint32 {
	if s := d.take(4); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

// count reads a list length and checks that that many entries of size
// each fit in the rest of the input, before anything is allocated.
func (d *dec) count(each int) int {
	n := d.u32()
	if d.err != nil {
		return 0
	}
	if uint64(n)*uint64(each) > uint64(len(d.b)-d.off) {
		d.fail("count %d of %d-byte entries at byte %d exceeds the %d bytes left", n, each, d.off-4, len(d.b)-d.off)
		return 0
	}
	return int(n)
}

func (d *dec) header(tag byte) uint64 {
	t := d.u8()
	s := d.take(8)
	if d.err == nil && t != tag {
		d.fail("type tag %d, want %d", t, tag)
	}
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint64(s)
}

func (d *dec) entry(k *Advertise) {
	k.From = ID(d.u32())
	copy(k.ChannelKey[:], d.take(32))
	copy(k.MaskKey[:], d.take(32))
	copy(k.SeedCommit[:], d.take(32))
}

func (d *dec) sealed() []EncryptedShare {
	n := d.count(sealedEntry)
	if n == 0 {
		return nil
	}
	s := make([]EncryptedShare, n)
	for i := range s {
		s[i].Peer = ID(d.u32())
		copy(s[i].Sealed[:], d.take(SealedLen))
	}
	return s
}

func (d *dec) shares() []Share {
	n := d.count(shareEntry)
	if n == 0 {
		return nil
	}
	s := make([]Share, n)
	for i := range s {
		s[i].Of = ID(d.u32())
		copy(s[i].Value[:], d.take(ShareLen))
	}
	return s
}

func (d *dec) ids() []ID {
	n := d.count(4)
	if n == 0 {
		return nil
	}
	s := make([]ID, n)
	for i := range s {
		s[i] = ID(d.u32())
	}
	return s
}

// done fails on trailing bytes and returns the first error.
func (d *dec) done() error {
	if d.err == nil && d.off != len(d.b) {
		d.fail("%d trailing bytes after byte %d", len(d.b)-d.off, d.off)
	}
	return d.err
}

// UnmarshalBinary decodes the message; it fails, with an error wrapping
// ErrEncoding, on a wrong type tag, truncated input, a list count larger
// than the input, or trailing bytes.
func (m *Advertise) UnmarshalBinary(b []byte) error {
	d := &dec{what: "Advertise", b: b}
	var v Advertise
	v.Session = d.header(tagAdvertise)
	d.entry(&v)
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *KeyList) UnmarshalBinary(b []byte) error {
	d := &dec{what: "KeyList", b: b}
	var v KeyList
	v.Session = d.header(tagKeyList)
	if n := d.count(keyEntryLen); n > 0 {
		v.Keys = make([]Advertise, n)
		for i := range v.Keys {
			v.Keys[i].Session = v.Session
			d.entry(&v.Keys[i])
		}
	}
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *ShareKeys) UnmarshalBinary(b []byte) error {
	d := &dec{what: "ShareKeys", b: b}
	var v ShareKeys
	v.Session = d.header(tagShareKeys)
	v.From = ID(d.u32())
	v.Shares = d.sealed()
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *ShareDelivery) UnmarshalBinary(b []byte) error {
	d := &dec{what: "ShareDelivery", b: b}
	var v ShareDelivery
	v.Session = d.header(tagShareDelivery)
	v.To = ID(d.u32())
	v.Shares = d.sealed()
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *MaskedInput) UnmarshalBinary(b []byte) error {
	d := &dec{what: "MaskedInput", b: b}
	var v MaskedInput
	v.Session = d.header(tagMaskedInput)
	v.From = ID(d.u32())
	v.RingBits = d.u8()
	if d.err == nil && v.RingBits != 32 && v.RingBits != 64 {
		d.fail("ring bits %d, want 32 or 64", v.RingBits)
	}
	w := int(v.RingBits / 8)
	if n := d.count(max(w, 1)); n > 0 {
		raw := d.take(n * w)
		v.Values = make([]uint64, n)
		if w == 8 {
			for i := range v.Values {
				v.Values[i] = binary.LittleEndian.Uint64(raw[8*i:])
			}
		} else {
			for i := range v.Values {
				v.Values[i] = uint64(binary.LittleEndian.Uint32(raw[4*i:]))
			}
		}
	}
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *UnmaskRequest) UnmarshalBinary(b []byte) error {
	d := &dec{what: "UnmaskRequest", b: b}
	var v UnmaskRequest
	v.Session = d.header(tagUnmaskRequest)
	v.Survivors = d.ids()
	v.Dropped = d.ids()
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}

func (m *UnmaskResponse) UnmarshalBinary(b []byte) error {
	d := &dec{what: "UnmaskResponse", b: b}
	var v UnmaskResponse
	v.Session = d.header(tagUnmaskResponse)
	v.From = ID(d.u32())
	v.SeedShares = d.shares()
	v.KeyShares = d.shares()
	if err := d.done(); err != nil {
		return err
	}
	*m = v
	return nil
}
