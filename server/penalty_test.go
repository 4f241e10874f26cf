package server

import (
	"math"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/transport"
)

// quadTol is the relative tolerance of the broadcast U and V (float32
// storage of float64 sums).
const quadTol = 1e-6

// fakeFisher is client c's diagonal Fisher in round: positive, distinct.
func fakeFisher(c, round int32, n int) []float32 {
	r := rng.New(13, "fake-fisher", int(c), int(round))
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(0.01 + math.Abs(r.NormFloat64()))
	}
	return f
}

func withFisher(u *transport.Message) *transport.Message {
	f := fakeFisher(u.Client, u.Round, len(u.Tensors[0].Data))
	u.Flags |= client.FlagFisher
	u.Tensors = append(u.Tensors, transport.Tensor{Name: client.TensorFisher, Rows: 1, Cols: len(f), Data: f})
	return u
}

func TestPenaltyThroughServer(t *testing.T) {
	for _, kind := range []string{"ewc", "fedcurv"} {
		t.Run(kind, func(t *testing.T) { testPenalty(t, kind) })
	}
}

func testPenalty(t *testing.T, kind string) {
	const T, R = 3, 2
	m := testModel(t, 1)
	np := m.NumParams()
	bus := newFakeBus()
	wantRejected := 0
	f := newFed(bus, func(rm *transport.Message) []*transport.Message {
		if rm.Flags&client.FlagFisher == 0 {
			return honestRespond(rm)
		}
		// Invalid Fisher updates first: a negative entry, a missing
		// Fisher, a short one. None may enter U, V or the params.
		neg := withFisher(honestUpdate(rm, rm.Clients[0]))
		neg.Tensors[1].Data[3] = -1e-3
		for i := range neg.Tensors[0].Data {
			neg.Tensors[0].Data[i] = 1000
		}
		missing := honestUpdate(rm, rm.Clients[1])
		for i := range missing.Tensors[0].Data {
			missing.Tensors[0].Data[i] = 1000
		}
		short := withFisher(honestUpdate(rm, rm.Clients[2]))
		short.Tensors[1].Data = short.Tensors[1].Data[:np-1]
		short.Tensors[1].Cols = np - 1
		out := []*transport.Message{neg, missing, short}
		wantRejected += len(out)
		for _, c := range rm.Clients {
			out = append(out, withFisher(honestUpdate(rm, c)))
		}
		return out
	})
	cfg := baseConfig(T, R)
	cfg.Penalty = &PenaltyConfig{Kind: kind}
	s, err := New(cfg, m, testEvaluator(m, T), bus)
	if err != nil {
		t.Fatal(err)
	}
	init := initParams(m, 6)
	params := slices.Clone(init)
	rec, err := s.Run(testContext(t), params)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if rec.RejectedUpdates != wantRejected {
		t.Errorf("RejectedUpdates: got %d, want %d", rec.RejectedUpdates, wantRejected)
	}
	bc := f.broadcasts()
	if len(bc) != T*R {
		t.Fatalf("got %d broadcasts, want %d", len(bc), T*R)
	}
	// The params follow plain FedAvg of the valid updates.
	want := slices.Clone(init)
	for _, b := range bc {
		if d := maxAbsDiff(paramsOf(b), want); d > paramTol {
			t.Errorf("round %d: broadcast params differ from the replay by %v", b.Round, d)
		}
		var deltas [][]float32
		var ns []int64
		for _, c := range b.Clients {
			deltas = append(deltas, honestDelta(c, b.Round, paramsOf(b)))
			ns = append(ns, honestN(c))
		}
		want = meanApply(want, deltas, ns, false, 1)
	}
	if d := maxAbsDiff(params, want); d > paramTol {
		t.Errorf("final params differ from the replay by %v", d)
	}

	// Hand-computed sums, task by task.
	u64, v64 := make([]float64, np), make([]float64, np)
	for task := 0; task < T; task++ {
		for r := task * R; r < (task+1)*R; r++ {
			b := bc[r]
			last := r%R == R-1
			if got := b.Flags&client.FlagFisher != 0; got != last {
				t.Errorf("round %d: FlagFisher %v, want %v", r, got, last)
			}
			gu, gv := findTensor(b.Tensors, client.TensorQuadU), findTensor(b.Tensors, client.TensorQuadV)
			if task == 0 {
				if gu != nil || gv != nil {
					t.Errorf("round %d of task 0: penalty tensors broadcast before any Fisher", r)
				}
				continue
			}
			if gu == nil || gv == nil {
				t.Fatalf("round %d of task %d: no penalty tensors", r, task)
			}
			for i := 0; i < np; i++ {
				if math.Abs(float64(gu.Data[i])-u64[i]) > quadTol*math.Abs(u64[i])+1e-12 {
					t.Fatalf("round %d: U[%d] = %v, want %v", r, i, gu.Data[i], u64[i])
				}
				if math.Abs(float64(gv.Data[i])-v64[i]) > quadTol*(math.Abs(v64[i])+u64[i]) {
					t.Fatalf("round %d: V[%d] = %v, want %v", r, i, gv.Data[i], v64[i])
				}
			}
		}
		// Add this task's terms from its last round.
		lastRound := bc[(task+1)*R-1]
		before := paramsOf(lastRound)
		var afterTask []float32
		if task+1 < T {
			afterTask = paramsOf(bc[(task+1)*R])
		} else {
			afterTask = params
		}
		var total float64
		for _, c := range lastRound.Clients {
			total += float64(honestN(c))
		}
		for _, c := range lastRound.Clients {
			fk := fakeFisher(c, lastRound.Round, np)
			dk := honestDelta(c, lastRound.Round, before)
			for i := range fk {
				switch kind {
				case "ewc": // sample-weighted mean Fisher, anchored at the global model after the task
					w := float64(honestN(c)) / total * float64(fk[i])
					u64[i] += w
					v64[i] += w * float64(afterTask[i])
				case "fedcurv": // mean over clients of F_k and F_k (before + delta_k)
					w := float64(fk[i]) / float64(len(lastRound.Clients))
					u64[i] += w
					v64[i] += w * (float64(before[i]) + float64(dk[i]))
				}
			}
		}
	}
}
