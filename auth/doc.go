// Package auth authenticates the messages of a run with ed25519 signatures
// (crypto/ed25519), so that a party that can publish on the run's NATS
// subjects but does not hold the run's secret can neither inject client
// updates nor forge the server's round and stop messages.
//
// Every key pair of a run is derived from one 32-byte secret (Keys), drawn
// from crypto/rand when the run starts: the server's key, and one key per
// client id (HMAC-SHA256 of the secret and the role gives the ed25519
// seed). Whoever holds the secret can derive, and so sign as, every key:
// the in-process hosts get it through their config, remote hosts from a key
// file (SaveKeyFile, LoadKeyFile) that must travel over a channel the
// operator trusts, never on the run's subjects.
//
// A signature covers a Statement: a domain string, the run id, the message
// kind, round, task and client id, and the SHA-256 digest of the encoded
// message without its signature (transport.Message.SigningDigest), so it
// binds every field and value of the message to its run and sender and
// cannot be replayed in another run, round or message.
//
//	keys, err := auth.NewKeys()
//	st := auth.Statement{Run: id, Kind: 2, Round: 7, Task: 1, Client: 3, Digest: d}
//	sig := auth.Sign(keys.ClientKey(3), st)
//	ok := auth.Verify(keys.ClientPublic(3), st, sig)
//
// The package imports only the standard library; server/ and client/ use
// it, never the other way round.
package auth
