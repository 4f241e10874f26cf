package server_test

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// A round broadcast and an update lost on the way are sent again after
// Config.Resend without an update (the round to the clients missing only),
// and the run ends as a run without losses does, bytes included.
func TestRunResendsLostMessages(t *testing.T) {
	const T, R = 1, 3
	m := servertest.Model(t, 1)
	cfg := servertest.Config(T, R)
	_, clean, cleanRec := servertest.Run(t, cfg, m, newHonestBus(), 5)

	bus := transporttest.NewBus()
	var mu sync.Mutex
	dropped := map[string]bool{}
	bus.Drop = func(subject string, msg *transport.Message) bool {
		mu.Lock()
		defer mu.Unlock()
		// Round 1's first broadcast and round 2's first update.
		key := ""
		switch {
		case subject == servertest.Subjects.Round && msg.Kind == transport.KindRound && msg.Round == 1:
			key = "round 1"
		case subject == servertest.Subjects.Update && msg.Round == 2:
			key = "update of round 2"
		}
		if key == "" || dropped[key] {
			return false
		}
		dropped[key] = true
		return true
	}
	fed := servertest.NewFed(bus, servertest.HonestRespond)
	cfg.Resend = 20 * time.Millisecond
	_, params, rec := servertest.Run(t, cfg, m, bus, 5)
	if !slices.Equal(params, clean) {
		t.Errorf("final params differ from the run without losses (max diff %v)", servertest.MaxAbsDiff(params, clean))
	}
	if rec.BytesDown != cleanRec.BytesDown || rec.BytesUp != cleanRec.BytesUp || rec.RejectedUpdates != 0 || rec.LateUpdates != 0 {
		t.Errorf("bytes down %d up %d rejected %d late %d, want %d %d 0 0 as without losses",
			rec.BytesDown, rec.BytesUp, rec.RejectedUpdates, rec.LateUpdates, cleanRec.BytesDown, cleanRec.BytesUp)
	}
	// Fed saw: round 0, round 1 (resent, all 3 clients), round 2, round 2
	// again for the one client whose update was lost.
	bc := fed.Broadcasts()
	var rounds []int32
	for _, b := range bc {
		rounds = append(rounds, b.Round)
	}
	if !slices.Equal(rounds, []int32{0, 1, 2, 2}) {
		t.Fatalf("broadcasts heard of rounds %v, want [0 1 2 2]", rounds)
	}
	sel1 := server.Sample(cfg.Seed, 1, cfg.Clients, cfg.ClientsPerRound)
	sel2 := server.Sample(cfg.Seed, 2, cfg.Clients, cfg.ClientsPerRound)
	if !slices.Equal(bc[1].Clients, sel1) || !slices.Equal(bc[2].Clients, sel2) || !slices.Equal(bc[3].Clients, sel2[:1]) {
		t.Errorf("clients of the broadcasts: %v, %v, %v, want %v, %v, %v", bc[1].Clients, bc[2].Clients, bc[3].Clients, sel1, sel2, sel2[:1])
	}
}

func newHonestBus() *transporttest.Bus {
	bus := transporttest.NewBus()
	servertest.NewFed(bus, servertest.HonestRespond)
	return bus
}

// lossyBus is a Bus whose connection can be lost (the faults a
// transport.Conn reports with Done and Err).
type lossyBus struct {
	*transporttest.Bus
	done chan struct{}
	err  error
}

func (b *lossyBus) Done() <-chan struct{} { return b.done }
func (b *lossyBus) Err() error {
	select {
	case <-b.done:
		return b.err
	default:
		return nil
	}
}

// A server waiting for updates (no deadline) ends with the transport's
// error as soon as its connection is lost, instead of waiting forever.
func TestRunEndsWhenConnectionLost(t *testing.T) {
	m := servertest.Model(t, 1)
	errLost := errors.New("fake: connection lost for 30s")
	bus := &lossyBus{Bus: transporttest.NewBus(), done: make(chan struct{}), err: errLost}
	servertest.NewFed(bus.Bus, func(rm *transport.Message) []*transport.Message {
		if rm.Round == 1 { // the clients fall silent and the connection goes
			time.AfterFunc(20*time.Millisecond, func() { close(bus.done) })
			return nil
		}
		return servertest.HonestRespond(rm)
	})
	s, err := server.New(servertest.Config(1, 3), m, servertest.Evaluator(m, 1), bus)
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Run(servertest.Context(t), servertest.InitParams(m, 3))
	if !errors.Is(err, errLost) {
		t.Fatalf("Run: got %v, want %v", err, errLost)
	}
}
