package methods

import (
	"encoding/gob"
	"fmt"
	"io"

	"github.com/fotsim/fotsim/aggregator"
)

// The state the methods keep across rounds (protocol.Stateful), saved with
// encoding/gob in exported mirrors of their fields. Buffers and settings
// rebuilt by the method's constructor are not saved. LoadState checks
// that the saved state fits the side it is loaded into (same layers, same
// model size) and leaves the side unchanged when it does not.

// save gob-encodes v to w; load decodes r into v.
func save(w io.Writer, v any) error { return gob.NewEncoder(w).Encode(v) }
func load(r io.Reader, v any) error { return gob.NewDecoder(r).Decode(v) }

// fotSaved is fotState's state: the bases and the task's removed shares.
type fotSaved struct {
	Bases   []*aggregator.Basis
	Removed []float64
	Rounds  int
}

func (f *fotState) SaveState(w io.Writer) error {
	return save(w, fotSaved{Bases: f.bases, Removed: f.removed, Rounds: f.rounds})
}

func (f *fotState) LoadState(r io.Reader) error {
	var s fotSaved
	if err := load(r, &s); err != nil {
		return fmt.Errorf("fot state: %w", err)
	}
	return f.restore(s)
}

func (f *fotState) restore(s fotSaved) error {
	if len(s.Bases) != len(f.layers) || len(s.Removed) != len(f.layers) {
		return fmt.Errorf("fot state has %d bases and %d shares for %d layers", len(s.Bases), len(s.Removed), len(f.layers))
	}
	for i, b := range s.Bases {
		if b == nil || b.Dim() != f.bases[i].Dim() {
			return fmt.Errorf("fot state: basis %d does not fit layer %s (%d inputs)", i, f.layers[i].Name, f.bases[i].Dim())
		}
	}
	f.bases, f.removed, f.rounds = s.Bases, s.Removed, s.Rounds
	return nil
}

// penaltySaved is penaltyState's state: the Fisher sums and the FedCurv
// clients to announce.
type penaltySaved struct {
	U, V     []float32
	U64, V64 []float64
	Active   bool
	Accepted []float32
}

func (p *penaltyState) SaveState(w io.Writer) error {
	return save(w, penaltySaved{U: p.u, V: p.v, U64: p.u64, V64: p.v64, Active: p.active, Accepted: p.accepted})
}

func (p *penaltyState) LoadState(r io.Reader) error {
	var s penaltySaved
	if err := load(r, &s); err != nil {
		return fmt.Errorf("penalty state: %w", err)
	}
	n := len(p.u)
	if len(s.U) != n || len(s.V) != n || len(s.U64) != n || len(s.V64) != n {
		return fmt.Errorf("penalty state has sums of %d, %d, %d, %d values, the model %d parameters", len(s.U), len(s.V), len(s.U64), len(s.V64), n)
	}
	p.u, p.v, p.u64, p.v64, p.active, p.accepted = s.U, s.V, s.U64, s.V64, s.Active, s.Accepted
	return nil
}

// loraSaved is loraState's state: the LoRA rounds so far and FOT's state
// (fedsvd with fot).
type loraSaved struct {
	Rounds int
	FOT    *fotSaved
}

func (l *loraState) SaveState(w io.Writer) error {
	s := loraSaved{Rounds: l.rounds}
	if l.fot != nil {
		s.FOT = &fotSaved{Bases: l.fot.bases, Removed: l.fot.removed, Rounds: l.fot.rounds}
	}
	return save(w, s)
}

func (l *loraState) LoadState(r io.Reader) error {
	var s loraSaved
	if err := load(r, &s); err != nil {
		return fmt.Errorf("lora state: %w", err)
	}
	if (s.FOT != nil) != (l.fot != nil) {
		return fmt.Errorf("lora state with FOT %t, the method with FOT %t", s.FOT != nil, l.fot != nil)
	}
	if l.fot != nil {
		if err := l.fot.restore(*s.FOT); err != nil {
			return err
		}
	}
	l.rounds = s.Rounds
	return nil
}

// flwfSaved is flwfClient's state: the teacher and its task.
type flwfSaved struct {
	Teacher     []float32
	TeacherTask int
}

func (c *flwfClient) SaveState(w io.Writer) error {
	return save(w, flwfSaved{Teacher: c.teacher, TeacherTask: c.teacherTask})
}

func (c *flwfClient) LoadState(r io.Reader) error {
	var s flwfSaved
	if err := load(r, &s); err != nil {
		return fmt.Errorf("flwf state: %w", err)
	}
	c.teacher, c.teacherTask = s.Teacher, s.TeacherTask
	return nil
}

// curvClient is FedCurv's client side: a penalty client whose per-client
// terms are state (EWC's client keeps none).
type curvClient struct{ *penaltyClient }

// curvSaved is curvClient's state: each client's own accumulated term and
// the terms of the last Fisher round not yet announced.
type curvSaved struct {
	Own, Pending map[int]termSaved
}

type termSaved struct{ U, V []float32 }

func (c curvClient) SaveState(w io.Writer) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := curvSaved{Own: map[int]termSaved{}, Pending: map[int]termSaved{}}
	for id, t := range c.own {
		s.Own[id] = termSaved{t.u, t.v}
	}
	for id, t := range c.pending {
		s.Pending[id] = termSaved{t.u, t.v}
	}
	return save(w, s)
}

func (c curvClient) LoadState(r io.Reader) error {
	var s curvSaved
	if err := load(r, &s); err != nil {
		return fmt.Errorf("fedcurv state: %w", err)
	}
	terms := func(in map[int]termSaved) (map[int]*curvTerm, error) {
		if len(in) == 0 {
			return nil, nil
		}
		out := make(map[int]*curvTerm, len(in))
		for id, t := range in {
			if len(t.U) != len(t.V) {
				return nil, fmt.Errorf("fedcurv state: client %d has terms of %d and %d values", id, len(t.U), len(t.V))
			}
			out[id] = &curvTerm{u: t.U, v: t.V}
		}
		return out, nil
	}
	own, err := terms(s.Own)
	if err != nil {
		return err
	}
	pending, err := terms(s.Pending)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.own, c.pending = own, pending
	return nil
}
