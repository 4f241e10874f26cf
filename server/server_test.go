package server_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/data"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// chi2Bound bounds the chi-square of client counts, 9 degrees of freedom
// (p < 1e-5). The replay tolerance and the run timeout are servertest's
// ParamTol and RunTimeout.
const chi2Bound = 40.0

var errInjected = errors.New("fake: undecodable message")

// logSink collects Logf lines.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, format)
}

func (l *logSink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func TestSample(t *testing.T) {
	tests := []struct {
		name       string
		seed       uint64
		n, k       int
		wantVaries bool // different rounds give different sets
	}{
		{"10of100", 1, 100, 10, true},
		{"3of10", 2, 10, 3, true},
		{"1of2", 3, 2, 1, true},
		{"all", 4, 7, 7, false},
		{"none", 5, 7, 0, false},
		{"1of1", 6, 1, 1, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var distinct int
			first := server.Sample(tc.seed, 0, tc.n, tc.k)
			for round := 0; round < 20; round++ {
				got := server.Sample(tc.seed, round, tc.n, tc.k)
				if len(got) != tc.k {
					t.Fatalf("round %d: got %d ids, want %d", round, len(got), tc.k)
				}
				for i, id := range got {
					if id < 0 || int(id) >= tc.n {
						t.Errorf("round %d: id %d outside [0, %d)", round, id, tc.n)
					}
					if i > 0 && got[i-1] >= id {
						t.Errorf("round %d: ids %v not strictly increasing", round, got)
					}
				}
				if again := server.Sample(tc.seed, round, tc.n, tc.k); !slices.Equal(again, got) {
					t.Errorf("round %d: got %v then %v, want the same draw", round, got, again)
				}
				if round > 0 && !slices.Equal(got, first) {
					distinct++
				}
			}
			if tc.wantVaries && distinct < 10 {
				t.Errorf("only %d of 19 rounds differ from round 0, want most of them", distinct)
			}
			if !tc.wantVaries && distinct != 0 {
				t.Errorf("%d rounds differ from round 0, want none (k = %d of %d)", distinct, tc.k, tc.n)
			}
		})
	}
	if slices.Equal(server.Sample(1, 3, 100, 10), server.Sample(2, 3, 100, 10)) {
		t.Error("seeds 1 and 2 give the same clients in round 3")
	}
}

func TestSampleUniform(t *testing.T) {
	const n, k, rounds = 10, 3, 3000
	counts := make([]float64, n)
	pairs := map[[2]int32]int{}
	for r := 0; r < rounds; r++ {
		s := server.Sample(9, r, n, k)
		for _, id := range s {
			counts[id]++
		}
		pairs[[2]int32{s[0], s[1]}]++
	}
	want := float64(rounds*k) / n
	var chi2 float64
	for _, c := range counts {
		chi2 += (c - want) * (c - want) / want
	}
	if chi2 > chi2Bound {
		t.Errorf("chi-square of client counts %v: got %.1f, want <= %v", counts, chi2, chi2Bound)
	}
	// The two smallest ids of a 3-subset of 10 take 36 values (second id
	// at most 8); 3000 uniform draws miss none of them in practice.
	if len(pairs) != 36 {
		t.Errorf("got %d distinct (smallest, second) pairs, want 36", len(pairs))
	}
}

func TestSamplePanics(t *testing.T) {
	for _, tc := range []struct{ n, k int }{{5, 6}, {5, -1}, {0, 1}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Sample(n=%d, k=%d): got no panic, want one", tc.n, tc.k)
				}
			}()
			server.Sample(1, 0, tc.n, tc.k)
		}()
	}
}

func TestEvaluatorAccuracy(t *testing.T) {
	m := servertest.Model(t, 2)
	_, test := servertest.Data(8, 53)
	views := []data.View{servertest.PermutedView(test, 0), {Base: test, Idx: []int32{5, 9, 11, 2, 40, 41, 42}}}
	heads := []int{0, 1}
	params := servertest.InitParams(m, 3)
	// Direct count, one batch per task.
	direct := func(v data.View, head int) float64 {
		n := v.Len()
		x := make([]float32, n*servertest.In)
		y := make([]int32, n)
		rows := make([]int32, n)
		for i := range rows {
			rows[i] = int32(i)
		}
		v.Gather(x, y, rows)
		pred := make([]int32, n)
		m.NewWorkspace(n).Predict(params, x, n, head, pred)
		correct := 0
		for i := range pred {
			if pred[i] == y[i] {
				correct++
			}
		}
		return 100 * float64(correct) / float64(n)
	}
	want := []float64{direct(views[0], heads[0]), direct(views[1], heads[1])}
	if want[0] == 0 || want[0] == 100 {
		t.Fatalf("task 0 accuracy %v: the test needs one strictly between 0 and 100", want[0])
	}
	// So that agreeing with want[1] shows the evaluator used heads[1].
	if direct(views[1], 0) == want[1] {
		t.Fatalf("task 1 scores %v%% with either head; the test cannot tell the heads apart", want[1])
	}
	for _, batch := range []int{1, 7, 16, 100} {
		for _, workers := range []int{1, 2, 5, 32} {
			e := server.NewEvaluator(m, views, heads, batch, workers)
			if e.Tasks() != 2 {
				t.Fatalf("Tasks: got %d, want 2", e.Tasks())
			}
			for ti := range views {
				if got := e.Accuracy(params, ti); got != want[ti] {
					t.Errorf("batch %d workers %d task %d: got %v%%, want %v%%", batch, workers, ti, got, want[ti])
				}
			}
		}
	}
	empty := server.NewEvaluator(m, []data.View{{Base: test, Idx: []int32{}}}, []int{0}, 8, 2)
	if got := empty.Accuracy(params, 0); got != 0 {
		t.Errorf("empty test set: got %v, want 0", got)
	}
}

func TestRunFedAvgMatchesReplay(t *testing.T) {
	tests := []struct {
		name    string
		w       aggregator.Weighting
		lr      float32
		samples bool
	}{
		{"uniform", aggregator.Uniform, 1, false},
		{"samples", aggregator.Samples, 1, true},
		{"uniform-lr0.5", aggregator.Uniform, 0.5, false},
		{"samples-lr1.5", aggregator.Samples, 1.5, true},
	}
	const T, R = 2, 3
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := servertest.Model(t, 1)
			bus := transporttest.NewBus()
			f := servertest.NewFed(bus, servertest.HonestRespond)
			cfg := servertest.Config(T, R)
			cfg.Weighting, cfg.ServerLR, cfg.EvalEvery = tc.w, tc.lr, 2
			var reports []server.TaskReport
			cfg.OnTask = func(r server.TaskReport) { reports = append(reports, r) }
			init, params, rec := servertest.Run(t, cfg, m, bus, 1)
			// The server's evaluator, built again.
			ev := servertest.Evaluator(m, T)

			// Replay: what FedAvg must have done.
			want := slices.Clone(init)
			var atRound [][]float32 // params broadcast in each round
			for r := 0; r < T*R; r++ {
				atRound = append(atRound, slices.Clone(want))
				sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
				want = servertest.HonestMeanApply(want, sel, int32(r), want, tc.samples, tc.lr)
			}
			if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
				t.Errorf("final params: max |got - replay| = %v, want <= %v", d, servertest.ParamTol)
			}
			if d := servertest.MaxAbsDiff(params, init); d < 0.01 {
				t.Errorf("params moved only %v; the replay check is vacuous", d)
			}

			bc := f.Broadcasts()
			if len(bc) != T*R {
				t.Fatalf("got %d broadcasts, want %d", len(bc), T*R)
			}
			for r, m := range bc {
				sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
				if int(m.Round) != r || int(m.Task) != r/R || !slices.Equal(m.Clients, sel) {
					t.Errorf("broadcast %d: got round %d task %d clients %v, want %d %d %v", r, m.Round, m.Task, m.Clients, r, r/R, sel)
				}
				if d := servertest.MaxAbsDiff(servertest.ParamsOf(m), atRound[r]); d > servertest.ParamTol {
					t.Errorf("broadcast %d: max |params - replay| = %v", r, d)
				}
				if m.Flags != 0 || len(m.Tensors) != 1 {
					t.Errorf("broadcast %d: FedAvg sent flags %b and %d tensors, want 0 and 1", r, m.Flags, len(m.Tensors))
				}
			}
			// Parameters at the end of task i: the broadcast of the
			// first round of task i+1, or the final ones.
			endOf := func(task int) []float32 { return servertest.ParamsAfter(bc, params, (task+1)*R-1) }
			// ...and after round r (0-based).
			after := func(r int) []float32 { return servertest.ParamsAfter(bc, params, r) }

			if rec.Rounds != T*R {
				t.Errorf("Rounds: got %d, want %d", rec.Rounds, T*R)
			}
			if len(rec.AccMatrix) != T {
				t.Fatalf("AccMatrix has %d rows, want %d", len(rec.AccMatrix), T)
			}
			for i, row := range rec.AccMatrix {
				if len(row) != T {
					t.Fatalf("AccMatrix row %d has %d entries, want %d", i, len(row), T)
				}
				for j, v := range row {
					if j > i {
						if !math.IsNaN(v) {
							t.Errorf("acc[%d][%d] = %v above the diagonal, want NaN", i, j, v)
						}
						continue
					}
					if w := ev.Accuracy(endOf(i), j); v != w {
						t.Errorf("acc[%d][%d]: got %v, want %v", i, j, v, w)
					}
				}
			}
			// Curves every EvalEvery = 2 rounds: after rounds 2, 4, 6.
			if len(rec.Curves) != 3 {
				t.Fatalf("got %d curve points, want 3", len(rec.Curves))
			}
			for i, c := range rec.Curves {
				wantRound := 2 * (i + 1)
				wantTask := (wantRound - 1) / R
				if c.Round != wantRound || c.Task != wantTask || len(c.Acc) != wantTask+1 {
					t.Errorf("curve %d: got round %d task %d %d accs, want %d %d %d", i, c.Round, c.Task, len(c.Acc), wantRound, wantTask, wantTask+1)
					continue
				}
				for j, a := range c.Acc {
					if w := ev.Accuracy(after(wantRound-1), j); a != w {
						t.Errorf("curve %d acc[%d]: got %v, want %v", i, j, a, w)
					}
				}
			}
			// Bytes: every broadcast counts once per selected client; every
			// accepted update once.
			var down, up int64
			// (The messages' content: BodyLen, without the signature trailer.)
			for _, s := range bus.Sent(servertest.Subjects.Round) {
				if s.Msg.Kind == transport.KindRound {
					down += int64(s.Msg.BodyLen()) * int64(len(s.Msg.Clients))
				}
			}
			for _, s := range bus.Sent(servertest.Subjects.Update) {
				up += int64(s.Msg.BodyLen())
			}
			if rec.BytesDown != down || down == 0 {
				t.Errorf("BytesDown: got %d, want %d (> 0)", rec.BytesDown, down)
			}
			if rec.BytesUp != up || up == 0 {
				t.Errorf("BytesUp: got %d, want %d (> 0)", rec.BytesUp, up)
			}
			if rec.RejectedUpdates != 0 || rec.LateUpdates != 0 {
				t.Errorf("rejected %d, late %d, want 0 and 0", rec.RejectedUpdates, rec.LateUpdates)
			}
			if len(rec.TasksDetail) != T {
				t.Fatalf("got %d task details, want %d", len(rec.TasksDetail), T)
			}
			for i, d := range rec.TasksDetail {
				if d.Task != i || d.Rounds != R || d.BasisDims != nil {
					t.Errorf("task detail %d: got task %d rounds %d basis %v, want %d %d nil", i, d.Task, d.Rounds, d.BasisDims, i, R)
				}
			}
			if len(reports) != T {
				t.Fatalf("OnTask called %d times, want %d", len(reports), T)
			}
			for i, r := range reports {
				if r.Task != i || r.Tasks != T || !slices.Equal(r.Acc, rec.AccMatrix[i][:i+1]) {
					t.Errorf("report %d: got task %d/%d acc %v, want %d/%d %v", i, r.Task, r.Tasks, r.Acc, i, T, rec.AccMatrix[i][:i+1])
				}
			}
			checkEndsWithStop(t, bus)
		})
	}
}

func TestTrainLossIsMeanOverTaskRounds(t *testing.T) {
	// What the server computes today: the mean over every accepted update
	// of the task's rounds, as results.TaskDetail documents.
	const T, R = 2, 3
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	servertest.NewFed(bus, servertest.HonestRespond)
	_, _, rec := servertest.Run(t, servertest.Config(T, R), m, bus, 1)
	for task := 0; task < T; task++ {
		var sum float64
		var n int
		for r := task * R; r < (task+1)*R; r++ {
			for _, c := range server.Sample(servertest.Seed, r, 6, 3) {
				sum += servertest.HonestLoss(c, int32(r))
				n++
			}
		}
		if got, want := rec.TasksDetail[task].TrainLoss, sum/float64(n); math.Abs(got-want) > 1e-12 {
			t.Errorf("task %d TrainLoss: got %v, want %v", task, got, want)
		}
	}
}

func TestOnRoundReportsEveryRound(t *testing.T) {
	const T, R, every = 2, 3, 2
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	servertest.NewFed(bus, servertest.HonestRespond)
	cfg := servertest.Config(T, R)
	cfg.EvalEvery = every
	var got []server.RoundReport
	cfg.OnRound = func(r server.RoundReport) { got = append(got, r) }
	_, _, rec := servertest.Run(t, cfg, m, bus, 1)
	if len(got) != T*R {
		t.Fatalf("%d reports, want %d", len(got), T*R)
	}
	curve := 0
	for i, r := range got {
		if r.Round != i || r.Task != i/R || r.Tasks != T || r.Rounds != T*R || r.Updates != 3 {
			t.Errorf("report %d = %+v, want round %d of task %d, %d tasks, %d rounds, 3 updates", i, r, i, i/R, T, T*R)
		}
		var sum float64
		for _, c := range server.Sample(servertest.Seed, i, 6, 3) {
			sum += servertest.HonestLoss(c, int32(i))
		}
		if want := sum / 3; math.Abs(r.TrainLoss-want) > 1e-12 {
			t.Errorf("report %d loss %v, want the round's mean %v", i, r.TrainLoss, want)
		}
		if i > 0 && r.Elapsed < got[i-1].Elapsed {
			t.Errorf("report %d elapsed %v before report %d's %v", i, r.Elapsed, i-1, got[i-1].Elapsed)
		}
		if (i+1)%every != 0 {
			if r.Acc != nil {
				t.Errorf("report %d has accuracies %v without a curve point", i, r.Acc)
			}
			continue
		}
		if curve >= len(rec.Curves) || !slices.Equal(r.Acc, rec.Curves[curve].Acc) || rec.Curves[curve].Round != i+1 {
			t.Errorf("report %d accuracies %v, want curve point %d of the record", i, r.Acc, curve)
		}
		curve++
	}
	if curve != len(rec.Curves) {
		t.Errorf("%d reports with accuracies, record has %d curve points", curve, len(rec.Curves))
	}
}

// badUpdates returns, for round broadcast m, a sequence of updates
// that mixes every kind of invalid update with the valid ones, and the
// numbers of rejected (by reason, server.Reject...) and late messages it
// contains.
func badUpdates(m *transport.Message, nparams int) (msgs []*transport.Message, rejected map[string]int, late int) {
	rejected = map[string]int{}
	sel := m.Clients
	bad := func(c int32, edit func(u *transport.Message)) {
		u := servertest.HonestUpdate(m, c)
		d := u.Tensors[0].Data
		for i := range d {
			d[i] = 1000 // never aggregated, or the params show it
		}
		edit(u)
		msgs = append(msgs, u)
	}
	// Invalid updates of selected clients that have not answered yet.
	bad(sel[0], func(u *transport.Message) { // wrong length
		u.Tensors[0].Data = u.Tensors[0].Data[:nparams-1]
		u.Tensors[0].Cols = nparams - 1
	})
	bad(sel[1], func(u *transport.Message) { u.N = 0 })
	bad(sel[1], func(u *transport.Message) { u.N = -3 })
	bad(sel[2], func(u *transport.Message) { u.Tensors[0].Name = "delta2" }) // no delta
	rejected[server.RejectShape] += 2
	rejected[server.RejectSamples] += 2
	// Wrong kinds on the update subject.
	bad(sel[0], func(u *transport.Message) { u.Kind = transport.KindRound })
	bad(sel[0], func(u *transport.Message) { u.Kind = transport.KindStop })
	rejected[server.RejectKind] += 2
	// A client that was not selected.
	for c := int32(0); ; c++ {
		if !slices.Contains(sel, c) {
			bad(c, func(*transport.Message) {})
			break
		}
	}
	rejected[server.RejectNotSelected]++
	// A stale round is late; a round that has not started, rejected.
	bad(sel[0], func(u *transport.Message) { u.Round = m.Round - 1 })
	bad(sel[1], func(u *transport.Message) { u.Round = m.Round + 1 })
	late++
	rejected[server.RejectRound]++
	// The valid updates.
	msgs = append(msgs, servertest.HonestRespond(m)...)
	// Duplicates after the valid ones.
	bad(sel[0], func(*transport.Message) {})
	bad(sel[2], func(u *transport.Message) {
		u.Tensors[0].Data = servertest.HonestDelta(sel[2], m.Round, servertest.ParamsOf(m))
	})
	rejected[server.RejectDuplicate] += 2
	return msgs, rejected, late
}

func TestRunRejectsInvalidUpdates(t *testing.T) {
	const T, R = 1, 3
	m := servertest.Model(t, 1)
	np := m.NumParams()
	bus := transporttest.NewBus()
	var wantRejected, wantLate int
	wantReasons := map[string]int{}
	servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
		// A message the transport could not decode reaches the handler
		// as err.
		bus.Inject(servertest.Subjects.Update, errInjected)
		msgs, rej, late := badUpdates(rm, np)
		wantReasons[server.RejectDecode]++
		for r, n := range rej {
			wantReasons[r] += n
		}
		wantLate += late
		return msgs
	})
	logs := &logSink{}
	cfg := servertest.Config(T, R)
	cfg.Logf = logs.logf
	cfg.MaxUpdateNorm = math.Inf(1) // the bad updates' deltas are large: test the other checks
	init, params, rec := servertest.Run(t, cfg, m, bus, 2)
	want := slices.Clone(init)
	for r := 0; r < T*R; r++ {
		sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
		want = servertest.HonestMeanApply(want, sel, int32(r), want, false, 1)
	}
	if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
		t.Errorf("final params: max |got - valid-only replay| = %v, want <= %v", d, servertest.ParamTol)
	}
	for _, n := range wantReasons {
		wantRejected += n
	}
	if rec.RejectedUpdates != wantRejected {
		t.Errorf("RejectedUpdates: got %d, want %d", rec.RejectedUpdates, wantRejected)
	}
	if !maps.Equal(rec.RejectedByReason, wantReasons) {
		t.Errorf("RejectedByReason: got %v, want %v", rec.RejectedByReason, wantReasons)
	}
	if rec.LateUpdates != wantLate {
		t.Errorf("LateUpdates: got %d, want %d", rec.LateUpdates, wantLate)
	}
	if got := logs.count(); got != wantRejected+wantLate {
		t.Errorf("log lines: got %d, want one per rejected or late message (%d)", got, wantRejected+wantLate)
	}
	// BytesUp counts only accepted updates: T*R*K of them, all of one size.
	one := servertest.HonestUpdate(&transport.Message{Round: 0, Tensors: []transport.Tensor{{Name: protocol.TensorParams, Data: init}}}, 0)
	up := int64(T*R*cfg.ClientsPerRound) * int64(one.BodyLen())
	if rec.BytesUp != up {
		t.Errorf("BytesUp: got %d, want %d (accepted updates only)", rec.BytesUp, up)
	}
}

func TestRunDeadline(t *testing.T) {
	const T, R = 1, 2
	m := servertest.Model(t, 1)
	t.Run("silent-client", func(t *testing.T) {
		bus := transporttest.NewBus()
		silent := func(sel []int32) int32 { return sel[len(sel)-1] }
		servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
			var out []*transport.Message
			for _, c := range rm.Clients {
				if c != silent(rm.Clients) {
					out = append(out, servertest.HonestUpdate(rm, c))
				}
			}
			return out
		})
		cfg := servertest.Config(T, R)
		cfg.Deadline = 30 * time.Millisecond
		cfg.Weighting = aggregator.Samples
		s, err := server.New(cfg, m, servertest.Evaluator(m, T), bus)
		if err != nil {
			t.Fatal(err)
		}
		init := servertest.InitParams(m, 3)
		params := slices.Clone(init)
		start := time.Now()
		rec, err := s.Run(servertest.Context(t), params)
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if el := time.Since(start); el < time.Duration(T*R)*cfg.Deadline {
			t.Errorf("Run took %v, want at least the %d deadlines it waited for", el, T*R)
		}
		if rec.Rounds != T*R || rec.LateUpdates != 0 || rec.RejectedUpdates != 0 {
			t.Errorf("rounds %d late %d rejected %d, want %d 0 0 (a silent client is neither)", rec.Rounds, rec.LateUpdates, rec.RejectedUpdates, T*R)
		}
		want := slices.Clone(init)
		for r := 0; r < T*R; r++ {
			sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
			answered := slices.DeleteFunc(slices.Clone(sel), func(c int32) bool { return c == silent(sel) })
			want = servertest.HonestMeanApply(want, answered, int32(r), want, true, 1)
		}
		if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
			t.Errorf("final params: max |got - replay without the silent client| = %v, want <= %v", d, servertest.ParamTol)
		}
	})
	t.Run("no-updates", func(t *testing.T) {
		bus := transporttest.NewBus()
		servertest.NewFed(bus, func(*transport.Message) []*transport.Message { return nil })
		cfg := servertest.Config(T, R)
		cfg.Deadline = 10 * time.Millisecond
		s, err := server.New(cfg, m, servertest.Evaluator(m, T), bus)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Run(servertest.Context(t), servertest.InitParams(m, 3))
		if !errors.Is(err, server.ErrNoUpdates) {
			t.Errorf("Run: got %v, want ErrNoUpdates", err)
		}
	})
	t.Run("only-invalid-updates", func(t *testing.T) {
		bus := transporttest.NewBus()
		servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
			u := servertest.HonestUpdate(rm, rm.Clients[0])
			u.N = 0
			return []*transport.Message{u}
		})
		cfg := servertest.Config(T, R)
		cfg.Deadline = 10 * time.Millisecond
		s, err := server.New(cfg, m, servertest.Evaluator(m, T), bus)
		if err != nil {
			t.Fatal(err)
		}
		_, err = s.Run(servertest.Context(t), servertest.InitParams(m, 3))
		if !errors.Is(err, server.ErrNoUpdates) {
			t.Errorf("Run: got %v, want ErrNoUpdates", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		// Without a deadline the server waits for every client, until ctx
		// ends.
		bus := transporttest.NewBus()
		servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
			return []*transport.Message{servertest.HonestUpdate(rm, rm.Clients[0])}
		})
		s, err := server.New(servertest.Config(T, R), m, servertest.Evaluator(m, T), bus)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err = s.Run(ctx, servertest.InitParams(m, 3))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Run: got %v, want context.DeadlineExceeded", err)
		}
		checkEndsWithStop(t, bus)
	})
}

func TestRunLateUpdateAfterDeadline(t *testing.T) {
	// A client that answers after the round closed is counted late and
	// not aggregated into the next round.
	const T, R = 1, 2
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	var held []*transport.Message
	servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
		out := slices.Clone(held) // last round's held-back update arrives now
		held = nil
		for i, c := range rm.Clients {
			u := servertest.HonestUpdate(rm, c)
			if i == 0 {
				held = append(held, u)
				continue
			}
			out = append(out, u)
		}
		return out
	})
	cfg := servertest.Config(T, R)
	cfg.Deadline = 20 * time.Millisecond
	init, params, rec := servertest.Run(t, cfg, m, bus, 4)
	if rec.LateUpdates != 1 || rec.RejectedUpdates != 0 {
		t.Errorf("late %d rejected %d, want 1 and 0", rec.LateUpdates, rec.RejectedUpdates)
	}
	want := slices.Clone(init)
	for r := 0; r < T*R; r++ {
		sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
		want = servertest.HonestMeanApply(want, sel[1:], int32(r), want, false, 1)
	}
	if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
		t.Errorf("final params: max |got - replay| = %v, want <= %v", d, servertest.ParamTol)
	}
}

func TestNewValidates(t *testing.T) {
	m := servertest.Model(t, 1)
	ev := servertest.Evaluator(m, 2)
	tests := []struct {
		name string
		edit func(*server.Config)
	}{
		{"tasks0", func(c *server.Config) { c.Tasks = 0 }},
		{"rounds0", func(c *server.Config) { c.RoundsPerTask = 0 }},
		{"clients0", func(c *server.Config) { c.Clients = 0 }},
		{"k0", func(c *server.Config) { c.ClientsPerRound = 0 }},
		{"k>n", func(c *server.Config) { c.ClientsPerRound = 7 }},
		{"lr0", func(c *server.Config) { c.ServerLR = 0 }},
		// FOT's and the penalties' settings (formerly "fot+penalty",
		// "fot-oversample0", "penalty-kind") are the methods' own: see
		// methods/server_fot_test.go and methods/server_penalty_test.go.
		{"lora-factors", func(c *server.Config) { c.LoRA = "a" }},
		{"pretrain-all-tasks", func(c *server.Config) { c.Pretrain = &server.PretrainConfig{Tasks: 2} }},
		{"pretrain-negative", func(c *server.Config) { c.Pretrain = &server.PretrainConfig{Tasks: -1} }},
		{"dp-delta", func(c *server.Config) { c.DP = &server.DPConfig{Delta: 1, Sigma: make([]float64, 6)} }},
		{"dp-sigma", func(c *server.Config) { c.DP = &server.DPConfig{Delta: 1e-5, Sigma: make([]float64, 5)} }},
		{"evaluator-tasks", func(c *server.Config) { c.Tasks = 3 }},
	}
	for _, tc := range tests {
		cfg := servertest.Config(2, 1)
		tc.edit(&cfg)
		if _, err := server.New(cfg, m, ev, transporttest.NewBus()); err == nil {
			t.Errorf("%s: got no error", tc.name)
		} else if !errors.Is(err, server.ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", tc.name, err)
		}
	}
	if _, err := server.New(servertest.Config(2, 1), m, ev, transporttest.NewBus()); err != nil {
		t.Errorf("valid config: got %v", err)
	}
	for name, edit := range map[string]func(*server.Config){
		"lora-ab":  func(c *server.Config) { c.LoRA = "ab" },
		"lora-b":   func(c *server.Config) { c.LoRA = "b" },
		"pretrain": func(c *server.Config) { c.Pretrain = &server.PretrainConfig{Tasks: 1} },
		"dp":       func(c *server.Config) { c.DP = &server.DPConfig{Delta: 1e-5, Sigma: make([]float64, 6)} },
	} {
		cfg := servertest.Config(2, 1)
		edit(&cfg)
		if _, err := server.New(cfg, m, ev, transporttest.NewBus()); err != nil {
			t.Errorf("valid config %s: got %v", name, err)
		}
	}
	s, _ := server.New(servertest.Config(2, 1), m, ev, transporttest.NewBus())
	if _, err := s.Run(servertest.Context(t), make([]float32, 3)); !errors.Is(err, server.ErrConfig) {
		t.Errorf("Run with 3 params: got %v, want ErrConfig", err)
	}
}

func TestValidateWrapsErrConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(*server.Config)
	}{
		{"lr-NaN", func(c *server.Config) { c.ServerLR = float32(math.NaN()) }},
		{"lr-Inf", func(c *server.Config) { c.ServerLR = float32(math.Inf(1)) }},
		// "fot-epsilon0" and "fot-criterion" moved with FOT's settings to
		// methods/server_fot_test.go.
		{"lora-factors", func(c *server.Config) { c.LoRA = "ba" }},
	}
	for _, tc := range tests {
		cfg := servertest.Config(1, 1)
		tc.edit(&cfg)
		if err := cfg.Validate(); !errors.Is(err, server.ErrConfig) {
			t.Errorf("%s: got %v, want an error wrapping ErrConfig", tc.name, err)
		}
	}
}

func BenchmarkEvaluatorAccuracy(b *testing.B) {
	m := servertest.Model(b, 1)
	_, test := servertest.Data(8, 2000)
	e := server.NewEvaluator(m, []data.View{{Base: test}}, []int{0}, 128, 2)
	params := servertest.InitParams(m, 1)
	b.ReportAllocs()
	for b.Loop() {
		e.Accuracy(params, 0)
	}
	b.ReportMetric(float64(b.N*test.Len())/b.Elapsed().Seconds(), "samples/s")
}

// checkEndsWithStop checks that the last message on the round subject is
// Stop: the server tells the hosts the run is over, also after a failure.
func checkEndsWithStop(t *testing.T, bus *transporttest.Bus) {
	t.Helper()
	rs := bus.Sent(servertest.Subjects.Round)
	if len(rs) == 0 {
		t.Fatal("nothing was sent on the round subject")
	}
	if k := rs[len(rs)-1].Msg.Kind; k != transport.KindStop {
		t.Errorf("last round-subject message: got kind %v, want Stop", k)
	}
}
