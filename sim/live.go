package sim

import (
	"encoding/json"
	"math"
	"sync"
	"sync/atomic"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
	"github.com/fotsim/fotsim/transport"
)

// MetricsSchema is the schema string of every live metrics document.
const MetricsSchema = "fotsim.metrics/v1"

// liveQueue bounds the metrics documents waiting to be published; when the
// connection (or the sink) falls this far behind, new documents are
// dropped and counted rather than slowing the round loop.
const liveQueue = 1024

// Metrics is the live progress of one round, the JSON document published
// on transport.Subjects.Metrics (Options.Live) and handed to
// Options.LiveSink. Fields are only ever added.
type Metrics struct {
	Schema   string `json:"schema"`   // MetricsSchema
	Run      string `json:"run"`      // the run's id: unique per run, process and start time
	Scenario string `json:"scenario"` // scenario name
	Method   string `json:"method"`   // method name
	Label    string `json:"label"`    // method label with its options, as in the tables
	Seed     int64  `json:"seed"`
	Task     int    `json:"task"`   // task being learnt, 0-based
	Tasks    int    `json:"tasks"`  // tasks in the run
	Round    int    `json:"round"`  // rounds finished so far, 1..Rounds (as curves[].round in result.json)
	Rounds   int    `json:"rounds"` // rounds in the run
	// Loss is the round's mean client training loss; null in a round
	// without training.
	Loss *float64 `json:"loss"`
	// Acc is the accuracy (%) on tasks 0..Task when the round added a curve
	// point (eval.every), else null; a NaN entry is null.
	Acc            []*float64 `json:"acc"`
	Updates        int        `json:"updates"`         // accepted client updates
	ElapsedSeconds float64    `json:"elapsed_seconds"` // since the run started
}

// NewMetrics returns the metrics document of round r of run (id runID).
func NewMetrics(runID string, sc *scenarios.Scenario, run scenarios.Run, r server.RoundReport) Metrics {
	m := Metrics{
		Schema: MetricsSchema, Run: runID, Scenario: sc.Name,
		Method: run.Method.Name, Label: run.Method.Label(), Seed: run.Seed,
		Task: r.Task, Tasks: r.Tasks, Round: r.Round + 1, Rounds: r.Rounds,
		Loss: finite(r.TrainLoss), Updates: r.Updates, ElapsedSeconds: r.Elapsed.Seconds(),
	}
	if r.Acc != nil {
		m.Acc = make([]*float64, len(r.Acc))
		for i, a := range r.Acc {
			m.Acc[i] = finite(a)
		}
	}
	return m
}

func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// livePublisher sends each round's metrics document from its own
// goroutine, so that neither a slow NATS connection nor a slow sink holds
// up the round loop: round queues the encoded document without blocking,
// dropping it (and counting) when the queue is full.
type livePublisher struct {
	conn    *transport.Conn // nil: no NATS publishing
	subject string
	sink    func([]byte) // nil: none
	queue   chan []byte
	done    chan struct{}
	stopped sync.Once

	dropped atomic.Int64 // documents dropped because the queue was full
	failed  atomic.Int64 // documents NATS refused
}

// startLive starts the publisher of opts.Live (on conn's subject) and
// opts.LiveSink.
func startLive(opts Options, conn *transport.Conn, subject string) *livePublisher {
	p := &livePublisher{subject: subject, sink: opts.LiveSink, queue: make(chan []byte, liveQueue), done: make(chan struct{})}
	if opts.Live {
		p.conn = conn
	}
	go p.loop()
	return p
}

// onRound returns the server's OnRound: next (when set), then the round's
// metrics queued for publishing.
func (p *livePublisher) onRound(runID string, sc *scenarios.Scenario, run scenarios.Run, next func(server.RoundReport)) func(server.RoundReport) {
	return func(r server.RoundReport) {
		if next != nil {
			next(r)
		}
		p.publish(NewMetrics(runID, sc, run, r))
	}
}

func (p *livePublisher) loop() {
	defer close(p.done)
	for doc := range p.queue {
		if p.conn != nil {
			if err := p.conn.PublishRaw(p.subject, doc); err != nil {
				p.failed.Add(1)
			}
		}
		if p.sink != nil {
			p.sink(doc)
		}
	}
}

// publish queues m; it never blocks.
func (p *livePublisher) publish(m Metrics) {
	doc, err := json.Marshal(m)
	if err != nil { // cannot happen: no NaN reaches the encoder
		p.failed.Add(1)
		return
	}
	select {
	case p.queue <- doc:
	default:
		p.dropped.Add(1)
	}
}

// stop publishes what is queued, returns when the goroutine has ended and
// logs (logf may be nil) how many documents were dropped or refused. The
// caller closes the connection after it.
func (p *livePublisher) stop(logf func(string, ...any)) {
	p.stopped.Do(func() { close(p.queue) })
	<-p.done
	if d, f := p.dropped.Load(), p.failed.Load(); logf != nil && d+f > 0 {
		logf("live metrics of %s: %d dropped (queue full), %d not published", p.subject, d, f)
	}
}
