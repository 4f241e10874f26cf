package server

import (
	"crypto/ed25519"
	"fmt"
	"math"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// Reasons an update is rejected: the keys of the run record's
// rejected_by_reason (results.Record.RejectedByReason), whose counts add
// up to rejected_updates.
const (
	RejectDecode      = "decode"       // the transport refused it (wire version, truncated, NaN/Inf, ...)
	RejectKind        = "kind"         // not an update
	RejectClient      = "client"       // client id outside [0, clients)
	RejectSignature   = "signature"    // unsigned, or not signed with the key of the client it names (Config.Auth)
	RejectTask        = "task"         // task outside [0, tasks), or not the task of its round
	RejectSamples     = "samples"      // sample count N outside [1, the client's shard size] (Config.Samples, MaxSamples)
	RejectScalar      = "scalar"       // a scalar that is not finite or out of its range (steps, DP sampling rate, time)
	RejectNorm        = "norm"         // delta L2 norm above the bound (Config.MaxUpdateNorm)
	RejectShape       = "shape"        // no delta, or not the round's number of values
	RejectRule        = "rule"         // the method's Rule.Check refused it
	RejectRound       = "round"        // a round that has not started
	RejectNotSelected = "not_selected" // a client not selected in its round
	RejectDuplicate   = "duplicate"    // a second update of a client in a round
	RejectDP          = "dp"           // its DP steps could not be accounted
)

// DefaultMaxUpdateNorm is the bound on an update's delta L2 norm when
// Config.MaxUpdateNorm is 0. The largest honest update of the built-in
// scenarios measured 3.2 (a centralised reference: one learner's epoch over
// all of Permuted MNIST); federated clients' stay under 2. The bound is
// about 300 times that: it stops deltas that would blow the model up (a
// forged 1e30), not careful poisoning, which the signatures keep out.
const DefaultMaxUpdateNorm = 1000

// MaxSamples bounds an update's sample count N when the server does not
// know the clients' shard sizes (Config.Samples is nil).
const MaxSamples = 1 << 31

// maxSteps bounds the SGD steps an update reports (protocol.ScalarSteps).
const maxSteps = 1 << 31

// checkSender runs the checks of an update that need no round state: its
// kind, its client id, its signature (with Config.Auth), then its task
// index, sample count, scalars and delta norm. It returns the reason of
// the first that fails. It runs on the transport's delivery goroutine,
// without the collection lock: the signature's digest reads the whole
// message.
func (s *Server) checkSender(m *transport.Message) (reason string, err error) {
	if reason, err := s.checkHeader(m); err != nil {
		return reason, err
	}
	maxN := int64(MaxSamples)
	if s.cfg.Samples != nil {
		maxN = s.cfg.Samples(int(m.Task), int(m.Client))
	}
	if m.N < 1 || m.N > maxN {
		return RejectSamples, fmt.Errorf("sample count %d not in [1, %d]", m.N, maxN)
	}
	if err := checkScalars(m); err != nil {
		return RejectScalar, err
	}
	d := m.Tensor(protocol.TensorDelta)
	if d == nil {
		if _, ok := s.rule.(Decoder); ok {
			return "", nil // an encoded delta: decodeUpdate checks it
		}
		return RejectShape, fmt.Errorf("no %q tensor", protocol.TensorDelta)
	}
	return s.checkNorm(d)
}

// checkNorm verifies that delta d is within train.max_update_norm.
func (s *Server) checkNorm(d *transport.Tensor) (reason string, err error) {
	bound := s.cfg.MaxUpdateNorm
	if bound == 0 {
		bound = DefaultMaxUpdateNorm
	}
	if n := math.Sqrt(aggregator.SumSquares32(d.Data)); !(n <= bound) {
		return RejectNorm, fmt.Errorf("%q has L2 norm %.4g, above the bound %g (train.max_update_norm)", protocol.TensorDelta, n, bound)
	}
	return "", nil
}

// checkHeader verifies what every message on the update subject must
// have right, plain or secure: the kind, the client id, the signature
// (with Config.Auth) and the task index.
func (s *Server) checkHeader(m *transport.Message) (reason string, err error) {
	if m.Kind != transport.KindUpdate {
		return RejectKind, fmt.Errorf("a message of kind %s on the update subject", m.Kind)
	}
	if m.Client < 0 || int(m.Client) >= s.cfg.Clients {
		return RejectClient, fmt.Errorf("client id %d not in [0, %d)", m.Client, s.cfg.Clients)
	}
	if s.cfg.Auth != nil {
		if err := protocol.Verify(m, s.cfg.RunID, s.cfg.Auth.ClientPublic(int(m.Client))); err != nil {
			return RejectSignature, err
		}
	}
	if m.Task < 0 || int(m.Task) >= s.cfg.Tasks {
		return RejectTask, fmt.Errorf("task %d not in [0, %d)", m.Task, s.cfg.Tasks)
	}
	return "", nil
}

// checkScalars verifies that every scalar of an update is finite (the
// codec guarantees it for decoded messages, not every Transport does) and
// that the ones the server uses are in range: steps in [0, maxSteps], the
// DP sampling rate in (0, 1], the training time >= 0.
func checkScalars(m *transport.Message) error {
	for _, sc := range m.Scalars {
		v := sc.Value
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("scalar %q = %v", sc.Name, v)
		}
		switch sc.Name {
		case protocol.ScalarSteps:
			if v < 0 || v > maxSteps {
				return fmt.Errorf("scalar %q = %v, want in [0, %d]", sc.Name, v, maxSteps)
			}
		case protocol.ScalarDPQ:
			if !(v > 0 && v <= 1) {
				return fmt.Errorf("scalar %q = %v, want in (0, 1]", sc.Name, v)
			}
		case protocol.ScalarTrainSeconds:
			if v < 0 {
				return fmt.Errorf("scalar %q = %v, want >= 0", sc.Name, v)
			}
		}
	}
	return nil
}

// signing is the server's Transport in an authenticated run: it signs
// every message the server publishes (rounds, rounds sent again, Stop)
// with the server's key, so that client hosts can tell them from forgeries.
type signing struct {
	Transport
	key ed25519.PrivateKey
	run string
}

// Publish signs m (replacing m.Sig) and publishes it.
func (t *signing) Publish(subject string, m *transport.Message) (int, error) {
	if err := protocol.Sign(m, t.run, t.key); err != nil {
		return 0, fmt.Errorf("server: sign %s: %w", m.Kind, err)
	}
	return t.Transport.Publish(subject, m)
}

// Done and Err pass on the state of the wrapped transport's connection
// when it reports one (transport.Conn; see collect): a nil channel, which
// never fires, otherwise.
func (t *signing) Done() <-chan struct{} {
	if f, ok := t.Transport.(interface{ Done() <-chan struct{} }); ok {
		return f.Done()
	}
	return nil
}

func (t *signing) Err() error {
	if f, ok := t.Transport.(interface{ Err() error }); ok {
		return f.Err()
	}
	return nil
}
