package methods_test

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/rng"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// srvQuadTol is the relative tolerance of the broadcast U and V (float32
// storage of float64 sums).
const srvQuadTol = 1e-6

// srvFakeFisher is client c's diagonal Fisher in round: positive, distinct.
func srvFakeFisher(c, round int32, n int) []float32 {
	r := rng.New(13, "fake-fisher", int(c), int(round))
	f := make([]float32, n)
	for i := range f {
		f[i] = float32(0.01 + math.Abs(r.NormFloat64()))
	}
	return f
}

func srvWithFisher(u *transport.Message) *transport.Message {
	f := srvFakeFisher(u.Client, u.Round, len(u.Tensors[0].Data))
	u.Flags |= protocol.FlagFisher
	u.Tensors = append(u.Tensors, transport.Tensor{Name: protocol.TensorFisher, Rows: 1, Cols: len(f), Data: f})
	return u
}

func TestPenaltyThroughServer(t *testing.T) {
	for _, kind := range []string{"ewc", "fedcurv"} {
		t.Run(kind, func(t *testing.T) { srvTestPenalty(t, kind) })
	}
}

func srvTestPenalty(t *testing.T, kind string) {
	const T, R = 3, 2
	m := servertest.Model(t, 1)
	np := m.NumParams()
	bus := transporttest.NewBus()
	wantRejected := 0
	f := servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
		if rm.Flags&protocol.FlagFisher == 0 {
			return servertest.HonestRespond(rm)
		}
		// Invalid Fisher updates first: a negative entry, a missing
		// Fisher, a short one. None may enter U, V or the params.
		neg := srvWithFisher(servertest.HonestUpdate(rm, rm.Clients[0]))
		neg.Tensors[1].Data[3] = -1e-3
		for i := range neg.Tensors[0].Data {
			neg.Tensors[0].Data[i] = 1000
		}
		missing := servertest.HonestUpdate(rm, rm.Clients[1])
		for i := range missing.Tensors[0].Data {
			missing.Tensors[0].Data[i] = 1000
		}
		short := srvWithFisher(servertest.HonestUpdate(rm, rm.Clients[2]))
		short.Tensors[1].Data = short.Tensors[1].Data[:np-1]
		short.Tensors[1].Cols = np - 1
		out := []*transport.Message{neg, missing, short}
		wantRejected += len(out)
		for _, c := range rm.Clients {
			out = append(out, srvWithFisher(servertest.HonestUpdate(rm, c)))
		}
		return out
	})
	cfg := servertest.Config(T, R)
	// The old PenaltyConfig{Kind: kind}, built through the registry.
	method, rule := srvRule(t, kind, nil, methods.Env{Model: m, Seed: servertest.Seed, Weighting: cfg.Weighting, ServerLR: cfg.ServerLR})
	cfg.Rule, cfg.LoRA = rule, method.Info().LoRA
	init, params, rec := servertest.Run(t, cfg, m, bus, 6)
	if rec.RejectedUpdates != wantRejected {
		t.Errorf("RejectedUpdates: got %d, want %d", rec.RejectedUpdates, wantRejected)
	}
	bc := f.Broadcasts()
	if len(bc) != T*R {
		t.Fatalf("got %d broadcasts, want %d", len(bc), T*R)
	}
	// The params follow plain FedAvg of the valid updates.
	want := slices.Clone(init)
	for _, b := range bc {
		if d := servertest.MaxAbsDiff(servertest.ParamsOf(b), want); d > servertest.ParamTol {
			t.Errorf("round %d: broadcast params differ from the replay by %v", b.Round, d)
		}
		want = servertest.HonestMeanApply(want, b.Clients, b.Round, servertest.ParamsOf(b), false, 1)
	}
	if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
		t.Errorf("final params differ from the replay by %v", d)
	}

	// Hand-computed sums, task by task.
	u64, v64 := make([]float64, np), make([]float64, np)
	for task := 0; task < T; task++ {
		for r := task * R; r < (task+1)*R; r++ {
			b := bc[r]
			last := r%R == R-1
			if got := b.Flags&protocol.FlagFisher != 0; got != last {
				t.Errorf("round %d: FlagFisher %v, want %v", r, got, last)
			}
			gu, gv := b.Tensor(protocol.TensorQuadU), b.Tensor(protocol.TensorQuadV)
			// FedCurv announces, once, in the round after a Fisher round,
			// whose Fisher entered its sums: the valid updates only.
			var wantAccepted []float32
			if kind == "fedcurv" && task > 0 && r%R == 0 {
				for _, c := range bc[r-1].Clients {
					wantAccepted = append(wantAccepted, float32(c))
				}
			}
			ga := b.Tensor(protocol.TensorCurvAccepted)
			switch {
			case wantAccepted == nil && ga != nil:
				t.Errorf("round %d: %s %v broadcast, want none", r, protocol.TensorCurvAccepted, ga.Data)
			case wantAccepted != nil && (ga == nil || !slices.Equal(ga.Data, wantAccepted)):
				t.Errorf("round %d: %s missing or not %v: %v", r, protocol.TensorCurvAccepted, wantAccepted, ga)
			}
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
				if math.Abs(float64(gu.Data[i])-u64[i]) > srvQuadTol*math.Abs(u64[i])+1e-12 {
					t.Fatalf("round %d: U[%d] = %v, want %v", r, i, gu.Data[i], u64[i])
				}
				if math.Abs(float64(gv.Data[i])-v64[i]) > srvQuadTol*(math.Abs(v64[i])+u64[i]) {
					t.Fatalf("round %d: V[%d] = %v, want %v", r, i, gv.Data[i], v64[i])
				}
			}
		}
		// Add this task's terms from its last round.
		lastRound := bc[(task+1)*R-1]
		before := servertest.ParamsOf(lastRound)
		var afterTask []float32
		if task+1 < T {
			afterTask = servertest.ParamsOf(bc[(task+1)*R])
		} else {
			afterTask = params
		}
		var total float64
		for _, c := range lastRound.Clients {
			total += float64(servertest.HonestN(c))
		}
		for _, c := range lastRound.Clients {
			fk := srvFakeFisher(c, lastRound.Round, np)
			dk := servertest.HonestDelta(c, lastRound.Round, before)
			for i := range fk {
				switch kind {
				case "ewc": // sample-weighted mean Fisher, anchored at the global model after the task
					w := float64(servertest.HonestN(c)) / total * float64(fk[i])
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

// The Fisher penalties are the methods ewc and fedcurv; there is no other
// kind (server's TestNewValidates "penalty-kind" refused Kind "si"), and
// one method cannot be FOT and a penalty at once (its "fot+penalty"): the
// server runs one Rule, and neither method takes the other's options.
func TestPenaltyMethodsAndFOTDoNotCombine(t *testing.T) {
	if _, ok := methods.Lookup("si"); ok {
		t.Error(`a penalty method "si" is registered`)
	}
	m := servertest.Model(t, 1)
	for _, kind := range []string{"ewc", "fedcurv"} {
		_, rule := srvRule(t, kind, map[string]any{"lambda": 10.0}, methods.Env{Model: m, Seed: servertest.Seed, ServerLR: 1})
		if got := rule.Flags(0, true); got != protocol.FlagFisher {
			t.Errorf("%s: flags of a task's last round %b, want FlagFisher", kind, got)
		}
		pm, _ := methods.Lookup(kind)
		if _, err := pm.Resolve(nil, map[string]any{"epsilon": 0.9}); !errors.Is(err, methods.ErrOptions) {
			t.Errorf("%s with FOT's epsilon: Resolve error %v, want ErrOptions", kind, err)
		}
		bad, err := pm.Resolve(nil, map[string]any{"lambda": -1.0})
		if err != nil {
			t.Fatalf("%s: Resolve lambda -1: %v", kind, err)
		}
		if p := pm.Check(bad); len(p) != 1 || p[0].Key != "lambda" {
			t.Errorf("%s with lambda -1: Check = %v, want one problem with lambda", kind, p)
		}
	}
	fot, _ := methods.Lookup("fot")
	if _, err := fot.Resolve(nil, map[string]any{"lambda": 10.0}); !errors.Is(err, methods.ErrOptions) {
		t.Errorf("fot with a penalty lambda: Resolve error %v, want ErrOptions", err)
	}
}
