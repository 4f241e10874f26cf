package server

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/secagg"
	"github.com/fotsim/fotsim/transport"
)

// RejectSecAgg is the reason of a rejected secure aggregation message: an
// update in the clear in a securely aggregated run, a payload that does not
// decode, or one the protocol refuses (wrong session, sender or step,
// a share of the wrong kind, a masked input of the wrong length).
const RejectSecAgg = "secagg"

// ErrSecAgg is returned when a securely aggregated round cannot finish:
// fewer clients than the threshold, or shares that do not rebuild a secret.
var ErrSecAgg = errors.New("server: secure aggregation failed")

// The phases of a secure round, in the order of their client messages
// (protocol.TensorSAAdvertise, ...).
const (
	phaseAdvertise = iota
	phaseShareKeys
	phaseMasked
	phaseResponse
)

var phaseStep = [...]string{protocol.TensorSAAdvertise, protocol.TensorSAShareKeys, protocol.TensorSAMasked, protocol.TensorSAResponse}

func phaseOf(step string) int { return slices.Index(phaseStep[:], step) }

// secure is the state of a round that aggregates securely (s.col.sa),
// guarded by s.mu. It lives within one round: nothing of it is saved in a
// checkpoint, and a resumed run starts the next round afresh.
type secure struct {
	p      secagg.Params
	srv    *secagg.Server // created with the first accepted Advertise
	phase  int
	open   bool // the phase accepts messages
	dim    int  // values of the delta (protocol.Trainable)
	layout []int
	fixed  bool // layout set by the first accepted update
	drop   map[int32]bool
	want   map[int32]bool // clients the phase waits for
	heard  map[int32]bool
	full   chan struct{}
}

// vectorLen is the length of the securely summed vector: the weighted
// delta, the weight, then each summed tensor of the layout.
func (sa *secure) vectorLen() int {
	n := sa.dim + 1
	for i := 0; i+1 < len(sa.layout); i += 2 {
		n += sa.layout[i] * sa.layout[i+1]
	}
	return n
}

// startPhase opens phase for the clients of want (s.mu held).
func (sa *secure) startPhase(phase int, want []secagg.ID) {
	sa.phase, sa.open = phase, true
	sa.want, sa.heard = map[int32]bool{}, map[int32]bool{}
	for _, id := range want {
		sa.want[int32(id)] = true
	}
	sa.full = make(chan struct{})
	if len(sa.want) == 0 {
		close(sa.full)
	}
}

// secureSelect merges the clients that report and those that will drop
// out after sharing their keys, in client-id order.
func secureSelect(report, dropped []int32) []int32 {
	sel := append(slices.Clone(report), dropped...)
	slices.Sort(sel)
	return sel
}

// secureRound is Server.round for a run with Config.SecAgg: the clients
// send their weighted deltas (and GPSE sketches) masked, and the server
// only ever holds the sum. sel are the clients listed in the broadcast,
// drop those of them that fail after sharing their keys (system dropout).
func (s *Server) secureRound(ctx context.Context, params []float32, task, round int, last bool, mode roundMode, detail *results.TaskDetail,
	sel, drop []int32, flags uint32, sys *results.RoundDetail) (float64, int, error) {
	flags |= protocol.FlagSecAgg
	trained := protocol.Trainable(s.model, s.cfg.LoRA, flags)
	sa := &secure{p: s.cfg.SecAgg.Params(s.cfg.Seed, round, len(sel)), dim: trained.Size(), drop: map[int32]bool{}}
	sa.p.Workers = runtime.GOMAXPROCS(0)
	for _, c := range drop {
		sa.drop[c] = true
	}
	s.open(int32(round), int32(task), sel, flags)
	s.mu.Lock()
	s.col.sa = sa
	sa.open = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.col.sa = nil
		s.mu.Unlock()
	}()

	m := s.roundMessage(params, task, round, sel, flags)
	if s.cfg.Weighting == aggregator.Samples {
		m.Scalars = append(m.Scalars, transport.Scalar{Name: protocol.ScalarSAWeightScale, Value: s.weightScale(task, sel)})
	}
	if len(drop) > 0 {
		ids := make([]float32, len(drop))
		for i, c := range drop {
			ids[i] = float32(c)
		}
		m.Tensors = append(m.Tensors, transport.Tensor{Name: protocol.TensorSADrop, Rows: 1, Cols: len(ids), Data: ids})
	}
	start, sent, err := s.sendRound(m, task, last)
	if err != nil {
		return 0, 0, err
	}

	// Round 0: the clear part of each update with its Advertise.
	got, err := s.collect(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
	}
	s.mu.Lock()
	sa.open = false
	srv := sa.srv
	s.mu.Unlock()
	skip := func(format string, args ...any) (float64, int, error) {
		if sys != nil {
			// Like a round under the quorum: the model is unchanged.
			s.logf("server: round %d skipped: "+format, append([]any{round}, args...)...)
			sys.Skipped = true
			s.rec.System.Add(*sys)
			return 0, 0, nil
		}
		return 0, 0, fmt.Errorf("%w: round %d: "+format, append([]any{ErrSecAgg, round}, args...)...)
	}
	if len(got) == 0 {
		if sys != nil {
			return skip("no update arrived")
		}
		return 0, 0, fmt.Errorf("%w in round %d of task %d", ErrNoUpdates, round, task)
	}
	if len(got) < sa.p.Threshold {
		return skip("%d clients advertised keys, threshold %d", len(got), sa.p.Threshold)
	}
	s.mu.Lock()
	kl, err := srv.KeyList()
	s.mu.Unlock()
	if err != nil {
		return skip("%v", err)
	}
	u1 := make([]secagg.ID, len(kl.Keys))
	for i, k := range kl.Keys {
		u1[i] = k.From
	}
	if err := s.secureStep(ctx, sa, phaseShareKeys, u1, round, task, flags, protocol.TensorSAKeyList, kl, u1); err != nil {
		return 0, 0, err
	}

	// Round 1 done: deliver the shares to U2.
	s.mu.Lock()
	dels, err := srv.Deliveries()
	s.mu.Unlock()
	if err != nil {
		return skip("%v", err)
	}
	var want []secagg.ID
	for _, d := range dels {
		if !sa.drop[int32(d.To)] {
			want = append(want, d.To)
		}
	}
	s.mu.Lock()
	sa.startPhase(phaseMasked, want)
	s.mu.Unlock()
	for _, d := range dels {
		if err := s.publishStep(round, task, flags, []secagg.ID{d.To}, protocol.TensorSADelivery, d); err != nil {
			return 0, 0, err
		}
	}
	if err := s.tr.Flush(); err != nil {
		return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
	}
	if err := s.waitPhase(ctx, sa); err != nil {
		return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
	}

	// Round 2 done: ask the survivors for their shares.
	s.mu.Lock()
	req, err := srv.UnmaskRequest()
	s.mu.Unlock()
	if err != nil || (sys != nil && len(req.Survivors) < s.cfg.System.quorum()) {
		if err == nil {
			err = fmt.Errorf("%d masked inputs, quorum %d", len(req.Survivors), s.cfg.System.quorum())
		}
		return skip("%v", err)
	}
	if err := s.secureStep(ctx, sa, phaseResponse, req.Survivors, round, task, flags, protocol.TensorSAUnmask, req, req.Survivors); err != nil {
		return 0, 0, err
	}
	collected := time.Now()
	s.mu.Lock()
	res, err := srv.Finish()
	s.mu.Unlock()
	if err != nil {
		return 0, 0, fmt.Errorf("%w: round %d: %v", ErrSecAgg, round, err)
	}
	s.rec.SecAggRecovered += len(res.Dropped)
	if sys != nil {
		sys.Aggregated = len(res.Survivors)
		s.rec.System.Add(*sys)
	}

	// The clear parts of the survivors' updates (loss, steps, ratios).
	alive := make(map[int32]bool, len(res.Survivors))
	for _, id := range res.Survivors {
		alive[int32(id)] = true
	}
	var clearUps []*transport.Message
	var loss float64
	var train time.Duration
	for _, u := range got {
		if alive[u.Client] {
			clearUps = append(clearUps, u)
			loss += scalar(u, protocol.ScalarLoss)
			train += time.Duration(scalar(u, protocol.ScalarTrainSeconds) * float64(time.Second))
		}
	}

	// The mean: the sum of the weighted deltas over the summed weights.
	w := res.Sum[sa.dim]
	if !(w > 0) {
		return 0, 0, fmt.Errorf("%w: round %d: summed weight %v", ErrSecAgg, round, w)
	}
	if cap(s.aggc) < sa.dim {
		s.aggc = make([]float32, sa.dim)
	}
	aggc := s.aggc[:sa.dim]
	for i := range aggc {
		aggc[i] = float32(res.Sum[i] / w)
	}
	s.lastSecure = secureSum{Sum: res.Sum, Weight: w, Survivors: len(res.Survivors), Params: sa.p}
	clear(s.agg)
	protocol.Scatter(s.agg, aggc, trained)
	if s.rule != nil {
		if mode == modeNormal {
			s.rule.BeforeApply(s.agg, task)
		}
		s.prev = append(s.prev[:0], params...)
	}
	aggregator.Apply(params, s.agg, s.cfg.ServerLR)
	if s.rule != nil && mode == modeNormal {
		a := Applied{Round: round, Params: params, Before: s.prev, Agg: s.agg}
		if err := s.rule.AfterApply(&a); err != nil {
			return 0, 0, fmt.Errorf("server: round %d: %w", round, err)
		}
	}
	if s.rule != nil && last {
		if err := s.rule.EndTask(sa.sums(clearUps, res.Sum), s.prev, params, task, detail); err != nil {
			return 0, 0, fmt.Errorf("server: end of task %d: %w", task, err)
		}
	}
	s.timing.Rounds = append(s.timing.Rounds, RoundTiming{
		Task: task, Round: round, Last: last, Broadcast: sent.Sub(start), Collect: collected.Sub(sent),
		Aggregate: time.Since(collected), ClientTrain: train,
	})
	return loss, len(clearUps), nil
}

// sums returns what Rule.EndTask sees of a secure round: the clear parts
// of the survivors' updates, in client-id order, where the first carries
// the sums of the summed tensors (the GPSE sketches) and the others carry
// them empty.
func (sa *secure) sums(clear []*transport.Message, sum []float64) []*transport.Message {
	out := make([]*transport.Message, len(clear))
	off := sa.dim + 1
	for k, u := range clear {
		c := *u
		c.Tensors = nil
		for i := 0; i+1 < len(sa.layout); i += 2 {
			t := transport.Tensor{Name: protocol.SketchTensor(i / 2)}
			if k == 0 {
				r, cl := sa.layout[i], sa.layout[i+1]
				t.Rows, t.Cols, t.Data = r, cl, make([]float32, r*cl)
				for j := range t.Data {
					t.Data[j] = float32(sum[off+j])
				}
				off += r * cl
			}
			c.Tensors = append(c.Tensors, t)
		}
		out[k] = &c
	}
	return out
}

// secureSum is the last secure aggregate, for tests.
type secureSum struct {
	Sum       []float64
	Weight    float64
	Survivors int
	Params    secagg.Params
}

// weightScale is the common scale of the clients' weights under weighting
// by samples: the largest shard of the clients listed, so every weight is
// in (0, 1]; 1 without Config.Samples.
func (s *Server) weightScale(task int, sel []int32) float64 {
	if s.cfg.Samples == nil {
		return 1
	}
	scale := int64(1)
	for _, c := range sel {
		scale = max(scale, s.cfg.Samples(task, int(c)))
	}
	return float64(scale)
}

// secureStep broadcasts msg (a KeyList or an UnmaskRequest) to the clients
// to and waits for the phase's messages from want.
func (s *Server) secureStep(ctx context.Context, sa *secure, phase int, want []secagg.ID, round, task int, flags uint32, name string, msg interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}, to []secagg.ID) error {
	s.mu.Lock()
	sa.startPhase(phase, want)
	s.mu.Unlock()
	if err := s.publishStep(round, task, flags, to, name, msg); err != nil {
		return err
	}
	if err := s.tr.Flush(); err != nil {
		return fmt.Errorf("server: round %d: %w", round, err)
	}
	if err := s.waitPhase(ctx, sa); err != nil {
		return fmt.Errorf("server: round %d: %w", round, err)
	}
	return nil
}

// publishStep sends a secure aggregation message of the server to the
// clients to, on the round subject, and counts its bytes once per
// recipient.
func (s *Server) publishStep(round, task int, flags uint32, to []secagg.ID, name string, msg interface {
	MarshalBinary() ([]byte, error)
	EncodedLen() int
}) error {
	t, n, err := protocol.SecAggPayload(name, msg)
	if err != nil {
		return fmt.Errorf("server: round %d: %w", round, err)
	}
	ids := make([]int32, len(to))
	for i, id := range to {
		ids[i] = int32(id)
	}
	m := &transport.Message{Kind: transport.KindRound, Round: int32(round), Task: int32(task), Clients: ids, Flags: flags,
		Tensors: []transport.Tensor{t}}
	if _, err := s.tr.Publish(s.cfg.Subjects.Round, m); err != nil {
		return fmt.Errorf("server: round %d: send %s: %w", round, name, err)
	}
	b := int64(n) * int64(len(to))
	s.rec.BytesDown += b
	s.rec.SecAggBytesDown += b
	return nil
}

// waitPhase waits until every client the phase wants has answered, the
// deadline passes, ctx ends or the connection is lost; then it closes the
// phase.
func (s *Server) waitPhase(ctx context.Context, sa *secure) error {
	var deadline <-chan time.Time
	if s.cfg.Deadline > 0 {
		t := time.NewTimer(s.cfg.Deadline)
		defer t.Stop()
		deadline = t.C
	}
	var lost <-chan struct{}
	if s.conn != nil {
		lost = s.conn.Done()
	}
	s.mu.Lock()
	full := sa.full
	s.mu.Unlock()
	var err error
	select {
	case <-full:
	case <-deadline:
	case <-ctx.Done():
		err = ctx.Err()
	case <-lost:
		err = s.conn.Err()
	}
	s.mu.Lock()
	sa.open = false
	s.mu.Unlock()
	return err
}

// checkSecureSender is checkSender for a run with Config.SecAgg: the
// kind, client id, signature and task, that the message is secure
// aggregation traffic (one payload, no delta), and for the clear part of
// an update its sample count and scalars.
func (s *Server) checkSecureSender(m *transport.Message, step string) (reason string, err error) {
	if reason, err := s.checkHeader(m); err != nil {
		return reason, err
	}
	if m.Flags&protocol.FlagSecAgg == 0 || m.Tensor(protocol.TensorDelta) != nil {
		return RejectSecAgg, errors.New("an update in the clear in a securely aggregated run")
	}
	if phaseOf(step) < 0 {
		return RejectSecAgg, errors.New("no secure aggregation payload of a client")
	}
	if step != protocol.TensorSAAdvertise {
		return "", nil
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
	return "", nil
}

// receiveSecure is receive for a run with Config.SecAgg.
func (s *Server) receiveSecure(m *transport.Message) {
	step := protocol.SecAggStep(m)
	if reason, err := s.checkSecureSender(m, step); err != nil {
		s.reject(reason, "server: rejected message of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	phase := phaseOf(step)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := &s.col
	sa := c.sa
	if m.Round > c.round {
		s.rejectLocked(RejectRound, "server: rejected %s of client %d for round %d, which has not started (collecting round %d)", step, m.Client, m.Round, c.round)
		return
	}
	open := sa != nil && sa.open
	if sa != nil && phase == phaseAdvertise {
		open = c.open // collect closes round 0
	}
	if sa == nil || m.Round != c.round || phase < sa.phase || (phase == sa.phase && !open) {
		c.late++
		s.logf("server: late %s of client %d for round %d (collecting round %d)", step, m.Client, m.Round, c.round)
		return
	}
	if m.Task != c.task {
		s.rejectLocked(RejectTask, "server: rejected %s of client %d in round %d: task %d, the round's is %d", step, m.Client, m.Round, m.Task, c.task)
		return
	}
	i, ok := c.slot[m.Client]
	if !ok {
		s.rejectLocked(RejectNotSelected, "server: rejected %s of round %d from client %d, which was not selected", step, m.Round, m.Client)
		return
	}
	if phase > sa.phase {
		s.rejectLocked(RejectSecAgg, "server: rejected %s of client %d in round %d: out of order", step, m.Client, m.Round)
		return
	}
	if phase == phaseAdvertise {
		s.advertiseLocked(m, i)
		return
	}
	if sa.heard[m.Client] {
		s.rejectLocked(RejectDuplicate, "server: rejected duplicate %s of client %d in round %d", step, m.Client, m.Round)
		return
	}
	id := secagg.ID(m.Client)
	var n int
	var err error
	switch phase {
	case phaseShareKeys:
		var x secagg.ShareKeys
		if err = protocol.SecAggUnpack(m, step, &x); err == nil {
			if err = from(x.From, id); err == nil {
				n, err = x.EncodedLen(), sa.srv.AddShareKeys(&x)
			}
		}
	case phaseMasked:
		var x secagg.MaskedInput
		if err = protocol.SecAggUnpack(m, step, &x); err == nil {
			if err = from(x.From, id); err == nil {
				n, err = x.EncodedLen(), sa.srv.AddMaskedInput(&x)
			}
		}
	case phaseResponse:
		var x secagg.UnmaskResponse
		if err = protocol.SecAggUnpack(m, step, &x); err == nil {
			if err = from(x.From, id); err == nil {
				n, err = x.EncodedLen(), sa.srv.AddUnmaskResponse(&x)
			}
		}
	}
	if err != nil {
		s.rejectLocked(RejectSecAgg, "server: rejected %s of client %d in round %d: %v", step, m.Client, m.Round, err)
		return
	}
	s.rec.BytesUp += int64(n)
	s.rec.SecAggBytesUp += int64(n)
	sa.heard[m.Client] = true
	if sa.want[m.Client] {
		delete(sa.want, m.Client)
		if len(sa.want) == 0 {
			close(sa.full)
		}
	}
}

// from checks that a secagg message names the client that sent it.
func from(got, want secagg.ID) error {
	if got != want {
		return fmt.Errorf("payload of client %d", got)
	}
	return nil
}

// advertiseLocked handles the clear part of an update with its Advertise,
// the i-th selected client's (s.mu held).
func (s *Server) advertiseLocked(m *transport.Message, i int) {
	c := &s.col
	sa := c.sa
	if c.got[i] != nil {
		s.rejectLocked(RejectDuplicate, "server: rejected duplicate update of client %d in round %d", m.Client, m.Round)
		return
	}
	layout, err := s.checkLayout(m)
	if err != nil {
		s.rejectLocked(RejectShape, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	if s.rule != nil {
		// The rule checks the clear part and the shapes of the summed
		// tensors (their values it never sees).
		stand := *m
		stand.Tensors = nil
		for k := 0; k+1 < len(layout); k += 2 {
			stand.Tensors = append(stand.Tensors, transport.Tensor{Name: protocol.SketchTensor(k / 2), Rows: layout[k], Cols: layout[k+1]})
		}
		if err := s.rule.Check(&stand, c.flags); err != nil {
			s.rejectLocked(RejectRule, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
			return
		}
	}
	if sa.fixed && !slices.Equal(layout, sa.layout) {
		s.rejectLocked(RejectShape, "server: rejected update of client %d in round %d: summed tensors %v, others sent %v", m.Client, m.Round, layout, sa.layout)
		return
	}
	var adv secagg.Advertise
	if err := protocol.SecAggUnpack(m, protocol.TensorSAAdvertise, &adv); err != nil {
		s.rejectLocked(RejectSecAgg, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	if err := from(adv.From, secagg.ID(m.Client)); err != nil {
		s.rejectLocked(RejectSecAgg, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	if sa.srv == nil {
		sa.layout, sa.fixed = layout, true
		srv, err := secagg.NewServer(sa.vectorLen(), sa.p)
		if err != nil {
			s.rejectLocked(RejectSecAgg, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
			sa.fixed = false
			return
		}
		sa.srv = srv
	}
	if s.dp != nil {
		if err := s.dp.add(m); err != nil {
			s.rejectLocked(RejectDP, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
			return
		}
	}
	if err := sa.srv.AddAdvertise(&adv); err != nil {
		s.rejectLocked(RejectSecAgg, "server: rejected update of client %d in round %d: %v", m.Client, m.Round, err)
		return
	}
	c.got[i] = m
	clearPart := *m
	clearPart.Tensors = slices.DeleteFunc(slices.Clone(m.Tensors), func(t transport.Tensor) bool { return t.Name == protocol.TensorSAAdvertise })
	s.rec.BytesUp += int64(clearPart.BodyLen() + adv.EncodedLen())
	s.rec.SecAggBytesUp += int64(adv.EncodedLen())
	c.n++
	if c.n == len(c.got) {
		close(c.full)
	}
}

// checkLayout returns the summed tensors' shapes an update declares
// (protocol.TensorSALayout): one rows, cols pair per projected layer on a
// sketch round, none otherwise.
func (s *Server) checkLayout(m *transport.Message) ([]int, error) {
	t := m.Tensor(protocol.TensorSALayout)
	want := 0
	if s.col.flags&protocol.FlagSketch != 0 {
		want = 2 * len(protocol.Projected(s.model))
	}
	n := 0
	if t != nil {
		n = len(t.Data)
	}
	if n != want {
		return nil, fmt.Errorf("%q has %d values, want %d", protocol.TensorSALayout, n, want)
	}
	if want == 0 {
		return nil, nil
	}
	out := make([]int, n)
	total := 0
	for i, v := range t.Data {
		if !(v >= 1 && v <= 1<<24) || v != float32(math.Trunc(float64(v))) {
			return nil, fmt.Errorf("%q value %v is not a size", protocol.TensorSALayout, v)
		}
		out[i] = int(v)
		if i%2 == 1 {
			total += out[i-1] * out[i]
		}
	}
	if total > transport.MaxDim {
		return nil, fmt.Errorf("%q declares %d values", protocol.TensorSALayout, total)
	}
	return out, nil
}

// SecureMeanError bounds, per coordinate, the difference between the mean
// a secure round applies (S'/W' in float64, before its float32 rounding)
// and the exact weighted mean m of the survivors' deltas: with E =
// p.ErrorBound(n), the fixed-point error of a sum of n inputs (in the
// weighted deltas' sum S' and in the weights' sum W', which the server
// decodes as w), it is E (1 + |m|) / (w - 2E), plus 2^-52 |m| for the
// division. The plain mean differs from m by float64 rounding only.
func SecureMeanError(p secagg.Params, n int, w, m float64) float64 {
	e := p.ErrorBound(n)
	return e*(1+math.Abs(m))/(w-2*e) + math.Ldexp(math.Abs(m), -52)
}
