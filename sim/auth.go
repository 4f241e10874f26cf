package sim

import (
	"github.com/fotsim/fotsim/auth"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/server"
)

// guardHost sets the run's bounds for a client host's checks of round
// messages (tasks, clients, clients per round) and, with keys, its
// authentication in run (package auth): it signs its clients' updates and
// accepts only the server's signed messages.
func (x *Experiment) guardHost(h *client.HostConfig, run string, keys *auth.Keys) {
	clients, perRound := population(x.Scenario, x.Spec)
	h.Tasks, h.Clients, h.ClientsPerRound = len(x.Tasks), clients, perRound
	if keys != nil {
		h.Auth, h.RunID = keys, run
	}
}

// guardServer sets the server's checks of updates (the delta norm bound,
// the clients' real sample counts) and, with keys, its authentication in
// run: it signs its messages and accepts only updates signed by their
// client.
func (x *Experiment) guardServer(s *server.Config, run string, keys *auth.Keys) {
	s.MaxUpdateNorm = x.Scenario.Train.MaxUpdateNorm
	s.Samples = x.samples
	if keys != nil {
		s.Auth, s.RunID = keys, run
	}
}

// samples returns client c's number of training samples in task, which an
// honest update reports as its N (the rows of its Shard).
func (x *Experiment) samples(task, c int) int64 {
	var n int64
	for _, s := range x.Shard(task, c) {
		n += int64(len(s.Rows))
	}
	return n
}

// work is the virtual work of client c's round of task in epochs of its
// local data (server.System.Work): local_epochs, or local_steps x
// batch_size / its samples.
func (x *Experiment) work(task, c int) float64 {
	t := x.Scenario.Train
	if t.LocalSteps <= 0 {
		return float64(t.LocalEpochs)
	}
	n := x.samples(task, c)
	if n <= 0 {
		return 0
	}
	return float64(t.LocalSteps) * float64(t.BatchSize) / float64(n)
}

// noteRejected adds to rec the messages a client host rejected.
func noteRejected(rec *results.Record, byReason map[string]int) {
	for reason, n := range byReason {
		if rec.RejectedBroadcastsByReason == nil {
			rec.RejectedBroadcastsByReason = map[string]int{}
		}
		rec.RejectedBroadcastsByReason[reason] += n
		rec.RejectedBroadcasts += n
	}
}
