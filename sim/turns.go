package sim

import (
	"context"
	"sync"
)

// Turns lets several runs of one process take turns round by round: run
// 0 builds its experiment and runs its first round, then run 1 does, and
// so on around the runs that have not finished, until every run has.
// Only one of them computes at any time. Give each run the same Turns in
// its Options with its own index (Options.Turn). Their records are what
// they would be run one after the other (each run's results depend only
// on its scenario and seed); what taking turns buys is timing: every
// run's rounds see the same spells of a shared or throttled machine, so
// their round times can be compared (`fotsim run --interleave`, and
// `fotsim bench`'s FedAvg and FOT runs). A run's wall_seconds leave out
// the time it waited for the others.
type Turns struct {
	mu   sync.Mutex
	ch   []chan struct{}
	gone []bool
}

// NewTurns returns the turns of n runs, run 0's first.
func NewTurns(n int) *Turns {
	t := &Turns{ch: make([]chan struct{}, n), gone: make([]bool, n)}
	for i := range t.ch {
		t.ch[i] = make(chan struct{}, 1)
	}
	if n > 0 {
		t.ch[0] <- struct{}{}
	}
	return t
}

// wait blocks until it is run i's turn; false if ctx ends first.
func (t *Turns) wait(ctx context.Context, i int) bool {
	select {
	case <-t.ch[i]:
		return true
	case <-ctx.Done():
		return false
	}
}

// pass gives the turn to the next run after i that has not finished, or
// back to i when there is none.
func (t *Turns) pass(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.ch)
	for k := 1; k <= n; k++ {
		if j := (i + k) % n; !t.gone[j] || j == i {
			select {
			case t.ch[j] <- struct{}{}:
			default: // it holds a turn already (after a cancelled wait)
			}
			return
		}
	}
}

// leave marks run i finished (or failed) and passes its turn on.
func (t *Turns) leave(i int) {
	t.mu.Lock()
	t.gone[i] = true
	t.mu.Unlock()
	t.pass(i)
}
