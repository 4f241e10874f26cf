package server_test

import (
	"errors"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// forgeryRun runs a server of cfg (T tasks of R rounds) whose clients
// answer every round with the forged updates that forge returns for it
// first and their honest updates after, and checks that the run's
// parameters are those of the honest updates alone and that every forged
// update was rejected for reason. respond wraps the honest answers (nil:
// as they are).
func forgeryRun(t *testing.T, cfg server.Config, forge func(m *transport.Message) []*transport.Message,
	respond func(func(*transport.Message) []*transport.Message) func(*transport.Message) []*transport.Message,
	reason string) *transport.Message {
	t.Helper()
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	honest := servertest.HonestRespond
	if respond != nil {
		honest = respond(honest)
	}
	forged := 0
	var last *transport.Message
	servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
		f := forge(rm)
		forged += len(f)
		if len(f) > 0 {
			last = f[0]
		}
		return append(f, honest(rm)...)
	})
	init, params, rec := servertest.Run(t, cfg, m, bus, 3)
	want := slices.Clone(init)
	for r := 0; r < cfg.Tasks*cfg.RoundsPerTask; r++ {
		sel := server.Sample(cfg.Seed, r, cfg.Clients, cfg.ClientsPerRound)
		want = servertest.HonestMeanApply(want, sel, int32(r), want, false, 1)
	}
	if d := servertest.MaxAbsDiff(params, want); d > servertest.ParamTol {
		t.Errorf("params: max |got - honest replay| = %v, want <= %v", d, servertest.ParamTol)
	}
	if forged == 0 {
		t.Fatal("no forged update was sent")
	}
	if w := map[string]int{reason: forged}; rec.RejectedUpdates != forged || !maps.Equal(rec.RejectedByReason, w) {
		t.Errorf("rejected %d %v, want %d %v", rec.RejectedUpdates, rec.RejectedByReason, forged, w)
	}
	return last
}

// forgeOf returns a forge function that edits the honest update of the
// round's first selected client.
func forgeOf(edit func(u, round *transport.Message)) func(m *transport.Message) []*transport.Message {
	return func(m *transport.Message) []*transport.Message {
		u := servertest.HonestUpdate(m, m.Clients[0])
		edit(u, m)
		return []*transport.Message{u}
	}
}

func setScalar(u *transport.Message, name string, v float64) {
	for i := range u.Scalars {
		if u.Scalars[i].Name == name {
			u.Scalars[i].Value = v
			return
		}
	}
	u.Scalars = append(u.Scalars, transport.Scalar{Name: name, Value: v})
}

// TestRunRejectsBadValues covers every check of an update's values, one
// forged update per round before the honest ones, and the reason each is
// counted under.
func TestRunRejectsBadValues(t *testing.T) {
	delta := func(u *transport.Message) []float32 { return u.Tensor(protocol.TensorDelta).Data }
	tests := []struct {
		name, reason string
		edit         func(u, round *transport.Message)
		cfg          func(*server.Config)
	}{
		{"client id = clients", server.RejectClient, func(u, _ *transport.Message) { u.Client = 6 }, nil},
		{"negative client id", server.RejectClient, func(u, _ *transport.Message) { u.Client = -1 }, nil},
		{"task = tasks", server.RejectTask, func(u, _ *transport.Message) { u.Task = 2 }, nil},
		{"task 999", server.RejectTask, func(u, _ *transport.Message) { u.Task = 999 }, nil},
		{"negative task", server.RejectTask, func(u, _ *transport.Message) { u.Task = -1 }, nil},
		{"another task's", server.RejectTask, func(u, _ *transport.Message) { u.Task = 1 - u.Task }, nil},
		{"more samples than the shard", server.RejectSamples, func(u, _ *transport.Message) { u.N++ }, nil},
		{"no samples", server.RejectSamples, func(u, _ *transport.Message) { u.N = 0 }, nil},
		{"samples above the cap", server.RejectSamples, func(u, _ *transport.Message) { u.N = server.MaxSamples + 1 },
			func(c *server.Config) { c.Samples = nil }},
		{"negative steps", server.RejectScalar, func(u, _ *transport.Message) { setScalar(u, protocol.ScalarSteps, -1) }, nil},
		{"steps above the cap", server.RejectScalar, func(u, _ *transport.Message) { setScalar(u, protocol.ScalarSteps, 1e12) }, nil},
		{"DP rate 0", server.RejectScalar, func(u, _ *transport.Message) { setScalar(u, protocol.ScalarDPQ, 0) }, nil},
		{"DP rate above 1", server.RejectScalar, func(u, _ *transport.Message) { setScalar(u, protocol.ScalarDPQ, 1.5) }, nil},
		{"negative train time", server.RejectScalar, func(u, _ *transport.Message) { setScalar(u, protocol.ScalarTrainSeconds, -2) }, nil},
		{"1e30 delta", server.RejectNorm, func(u, _ *transport.Message) {
			for i := range delta(u) {
				delta(u)[i] = 1e30
			}
		}, nil},
		{"one value 1e30", server.RejectNorm, func(u, _ *transport.Message) { delta(u)[5] = -1e30 }, nil},
		{"one value at float32's max", server.RejectNorm, func(u, _ *transport.Message) { delta(u)[0] = math.MaxFloat32 }, nil},
		{"100x delta, bound 50", server.RejectNorm, func(u, _ *transport.Message) {
			for i := range delta(u) {
				delta(u)[i] *= 100
			}
		}, func(c *server.Config) { c.MaxUpdateNorm = 50 }},
		{"no delta", server.RejectShape, func(u, _ *transport.Message) { u.Tensors = nil }, nil},
		{"short delta", server.RejectShape, func(u, _ *transport.Message) {
			u.Tensors[0].Data = u.Tensors[0].Data[1:]
			u.Tensors[0].Cols--
		}, nil},
		{"a round not started", server.RejectRound, func(u, _ *transport.Message) { u.Round++ }, nil},
		{"a client not selected", server.RejectNotSelected, func(u, m *transport.Message) {
			for c := int32(0); ; c++ {
				if !slices.Contains(m.Clients, c) {
					u.Client, u.N = c, servertest.HonestN(c)
					return
				}
			}
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := servertest.Config(2, 2)
			cfg.Samples = func(_, c int) int64 { return servertest.HonestN(int32(c)) }
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			forgeryRun(t, cfg, forgeOf(tc.edit), nil, tc.reason)
		})
	}
}

// TestDefaultMaxUpdateNorm checks that the default bound takes updates
// just under it and rejects those just over it.
func TestDefaultMaxUpdateNorm(t *testing.T) {
	for _, tc := range []struct {
		norm     float64
		rejected int
	}{{0.999 * server.DefaultMaxUpdateNorm, 0}, {1.001 * server.DefaultMaxUpdateNorm, 3}} {
		m := servertest.Model(t, 1)
		bus := transporttest.NewBus()
		servertest.NewFed(bus, func(rm *transport.Message) []*transport.Message {
			out := servertest.HonestRespond(rm)
			for _, u := range out {
				d := u.Tensors[0].Data
				var s float64
				for _, v := range d {
					s += float64(v) * float64(v)
				}
				for i := range d {
					d[i] *= float32(tc.norm / math.Sqrt(s))
				}
			}
			if tc.rejected > 0 { // the round needs an update to end
				out = append(out, servertest.HonestRespond(rm)...)
			}
			return out
		})
		_, _, rec := servertest.Run(t, servertest.Config(1, 1), m, bus, 3)
		if rec.RejectedUpdates != tc.rejected || rec.RejectedByReason[server.RejectNorm] != tc.rejected {
			t.Errorf("norm %g: rejected %d updates (%v), want %d for their norm", tc.norm, rec.RejectedUpdates, rec.RejectedByReason, tc.rejected)
		}
	}
}

const testRun = "servertest-run"

// TestRunAuthenticated runs a server with Auth: honest updates signed
// with their client's key are aggregated, every forgery is rejected as
// "signature", and every message the server publishes verifies with the
// server's key.
func TestRunAuthenticated(t *testing.T) {
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	signed := func(h func(*transport.Message) []*transport.Message) func(*transport.Message) []*transport.Message {
		return servertest.Signed(h, keys, testRun)
	}
	sign := func(u *transport.Message, run string, key []byte) {
		if err := protocol.Sign(u, run, key); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name string
		edit func(u, round *transport.Message)
	}{
		{"unsigned", func(u, _ *transport.Message) {}},
		{"signed by another client", func(u, _ *transport.Message) { sign(u, testRun, keys.ClientKey(int(u.Client)+1)) }},
		{"signed by the server", func(u, _ *transport.Message) { sign(u, testRun, keys.ServerKey()) }},
		{"signed for another run", func(u, _ *transport.Message) { sign(u, testRun+"x", keys.ClientKey(int(u.Client))) }},
		{"signed with another run's keys", func(u, _ *transport.Message) {
			other, _ := auth.NewKeys()
			sign(u, testRun, other.ClientKey(int(u.Client)))
		}},
		{"changed after signing", func(u, _ *transport.Message) {
			sign(u, testRun, keys.ClientKey(int(u.Client)))
			u.Tensors[0].Data[0] += 1
		}},
		{"N changed after signing", func(u, _ *transport.Message) {
			sign(u, testRun, keys.ClientKey(int(u.Client)))
			u.N--
		}},
		{"1e30 delta, unsigned", func(u, _ *transport.Message) {
			for i := range u.Tensors[0].Data {
				u.Tensors[0].Data[i] = 1e30
			}
		}},
		{"garbage signature", func(u, _ *transport.Message) { u.Sig = make([]byte, 64) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := servertest.Config(2, 2)
			cfg.Auth, cfg.RunID = keys, testRun
			forgeryRun(t, cfg, forgeOf(tc.edit), signed, server.RejectSignature)
		})
	}
	// A signed update that fails a later check is rejected for that check:
	// a client that holds its key is trusted for its signature only.
	t.Run("signed 1e30 delta", func(t *testing.T) {
		cfg := servertest.Config(2, 2)
		cfg.Auth, cfg.RunID = keys, testRun
		forgeryRun(t, cfg, forgeOf(func(u, _ *transport.Message) {
			for i := range u.Tensors[0].Data {
				u.Tensors[0].Data[i] = 1e30
			}
			sign(u, testRun, keys.ClientKey(int(u.Client)))
		}), signed, server.RejectNorm)
	})
	t.Run("server messages are signed", func(t *testing.T) {
		m := servertest.Model(t, 1)
		bus := transporttest.NewBus()
		servertest.NewFed(bus, signed(servertest.HonestRespond))
		cfg := servertest.Config(2, 2)
		cfg.Auth, cfg.RunID = keys, testRun
		servertest.Run(t, cfg, m, bus, 3)
		sent := bus.Sent(servertest.Subjects.Round)
		if len(sent) != 5 || sent[4].Msg.Kind != transport.KindStop {
			t.Fatalf("%d messages on the round subject, want 4 rounds and a stop", len(sent))
		}
		for i, s := range sent {
			if err := protocol.Verify(s.Msg, testRun, keys.ServerPublic()); err != nil {
				t.Errorf("message %d (%s): %v", i, s.Msg.Kind, err)
			}
			if err := protocol.Verify(s.Msg, testRun+"x", keys.ServerPublic()); !errors.Is(err, protocol.ErrSignature) {
				t.Errorf("message %d verifies for another run: %v", i, err)
			}
		}
	})
}

func TestValidateChecks(t *testing.T) {
	keys, _ := auth.NewKeys()
	for name, edit := range map[string]func(*server.Config){
		"negative max norm": func(c *server.Config) { c.MaxUpdateNorm = -1 },
		"NaN max norm":      func(c *server.Config) { c.MaxUpdateNorm = math.NaN() },
		"auth without run":  func(c *server.Config) { c.Auth = keys },
	} {
		cfg := servertest.Config(1, 1)
		edit(&cfg)
		if err := cfg.Validate(); !errors.Is(err, server.ErrConfig) {
			t.Errorf("%s: got %v, want ErrConfig", name, err)
		}
	}
	cfg := servertest.Config(1, 1)
	cfg.MaxUpdateNorm = math.Inf(1)
	cfg.Auth, cfg.RunID = keys, "r"
	if err := cfg.Validate(); err != nil {
		t.Errorf("no norm bound, with auth: %v", err)
	}
}
