package client

import (
	"crypto/ed25519"
	"fmt"
	"maps"
	"sync"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Reasons a host rejects a message of the round subject (Host.Rejected).
const (
	RejectDecode    = "decode"    // the transport refused it (wire version, truncated, NaN/Inf, ...)
	RejectKind      = "kind"      // neither a round nor a stop message
	RejectSignature = "signature" // unsigned, or not signed with the server's key (HostConfig.Auth)
	RejectRound     = "round"     // a negative round, or older than the last round accepted (a replay)
	RejectTask      = "task"      // task outside [0, HostConfig.Tasks)
	RejectClients   = "clients"   // more ids than clients per round, an id outside [0, clients), or an id twice
	RejectParams    = "params"    // no global model of the model's size
)

// checks is a host's state for checking round messages.
type checks struct {
	server ed25519.PublicKey // the server's key (HostConfig.Auth), nil without

	mu       sync.Mutex
	seen     bool  // a round was accepted
	last     int32 // the last round accepted
	rejected map[string]int
}

// admit reports whether a message of the round subject (or the error that
// the transport delivered instead) is to be handled; it counts and logs
// what it rejects. It checks, in order: the kind (round or stop), the
// signature with HostConfig.Auth (so a forged Stop cannot end the host),
// and for a round: its round index (never below the last accepted one: a
// resent round repeats it, an older one is a replay), task index, client
// list (length, range, duplicates) and the global model's size. It runs on
// the subscription's delivery goroutine, before the round is queued.
func (h *Host) admit(m *transport.Message, err error) bool {
	k := &h.checks
	if err != nil {
		h.reject(RejectDecode, "client: rejected round message: %v", err)
		return false
	}
	if m.Kind != transport.KindRound && m.Kind != transport.KindStop {
		h.reject(RejectKind, "client: rejected message of kind %s on the round subject", m.Kind)
		return false
	}
	if k.server != nil {
		if err := protocol.Verify(m, h.cfg.RunID, k.server); err != nil {
			h.reject(RejectSignature, "client: rejected %s message of round %d: %v", m.Kind, m.Round, err)
			return false
		}
	}
	if m.Kind == transport.KindStop {
		return true
	}
	if isSecureStep(m) {
		return h.admitSecure(m)
	}
	k.mu.Lock()
	stale := m.Round < 0 || (k.seen && m.Round < k.last)
	last := k.last
	k.mu.Unlock()
	if stale {
		h.reject(RejectRound, "client: rejected round %d: older than round %d, handled already", m.Round, last)
		return false
	}
	if m.Task < 0 || (h.cfg.Tasks > 0 && int(m.Task) >= h.cfg.Tasks) {
		h.reject(RejectTask, "client: rejected round %d: task %d not in [0, %d)", m.Round, m.Task, h.cfg.Tasks)
		return false
	}
	if msg := h.checkClients(m.Clients); msg != "" {
		h.reject(RejectClients, "client: rejected round %d: %s", m.Round, msg)
		return false
	}
	g, ad := m.Tensor(protocol.TensorParams), m.Tensor(protocol.TensorAdapters)
	switch {
	case g == nil && ad != nil && h.cfg.LoRA != "": // the adapters alone: expand checks them against the base
	case g == nil || len(g.Data) != h.model.NumParams():
		h.reject(RejectParams, "client: rejected round %d: no %q tensor of %d values", m.Round, protocol.TensorParams, h.model.NumParams())
		return false
	}
	k.mu.Lock()
	k.seen, k.last = true, max(k.last, m.Round)
	k.mu.Unlock()
	return true
}

// checkClients returns why a round's client list is not acceptable, ""
// when it is.
func (h *Host) checkClients(ids []int32) string {
	if n := h.cfg.ClientsPerRound; n > 0 && len(ids) > n {
		return fmt.Sprintf("%d client ids, at most %d per round", len(ids), n)
	}
	seen := make(map[int32]struct{}, len(ids))
	for _, id := range ids {
		if id < 0 || (h.cfg.Clients > 0 && int(id) >= h.cfg.Clients) {
			return fmt.Sprintf("client id %d not in [0, %d)", id, h.cfg.Clients)
		}
		if _, dup := seen[id]; dup {
			return fmt.Sprintf("client id %d listed twice", id)
		}
		seen[id] = struct{}{}
	}
	return ""
}

// reject counts a message rejected for reason and logs why.
func (h *Host) reject(reason, format string, args ...any) {
	k := &h.checks
	k.mu.Lock()
	if k.rejected == nil {
		k.rejected = map[string]int{}
	}
	k.rejected[reason]++
	k.mu.Unlock()
	h.logf(format, args...)
}

// Rejected returns how many messages of the round subject the host has
// rejected so far, by reason (Reject...); nil when none.
func (h *Host) Rejected() map[string]int {
	k := &h.checks
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.rejected)
}
