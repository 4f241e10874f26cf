package main

import (
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// fakeClock is a settable clock for the progress display.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func report(task, tasks, round, rounds int, loss float64, elapsed time.Duration) server.RoundReport {
	return server.RoundReport{Task: task, Tasks: tasks, Round: round, Rounds: rounds, TrainLoss: loss, Elapsed: elapsed}
}

func TestETA(t *testing.T) {
	tests := []struct {
		elapsed     time.Duration
		done, total int
		want        time.Duration
	}{
		{10 * time.Second, 1, 4, 30 * time.Second},
		{30 * time.Second, 120, 400, 70 * time.Second},
		{time.Minute, 400, 400, 0},
		{time.Minute, 0, 400, -1},
	}
	for _, tc := range tests {
		if got := eta(tc.elapsed, tc.done, tc.total); got != tc.want {
			t.Errorf("eta(%v, %d, %d) = %v, want %v", tc.elapsed, tc.done, tc.total, got, tc.want)
		}
	}
	for d, want := range map[time.Duration]string{
		-1: "?", 0: "0s", 42400 * time.Millisecond: "42s", 65 * time.Second: "1m05s",
		59*time.Minute + 59*time.Second: "59m59s", 2*time.Hour + 3*time.Minute + 10*time.Second: "2h03m",
	} {
		if got := formatETA(d); got != want {
			t.Errorf("formatETA(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestPlainLine(t *testing.T) {
	run := scenarios.Run{Method: scenarios.Method{Name: "fot"}, Seed: 0}
	got := plainLine(run, report(1, 3, 119, 400, 0.31, 30*time.Second))
	want := "fot s0  round 120/400  task 2/3  loss 0.3100  eta 1m10s"
	if got != want {
		t.Errorf("plainLine = %q, want %q", got, want)
	}
	if got := plainLine(run, report(0, 3, 0, 3, math.NaN(), 0)); !strings.Contains(got, "loss -") {
		t.Errorf("NaN loss: %q", got)
	}
}

// Without a terminal: a line at most every 10 s, none on a task's last
// round (the per-task line reports it), and a per-task line restarts the
// clock.
func TestPlainProgressThrottles(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newProgressTo(&out, false, clk.now)
	run := scenarios.Run{Method: scenarios.Method{Name: "fedavg"}, Seed: 1}
	const tasks, perTask = 2, 10
	start := clk.t
	for round := range tasks * perTask {
		clk.advance(3 * time.Second)
		p.Round(run, report(round/perTask, tasks, round, tasks*perTask, 0.5, clk.t.Sub(start)))
		if (round+1)%perTask == 0 {
			fmt.Fprintf(p.Tasks(), "fedavg s1  task %d/%d  (per-task line)\n", round/perTask+1, tasks)
		}
	}
	p.End()
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	// 3 s rounds: task 1 gets lines at rounds 4 (12 s) and 8 (24 s), round
	// 10 is its last; task 2 restarts at 30 s: rounds 14 (42 s) and 18
	// (54 s).
	want := []string{
		"fedavg s1  round 4/20  task 1/2  loss 0.5000  eta 48s",
		"fedavg s1  round 8/20  task 1/2  loss 0.5000  eta 36s",
		"fedavg s1  task 1/2  (per-task line)",
		"fedavg s1  round 14/20  task 2/2  loss 0.5000  eta 18s",
		"fedavg s1  round 18/20  task 2/2  loss 0.5000  eta 6s",
		"fedavg s1  task 2/2  (per-task line)",
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

// A nil display (--quiet) shows nothing and does not panic.
func TestNilProgress(t *testing.T) {
	var p *progress
	p.Round(scenarios.Run{}, report(0, 1, 0, 1, 0, 0))
	p.End()
	if p.Tasks() != nil {
		t.Error("nil progress has a task writer")
	}
}

// On a terminal: a bar with the run, task, loss and round count, cleared
// before each per-task line and when the run ends.
func TestBarProgress(t *testing.T) {
	var out bytes.Buffer
	clk := &fakeClock{t: time.Unix(1000, 0)}
	p := newProgressTo(&out, true, clk.now)
	run := scenarios.Run{Method: scenarios.Method{Name: "fot"}, Seed: 2}
	p.Round(run, report(0, 2, 0, 4, 0.75, time.Second))
	s := out.String()
	for _, w := range []string{"fot s2 task 1/2 loss 0.7500", "(1/4)", "25%"} {
		if !strings.Contains(s, w) {
			t.Errorf("bar lacks %q: %q", w, s)
		}
	}
	p.Round(run, report(0, 2, 1, 4, 0.5, 2*time.Second))
	out.Reset()
	fmt.Fprint(p.Tasks(), "fot s2  task 1/2  (per-task line)\n")
	if s := out.String(); !strings.HasPrefix(s, "\033[2K\r") || !strings.HasSuffix(s, "task 1/2  (per-task line)\n") {
		t.Errorf("per-task line not after a cleared bar: %q", s)
	}
	out.Reset()
	p.Round(run, report(1, 2, 2, 4, 0.25, 3*time.Second))
	if s := out.String(); !strings.Contains(s, "fot s2 task 2/2 loss 0.2500") || !strings.Contains(s, "(3/4)") {
		t.Errorf("bar after the task line: %q", s)
	}
	out.Reset()
	p.Round(run, report(1, 2, 3, 4, 0.2, 4*time.Second))
	if s := out.String(); !strings.HasSuffix(s, "\033[2K\r") {
		t.Errorf("finished bar not cleared: %q", s)
	}
	// A run that fails leaves its bar half done: End clears it.
	out.Reset()
	p.Round(scenarios.Run{Method: scenarios.Method{Name: "fedavg"}, Seed: 2}, report(0, 1, 0, 5, 1, time.Second))
	p.End()
	if s := out.String(); !strings.Contains(s, "fedavg s2") || !strings.HasSuffix(s, "\033[2K\r") {
		t.Errorf("End did not clear an unfinished bar: %q", s)
	}
}

func TestIsTerminal(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}
