package server_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// The methods' rules are tested through the server in package methods
// (methods/server_*_test.go); this tests how the round loop drives a Rule.

const (
	ruleTensor = "rule/task" // recRule's broadcast tensor: the task
	ruleBad    = "rule/bad"  // an update carrying this scalar fails recRule.Check
)

// recRule records its calls and acts visibly: it asks for FlagFisher on a
// task's last round (never with noFlags), broadcasts the task, rejects
// updates carrying the scalar ruleBad, halves the aggregate of normal
// rounds and reports task+1 as the task's basis_dims["rule"].
type recRule struct {
	noFlags bool

	mu      sync.Mutex
	calls   []string
	applied []server.Applied // copies
	ends    []recEnd
}

type recEnd struct {
	task, got     int
	before, after []float32
}

func (r *recRule) log(call string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
}

func (r *recRule) Flags(task int, last bool) uint32 {
	r.log("flags")
	if last && !r.noFlags {
		return protocol.FlagFisher
	}
	return 0
}

func (r *recRule) Broadcast(ts []transport.Tensor, task int, last bool) []transport.Tensor {
	r.log("broadcast")
	return append(ts, transport.Tensor{Name: ruleTensor, Rows: 1, Cols: 1, Data: []float32{float32(task)}})
}

func (r *recRule) Check(m *transport.Message, flags uint32) error {
	r.log("check")
	if _, bad := m.Scalar(ruleBad); bad {
		return errors.New("rule says no")
	}
	return nil
}

func (r *recRule) BeforeApply(agg []float32, task int) {
	r.log("before")
	for i := range agg {
		agg[i] *= 0.5
	}
}

func (r *recRule) AfterApply(a *server.Applied) error {
	r.log("after")
	c := server.Applied{Round: a.Round, Params: slices.Clone(a.Params), Before: slices.Clone(a.Before), Ups: slices.Clone(a.Ups), Agg: slices.Clone(a.Agg)}
	r.mu.Lock()
	r.applied = append(r.applied, c)
	r.mu.Unlock()
	return nil
}

func (r *recRule) EndTask(got []*transport.Message, before, after []float32, task int, detail *results.TaskDetail) error {
	r.log("end")
	detail.BasisDims = map[string]int{"rule": task + 1}
	r.mu.Lock()
	r.ends = append(r.ends, recEnd{task, len(got), slices.Clone(before), slices.Clone(after)})
	r.mu.Unlock()
	return nil
}

// ruleRespond answers like servertest.HonestRespond, after one update that
// the rule rejects (from the first selected client, which then answers
// honestly).
func ruleRespond(m *transport.Message) []*transport.Message {
	bad := servertest.HonestUpdate(m, m.Clients[0])
	bad.Scalars = append(bad.Scalars, transport.Scalar{Name: ruleBad, Value: 1})
	return append([]*transport.Message{bad}, servertest.HonestRespond(m)...)
}

// ruleRound is the calls of one round of 3 selected clients and the
// rejected update: Flags, Broadcast, Check for the 4 updates, then more.
func ruleRound(more ...string) []string {
	return append([]string{"flags", "broadcast", "check", "check", "check", "check"}, more...)
}

func TestRuleHooks(t *testing.T) {
	const T, R, K = 2, 2, 3
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	f := servertest.NewFed(bus, ruleRespond)
	rule := &recRule{}
	cfg := servertest.Config(T, R)
	cfg.Rule = rule
	init, params, rec := servertest.Run(t, cfg, m, bus, 11)
	var want []string
	for r := 0; r < T*R; r++ {
		if r%R == R-1 {
			want = append(want, ruleRound("before", "after", "end")...)
		} else {
			want = append(want, ruleRound("before", "after")...)
		}
	}
	if !slices.Equal(rule.calls, want) {
		t.Errorf("calls:\n got %s\nwant %s", strings.Join(rule.calls, " "), strings.Join(want, " "))
	}
	if rec.RejectedUpdates != T*R {
		t.Errorf("RejectedUpdates: got %d, want %d (one per round, by Check)", rec.RejectedUpdates, T*R)
	}
	bc := f.Broadcasts()
	if len(bc) != T*R {
		t.Fatalf("got %d broadcasts, want %d", len(bc), T*R)
	}
	after := func(r int) []float32 { return servertest.ParamsAfter(bc, params, r) }
	// Every round applies the halved mean of the valid updates.
	replay := slices.Clone(init)
	for r, b := range bc {
		last := r%R == R-1
		if got, want := b.Flags, map[bool]uint32{true: protocol.FlagFisher}[last]; got != want {
			t.Errorf("round %d: flags %b, want %b", r, got, want)
		}
		if rt := b.Tensor(ruleTensor); rt == nil || len(rt.Data) != 1 || rt.Data[0] != float32(b.Task) {
			t.Errorf("round %d: rule tensor %v, want [%d]", r, rt, b.Task)
		}
		if d := servertest.MaxAbsDiff(servertest.ParamsOf(b), replay); d > servertest.ParamTol {
			t.Errorf("round %d: broadcast params differ from the replay by %v", r, d)
		}
		replay = servertest.HonestMeanApply(replay, b.Clients, b.Round, servertest.ParamsOf(b), false, 0.5)

		a := rule.applied[r]
		if a.Round != r || !slices.Equal(a.Before, servertest.ParamsOf(b)) || !slices.Equal(a.Params, after(r)) {
			t.Errorf("round %d: AfterApply saw round %d, before/params equal to the broadcasts %v/%v", r, a.Round,
				slices.Equal(a.Before, servertest.ParamsOf(b)), slices.Equal(a.Params, after(r)))
		}
		if len(a.Ups) != K {
			t.Fatalf("round %d: AfterApply saw %d updates, want %d", r, len(a.Ups), K)
		}
		for k, u := range a.Ups {
			if u.Client != int(b.Clients[k]) || u.N != servertest.HonestN(b.Clients[k]) {
				t.Errorf("round %d: update %d is client %d n %d, want %d %d", r, k, u.Client, u.N, b.Clients[k], servertest.HonestN(b.Clients[k]))
			}
		}
		for i := range a.Params {
			if a.Params[i] != a.Before[i]+a.Agg[i] {
				t.Fatalf("round %d: params[%d] = %v, want before + agg (after BeforeApply) = %v", r, i, a.Params[i], a.Before[i]+a.Agg[i])
			}
		}
	}
	if d := servertest.MaxAbsDiff(params, replay); d > servertest.ParamTol {
		t.Errorf("final params differ from the replay with halved aggregates by %v", d)
	}
	if len(rule.ends) != T {
		t.Fatalf("EndTask called %d times, want %d", len(rule.ends), T)
	}
	for task, e := range rule.ends {
		r := (task+1)*R - 1
		if e.task != task || e.got != K || !slices.Equal(e.before, servertest.ParamsOf(bc[r])) || !slices.Equal(e.after, after(r)) {
			t.Errorf("EndTask %d: task %d, %d updates, before/after equal to the last round's %v/%v; want task %d, %d updates",
				task, e.task, e.got, slices.Equal(e.before, servertest.ParamsOf(bc[r])), slices.Equal(e.after, after(r)), task, K)
		}
		if got := rec.TasksDetail[task].BasisDims["rule"]; got != task+1 {
			t.Errorf("task %d: detail basis_dims[rule] = %d, want %d (set by EndTask)", task, got, task+1)
		}
	}
}

// In pretraining tasks the server runs plain FedAvg on the base: the rule
// still chooses the flags, broadcasts, checks and ends the task, but never
// touches the aggregate (no BeforeApply, no AfterApply).
func TestRuleInPretraining(t *testing.T) {
	const T, R = 2, 2
	fedRounds := slices.Concat(ruleRound(), ruleRound("end"))
	normal := slices.Concat(ruleRound("before", "after"), ruleRound("before", "after", "end"))
	tests := []struct {
		name      string
		central   bool
		noFlags   bool
		wantCalls []string
		wantFlags []uint32 // of the broadcasts
		rounds0   int      // task 0's rounds in its detail
	}{
		{"federated", false, false, slices.Concat(fedRounds, normal),
			[]uint32{protocol.FlagBase, protocol.FlagBase | protocol.FlagFisher, 0, protocol.FlagFisher}, R},
		// After central pretraining, one round without training collects
		// what the rule asks for at the task's end...
		{"central", true, false, slices.Concat([]string{"flags"}, ruleRound("end"), normal),
			[]uint32{protocol.FlagBase | protocol.FlagNoTrain | protocol.FlagFisher, 0, protocol.FlagFisher}, 1},
		// ...and none when it asks for nothing.
		{"central-no-flags", true, true, slices.Concat([]string{"flags"}, normal),
			[]uint32{0, 0}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := servertest.Model(t, 1)
			bus := transporttest.NewBus()
			f := servertest.NewFed(bus, ruleRespond)
			rule := &recRule{noFlags: tc.noFlags}
			cfg := servertest.Config(T, R)
			cfg.Rule = rule
			cfg.Pretrain = &server.PretrainConfig{Tasks: 1}
			var centralCalls []int
			if tc.central {
				cfg.Pretrain.Central = func(_ context.Context, params []float32, task int) (float64, error) {
					centralCalls = append(centralCalls, task)
					for i := range params {
						params[i] += 0.25
					}
					return 0.7, nil
				}
			}
			init, params, rec := servertest.Run(t, cfg, m, bus, 12)
			if !slices.Equal(rule.calls, tc.wantCalls) {
				t.Errorf("calls:\n got %s\nwant %s", strings.Join(rule.calls, " "), strings.Join(tc.wantCalls, " "))
			}
			if tc.central && !slices.Equal(centralCalls, []int{0}) {
				t.Errorf("Central called for tasks %v, want [0]", centralCalls)
			}
			bc := f.Broadcasts()
			var flags []uint32
			for _, b := range bc {
				flags = append(flags, b.Flags)
			}
			if !slices.Equal(flags, tc.wantFlags) {
				t.Errorf("broadcast flags %b, want %b", flags, tc.wantFlags)
			}
			// Replay: central pretraining adds 0.25; pretraining rounds
			// apply the plain mean, the others the halved one.
			replay := slices.Clone(init)
			if tc.central {
				for i := range replay {
					replay[i] += 0.25
				}
			}
			for r, b := range bc {
				if d := servertest.MaxAbsDiff(servertest.ParamsOf(b), replay); d > servertest.ParamTol {
					t.Errorf("broadcast %d: params differ from the replay by %v", r, d)
				}
				lr := float32(0.5)
				if b.Flags&protocol.FlagBase != 0 {
					lr = 1
				}
				replay = servertest.HonestMeanApply(replay, b.Clients, b.Round, servertest.ParamsOf(b), false, lr)
			}
			if d := servertest.MaxAbsDiff(params, replay); d > servertest.ParamTol {
				t.Errorf("final params differ from the replay by %v", d)
			}
			if rec.PretrainTasks != 1 || rec.TasksDetail[0].Rounds != tc.rounds0 {
				t.Errorf("pretrain tasks %d, task 0 rounds %d, want 1 and %d", rec.PretrainTasks, rec.TasksDetail[0].Rounds, tc.rounds0)
			}
			if tc.central && rec.TasksDetail[0].TrainLoss != 0.7 {
				t.Errorf("task 0 train loss %v, want Central's 0.7", rec.TasksDetail[0].TrainLoss)
			}
		})
	}
}
