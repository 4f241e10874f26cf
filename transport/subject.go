package transport

import (
	"fmt"
	"hash/fnv"
)

// SubjectPrefix is the first token of every subject this package uses.
const SubjectPrefix = "fotsim"

// MetricsWildcard is the NATS subject that matches the Metrics subject of
// every run: "fotsim.*.metrics".
const MetricsWildcard = SubjectPrefix + ".*.metrics"

// AnnounceSubject is the fixed subject on which a server whose client hosts
// run in other processes announces each run ("fotsim.announce"): raw JSON
// documents (Conn.PublishRaw), not Messages. It has two tokens, so no run's
// subject matches it, nor does MetricsWildcard.
const AnnounceSubject = SubjectPrefix + ".announce"

// maxRunToken bounds the length of the run token in a subject.
const maxRunToken = 64

// Subjects are the NATS subjects of one run.
type Subjects struct {
	Round  string // server -> client hosts: KindRound and KindStop messages
	Update string // client hosts -> server: KindUpdate messages
	// Metrics carries the server's per-round metrics for live views: one
	// raw JSON document per round (Conn.PublishRaw), not a Message.
	Metrics string
	// Hosts carries, for client hosts in other processes, their join
	// requests and status reports to the server; Join the server's answers.
	// Both are raw JSON documents (Conn.PublishRaw), not Messages.
	Hosts, Join string
}

// SubjectsFor returns the subjects of run: "fotsim.<run>.round",
// "fotsim.<run>.update", "fotsim.<run>.metrics" (MetricsWildcard
// matches it for every run), "fotsim.<run>.hosts" and "fotsim.<run>.join".
//
// The run id becomes a single NATS token: bytes other than ASCII letters,
// digits, '-' and '_' (in particular '.', '*', '>' and white space, which
// NATS gives a meaning, and all non-ASCII bytes) are replaced by '_', and the
// result is cut to 64 bytes. When anything was replaced or cut, "-" and the
// FNV-1a 32-bit hash of the original id (8 hex digits) are appended, so that
// distinct run ids ("a.b", "a_b", "a b") still get distinct subjects. An id
// that is already a safe token of at most 64 bytes is used unchanged; the
// empty id becomes "default".
func SubjectsFor(run string) Subjects {
	tok := RunToken(run)
	return Subjects{
		Round:   SubjectPrefix + "." + tok + ".round",
		Update:  SubjectPrefix + "." + tok + ".update",
		Metrics: SubjectPrefix + "." + tok + ".metrics",
		Hosts:   SubjectPrefix + "." + tok + ".hosts",
		Join:    SubjectPrefix + "." + tok + ".join",
	}
}

// RunToken returns the NATS-safe token SubjectsFor uses for run.
func RunToken(run string) string {
	if run == "" {
		return "default"
	}
	safe := true
	for i := 0; i < len(run); i++ {
		if !tokenByte(run[i]) {
			safe = false
			break
		}
	}
	if safe && len(run) <= maxRunToken {
		return run
	}
	b := []byte(run)
	for i, c := range b {
		if !tokenByte(c) {
			b[i] = '_'
		}
	}
	if len(b) > maxRunToken {
		b = b[:maxRunToken]
	}
	h := fnv.New32a()
	h.Write([]byte(run))
	return fmt.Sprintf("%s-%08x", b, h.Sum32())
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}
