package sim

import (
	"bytes"
	"context"
	"testing"
)

// A run with system heterogeneity is deterministic across worker counts,
// and its record details every round; `system: {}` (the defaults) changes
// nothing in the record.
func TestSystemDeterministicAcrossWorkers(t *testing.T) {
	sys := []string{"methods=[fedavg, fot]", "eval.every=2", "partition.clients=8", "train.clients_per_round=4",
		"system.availability=0.8", "system.dropout=0.2", "system.speed={dist: lognormal, sigma: 0.6}",
		"system.deadline=1.3", "system.quorum=2"}
	ref := runAll(t, load(t, append(sys, "train.workers=1")...))
	got := runAll(t, load(t, append(sys, "train.workers=3")...))
	for k, want := range ref {
		if !bytes.Equal(got[k], want) {
			t.Errorf("%s: record differs between 1 and 3 workers:\ngot  %s\nwant %s", k, got[k], want)
		}
	}
	sc := load(t, sys...)
	rec, err := NewEnv().Run(context.Background(), sc, sc.Runs()[0], Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.RoundsDetail) != rec.Rounds || rec.System == nil {
		t.Fatalf("%d round details for %d rounds, totals %v", len(rec.RoundsDetail), rec.Rounds, rec.System)
	}
	t.Logf("totals %+v", *rec.System)
	if s := rec.System; s.Dropped+s.Late == 0 || s.Aggregated == 0 {
		t.Errorf("totals %+v: want clients lost and updates aggregated", *s)
	}

	plain := runAll(t, load(t, "eval.every=2"))
	def := runAll(t, load(t, "eval.every=2", "system.quorum=1"))
	if !bytes.Equal(plain["fedavg/s0"], def["fedavg/s0"]) {
		t.Errorf("the default system: block changed the record:\n%s\nvs\n%s", def["fedavg/s0"], plain["fedavg/s0"])
	}
}
