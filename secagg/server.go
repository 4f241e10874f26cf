package secagg

import (
	"crypto/ecdh"
	"fmt"
	"slices"
)

type serverStage int

const (
	collectAdvertise serverStage = iota
	collectShares
	collectMasked
	collectUnmask
	finished
)

// Server runs the server side of one aggregation: it relays keys and
// sealed shares, adds up the masked inputs, and removes the masks with the
// revealed shares. Feed it the clients' messages with the Add methods and
// close each round with the method that produces its broadcast.
type Server struct {
	p     Params
	n     int
	stage serverStage

	adv    map[ID]Advertise
	u1     []ID
	shares map[ID]*ShareKeys
	u2     []ID
	sum    []uint64
	u3     map[ID]bool
	req    *UnmaskRequest
	resp   map[ID]*UnmaskResponse
}

// Result is the output of an aggregation.
type Result struct {
	// Survivors are the clients whose inputs are in the sum (U3), Dropped
	// those whose masks were removed after they left (U2 minus U3).
	Survivors, Dropped []ID
	// Ring is the sum of the survivors' encoded inputs modulo
	// 2^RingBits: exact.
	Ring []uint64
	// Sum is Ring decoded: within Params.ErrorBound(len(Survivors)) of
	// the exact sum of inputs that lie within the clip range.
	Sum []float64
}

// NewServer creates the server of one aggregation of vectors of vectorLen
// values.
func NewServer(vectorLen int, p Params) (*Server, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if vectorLen < 0 {
		return nil, fmt.Errorf("secagg: vector length %d", vectorLen)
	}
	return &Server{p: p, n: vectorLen, adv: map[ID]Advertise{}}, nil
}

func (s *Server) expect(st serverStage, step string) error {
	if s.stage != st {
		return fmt.Errorf("%w: server: %s out of order", ErrProtocol, step)
	}
	return nil
}

func (s *Server) session(got uint64, what string, from ID) error {
	if got != s.p.Session {
		return fmt.Errorf("%w: server: %s from %d of session %d, want %d", ErrAuth, what, from, got, s.p.Session)
	}
	return nil
}

// AddAdvertise accepts a client's round-0 message.
func (s *Server) AddAdvertise(m *Advertise) error {
	if err := s.expect(collectAdvertise, "AddAdvertise"); err != nil {
		return err
	}
	if err := s.session(m.Session, "Advertise", m.From); err != nil {
		return err
	}
	if _, dup := s.adv[m.From]; dup {
		return fmt.Errorf("%w: server: second Advertise from %d", ErrProtocol, m.From)
	}
	if len(s.adv) >= s.p.MaxClients {
		return fmt.Errorf("%w: server: more than MaxClients = %d clients", ErrProtocol, s.p.MaxClients)
	}
	for _, k := range [][32]byte{m.ChannelKey, m.MaskKey} {
		if _, err := ecdh.X25519().NewPublicKey(k[:]); err != nil {
			return fmt.Errorf("%w: server: Advertise from %d: %v", ErrAuth, m.From, err)
		}
	}
	s.adv[m.From] = *m
	return nil
}

// KeyList closes round 0 and returns the broadcast to every advertised
// client (U1). It fails below Threshold clients.
func (s *Server) KeyList() (*KeyList, error) {
	if err := s.expect(collectAdvertise, "KeyList"); err != nil {
		return nil, err
	}
	if len(s.adv) < s.p.Threshold {
		return nil, fmt.Errorf("%w: %d clients advertised keys, threshold %d", ErrBelowThreshold, len(s.adv), s.p.Threshold)
	}
	kl := &KeyList{Session: s.p.Session}
	for id := range s.adv {
		s.u1 = append(s.u1, id)
	}
	slices.Sort(s.u1)
	for _, id := range s.u1 {
		kl.Keys = append(kl.Keys, s.adv[id])
	}
	s.shares = map[ID]*ShareKeys{}
	s.stage = collectShares
	return kl, nil
}

// AddShareKeys accepts a client's round-1 message: it must carry exactly
// one sealed share pair for every other client of U1.
func (s *Server) AddShareKeys(m *ShareKeys) error {
	if err := s.expect(collectShares, "AddShareKeys"); err != nil {
		return err
	}
	if err := s.session(m.Session, "ShareKeys", m.From); err != nil {
		return err
	}
	if _, ok := s.adv[m.From]; !ok {
		return fmt.Errorf("%w: server: ShareKeys from %d, not in the key list", ErrProtocol, m.From)
	}
	if _, dup := s.shares[m.From]; dup {
		return fmt.Errorf("%w: server: second ShareKeys from %d", ErrProtocol, m.From)
	}
	if len(m.Shares) != len(s.u1)-1 {
		return fmt.Errorf("%w: server: ShareKeys from %d has %d shares, want %d", ErrProtocol, m.From, len(m.Shares), len(s.u1)-1)
	}
	seen := make(map[ID]bool, len(m.Shares))
	for _, e := range m.Shares {
		if _, ok := s.adv[e.Peer]; !ok || e.Peer == m.From || seen[e.Peer] {
			return fmt.Errorf("%w: server: ShareKeys from %d: bad or repeated recipient %d", ErrProtocol, m.From, e.Peer)
		}
		seen[e.Peer] = true
	}
	s.shares[m.From] = m
	return nil
}

// Deliveries closes round 1: U2 is the set of clients whose shares
// arrived, and each of them gets the shares sealed for it by the others
// of U2 (in increasing ID order). It fails below Threshold clients.
func (s *Server) Deliveries() ([]*ShareDelivery, error) {
	if err := s.expect(collectShares, "Deliveries"); err != nil {
		return nil, err
	}
	if len(s.shares) < s.p.Threshold {
		return nil, fmt.Errorf("%w: %d clients shared keys, threshold %d", ErrBelowThreshold, len(s.shares), s.p.Threshold)
	}
	for _, id := range s.u1 {
		if s.shares[id] != nil {
			s.u2 = append(s.u2, id)
		}
	}
	idx := make(map[ID]int, len(s.u2))
	out := make([]*ShareDelivery, len(s.u2))
	for i, v := range s.u2 {
		idx[v] = i
		out[i] = &ShareDelivery{Session: s.p.Session, To: v, Shares: make([]EncryptedShare, 0, len(s.u2)-1)}
	}
	for _, u := range s.u2 {
		for _, e := range s.shares[u].Shares {
			if i, ok := idx[e.Peer]; ok {
				out[i].Shares = append(out[i].Shares, EncryptedShare{Peer: u, Sealed: e.Sealed})
			}
		}
	}
	s.sum = make([]uint64, s.n)
	s.u3 = map[ID]bool{}
	s.stage = collectMasked
	return out, nil
}

// AddMaskedInput accepts a client's round-2 message and adds it to the
// running sum (the server keeps one vector, not one per client).
func (s *Server) AddMaskedInput(m *MaskedInput) error {
	if err := s.expect(collectMasked, "AddMaskedInput"); err != nil {
		return err
	}
	if err := s.session(m.Session, "MaskedInput", m.From); err != nil {
		return err
	}
	if s.shares[m.From] == nil {
		return fmt.Errorf("%w: server: MaskedInput from %d, which did not share keys", ErrProtocol, m.From)
	}
	if s.u3[m.From] {
		return fmt.Errorf("%w: server: second MaskedInput from %d", ErrProtocol, m.From)
	}
	if int(m.RingBits) != s.p.RingBits || len(m.Values) != s.n {
		return fmt.Errorf("%w: server: MaskedInput from %d: %d values in a %d-bit ring, want %d in %d bits",
			ErrProtocol, m.From, len(m.Values), m.RingBits, s.n, s.p.RingBits)
	}
	mask := s.p.ringMask()
	for _, v := range m.Values {
		if v&^mask != 0 {
			return fmt.Errorf("%w: server: MaskedInput from %d: value outside the ring", ErrProtocol, m.From)
		}
	}
	for i, v := range m.Values {
		s.sum[i] += v
	}
	s.u3[m.From] = true
	return nil
}

// UnmaskRequest closes round 2 and returns the broadcast to the
// survivors: U3 (who sent masked inputs) and the dropped clients of U2. It
// fails below Threshold survivors.
func (s *Server) UnmaskRequest() (*UnmaskRequest, error) {
	if err := s.expect(collectMasked, "UnmaskRequest"); err != nil {
		return nil, err
	}
	if len(s.u3) < s.p.Threshold {
		return nil, fmt.Errorf("%w: %d masked inputs, threshold %d", ErrBelowThreshold, len(s.u3), s.p.Threshold)
	}
	r := &UnmaskRequest{Session: s.p.Session}
	for _, id := range s.u2 {
		if s.u3[id] {
			r.Survivors = append(r.Survivors, id)
		} else {
			r.Dropped = append(r.Dropped, id)
		}
	}
	s.req = r
	s.resp = map[ID]*UnmaskResponse{}
	s.stage = collectUnmask
	return r, nil
}

// AddUnmaskResponse accepts a survivor's round-3 message. Seed shares may
// only be of survivors and key shares only of dropped clients, one each:
// anything else is refused, so the server never holds both secrets of a
// client.
func (s *Server) AddUnmaskResponse(m *UnmaskResponse) error {
	if err := s.expect(collectUnmask, "AddUnmaskResponse"); err != nil {
		return err
	}
	if err := s.session(m.Session, "UnmaskResponse", m.From); err != nil {
		return err
	}
	if !s.u3[m.From] {
		return fmt.Errorf("%w: server: UnmaskResponse from %d, not a survivor", ErrProtocol, m.From)
	}
	if s.resp[m.From] != nil {
		return fmt.Errorf("%w: server: second UnmaskResponse from %d", ErrProtocol, m.From)
	}
	check := func(sh []Share, want bool, kind string) error {
		seen := map[ID]bool{}
		for _, x := range sh {
			if s.u3[x.Of] != want {
				if s.shares[x.Of] != nil {
					return fmt.Errorf("%w: server: UnmaskResponse from %d carries a %s share of %d", ErrBothShares, m.From, kind, x.Of)
				}
				return fmt.Errorf("%w: server: UnmaskResponse from %d: share of unknown client %d", ErrProtocol, m.From, x.Of)
			}
			if seen[x.Of] {
				return fmt.Errorf("%w: server: UnmaskResponse from %d: two %s shares of %d", ErrProtocol, m.From, kind, x.Of)
			}
			if v := shareValue(x.Value); !v.valid() {
				return fmt.Errorf("%w: server: UnmaskResponse from %d: %s share of %d is not a field element", ErrAuth, m.From, kind, x.Of)
			}
			seen[x.Of] = true
		}
		return nil
	}
	if err := check(m.SeedShares, true, "seed"); err != nil {
		return err
	}
	if err := check(m.KeyShares, false, "mask-key"); err != nil {
		return err
	}
	s.resp[m.From] = m
	return nil
}

// gather collects, in responder order, the shares of client u of one kind.
func (s *Server) gather(u ID, seed bool) ([]ID, []shareValue) {
	var xs []ID
	var ys []shareValue
	for _, v := range s.req.Survivors {
		r := s.resp[v]
		if r == nil {
			continue
		}
		list := r.KeyShares
		if seed {
			list = r.SeedShares
		}
		for _, x := range list {
			if x.Of == u {
				xs, ys = append(xs, v), append(ys, shareValue(x.Value))
			}
		}
	}
	return xs, ys
}

// Finish reconstructs, from the revealed shares, every survivor's
// self-mask seed and every dropped client's mask key, checks them against
// the advertised commitment and public key, removes the masks and returns
// the sum. It fails with ErrBelowThreshold when fewer than Threshold
// shares of some secret arrived, and with ErrAuth when shares were forged.
// On an error the server stays in round 3 and Finish may be retried after
// more responses.
func (s *Server) Finish() (*Result, error) {
	if err := s.expect(collectUnmask, "Finish"); err != nil {
		return nil, err
	}
	t := s.p.Threshold
	if len(s.resp) < t {
		return nil, fmt.Errorf("%w: %d unmask responses, threshold %d", ErrBelowThreshold, len(s.resp), t)
	}
	var masks []mask
	for _, u := range s.req.Survivors {
		xs, ys := s.gather(u, true)
		if len(ys) < t {
			return nil, fmt.Errorf("%w: %d shares of survivor %d's seed, need %d", ErrBelowThreshold, len(ys), u, t)
		}
		b, err := combine(xs, ys, t)
		if err != nil {
			return nil, fmt.Errorf("seed of %d: %w", u, err)
		}
		if commitSeed(b, s.p.Session, u) != s.adv[u].SeedCommit {
			return nil, fmt.Errorf("%w: reconstructed seed of %d does not match its commitment (forged share)", ErrAuth, u)
		}
		masks = append(masks, newMask(selfSeed(b, s.p.Session, u), true))
	}
	for _, u := range s.req.Dropped {
		xs, ys := s.gather(u, false)
		if len(ys) < t {
			return nil, fmt.Errorf("%w: %d shares of dropped %d's mask key, need %d", ErrBelowThreshold, len(ys), u, t)
		}
		k, err := combine(xs, ys, t)
		if err != nil {
			return nil, fmt.Errorf("mask key of %d: %w", u, err)
		}
		sk, err := ecdh.X25519().NewPrivateKey(k[:])
		if err != nil {
			return nil, fmt.Errorf("%w: mask key of %d: %v", ErrAuth, u, err)
		}
		if [32]byte(sk.PublicKey().Bytes()) != s.adv[u].MaskKey {
			return nil, fmt.Errorf("%w: reconstructed mask key of %d does not match its public key (forged share)", ErrAuth, u)
		}
		for _, v := range s.req.Survivors {
			secret, err := agree(sk, s.adv[v].MaskKey)
			if err != nil {
				return nil, fmt.Errorf("mask of %d and %d: %w", u, v, err)
			}
			// Survivor v added the pair's mask if u > v and subtracted
			// it if u < v; undo that.
			masks = append(masks, newMask(pairSeed(secret, s.p.Session, u, v), u > v))
		}
	}
	sum := s.sum
	applyMasks(sum, masks, s.p.wordBytes(), s.p.Workers)
	mask := s.p.ringMask()
	for i := range sum {
		sum[i] &= mask
	}
	res := &Result{Survivors: slices.Clone(s.req.Survivors), Dropped: slices.Clone(s.req.Dropped), Ring: sum, Sum: make([]float64, len(sum))}
	s.p.Decode(res.Sum, sum)
	s.stage = finished
	return res, nil
}
