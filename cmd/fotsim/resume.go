package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/sim"
)

// resumePlan is what fotsim run --resume DIR continues: the scenario and
// the folder to write to (out), with, for each run folder, its checkpoint
// or its finished record.
type resumePlan struct {
	sc       *scenarios.Scenario
	out      string
	only     *scenarios.Run // DIR is one run's folder: that run only
	backend  string         // the backend the checkpoints ran on
	ck       map[string]*sim.Checkpoint
	finished map[string]*results.Record
}

// loadResume reads the checkpoints of dir: dir is a run's record folder
// with a checkpoint, or a sweep's --out folder whose run folders hold
// checkpoints or finished records (runs with neither start afresh).
func loadResume(dir string, sets []string) (*resumePlan, error) {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, usagef("--resume %s: not a folder of run records", dir)
	}
	p := &resumePlan{out: dir, ck: map[string]*sim.Checkpoint{}, finished: map[string]*results.Record{}}
	if exists(filepath.Join(dir, sim.CheckpointFile)) {
		c, err := sim.ReadCheckpoint(dir)
		if err != nil {
			return nil, usageError{err}
		}
		sc, run, err := c.ScenarioAndRun(sets)
		if err != nil {
			return nil, resumeError(dir, err)
		}
		p.sc, p.only, p.backend = sc, &run, c.Backend
		p.ck[dir] = c
		return p, nil
	}
	if exists(filepath.Join(dir, results.RecordFile)) {
		return nil, usagef("--resume %s: the run there finished (%s) and has no checkpoint: nothing to resume", dir, results.RecordFile)
	}
	subs, err := filepath.Glob(filepath.Join(dir, "*", sim.CheckpointFile))
	if err != nil || len(subs) == 0 {
		return nil, usagef("--resume %s: no %s in it or its run folders: nothing to resume (a run writes one after every round unless --no-checkpoint)", dir, sim.CheckpointFile)
	}
	sort.Strings(subs)
	var first *sim.Checkpoint
	for _, f := range subs {
		c, err := sim.ReadCheckpoint(filepath.Dir(f))
		if err != nil {
			return nil, usageError{err}
		}
		if first == nil {
			first = c
		} else if !bytes.Equal(c.Scenario, first.Scenario) {
			return nil, usagef("--resume %s: the checkpoints in %s and %s are of different scenarios", dir, filepath.Dir(subs[0]), filepath.Dir(f))
		}
		p.ck[filepath.Dir(f)] = c
	}
	if p.sc, _, err = first.ScenarioAndRun(sets); err != nil {
		return nil, resumeError(dir, err)
	}
	p.backend = first.Backend
	runs := p.sc.Runs()
	for _, r := range runs {
		d := runDir(dir, p.sc, r, len(runs))
		if _, ok := p.ck[d]; ok || !exists(filepath.Join(d, results.RecordFile)) {
			continue
		}
		rec, err := results.ReadRecord(filepath.Join(d, results.RecordFile))
		if err != nil {
			return nil, usageError{err}
		}
		p.finished[d] = rec
	}
	for d := range p.ck {
		if !p.inSweep(d) {
			return nil, usagef("--resume %s: %s is not the folder of one of the scenario's runs", dir, d)
		}
	}
	return p, nil
}

// inSweep reports whether d is the folder of one of the plan's runs.
func (p *resumePlan) inSweep(d string) bool {
	runs := p.sc.Runs()
	for _, r := range runs {
		if runDir(p.out, p.sc, r, len(runs)) == d {
			return true
		}
	}
	return false
}

// resumeError is a checkpoint that does not fit: a usage error naming dir.
func resumeError(dir string, err error) error {
	if errors.Is(err, scenarios.ErrInvalid) {
		return usageError{err}
	}
	return usagef("--resume %s: %v", dir, err)
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// describe is the line printed before a resumed run.
func describe(c *sim.Checkpoint) string {
	if c.Server.Round == 0 {
		return fmt.Sprintf("resuming %s, seed %d, at the start of task %d", c.Label, c.Seed, c.Server.Task+1)
	}
	return fmt.Sprintf("resuming %s, seed %d, at round %d of task %d", c.Label, c.Seed, c.Server.Round+1, c.Server.Task+1)
}
