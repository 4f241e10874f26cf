package sim

import (
	"bytes"
	"context"
	"maps"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// forger is an attacker with a connection to the run's NATS server: it
// hears the first round broadcast of a run and publishes forged updates
// and forged round-subject messages into it. It holds the run's keys
// only to forge "stolen key" messages that the other checks must catch.
type forger struct {
	t    *testing.T
	conn *transport.Conn
	keys *auth.Keys
	once sync.Once
	done chan struct{}
	// What it sent, by the reason it must be rejected for.
	updates, broadcasts map[string]int
}

func startForger(t *testing.T, e *transport.Embedded, keys *auth.Keys) *forger {
	conn, err := e.Connect("forger")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	f := &forger{t: t, conn: conn, keys: keys, done: make(chan struct{}), updates: map[string]int{}, broadcasts: map[string]int{}}
	_, err = conn.SubscribeRaw(transport.SubjectPrefix+".*.round", func(subject string, data []byte) {
		// A whole frame (doc.go): type 0x03, 3 zero bytes, the message.
		var m transport.Message
		if len(data) < 4 || data[0] != 3 || transport.Decode(data[4:], &m) != nil || m.Kind != transport.KindRound {
			return
		}
		f.once.Do(func() {
			defer close(f.done)
			f.attack(subject, &m)
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return f
}

// attack publishes every forgery into the run of round message m, heard
// on subject, and waits until the NATS server has them.
func (f *forger) attack(subject string, m *transport.Message) {
	run := strings.TrimSuffix(strings.TrimPrefix(subject, transport.SubjectPrefix+"."), ".round")
	subj := transport.SubjectsFor(run)
	if subj.Round != subject {
		f.t.Errorf("run id %q from subject %q gives subjects %+v", run, subject, subj)
	}
	params := m.Tensor(protocol.TensorParams).Data
	c0, c1 := m.Clients[0], m.Clients[1]
	sign := func(x *transport.Message, key []byte) *transport.Message {
		if err := protocol.Sign(x, run, key); err != nil {
			f.t.Error(err)
		}
		return x
	}
	fill := func(v float32) []float32 {
		d := make([]float32, len(params))
		for i := range d {
			d[i] = v
		}
		return d
	}
	poison := make([]float32, len(params))
	for i, p := range params {
		poison[i] = -10 * p
	}
	update := func(c int32, delta []float32) *transport.Message {
		return &transport.Message{
			Kind: transport.KindUpdate, Round: m.Round, Task: m.Task, Client: c, N: 1,
			Scalars: []transport.Scalar{{Name: protocol.ScalarLoss, Value: 0.1}, {Name: protocol.ScalarSteps, Value: 1}},
			Tensors: []transport.Tensor{{Name: protocol.TensorDelta, Rows: 1, Cols: len(delta), Data: delta}},
		}
	}
	other, _ := auth.NewKeys()
	for _, u := range []struct {
		reason string
		m      *transport.Message
	}{
		{server.RejectSignature, update(c0, poison)},                                  // right round and ids, unsigned
		{server.RejectSignature, sign(update(c0, poison), f.keys.ClientKey(int(c1)))}, // another client's key
		{server.RejectSignature, sign(update(c0, poison), other.ClientKey(int(c0)))},  // another run's key
		{server.RejectSignature, update(c1, fill(1e30))},                              // a 1e30 delta
		{server.RejectNorm, sign(update(c1, fill(1e30)), f.keys.ClientKey(int(c1)))},  // with c1's stolen key
		{server.RejectSignature, update(c0, poison[1:])},                              // wrong shape
		{server.RejectClient, update(200000, poison)},
	} {
		if _, err := f.conn.Publish(subj.Update, u.m); err != nil {
			f.t.Error(err)
		}
		f.updates[u.reason]++
	}
	round := func(task int32, clients []int32) *transport.Message {
		return &transport.Message{Kind: transport.KindRound, Round: m.Round + 1, Task: task, Clients: clients,
			Tensors: []transport.Tensor{{Name: protocol.TensorParams, Rows: 1, Cols: len(poison), Data: poison}}}
	}
	many := make([]int32, 200000)
	for i := range many {
		many[i] = int32(i)
	}
	stop := func() *transport.Message { return &transport.Message{Kind: transport.KindStop, Round: m.Round} }
	for _, b := range []struct {
		reason string
		m      *transport.Message
	}{
		{client.RejectSignature, stop()},
		{client.RejectSignature, sign(stop(), f.keys.ClientKey(0))},
		{client.RejectSignature, round(m.Task, m.Clients)}, // the next round with a poisoned model
		{client.RejectSignature, round(999, m.Clients)},
		{client.RejectTask, sign(round(999, m.Clients), f.keys.ServerKey())}, // with the server's stolen key
		{client.RejectSignature, round(m.Task, many)},
		{client.RejectClients, sign(round(m.Task, many), f.keys.ServerKey())},
		{client.RejectKind, update(c0, poison)},
	} {
		if _, err := f.conn.Publish(subj.Round, b.m); err != nil {
			f.t.Error(err)
		}
		f.broadcasts[b.reason]++
	}
	if err := f.conn.Flush(); err != nil {
		f.t.Error(err)
	}
}

// safeLog is an io.Writer for Options.Log.
type safeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *safeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *safeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestForgeriesAreRejected publishes every measured forgery into real
// runs (the synthetic built-in, FedAvg and FOT, over an embedded NATS
// server that an attacker's connection also reaches): forged updates with
// the right round and client ids (unsigned, or signed with the wrong key),
// 1e30 deltas, a client id of 200000, forged Stop messages, forged rounds
// (a poisoned model, task 999, 200,000 client ids). Each is rejected and
// counted under its reason, and the run's record and final model are
// those of a clean run, bit for bit.
func TestForgeriesAreRejected(t *testing.T) {
	sc, err := scenarios.Load("synthetic", []string{"train.rounds_per_task=4", "eval.every=2"})
	if err != nil {
		t.Fatal(err)
	}
	env := NewEnv()
	for _, r := range sc.Runs() {
		t.Run(r.Method.Label(), func(t *testing.T) {
			clean, cleanParams := execute(t, env, sc, r, Options{})
			if clean.RejectedUpdates != 0 || clean.RejectedBroadcasts != 0 || clean.LateUpdates != 0 {
				t.Fatalf("clean run: rejected %d updates, %d broadcasts, %d late", clean.RejectedUpdates, clean.RejectedBroadcasts, clean.LateUpdates)
			}

			e, err := transport.StartEmbedded()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(e.Shutdown)
			attacked := *sc
			attacked.Transport.NATS = e.URL()
			keys, err := auth.NewKeys()
			if err != nil {
				t.Fatal(err)
			}
			f := startForger(t, e, keys)
			log := &safeLog{}
			opts := Options{Keys: keys, Log: log, OnRound: func(_ scenarios.Run, rr server.RoundReport) {
				if rr.Round != 0 {
					return
				}
				// Let the forgeries, sent when round 0 began, reach the
				// server and the host before the run goes on.
				select {
				case <-f.done:
				case <-time.After(10 * time.Second):
					t.Error("the forger heard no round")
				}
				time.Sleep(300 * time.Millisecond)
			}}
			rec, params := execute(t, env, &attacked, r, opts)

			if rec.RejectedUpdates != sum(f.updates) || !maps.Equal(rec.RejectedByReason, f.updates) {
				t.Errorf("rejected updates: %d %v, want %d %v", rec.RejectedUpdates, rec.RejectedByReason, sum(f.updates), f.updates)
			}
			if rec.RejectedBroadcasts != sum(f.broadcasts) || !maps.Equal(rec.RejectedBroadcastsByReason, f.broadcasts) {
				t.Errorf("rejected broadcasts: %d %v, want %d %v", rec.RejectedBroadcasts, rec.RejectedBroadcastsByReason, sum(f.broadcasts), f.broadcasts)
			}
			if rec.LateUpdates != 0 {
				t.Errorf("late updates: %d, want 0", rec.LateUpdates)
			}
			if n, want := strings.Count(log.String(), "rejected"), sum(f.updates)+sum(f.broadcasts); n != want {
				t.Errorf("%d log lines say rejected, want %d:\n%s", n, want, log)
			}
			// The result is the clean run's: the record but for the
			// rejection counts, and the final model, bit for bit.
			got := *rec
			got.RejectedUpdates, got.RejectedByReason = 0, nil
			got.RejectedBroadcasts, got.RejectedBroadcastsByReason = 0, nil
			if a, b := canonical(t, &got), canonical(t, clean); !bytes.Equal(a, b) {
				t.Errorf("record differs from the clean run's:\ngot  %s\nwant %s", a, b)
			}
			if !slices.EqualFunc(params, cleanParams, func(a, b float32) bool { return math.Float32bits(a) == math.Float32bits(b) }) {
				t.Error("final parameters differ from the clean run's")
			}
		})
	}
}

// execute builds and runs one experiment and returns its record and final
// parameters.
func execute(t *testing.T, env *Env, sc *scenarios.Scenario, r scenarios.Run, opts Options) (*results.Record, []float32) {
	t.Helper()
	x, err := env.Build(sc, r)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rec, err := x.Execute(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	return rec, x.Final
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
