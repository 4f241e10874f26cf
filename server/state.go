package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/fotsim/fotsim/dp"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
)

// State is the round loop between two rounds: what a checkpoint saves
// (Config.Checkpoint) and what a resumed run starts from (Config.Resume).
// A server that resumes from a State runs the remaining rounds exactly as
// the server that saved it would have: same messages, same record.
// Every field is exported for encoding/gob.
type State struct {
	// Task and Round name the next round: round Round (within the task,
	// 0-based) of task Task. Round 0 is a task's start; Task == the run's
	// tasks: every task is done.
	Task, Round int
	Params      []float32 // the global model
	Record      []byte    // the record so far (JSON, results.Record)
	// The current task's accumulators when Round > 0: its detail so far
	// (JSON, results.TaskDetail) and summed training loss.
	Detail  []byte
	LossSum float64
	LossN   int
	// Rejected and late updates so far, and the rejections by reason.
	Rejected, Late int
	Reasons        map[string]int
	// DP is every client's privacy accountant that has one (DP runs).
	DP map[int]*dp.Accountant
	// Rule is the method's state (protocol.Stateful.SaveState); nil for a
	// method that keeps none.
	Rule []byte
	// The base a LoRA run's hosts were last sent whole (broadcast.go):
	// BaseSent when there was one, its version, and BaseDirty when Params'
	// base differs from it (the next round sends the whole model again).
	// When BaseSent and not BaseDirty, the hosts have Params' base.
	BaseSent, BaseDirty bool
	BaseVersion         int
}

// snapshot returns the loop's state before round r of task t, with the
// task's accumulators (detail nil at a task's start).
func (s *Server) snapshot(t, r int, params []float32, lossSum float64, lossN int, detail *results.TaskDetail) (*State, error) {
	st := &State{Task: t, Round: r, Params: params, LossSum: lossSum, LossN: lossN}
	var err error
	if st.Record, err = json.Marshal(s.rec); err != nil {
		return nil, fmt.Errorf("server: save the record: %w", err)
	}
	if detail != nil {
		if st.Detail, err = json.Marshal(detail); err != nil {
			return nil, fmt.Errorf("server: save the task detail: %w", err)
		}
	}
	s.mu.Lock()
	st.Rejected, st.Late, st.Reasons = s.col.rejected, s.col.late, maps.Clone(s.col.reasons)
	s.mu.Unlock()
	if s.dp != nil {
		st.DP = map[int]*dp.Accountant{}
		for c, a := range s.dp.acct {
			if a != nil {
				st.DP[c] = a
			}
		}
	}
	if b := &s.base; b.on && b.sent {
		st.BaseSent, st.BaseVersion, st.BaseDirty = true, b.version, b.dirty || !b.sameBase(params)
	}
	if sf, ok := s.rule.(protocol.Stateful); ok {
		var b bytes.Buffer
		if err := sf.SaveState(&b); err != nil {
			return nil, fmt.Errorf("server: save the method's state: %w", err)
		}
		st.Rule = b.Bytes()
	}
	return st, nil
}

// checkpoint hands the loop's state before round r of task t to
// Config.Checkpoint, if set.
func (s *Server) checkpoint(t, r int, params []float32, lossSum float64, lossN int, detail *results.TaskDetail) error {
	if s.cfg.Checkpoint == nil {
		return nil
	}
	st, err := s.snapshot(t, r, params, lossSum, lossN, detail)
	if err != nil {
		return err
	}
	if err := s.cfg.Checkpoint(st); err != nil {
		return fmt.Errorf("server: checkpoint before round %d of task %d: %w", r, t, err)
	}
	return nil
}

// restore loads st into a server that has not run yet: params, the
// record, the counters, the privacy accounts and the method's state. It
// returns the current task's detail and loss sums (zero at a task's start).
func (s *Server) restore(st *State, params []float32) (detail results.TaskDetail, lossSum float64, lossN int, err error) {
	T, R := s.cfg.Tasks, s.cfg.RoundsPerTask
	switch {
	case st.Task < 0 || st.Task > T || st.Round < 0 || st.Round >= R || (st.Task == T && st.Round != 0):
		return detail, 0, 0, fmt.Errorf("%w: saved state before round %d of task %d, the run has %d tasks of %d rounds", ErrConfig, st.Round, st.Task, T, R)
	case len(st.Params) != len(params):
		return detail, 0, 0, fmt.Errorf("%w: saved model has %d parameters, the model %d", ErrConfig, len(st.Params), len(params))
	case st.Round > 0 && st.Detail == nil:
		return detail, 0, 0, fmt.Errorf("%w: saved state in the middle of task %d without its detail", ErrConfig, st.Task)
	}
	var rec results.Record
	if err := json.Unmarshal(st.Record, &rec); err != nil {
		return detail, 0, 0, fmt.Errorf("server: saved record: %w", err)
	}
	if len(rec.AccMatrix) != T || (s.cfg.System != nil) != (rec.System != nil) {
		return detail, 0, 0, fmt.Errorf("%w: saved record has %d tasks (the run %d) and system totals %t (the run %t)", ErrConfig, len(rec.AccMatrix), T, rec.System != nil, s.cfg.System != nil)
	}
	if st.Round > 0 {
		if err := json.Unmarshal(st.Detail, &detail); err != nil {
			return detail, 0, 0, fmt.Errorf("server: saved task detail: %w", err)
		}
	}
	if s.dp != nil {
		for c, a := range st.DP {
			if c < 0 || c >= len(s.dp.cfg.Sigma) || a == nil {
				return detail, 0, 0, fmt.Errorf("%w: saved privacy account of client %d, the run has %d clients", ErrConfig, c, len(s.dp.cfg.Sigma))
			}
			if s.dp.acct == nil {
				s.dp.acct = make([]*dp.Accountant, len(s.dp.cfg.Sigma))
			}
			s.dp.acct[c] = a
		}
	}
	sf, stateful := s.rule.(protocol.Stateful)
	switch {
	case stateful && st.Rule == nil:
		return detail, 0, 0, fmt.Errorf("%w: the saved state has none of the method's", ErrConfig)
	case stateful:
		if err := sf.LoadState(bytes.NewReader(st.Rule)); err != nil {
			return detail, 0, 0, fmt.Errorf("server: load the method's state: %w", err)
		}
	case st.Rule != nil:
		return detail, 0, 0, fmt.Errorf("%w: the saved state has a method state, the method keeps none", ErrConfig)
	}
	copy(params, st.Params)
	if st.BaseSent {
		b := &s.base
		b.on, b.ranges = true, protocol.Trainable(s.model, "ab", 0)
		b.base = append(b.base[:0], params...)
		b.version, b.sent, b.dirty = st.BaseVersion, true, st.BaseDirty
	}
	s.rec = rec
	s.mu.Lock()
	s.col.rejected, s.col.late, s.col.reasons = st.Rejected, st.Late, maps.Clone(st.Reasons)
	s.mu.Unlock()
	return detail, st.LossSum, st.LossN, nil
}
