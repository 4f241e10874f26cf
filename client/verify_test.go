package client_test

import (
	"crypto/ed25519"
	"maps"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/client/clienttest"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/transport"
)

// updateClients returns the (round, client) pairs of ups, in order of
// round then client.
func updateClients(ups []*transport.Message) [][2]int32 {
	var out [][2]int32
	for _, u := range ups {
		out = append(out, [2]int32{u.Round, u.Client})
	}
	slices.SortFunc(out, func(a, b [2]int32) int {
		if a[0] != b[0] {
			return int(a[0] - b[0])
		}
		return int(a[1] - b[1])
	})
	return out
}

// TestHostRejectsBadRounds sends a host every kind of malformed round
// message between two valid rounds: only the valid ones are trained, each
// other one is counted under its reason.
func TestHostRejectsBadRounds(t *testing.T) {
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 80, 1), 2, 5)
	cfg := clienttest.HostConfig(0, 8, 2)
	cfg.Tasks, cfg.Clients, cfg.ClientsPerRound = 2, 8, 4
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 1)
	ids := func(n int) []int32 {
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(i % 8)
		}
		return out
	}
	rh.Send(t, clienttest.RoundMsg(5, 1, []int32{1, 2}, global, 0)) // valid
	bad := []struct {
		reason string
		m      *transport.Message
	}{
		{client.RejectRound, clienttest.RoundMsg(4, 1, []int32{3}, global, 0)}, // a replay of an older round
		{client.RejectRound, clienttest.RoundMsg(-1, 1, []int32{3}, global, 0)},
		{client.RejectTask, clienttest.RoundMsg(6, 2, []int32{3}, global, 0)}, // task = tasks
		{client.RejectTask, clienttest.RoundMsg(6, 999, []int32{3}, global, 0)},
		{client.RejectTask, clienttest.RoundMsg(6, -1, []int32{3}, global, 0)},
		{client.RejectClients, clienttest.RoundMsg(6, 1, []int32{0, 1, 2, 3, 4}, global, 0)}, // more than per round
		{client.RejectClients, clienttest.RoundMsg(6, 1, ids(200000), global, 0)},
		{client.RejectClients, clienttest.RoundMsg(6, 1, []int32{3, 8}, global, 0)}, // id = clients
		{client.RejectClients, clienttest.RoundMsg(6, 1, []int32{-1}, global, 0)},
		{client.RejectClients, clienttest.RoundMsg(6, 1, []int32{3, 3}, global, 0)}, // twice
		{client.RejectParams, clienttest.RoundMsg(6, 1, []int32{3}, global[1:], 0)},
		{client.RejectKind, &transport.Message{Kind: transport.KindUpdate, Round: 6, Clients: []int32{3}}},
	}
	want := map[string]int{}
	for _, b := range bad {
		rh.Send(t, b.m)
		want[b.reason]++
	}
	rh.Send(t, clienttest.RoundMsg(5, 1, []int32{4}, global, 0)) // a round sent again (server.Config.Resend)
	rh.Send(t, clienttest.RoundMsg(6, 1, []int32{3}, global, 0)) // valid
	rh.Stop(t)
	got := updateClients(rh.Updates.All())
	if w := [][2]int32{{5, 1}, {5, 2}, {5, 4}, {6, 3}}; !slices.Equal(got, w) {
		t.Errorf("updates (round, client): got %v, want %v", got, w)
	}
	if r := rh.Rejected(); !maps.Equal(r, want) {
		t.Errorf("Rejected: got %v, want %v", r, want)
	}
}

const hostRun = "clienttest-run"

func signed(t *testing.T, m *transport.Message, run string, key ed25519.PrivateKey) *transport.Message {
	t.Helper()
	if err := protocol.Sign(m, run, key); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestHostAuthenticated checks a host of an authenticated run: it accepts
// only round and stop messages signed by the server (a forged Stop does
// not end it) and signs every update with its client's key.
func TestHostAuthenticated(t *testing.T) {
	keys, err := auth.NewKeys()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := auth.NewKeys()
	m := clienttest.Model(t, 1, false)
	shards := clienttest.NewShards(clienttest.Dataset(t, 80, 1), 2, 5)
	cfg := clienttest.HostConfig(0, 8, 2)
	cfg.Tasks, cfg.Clients, cfg.ClientsPerRound = 2, 8, 4
	cfg.Auth, cfg.RunID = keys, hostRun
	rh := clienttest.StartHost(t, cfg, m, shards)
	global := clienttest.InitParams(m, 1)
	round := func(r int32, clients ...int32) *transport.Message {
		return clienttest.RoundMsg(int(r), 0, clients, global, 0)
	}
	stop := func() *transport.Message { return &transport.Message{Kind: transport.KindStop} }
	forged := []*transport.Message{
		round(0, 1), // unsigned
		signed(t, round(0, 1), hostRun, keys.ClientKey(1)),    // a client's key
		signed(t, round(0, 1), hostRun+"x", keys.ServerKey()), // another run
		signed(t, round(0, 1), hostRun, other.ServerKey()),    // another run's server
		stop(), // unsigned Stop
		signed(t, stop(), hostRun, keys.ClientKey(0)),
		signed(t, stop(), "another-run", keys.ServerKey()), // a Stop of another run
	}
	tampered := signed(t, round(0, 1), hostRun, keys.ServerKey())
	tampered.Clients = []int32{1, 2}
	forged = append(forged, tampered)
	for _, f := range forged {
		rh.Send(t, f)
	}
	// Signed by the server but invalid: rejected for what is wrong.
	rh.Send(t, signed(t, clienttest.RoundMsg(0, 999, []int32{1}, global, 0), hostRun, keys.ServerKey()))
	// The host still serves.
	rh.Send(t, signed(t, round(1, 2, 5), hostRun, keys.ServerKey()))
	rh.Send(t, signed(t, stop(), hostRun, keys.ServerKey()))
	if ended, err := rh.Wait(clienttest.HostTimeout); !ended || err != nil {
		t.Fatalf("after a signed Stop: ended %v, err %v", ended, err)
	}
	ups := rh.Updates.All()
	if got, w := updateClients(ups), [][2]int32{{1, 2}, {1, 5}}; !slices.Equal(got, w) {
		t.Fatalf("updates (round, client): got %v, want %v", got, w)
	}
	for _, u := range ups {
		if err := protocol.Verify(u, hostRun, keys.ClientPublic(int(u.Client))); err != nil {
			t.Errorf("update of client %d: %v", u.Client, err)
		}
		if err := protocol.Verify(u, hostRun, keys.ClientPublic(int(u.Client)+1)); err == nil {
			t.Errorf("update of client %d verifies with another client's key", u.Client)
		}
	}
	want := map[string]int{client.RejectSignature: len(forged), client.RejectTask: 1}
	if r := rh.Rejected(); !maps.Equal(r, want) {
		t.Errorf("Rejected: got %v, want %v", r, want)
	}
}

// TestHostSignsLikeUnsigned checks that signing changes nothing but the
// signature: the same round gives the same updates with and without Auth.
func TestHostSignsLikeUnsigned(t *testing.T) {
	keys, _ := auth.NewKeys()
	m := clienttest.Model(t, 1, true)
	shards := clienttest.NewShards(clienttest.Dataset(t, 80, 1), 1, 8)
	global := clienttest.InitParams(m, 4)
	run := func(a *auth.Keys) map[int32]*transport.Message {
		cfg := clienttest.HostConfig(0, 6, 2)
		cfg.Auth, cfg.RunID = a, hostRun
		rh := clienttest.StartHost(t, cfg, m, shards)
		msg := clienttest.RoundMsg(0, 0, []int32{0, 3, 5}, global, 0)
		stop := &transport.Message{Kind: transport.KindStop}
		if a != nil {
			msg, stop = signed(t, msg, hostRun, a.ServerKey()), signed(t, stop, hostRun, a.ServerKey())
		}
		rh.Send(t, msg)
		rh.Send(t, stop)
		if ended, err := rh.Wait(clienttest.HostTimeout); !ended || err != nil {
			t.Fatalf("ended %v, err %v", ended, err)
		}
		return clienttest.ByClient(t, rh.Updates.All(), 0)
	}
	plain, withAuth := run(nil), run(keys)
	clienttest.CompareUpdates(t, plain, withAuth, "signed")
	for c, u := range withAuth {
		if len(u.Sig) != auth.SignatureSize || len(plain[c].Sig) != 0 {
			t.Errorf("client %d: signature of %d bytes signed, %d unsigned", c, len(u.Sig), len(plain[c].Sig))
		}
		if u.BodyLen() != plain[c].BodyLen() {
			t.Errorf("client %d: body of %d bytes signed, %d unsigned", c, u.BodyLen(), plain[c].BodyLen())
		}
	}
}
