package client

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/transport"
)

// RejectSecAgg is the reason a host rejects a secure aggregation message
// of the server: sent outside its round, a payload that does not decode,
// or one the protocol refuses (a request for both shares of a client).
const RejectSecAgg = "secagg"

// hostSecure is a host's state of one securely aggregated round: each of
// its clients' secagg participant and masked-to-be vector. It lives within
// the round (nothing of it is checkpointed); the next round replaces it.
type hostSecure struct {
	round, task int32
	flags       uint32
	p           secagg.Params
	scale       float64 // weights n/scale; 0: weight 1 (uniform)
	drop        map[int]bool

	mu      sync.Mutex
	clients map[int]*secureClient

	wg  sync.WaitGroup // masked inputs being computed
	sem chan struct{}
}

type secureClient struct {
	sc  *secagg.Client
	vec []uint64 // the encoded input, masked in place
}

// startSecure prepares the secure aggregation of round m (FlagSecAgg).
func (h *Host) startSecure(m *transport.Message) error {
	h.endSecure()
	if h.cfg.SecAgg == nil {
		return fmt.Errorf("client: round %d aggregates securely, and this host is not configured for it", m.Round)
	}
	s := &hostSecure{round: m.Round, task: m.Task, flags: m.Flags, drop: map[int]bool{},
		p: h.cfg.SecAgg.Params(h.cfg.Train.Seed, int(m.Round), len(m.Clients)), clients: map[int]*secureClient{},
		sem: make(chan struct{}, h.cfg.Workers)}
	if v, ok := m.Scalar(protocol.ScalarSAWeightScale); ok {
		if !(v > 0) || math.IsInf(v, 0) {
			return fmt.Errorf("client: round %d: weight scale %v", m.Round, v)
		}
		s.scale = v
	}
	if t := m.Tensor(protocol.TensorSADrop); t != nil {
		for _, v := range t.Data {
			s.drop[int(v)] = true
		}
	}
	h.sec = s
	return nil
}

// endSecure waits for the masked inputs still being computed and forgets
// the round.
func (h *Host) endSecure() {
	if h.sec != nil {
		h.sec.wg.Wait()
		h.sec = nil
	}
}

// secureUpdate replaces the publication of client c's update u (delta:
// its compact delta, n: its samples) in a secure round: it encodes the
// weighted delta, the weight and the GPSE sketches in the ring, and sends
// the clear part of the update (N, scalars, the sketches' shapes) with
// the client's Advertise.
func (h *Host) secureUpdate(wk *worker, u *transport.Message, delta []float32, c, n int) error {
	s := h.sec
	w := 1.0
	if s.scale > 0 {
		w = float64(n) / s.scale
	}
	var sketches []*transport.Tensor
	var layout []float32
	if s.flags&protocol.FlagSketch != 0 {
		for i := range protocol.Projected(h.model) {
			t := u.Tensor(protocol.SketchTensor(i))
			if t == nil {
				return fmt.Errorf("no %q tensor to aggregate", protocol.SketchTensor(i))
			}
			sketches = append(sketches, t)
			layout = append(layout, float32(t.Rows), float32(t.Cols))
		}
	}
	L := len(delta) + 1
	for _, t := range u.Tensors {
		switch {
		case t.Name == protocol.TensorDelta:
		case isSketch(t.Name, len(sketches)):
			L += len(t.Data)
		default:
			return fmt.Errorf("the method sends %q, which secure aggregation does not sum", t.Name)
		}
	}
	if cap(wk.sa) < L {
		wk.sa = make([]float64, L)
	}
	f := wk.sa[:L]
	for i, v := range delta {
		f[i] = w * float64(v)
	}
	f[len(delta)] = w
	k := len(delta) + 1
	for _, t := range sketches {
		for _, v := range t.Data {
			f[k] = float64(v)
			k++
		}
	}
	vec := make([]uint64, L)
	clipped, err := s.p.Encode64(vec, f)
	if err != nil {
		return err
	}
	if clipped > 0 {
		h.logf("client %d: round %d: %d values beyond the secure aggregation clip of %g were clipped", c, s.round, clipped, s.p.Clip)
	}
	sc, err := secagg.NewClient(secagg.ID(c), L, s.p, protocol.SecAggRand(h.cfg.Train.Seed, int(s.round), c))
	if err != nil {
		return err
	}
	adv, err := sc.Advertise()
	if err != nil {
		return err
	}
	pay, _, err := protocol.SecAggPayload(protocol.TensorSAAdvertise, adv)
	if err != nil {
		return err
	}
	u.Tensors = u.Tensors[:0]
	if len(layout) > 0 {
		u.Tensors = append(u.Tensors, transport.Tensor{Name: protocol.TensorSALayout, Rows: 1, Cols: len(layout), Data: layout})
	}
	u.Tensors = append(u.Tensors, pay)
	u.Flags |= protocol.FlagSecAgg
	if err := h.publishUpdate(u, c); err != nil {
		return err
	}
	s.mu.Lock()
	s.clients[c] = &secureClient{sc: sc, vec: vec}
	s.mu.Unlock()
	return nil
}

func isSketch(name string, n int) bool {
	for i := range n {
		if name == protocol.SketchTensor(i) {
			return true
		}
	}
	return false
}

// publishUpdate signs (with HostConfig.Auth) and publishes a message of
// client c on the update subject.
func (h *Host) publishUpdate(u *transport.Message, c int) error {
	if h.cfg.Auth != nil {
		if err := protocol.Sign(u, h.cfg.RunID, h.cfg.Auth.ClientKey(c)); err != nil {
			return fmt.Errorf("client %d: sign %s of round %d: %w", c, protocol.SecAggStep(u), u.Round, err)
		}
	}
	if _, err := h.tr.Publish(h.cfg.Subjects.Update, u); err != nil {
		return fmt.Errorf("client %d: publish %s of round %d: %w", c, protocol.SecAggStep(u), u.Round, err)
	}
	return nil
}

// reply sends client c's answer (a secagg message) to a step of the round.
func (h *Host) reply(s *hostSecure, c int, name string, msg interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}) error {
	t, _, err := protocol.SecAggPayload(name, msg)
	if err != nil {
		return err
	}
	u := &transport.Message{Kind: transport.KindUpdate, Round: s.round, Task: s.task, Client: int32(c),
		Flags: s.flags | protocol.FlagSecAgg, Tensors: []transport.Tensor{t}}
	return h.publishUpdate(u, c)
}

// secureStep handles a secure aggregation message of the server (a
// KeyList, a ShareDelivery or an UnmaskRequest) for the host's clients.
// Messages it cannot use are counted and logged, never fatal; an error is
// a failed publish.
func (h *Host) secureStep(m *transport.Message) error {
	s := h.sec
	step := protocol.SecAggStep(m)
	if s == nil || m.Round != s.round {
		h.reject(RejectSecAgg, "client: rejected %s of round %d: not the secure round in progress", step, m.Round)
		return nil
	}
	refuse := func(err error) error {
		h.reject(RejectSecAgg, "client: rejected %s of round %d: %v", step, m.Round, err)
		return nil
	}
	mine := func(id secagg.ID) *secureClient {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.clients[int(id)]
	}
	switch step {
	case protocol.TensorSAKeyList:
		var kl secagg.KeyList
		if err := protocol.SecAggUnpack(m, step, &kl); err != nil {
			return refuse(err)
		}
		var ids []int
		for _, k := range kl.Keys {
			if mine(k.From) != nil {
				ids = append(ids, int(k.From))
			}
		}
		return h.parallel(context.Background(), ids, func(c int) error {
			sk, err := mine(secagg.ID(c)).sc.ShareKeys(&kl)
			if err != nil {
				return refuse(err)
			}
			return h.reply(s, c, protocol.TensorSAShareKeys, sk)
		})
	case protocol.TensorSADelivery:
		var d secagg.ShareDelivery
		if err := protocol.SecAggUnpack(m, step, &d); err != nil {
			return refuse(err)
		}
		sc := mine(d.To)
		if sc == nil || s.drop[int(d.To)] {
			return nil // another host's client, or one that fails now (system.dropout)
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sem <- struct{}{}
			defer func() { <-s.sem }()
			mi, err := sc.sc.MaskInputRing(&d, sc.vec)
			sc.vec = nil
			if err != nil {
				_ = refuse(err)
				return
			}
			if err := h.reply(s, int(d.To), protocol.TensorSAMasked, mi); err != nil {
				h.logf("%v", err)
			}
		}()
		return nil
	case protocol.TensorSAUnmask:
		var r secagg.UnmaskRequest
		if err := protocol.SecAggUnpack(m, step, &r); err != nil {
			return refuse(err)
		}
		s.wg.Wait()
		for _, id := range r.Survivors {
			sc := mine(id)
			if sc == nil {
				continue
			}
			resp, err := sc.sc.Unmask(&r)
			if err != nil {
				_ = refuse(err)
				continue
			}
			if err := h.reply(s, int(id), protocol.TensorSAResponse, resp); err != nil {
				return err
			}
		}
		return nil
	}
	return refuse(fmt.Errorf("no secure aggregation payload of the server"))
}

// parallel runs fn for every id on up to Workers goroutines and returns
// the first error; once ctx is done, no further id starts. All ids are
// queued up front: a goroutine that finishes one takes the next without
// waiting for a feeder goroutine to be scheduled.
func (h *Host) parallel(ctx context.Context, ids []int, fn func(int) error) error {
	jobs := make(chan int, len(ids))
	for _, id := range ids {
		jobs <- id
	}
	close(jobs)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range min(h.cfg.Workers, len(ids)) {
		wg.Go(func() {
			for id := range jobs {
				if ctx.Err() != nil {
					return
				}
				if err := fn(id); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// admitSecure checks a secure aggregation message of the server (no
// model: KeyList, ShareDelivery, UnmaskRequest) after its kind and
// signature: it must belong to the round handled last, and list clients
// within bounds.
func (h *Host) admitSecure(m *transport.Message) bool {
	k := &h.checks
	k.mu.Lock()
	cur := k.seen && m.Round == k.last
	k.mu.Unlock()
	if !cur {
		h.reject(RejectRound, "client: rejected secure aggregation message of round %d: not the current round", m.Round)
		return false
	}
	if msg := h.checkClients(m.Clients); msg != "" {
		h.reject(RejectClients, "client: rejected secure aggregation message of round %d: %s", m.Round, msg)
		return false
	}
	switch protocol.SecAggStep(m) {
	case protocol.TensorSAKeyList, protocol.TensorSADelivery, protocol.TensorSAUnmask:
		return true
	}
	h.reject(RejectSecAgg, "client: rejected message of round %d: no model and no secure aggregation payload of the server", m.Round)
	return false
}

// isSecureStep reports whether a round-subject message is a secure
// aggregation step (FlagSecAgg and no model).
func isSecureStep(m *transport.Message) bool {
	return m.Kind == transport.KindRound && m.Flags&protocol.FlagSecAgg != 0 && m.Tensor(protocol.TensorParams) == nil && m.Tensor(protocol.TensorAdapters) == nil
}
