package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SecretSize is the size of a run's secret in bytes.
const SecretSize = 32

// SignatureSize is the size of a signature in bytes (ed25519).
const SignatureSize = ed25519.SignatureSize

// DigestSize is the size of a message digest (SHA-256) in bytes.
const DigestSize = sha256.Size

// ErrKeyFile reports a key file that cannot be read or used.
var ErrKeyFile = errors.New("auth: bad key file")

// Domain strings: they separate key derivation from signing and version
// both.
const (
	serverKeyInfo = "fotsim/auth/v1 server key"
	clientKeyInfo = "fotsim/auth/v1 client key"
	statementTag  = "fotsim/auth/v1 message\x00"
)

// Keys derives the key pairs of one run from its secret. The zero Keys is
// a valid but publicly known secret: use NewKeys or LoadKeyFile.
type Keys struct {
	Secret [SecretSize]byte
}

// NewKeys returns keys with a fresh secret from crypto/rand.
func NewKeys() (*Keys, error) {
	k := new(Keys)
	if _, err := rand.Read(k.Secret[:]); err != nil {
		return nil, fmt.Errorf("auth: random secret: %w", err)
	}
	return k, nil
}

// seed returns HMAC-SHA256(secret, info || id), an ed25519 seed.
func (k *Keys) seed(info string, id uint32) []byte {
	h := hmac.New(sha256.New, k.Secret[:])
	h.Write([]byte(info))
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], id)
	h.Write(b[:])
	return h.Sum(nil)
}

// ServerKey returns the server's private key.
func (k *Keys) ServerKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(k.seed(serverKeyInfo, 0))
}

// ServerPublic returns the server's public key.
func (k *Keys) ServerPublic() ed25519.PublicKey {
	return k.ServerKey().Public().(ed25519.PublicKey)
}

// ClientKey returns the private key of client id (>= 0). Deriving a key
// costs about as much as one signature (a scalar multiplication), so a
// caller that signs many messages of one client may keep it.
func (k *Keys) ClientKey(id int) ed25519.PrivateKey {
	if id < 0 || uint64(id) > 1<<32-1 {
		panic(fmt.Sprintf("auth: client id %d out of range", id))
	}
	return ed25519.NewKeyFromSeed(k.seed(clientKeyInfo, uint32(id)))
}

// ClientPublic returns the public key of client id (>= 0).
func (k *Keys) ClientPublic(id int) ed25519.PublicKey {
	return k.ClientKey(id).Public().(ed25519.PublicKey)
}

// Statement is what a signature covers: the run, the message's kind,
// round, task and client id (the sender for an update, 0 for the server's
// messages) and the SHA-256 digest of the encoded message without its
// signature.
type Statement struct {
	Run    string
	Kind   uint8
	Round  int32
	Task   int32
	Client int32
	Digest [DigestSize]byte
}

// AppendBinary appends the statement's canonical encoding to dst: the
// domain tag, then kind, round, task and client (little-endian), the run
// id's length (uint32) and bytes, and the digest.
func (s Statement) AppendBinary(dst []byte) []byte {
	dst = append(dst, statementTag...)
	dst = append(dst, s.Kind)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Round))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Task))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(s.Client))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(s.Run)))
	dst = append(dst, s.Run...)
	return append(dst, s.Digest[:]...)
}

// Sign returns key's signature of s.
func Sign(key ed25519.PrivateKey, s Statement) []byte {
	var buf [128]byte
	return ed25519.Sign(key, s.AppendBinary(buf[:0]))
}

// Verify reports whether sig is pub's signature of s.
func Verify(pub ed25519.PublicKey, s Statement, sig []byte) bool {
	if len(sig) != SignatureSize || len(pub) != ed25519.PublicKeySize {
		return false
	}
	var buf [128]byte
	return ed25519.Verify(pub, s.AppendBinary(buf[:0]), sig)
}

// keyFileHeader opens every key file.
const keyFileHeader = "# fotsim run secret (auth.Keys): whoever holds it can sign as the server and every client. Keep it private."

// SaveKeyFile writes k's secret to path as a comment line and a line of
// hex, readable by its owner only (mode 0600). It refuses to overwrite an
// existing file.
func SaveKeyFile(path string, k *Keys) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("auth: save key file: %w", err)
	}
	_, werr := fmt.Fprintf(f, "%s\n%s\n", keyFileHeader, hex.EncodeToString(k.Secret[:]))
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		_ = os.Remove(path)
		return fmt.Errorf("auth: save key file %s: %w", filepath.Clean(path), werr)
	}
	return nil
}

// LoadKeyFile reads a key file written by SaveKeyFile: lines starting with
// '#' and blank lines are skipped, and exactly one line must hold the
// secret as 64 hex digits. Errors wrap ErrKeyFile (or the os error).
func LoadKeyFile(path string) (*Keys, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: load key file: %w", err)
	}
	var k *Keys
	for i, line := range bytes.Split(b, []byte("\n")) {
		s := strings.TrimSpace(string(line))
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		if k != nil {
			return nil, fmt.Errorf("%w %s: line %d: a second secret", ErrKeyFile, path, i+1)
		}
		raw, err := hex.DecodeString(s)
		if err != nil || len(raw) != SecretSize {
			return nil, fmt.Errorf("%w %s: line %d: want %d hex digits", ErrKeyFile, path, i+1, 2*SecretSize)
		}
		k = new(Keys)
		copy(k.Secret[:], raw)
	}
	if k == nil {
		return nil, fmt.Errorf("%w %s: no secret", ErrKeyFile, path)
	}
	return k, nil
}
