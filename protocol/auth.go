package protocol

import (
	"crypto/ed25519"
	"errors"
	"fmt"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/transport"
)

// ErrSignature reports a message whose signature does not verify.
var ErrSignature = errors.New("protocol: bad signature")

// Statement returns what a signature of m in run covers (package auth):
// the run, m's kind, round, task and client id, and the digest of its
// encoding without the signature.
func Statement(m *transport.Message, run string) (auth.Statement, error) {
	d, err := m.SigningDigest()
	if err != nil {
		return auth.Statement{}, err
	}
	return auth.Statement{Run: run, Kind: uint8(m.Kind), Round: m.Round, Task: m.Task, Client: m.Client, Digest: d}, nil
}

// Sign sets m.Sig to key's signature of m in run. A client host signs its
// clients' updates with their keys, the server its rounds and Stop with
// its own.
func Sign(m *transport.Message, run string, key ed25519.PrivateKey) error {
	st, err := Statement(m, run)
	if err != nil {
		return err
	}
	m.Sig = auth.Sign(key, st)
	return nil
}

// Verify checks that m.Sig is pub's signature of m in run; the error
// wraps ErrSignature when it is not.
func Verify(m *transport.Message, run string, pub ed25519.PublicKey) error {
	if len(m.Sig) == 0 {
		return fmt.Errorf("%w: not signed", ErrSignature)
	}
	st, err := Statement(m, run)
	if err != nil {
		return err
	}
	if !auth.Verify(pub, st, m.Sig) {
		return fmt.Errorf("%w: %s of round %d, client %d", ErrSignature, m.Kind, m.Round, m.Client)
	}
	return nil
}
