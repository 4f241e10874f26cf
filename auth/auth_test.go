package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKeys(t testing.TB) *Keys {
	t.Helper()
	k, err := NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeysAreRandom(t *testing.T) {
	a, b := testKeys(t), testKeys(t)
	if a.Secret == b.Secret || a.Secret == ([SecretSize]byte{}) {
		t.Fatalf("two fresh secrets: %x and %x", a.Secret, b.Secret)
	}
}

// TestDerivation checks that keys are a function of the secret and the
// role: the same secret gives the same keys, every role its own.
func TestDerivation(t *testing.T) {
	k := testKeys(t)
	again := &Keys{Secret: k.Secret}
	if !k.ServerKey().Equal(again.ServerKey()) || !k.ClientKey(7).Equal(again.ClientKey(7)) {
		t.Fatal("the same secret gives other keys")
	}
	seen := map[string]string{string(k.ServerPublic()): "server"}
	for _, id := range []int{0, 1, 2, 255, 256, 1 << 20, 1<<32 - 1} {
		p := string(k.ClientPublic(id))
		if who, dup := seen[p]; dup {
			t.Fatalf("client %d has the key of %s", id, who)
		}
		seen[p] = "client"
	}
	other := testKeys(t)
	if other.ClientPublic(0).Equal(k.ClientPublic(0)) || other.ServerPublic().Equal(k.ServerPublic()) {
		t.Fatal("another secret gives the same keys")
	}
	if got := k.ClientKey(3).Public().(ed25519.PublicKey); !got.Equal(k.ClientPublic(3)) {
		t.Fatal("ClientPublic is not ClientKey's public key")
	}
}

func TestClientKeyPanicsOnNegativeID(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("ClientKey(-1) did not panic")
		}
	}()
	testKeys(t).ClientKey(-1)
}

func sampleStatement() Statement {
	return Statement{Run: "quickstart-fedavg-s0-123-456", Kind: 2, Round: 7, Task: 1, Client: 3, Digest: sha256.Sum256([]byte("payload"))}
}

// TestSignVerify checks that a signature verifies with its key only, and
// only for the statement it signed: every field is covered.
func TestSignVerify(t *testing.T) {
	k := testKeys(t)
	st := sampleStatement()
	sig := Sign(k.ClientKey(3), st)
	if len(sig) != SignatureSize {
		t.Fatalf("signature of %d bytes, want %d", len(sig), SignatureSize)
	}
	if !Verify(k.ClientPublic(3), st, sig) {
		t.Fatal("a signature does not verify")
	}
	for name, pub := range map[string]ed25519.PublicKey{
		"another client": k.ClientPublic(4),
		"the server":     k.ServerPublic(),
		"another run":    testKeys(t).ClientPublic(3),
		"short key":      k.ClientPublic(3)[:10],
	} {
		if Verify(pub, st, sig) {
			t.Errorf("verifies with the key of %s", name)
		}
	}
	for name, edit := range map[string]func(*Statement){
		"run":         func(s *Statement) { s.Run += "x" },
		"empty run":   func(s *Statement) { s.Run = "" },
		"kind":        func(s *Statement) { s.Kind = 1 },
		"round":       func(s *Statement) { s.Round++ },
		"task":        func(s *Statement) { s.Task-- },
		"client":      func(s *Statement) { s.Client = 4 },
		"digest":      func(s *Statement) { s.Digest[31] ^= 1 },
		"round, task": func(s *Statement) { s.Round, s.Task = s.Task, s.Round },
	} {
		s := st
		edit(&s)
		if Verify(k.ClientPublic(3), s, sig) {
			t.Errorf("a changed %s still verifies", name)
		}
	}
	bad := bytes.Clone(sig)
	bad[10] ^= 0x40
	for name, s := range map[string][]byte{"flipped bit": bad, "nil": nil, "short": sig[:63], "long": append(bytes.Clone(sig), 0)} {
		if Verify(k.ClientPublic(3), st, s) {
			t.Errorf("%s signature verifies", name)
		}
	}
}

// TestStatementEncodingIsUnambiguous checks that statements that differ
// encode differently, even when the run id's bytes could run into the
// fields that follow it.
func TestStatementEncodingIsUnambiguous(t *testing.T) {
	a := Statement{Run: "ab", Round: 1}
	b := Statement{Run: "a", Round: 1}
	if bytes.Equal(a.AppendBinary(nil), b.AppendBinary(nil)) {
		t.Fatal("run ids of different length encode alike")
	}
	seen := map[string]Statement{}
	for run := range 4 {
		for v := range 3 * 3 * 3 * 3 * 2 {
			s := Statement{Run: strings.Repeat("\x00", run), Kind: uint8(v % 3), Round: int32(v / 3 % 3),
				Task: int32(v / 9 % 3), Client: int32(v / 27 % 3)}
			s.Digest[0] = byte(v / 81)
			key := string(s.AppendBinary(nil))
			if prev, dup := seen[key]; dup {
				t.Fatalf("%+v and %+v encode alike", prev, s)
			}
			seen[key] = s
		}
	}
}

func TestKeyFile(t *testing.T) {
	k := testKeys(t)
	path := filepath.Join(t.TempDir(), "run.key")
	if err := SaveKeyFile(path, k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %v, want 0600", perm)
	}
	got, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Secret != k.Secret {
		t.Fatal("loaded secret differs from the saved one")
	}
	if err := SaveKeyFile(path, testKeys(t)); err == nil {
		t.Fatal("SaveKeyFile overwrote an existing key file")
	}
	if again, _ := LoadKeyFile(path); again.Secret != k.Secret {
		t.Fatal("a refused save changed the key file")
	}
}

func TestLoadKeyFileRejects(t *testing.T) {
	hexSecret := strings.Repeat("ab", SecretSize)
	for name, content := range map[string]string{
		"empty":          "",
		"comments only":  "# nothing\n\n",
		"short":          "abcd\n",
		"long":           hexSecret + "00\n",
		"not hex":        strings.Repeat("zz", SecretSize) + "\n",
		"two secrets":    hexSecret + "\n" + hexSecret + "\n",
		"text after key": hexSecret + " trailing\n",
	} {
		path := filepath.Join(t.TempDir(), "k")
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKeyFile(path); !errors.Is(err, ErrKeyFile) {
			t.Errorf("%s: got %v, want ErrKeyFile", name, err)
		}
	}
	if _, err := LoadKeyFile(filepath.Join(t.TempDir(), "missing")); err == nil || errors.Is(err, ErrKeyFile) {
		t.Errorf("missing file: got %v, want the os error", err)
	}
	path := filepath.Join(t.TempDir(), "ok")
	if err := os.WriteFile(path, []byte("# a comment\n\n  "+hexSecret+"  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKeyFile(path); err != nil {
		t.Errorf("comment, blank line and spaces: %v", err)
	}
}

// BenchmarkSignUpdate is the cost of signing one update of the paper's
// MLP (478,410 float32 values, 1.9 MB): SHA-256 of the payload, then
// ed25519 over the statement; and of verifying it. The key derivation of
// the client, done for every update, is part of both.
func BenchmarkSignUpdate(b *testing.B) {
	payload := make([]byte, 4*478410)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range payload {
		payload[i] = byte(r.Uint32())
	}
	k := testKeys(b)
	st := sampleStatement()
	b.Run("sha256", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			st.Digest = sha256.Sum256(payload)
		}
	})
	b.Run("derive-key", func(b *testing.B) {
		for b.Loop() {
			k.ClientKey(3)
		}
	})
	b.Run("sign", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			st.Digest = sha256.Sum256(payload)
			Sign(k.ClientKey(3), st)
		}
	})
	sig := Sign(k.ClientKey(3), st)
	b.Run("verify", func(b *testing.B) {
		b.SetBytes(int64(len(payload)))
		for b.Loop() {
			st.Digest = sha256.Sum256(payload)
			if !Verify(k.ClientPublic(3), st, sig) {
				b.Fatal("does not verify")
			}
		}
	})
}
