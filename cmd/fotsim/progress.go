package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// plainEvery is the least time between two plain progress lines.
const plainEvery = 10 * time.Second

// progress shows how far the runs of a command are, from the rounds the
// server reports (sim.Options.OnRound). On a terminal it draws one bar per
// run (rounds done over the run's rounds, elapsed time, ETA, the latest
// training loss); elsewhere (a file, a pipe, CI) it prints a plain line at
// most every plainEvery, such as
//
//	fot s0  round 120/400  task 2/3  loss 0.3100  eta 1m05s
//
// The per-task lines (sim.Options.Progress) go through Tasks, which clears
// the bar before each line and restarts the plain lines' clock, so each
// task end has its line and a plain line never follows it at once. A nil
// *progress shows nothing.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	key  string // the run being shown ("" before its first round)
	last time.Time
	bar  *progressbar.ProgressBar
}

// newProgress returns the progress display for stdout: bars when it is a
// terminal, plain lines otherwise.
func newProgress(stdout io.Writer) *progress {
	return newProgressTo(stdout, isTerminal(stdout), time.Now)
}

// newProgressTo is newProgress with the terminal decision and the clock
// given (tests).
func newProgressTo(w io.Writer, tty bool, now func() time.Time) *progress {
	return &progress{w: w, tty: tty, every: plainEvery, now: now}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Round takes the report of a finished round; it is a sim.Options.OnRound.
func (p *progress) Round(run scenarios.Run, r server.RoundReport) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	key := runKey(run)
	if key != p.key {
		p.endLocked()
		p.key, p.last = key, now.Add(-r.Elapsed) // the run's start
	}
	done := r.Round + 1
	if p.tty {
		p.drawLocked(run, r, done)
		return
	}
	if lastOfTask(r) || now.Sub(p.last) < p.every {
		return
	}
	p.last = now
	fmt.Fprintln(p.w, plainLine(run, r))
}

// drawLocked moves the run's bar to done rounds.
func (p *progress) drawLocked(run scenarios.Run, r server.RoundReport, done int) {
	if r.Rounds < 1 {
		return
	}
	if p.bar == nil {
		p.bar = progressbar.NewOptions(r.Rounds,
			progressbar.OptionSetWriter(p.w),
			progressbar.OptionSetWidth(24),
			progressbar.OptionShowCount(),
			progressbar.OptionSetElapsedTime(true),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionUseANSICodes(true),
			progressbar.OptionClearOnFinish(),
		)
	}
	p.bar.Describe(barDescription(run, r))
	_ = p.bar.Set(min(done, r.Rounds))
}

// End clears the current run's bar (a run that failed leaves it unfinished)
// and forgets the run: call it after each run.
func (p *progress) End() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.endLocked()
}

func (p *progress) endLocked() {
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Clear()
	}
	p.bar, p.key = nil, ""
}

// Tasks is the writer for the per-task lines (sim.Options.Progress): it
// clears the bar before each line and restarts the plain lines' clock.
func (p *progress) Tasks() io.Writer {
	if p == nil {
		return nil
	}
	return taskWriter{p}
}

type taskWriter struct{ p *progress }

func (t taskWriter) Write(b []byte) (int, error) {
	p := t.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.bar != nil && !p.bar.IsFinished() {
		_ = p.bar.Clear()
	}
	p.last = p.now()
	return p.w.Write(b)
}

// runKey names a run, as the per-task lines do: "fot s0".
func runKey(run scenarios.Run) string {
	return run.Method.Label() + " s" + strconv.FormatInt(run.Seed, 10)
}

// lastOfTask reports whether r is the last round of its task, which the
// per-task line reports.
func lastOfTask(r server.RoundReport) bool {
	if r.Tasks < 1 || r.Rounds%r.Tasks != 0 {
		return false
	}
	return (r.Round+1)%(r.Rounds/r.Tasks) == 0
}

// plainLine is the progress line of a round when stdout is no terminal.
func plainLine(run scenarios.Run, r server.RoundReport) string {
	return fmt.Sprintf("%s  round %d/%d  task %d/%d  loss %s  eta %s",
		runKey(run), r.Round+1, r.Rounds, r.Task+1, r.Tasks, formatLoss(r.TrainLoss), formatETA(eta(r.Elapsed, r.Round+1, r.Rounds)))
}

// barDescription is the text before a run's bar.
func barDescription(run scenarios.Run, r server.RoundReport) string {
	return fmt.Sprintf("%s task %d/%d loss %s", runKey(run), r.Task+1, r.Tasks, formatLoss(r.TrainLoss))
}

func formatLoss(l float64) string {
	if math.IsNaN(l) || math.IsInf(l, 0) {
		return "-"
	}
	return strconv.FormatFloat(l, 'f', 4, 64)
}

// eta is the time the rest of a run should take: the mean time of the
// rounds done so far times the rounds left; -1 when nothing is done yet.
func eta(elapsed time.Duration, done, total int) time.Duration {
	if done < 1 {
		return -1
	}
	if done >= total {
		return 0
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(total-done))
}

// formatETA writes d rounded to the second: "42s", "1m05s", "2h03m"; "?"
// when unknown (d < 0).
func formatETA(d time.Duration) string {
	if d < 0 {
		return "?"
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, (s%3600)/60)
	}
}
