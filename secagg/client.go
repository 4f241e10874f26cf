package secagg

import (
	"crypto/ecdh"
	"fmt"
	"io"
	"slices"
)

type clientStage int

const (
	stageAdvertise clientStage = iota
	stageShare
	stageMask
	stageUnmask
)

// held is what a client keeps of another client u: its shares of u's mask
// key and of u's self-mask seed.
type held struct{ key, seed shareValue }

// revealKind records which share of a client was revealed.
type revealKind int8

const (
	revealedSeed revealKind = 1 + iota
	revealedKey
)

// Client is one participant of one aggregation. Drive it with Advertise,
// ShareKeys, MaskInput and Unmask, in that order, passing in the server's
// messages.
type Client struct {
	id     ID
	n      int
	p      Params
	rand   io.Reader
	stage  clientStage
	chanSK *ecdh.PrivateKey // c_SK: encrypts shares
	maskSK *ecdh.PrivateKey // s_SK: pairwise masks, secret-shared
	seed   [32]byte         // b: self mask, secret-shared
	adv    Advertise

	keys     map[ID]Advertise // U1
	u2       []ID             // clients whose shares this client holds, itself included, sorted
	held     map[ID]held      // shares of every client of u2 (its own included)
	revealed map[ID]revealKind
	clipped  int
}

// NewClient creates the client id for vectors of vectorLen values. Its key
// pairs and self-mask seed are read from rand (96 bytes), and the Shamir
// polynomials later, so a deterministic rand makes the client
// deterministic; use crypto/rand.Reader outside tests.
func NewClient(id ID, vectorLen int, p Params, rand io.Reader) (*Client, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if vectorLen < 0 {
		return nil, fmt.Errorf("secagg: vector length %d", vectorLen)
	}
	c := &Client{id: id, n: vectorLen, p: p, rand: rand}
	var err error
	if c.chanSK, err = newKey(rand); err != nil {
		return nil, err
	}
	if c.maskSK, err = newKey(rand); err != nil {
		return nil, err
	}
	if _, err := io.ReadFull(rand, c.seed[:]); err != nil {
		return nil, fmt.Errorf("secagg: reading randomness: %w", err)
	}
	c.adv = Advertise{Session: p.Session, From: id, SeedCommit: commitSeed(c.seed, p.Session, id)}
	copy(c.adv.ChannelKey[:], c.chanSK.PublicKey().Bytes())
	copy(c.adv.MaskKey[:], c.maskSK.PublicKey().Bytes())
	return c, nil
}

// ID returns the client's id.
func (c *Client) ID() ID { return c.id }

// Clipped is the number of input values MaskInput clamped to the clip
// range.
func (c *Client) Clipped() int { return c.clipped }

func (c *Client) expect(s clientStage, step string) error {
	if c.stage != s {
		return fmt.Errorf("%w: client %d: %s out of order", ErrProtocol, c.id, step)
	}
	return nil
}

func (c *Client) session(got uint64, what string) error {
	if got != c.p.Session {
		return fmt.Errorf("%w: client %d: %s of session %d, want %d", ErrAuth, c.id, what, got, c.p.Session)
	}
	return nil
}

// Advertise is round 0: the message to send to the server.
func (c *Client) Advertise() (*Advertise, error) {
	if err := c.expect(stageAdvertise, "Advertise"); err != nil {
		return nil, err
	}
	c.stage = stageShare
	a := c.adv
	return &a, nil
}

// ShareKeys is round 1: given the server's KeyList, it Shamir-shares the
// client's mask key and self-mask seed among every listed client and
// seals each pair of shares for its recipient.
func (c *Client) ShareKeys(kl *KeyList) (*ShareKeys, error) {
	if err := c.expect(stageShare, "ShareKeys"); err != nil {
		return nil, err
	}
	if err := c.session(kl.Session, "KeyList"); err != nil {
		return nil, err
	}
	if len(kl.Keys) < c.p.Threshold {
		return nil, fmt.Errorf("%w: client %d: key list of %d clients, threshold %d", ErrBelowThreshold, c.id, len(kl.Keys), c.p.Threshold)
	}
	if len(kl.Keys) > c.p.MaxClients {
		return nil, fmt.Errorf("%w: client %d: key list of %d clients, MaxClients %d", ErrProtocol, c.id, len(kl.Keys), c.p.MaxClients)
	}
	keys := make(map[ID]Advertise, len(kl.Keys))
	seen := make(map[[32]byte]bool, 2*len(kl.Keys))
	ids := make([]ID, len(kl.Keys))
	for i, k := range kl.Keys {
		if i > 0 && k.From <= ids[i-1] {
			return nil, fmt.Errorf("%w: client %d: key list not in increasing id order at %d", ErrProtocol, c.id, k.From)
		}
		if seen[k.ChannelKey] || seen[k.MaskKey] {
			return nil, fmt.Errorf("%w: client %d: key list repeats a public key (client %d)", ErrAuth, c.id, k.From)
		}
		seen[k.ChannelKey], seen[k.MaskKey] = true, true
		k.Session = kl.Session
		ids[i], keys[k.From] = k.From, k
	}
	if mine, ok := keys[c.id]; !ok || mine != c.adv {
		return nil, fmt.Errorf("%w: client %d: key list lacks or alters this client's keys", ErrAuth, c.id)
	}
	keyShares, err := split([32]byte(c.maskSK.Bytes()), ids, c.p.Threshold, c.rand)
	if err != nil {
		return nil, err
	}
	seedShares, err := split(c.seed, ids, c.p.Threshold, c.rand)
	if err != nil {
		return nil, err
	}
	out := &ShareKeys{Session: c.p.Session, From: c.id, Shares: make([]EncryptedShare, 0, len(ids)-1)}
	c.held = map[ID]held{}
	for i, v := range ids {
		if v == c.id {
			c.held[c.id] = held{key: keyShares[i], seed: seedShares[i]}
			continue
		}
		secret, err := agree(c.chanSK, keys[v].ChannelKey)
		if err != nil {
			return nil, fmt.Errorf("client %d, peer %d: %w", c.id, v, err)
		}
		out.Shares = append(out.Shares, EncryptedShare{Peer: v, Sealed: seal(secret, c.p.Session, c.id, v, keyShares[i], seedShares[i])})
	}
	c.keys = keys
	c.stage = stageMask
	return out, nil
}

// MaskInput is round 2 for a float32 vector (an update, or a flattened
// sketch): it encodes x (see Params.Encode) and masks it.
func (c *Client) MaskInput(d *ShareDelivery, x []float32) (*MaskedInput, error) {
	if len(x) != c.n {
		return nil, fmt.Errorf("secagg: client %d: input of %d values, want %d", c.id, len(x), c.n)
	}
	if err := c.expect(stageMask, "MaskInput"); err != nil {
		return nil, err
	}
	v := make([]uint64, c.n)
	k, err := c.p.Encode(v, x)
	if err != nil {
		return nil, err
	}
	m, err := c.maskRing(d, v)
	if err == nil {
		c.clipped += k
	}
	return m, err
}

// MaskInputRing is round 2 for an input already in the ring (values below
// 2^RingBits); the ring sum of such inputs is exact.
func (c *Client) MaskInputRing(d *ShareDelivery, v []uint64) (*MaskedInput, error) {
	if len(v) != c.n {
		return nil, fmt.Errorf("secagg: client %d: input of %d values, want %d", c.id, len(v), c.n)
	}
	if err := c.expect(stageMask, "MaskInputRing"); err != nil {
		return nil, err
	}
	return c.maskRing(d, slices.Clone(v))
}

// maskRing opens the delivered shares, then adds to v (in place) the self
// mask and the pairwise masks with every client of U2.
func (c *Client) maskRing(d *ShareDelivery, v []uint64) (*MaskedInput, error) {
	if err := c.session(d.Session, "ShareDelivery"); err != nil {
		return nil, err
	}
	if d.To != c.id {
		return nil, fmt.Errorf("%w: client %d: delivery addressed to %d", ErrProtocol, c.id, d.To)
	}
	if len(d.Shares)+1 < c.p.Threshold {
		return nil, fmt.Errorf("%w: client %d: shares from %d clients, threshold %d", ErrBelowThreshold, c.id, len(d.Shares)+1, c.p.Threshold)
	}
	u2 := []ID{c.id}
	got := make(map[ID]held, len(d.Shares))
	for _, e := range d.Shares {
		k, ok := c.keys[e.Peer]
		if !ok || e.Peer == c.id {
			return nil, fmt.Errorf("%w: client %d: shares from %d, not another client of the key list", ErrProtocol, c.id, e.Peer)
		}
		if _, dup := got[e.Peer]; dup {
			return nil, fmt.Errorf("%w: client %d: two deliveries of shares from %d", ErrProtocol, c.id, e.Peer)
		}
		secret, err := agree(c.chanSK, k.ChannelKey)
		if err != nil {
			return nil, fmt.Errorf("client %d, peer %d: %w", c.id, e.Peer, err)
		}
		ks, ss, err := open(secret, c.p.Session, e.Peer, c.id, e.Sealed)
		if err != nil {
			return nil, err
		}
		got[e.Peer] = held{key: ks, seed: ss}
		u2 = append(u2, e.Peer)
	}
	slices.Sort(u2)
	masks := []mask{newMask(selfSeed(c.seed, c.p.Session, c.id), false)}
	for _, u := range u2 {
		if u == c.id {
			continue
		}
		secret, err := agree(c.maskSK, c.keys[u].MaskKey)
		if err != nil {
			return nil, fmt.Errorf("client %d, peer %d: %w", c.id, u, err)
		}
		// + for peers above, - for peers below: the pair's two terms cancel.
		masks = append(masks, newMask(pairSeed(secret, c.p.Session, c.id, u), u < c.id))
	}
	applyMasks(v, masks, c.p.wordBytes(), c.p.Workers)
	mask := c.p.ringMask()
	for i := range v {
		v[i] &= mask
	}
	for u, h := range got {
		c.held[u] = h
	}
	c.u2 = u2
	c.revealed = map[ID]revealKind{}
	c.stage = stageUnmask
	return &MaskedInput{Session: c.p.Session, From: c.id, RingBits: uint8(c.p.RingBits), Values: v}, nil
}

// Unmask is round 3: for each survivor of the request the client reveals
// its share of that survivor's self-mask seed, for each dropped client its
// share of that client's mask key. It refuses (ErrBothShares) a request
// naming one client in both lists, or asking for the other kind of share
// of a client than an earlier request; it also refuses requests with
// fewer than Threshold survivors, clients outside U2, or this client
// among the dropped. It may be called again (e.g. after a server retry),
// under the same rule.
func (c *Client) Unmask(r *UnmaskRequest) (*UnmaskResponse, error) {
	if err := c.expect(stageUnmask, "Unmask"); err != nil {
		return nil, err
	}
	if err := c.session(r.Session, "UnmaskRequest"); err != nil {
		return nil, err
	}
	if len(r.Survivors) < c.p.Threshold {
		return nil, fmt.Errorf("%w: client %d: %d survivors, threshold %d", ErrBelowThreshold, c.id, len(r.Survivors), c.p.Threshold)
	}
	want := make(map[ID]revealKind, len(r.Survivors)+len(r.Dropped))
	for _, list := range []struct {
		ids  []ID
		kind revealKind
	}{{r.Survivors, revealedSeed}, {r.Dropped, revealedKey}} {
		for _, u := range list.ids {
			if k, ok := want[u]; ok {
				if k != list.kind {
					return nil, fmt.Errorf("%w: client %d: request lists %d as survivor and as dropped", ErrBothShares, c.id, u)
				}
				return nil, fmt.Errorf("%w: client %d: request lists %d twice", ErrProtocol, c.id, u)
			}
			if _, ok := c.held[u]; !ok {
				return nil, fmt.Errorf("%w: client %d: request names %d, which did not share keys", ErrProtocol, c.id, u)
			}
			if k, ok := c.revealed[u]; ok && k != list.kind {
				return nil, fmt.Errorf("%w: client %d: the other share of %d was revealed before", ErrBothShares, c.id, u)
			}
			want[u] = list.kind
		}
	}
	if want[c.id] != revealedSeed {
		return nil, fmt.Errorf("%w: client %d: not listed as a survivor although it sent its masked input", ErrProtocol, c.id)
	}
	out := &UnmaskResponse{Session: c.p.Session, From: c.id}
	for _, u := range r.Survivors {
		out.SeedShares = append(out.SeedShares, Share{Of: u, Value: c.held[u].seed})
		c.revealed[u] = revealedSeed
	}
	for _, u := range r.Dropped {
		out.KeyShares = append(out.KeyShares, Share{Of: u, Value: c.held[u].key})
		c.revealed[u] = revealedKey
	}
	return out, nil
}
