package secagg

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
)

// Key derivation labels (HKDF-SHA256 info strings, followed by the
// session and the client IDs as big-endian integers).
const (
	labelShare  = "fotsim/secagg/v1 share key" // + session, from, to: the AES-256-GCM key of u's shares for v
	labelMask   = "fotsim/secagg/v1 pair mask" // + session, min(u,v), max(u,v): the seed of the pairwise mask
	labelSelf   = "fotsim/secagg/v1 self mask" // + session, u: the seed of u's self mask, from b_u
	labelCommit = "fotsim/secagg/v1 seed commit"
)

// SealedLen is the size of one encrypted share pair: AES-GCM of
// from(4) || to(4) || share of s_SK (33) || share of b (33), plus the
// 16-byte tag.
const SealedLen = sealedPlainLen + 16

const sealedPlainLen = 4 + 4 + 2*ShareLen

func derive(secret []byte, label string, session uint64, a, b ID) [32]byte {
	var info [16]byte
	binary.BigEndian.PutUint64(info[:8], session)
	binary.BigEndian.PutUint32(info[8:12], uint32(a))
	binary.BigEndian.PutUint32(info[12:], uint32(b))
	k, err := hkdf.Key(sha256.New, secret, nil, label+string(info[:]), 32)
	if err != nil {
		panic(err) // 32 bytes of SHA-256 HKDF never fail
	}
	return [32]byte(k)
}

// newKey reads 32 bytes from r as an X25519 private key (every 32-byte
// string is one; crypto/ecdh clamps it). Reading the bytes ourselves keeps
// key generation deterministic for a deterministic r.
func newKey(r io.Reader) (*ecdh.PrivateKey, error) {
	var b [32]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return nil, fmt.Errorf("secagg: reading randomness: %w", err)
	}
	return ecdh.X25519().NewPrivateKey(b[:])
}

// agree is X25519 between a private key and a peer's public key bytes; it
// fails on low-order (forged) public keys.
func agree(priv *ecdh.PrivateKey, pub [32]byte) ([]byte, error) {
	pk, err := ecdh.X25519().NewPublicKey(pub[:])
	if err != nil {
		return nil, fmt.Errorf("%w: bad public key: %v", ErrAuth, err)
	}
	s, err := priv.ECDH(pk)
	if err != nil {
		return nil, fmt.Errorf("%w: key agreement: %v", ErrAuth, err)
	}
	return s, nil
}

// pairSeed is the mask seed of the pair (a, b) from their mask-key
// agreement; it is symmetric in a and b.
func pairSeed(secret []byte, session uint64, a, b ID) [32]byte {
	return derive(secret, labelMask, session, min(a, b), max(a, b))
}

func selfSeed(b [32]byte, session uint64, id ID) [32]byte {
	return derive(b[:], labelSelf, session, id, 0)
}

// commitSeed binds a client to its self-mask seed b, so that the server
// can check a reconstructed b.
func commitSeed(b [32]byte, session uint64, id ID) [32]byte {
	h := sha256.New()
	h.Write([]byte(labelCommit))
	var hdr [12]byte
	binary.BigEndian.PutUint64(hdr[:8], session)
	binary.BigEndian.PutUint32(hdr[8:], uint32(id))
	h.Write(hdr[:])
	h.Write(b[:])
	return [32]byte(h.Sum(nil))
}

// shareAEAD is the AES-256-GCM of the shares from -> to. Each key seals
// exactly one message (it is derived per session and direction), so a
// zero nonce is safe; the associated data repeats session, from and to.
func shareAEAD(secret []byte, session uint64, from, to ID) (cipher.AEAD, []byte) {
	k := derive(secret, labelShare, session, from, to)
	b, err := aes.NewCipher(k[:])
	if err != nil {
		panic(err)
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err)
	}
	ad := make([]byte, 16)
	binary.BigEndian.PutUint64(ad[:8], session)
	binary.BigEndian.PutUint32(ad[8:12], uint32(from))
	binary.BigEndian.PutUint32(ad[12:], uint32(to))
	return g, ad
}

func seal(secret []byte, session uint64, from, to ID, s, b shareValue) [SealedLen]byte {
	g, ad := shareAEAD(secret, session, from, to)
	var pt [sealedPlainLen]byte
	binary.BigEndian.PutUint32(pt[0:], uint32(from))
	binary.BigEndian.PutUint32(pt[4:], uint32(to))
	copy(pt[8:], s[:])
	copy(pt[8+ShareLen:], b[:])
	var out [SealedLen]byte
	g.Seal(out[:0], make([]byte, g.NonceSize()), pt[:], ad)
	return out
}

func open(secret []byte, session uint64, from, to ID, ct [SealedLen]byte) (s, b shareValue, err error) {
	g, ad := shareAEAD(secret, session, from, to)
	pt, err := g.Open(nil, make([]byte, g.NonceSize()), ct[:], ad)
	if err != nil {
		return s, b, fmt.Errorf("%w: shares from %d to %d: %v", ErrAuth, from, to, err)
	}
	if ID(binary.BigEndian.Uint32(pt[0:])) != from || ID(binary.BigEndian.Uint32(pt[4:])) != to {
		return s, b, fmt.Errorf("%w: shares from %d to %d name other clients", ErrAuth, from, to)
	}
	copy(s[:], pt[8:])
	copy(b[:], pt[8+ShareLen:])
	if !s.valid() || !b.valid() {
		return s, b, fmt.Errorf("%w: shares from %d to %d are not field elements", ErrAuth, from, to)
	}
	return s, b, nil
}
