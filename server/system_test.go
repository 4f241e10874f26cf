package server_test

import (
	"reflect"
	"slices"
	"testing"

	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/server/servertest"
	"github.com/fotsim/fotsim/transport/transporttest"
)

// runSystem runs servertest.Config(2, 6) with 12 clients, 5 per round,
// under sys, with honest fake clients.
func runSystem(t *testing.T, sys *server.System) (init, final []float32, rec *results.Record, fed *servertest.Fed) {
	t.Helper()
	cfg := servertest.Config(2, 6)
	cfg.Clients, cfg.ClientsPerRound = 12, 5
	cfg.System = sys
	m := servertest.Model(t, 1)
	bus := transporttest.NewBus()
	fed = servertest.NewFed(bus, servertest.HonestRespond)
	init, final, rec = servertest.Run(t, cfg, m, bus, 3)
	return init, final, rec, fed
}

// The system's draws depend on the seed only: the same run gives the same
// per-round detail, the broadcasts list exactly the clients that report,
// and every kind of loss happens with these settings.
func TestSystemDeterministic(t *testing.T) {
	sys := func() *server.System {
		return &server.System{
			Availability: 0.7, Dropout: 0.2, Deadline: 1.2, Quorum: 1,
			Speed: server.SpeedDist{Dist: "lognormal", Sigma: 0.5},
		}
	}
	_, final1, rec1, fed := runSystem(t, sys())
	_, final2, rec2, _ := runSystem(t, sys())
	if !reflect.DeepEqual(rec1.RoundsDetail, rec2.RoundsDetail) || !slices.Equal(final1, final2) {
		t.Fatalf("two runs differ:\n%+v\n%+v", rec1.RoundsDetail, rec2.RoundsDetail)
	}
	if len(rec1.RoundsDetail) != 12 || rec1.Rounds != 12 {
		t.Fatalf("%d round details, %d rounds; want 12", len(rec1.RoundsDetail), rec1.Rounds)
	}
	var tot results.SystemTotals
	bc := fed.Broadcasts()
	b := 0
	offline := 0
	for i, d := range rec1.RoundsDetail {
		tot.Add(d)
		offline += 12 - d.Available
		if d.Round != i || d.Task != i/6 {
			t.Errorf("detail %d: round %d task %d", i, d.Round, d.Task)
		}
		if d.Available > 12 || d.Selected != min(5, d.Available) || d.Dropped+d.Late+d.Aggregated != d.Selected {
			t.Errorf("round %d: inconsistent %+v", i, d)
		}
		if d.Skipped {
			continue
		}
		if got := len(bc[b].Clients); got != d.Aggregated || int(bc[b].Round) != i {
			t.Errorf("round %d: broadcast to %d clients (round %d), %d aggregated", i, got, bc[b].Round, d.Aggregated)
		}
		b++
	}
	if *rec1.System != tot {
		t.Errorf("totals %+v, want %+v", *rec1.System, tot)
	}
	if tot.Dropped == 0 || tot.Late == 0 || tot.Aggregated == 0 || offline == 0 {
		t.Errorf("totals %+v: want some drops, late clients, unavailable ones and updates", tot)
	}

	// The plan matches the run and does not depend on anything else.
	for _, d := range rec1.RoundsDetail {
		_, p := sys().Plan(servertest.Seed, d.Task, d.Round, 12, 5)
		p.Aggregated, p.Skipped = d.Aggregated, d.Skipped
		if p != d {
			t.Errorf("Plan %+v, run %+v", p, d)
		}
	}
}

// A round with fewer reporting clients than the quorum is skipped: nobody
// is asked to train and the global model does not change; the round counts.
func TestSystemQuorumSkips(t *testing.T) {
	init, final, rec, fed := runSystem(t, &server.System{Availability: 1, Dropout: 0.5, Quorum: 5})
	skipped := 0
	for _, d := range rec.RoundsDetail {
		if d.Skipped {
			skipped++
			if d.Aggregated != 0 {
				t.Errorf("skipped round %d aggregated %d", d.Round, d.Aggregated)
			}
		} else if d.Aggregated != 5 {
			t.Errorf("round %d aggregated %d, want the quorum 5", d.Round, d.Aggregated)
		}
	}
	if skipped == 0 {
		t.Fatal("no round skipped")
	}
	if rec.Rounds != 12 || rec.System.SkippedRounds != skipped || len(fed.Broadcasts()) != 12-skipped {
		t.Errorf("rounds %d, skipped %d (totals %d), broadcasts %d", rec.Rounds, skipped, rec.System.SkippedRounds, len(fed.Broadcasts()))
	}
	if skipped == 12 && !slices.Equal(init, final) {
		t.Error("every round skipped, yet the model changed")
	}

	// Every round skipped: the model is unchanged.
	init, final, rec, fed = runSystem(t, &server.System{Availability: 0.01, Quorum: 5})
	if !slices.Equal(init, final) || rec.System.SkippedRounds != 12 || len(fed.Broadcasts()) != 0 {
		t.Errorf("all skipped: model changed %v, skipped %d, broadcasts %d", !slices.Equal(init, final), rec.System.SkippedRounds, len(fed.Broadcasts()))
	}
}

func TestSystemConfigChecked(t *testing.T) {
	for _, sys := range []server.System{
		{Availability: 0}, {Availability: 1, Dropout: 1}, {Availability: 1, Deadline: -1},
		{Availability: 1, Quorum: 6}, {Availability: 1, Speed: server.SpeedDist{Dist: "uniform", Min: 2, Max: 1}},
		{Availability: 1, Speed: server.SpeedDist{Dist: "gamma"}},
	} {
		cfg := servertest.Config(1, 1)
		cfg.System = &sys
		if err := cfg.Validate(); err == nil {
			t.Errorf("%+v: no error", sys)
		}
	}
}
