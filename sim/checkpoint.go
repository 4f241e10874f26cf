package sim

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/protocol"
	"github.com/fotsim/fotsim/results"
	"github.com/fotsim/fotsim/scenarios"
	"github.com/fotsim/fotsim/server"
)

// CheckpointFile is the name of a run's checkpoint in its record folder:
// written (atomically) after every round of a run with Options.Checkpoint,
// removed once the run record is written.
const CheckpointFile = "checkpoint.gob"

// checkpointFormat is the version of the Checkpoint encoding.
const checkpointFormat = 1

// ErrCheckpoint reports a checkpoint that cannot be resumed.
var ErrCheckpoint = errors.New("sim: checkpoint")

// Checkpoint is a run between two rounds: enough to run the remaining
// rounds in a new process with the same result (Options.Resume).
type Checkpoint struct {
	Format  int
	Version string // the fotsim version that wrote it (Version)
	// Scenario is the resolved scenario (Scenario.Resolved: every method
	// and seed, a transport password masked); Run is the run's index in
	// its Runs, Label and Seed its method label and seed.
	Scenario []byte
	Run      int
	Label    string
	Seed     int64
	Backend  string // the matrix backend the rounds so far ran on
	Server   server.State
	// Host is the client side's state (protocol.Stateful), nil for a
	// method whose clients keep none; HostRejected the round messages
	// the client hosts refused so far.
	Host         []byte
	HostRejected map[string]int
	// Wall is the run's wall time before the checkpoint, in seconds.
	Wall float64
}

// ReadCheckpoint reads the checkpoint of the run folder dir.
func ReadCheckpoint(dir string) (*Checkpoint, error) {
	path := filepath.Join(dir, CheckpointFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s has no %s", ErrCheckpoint, dir, CheckpointFile)
		}
		return nil, fmt.Errorf("%w: %v", ErrCheckpoint, err)
	}
	var c Checkpoint
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&c); err != nil {
		return nil, fmt.Errorf("%w: %s is not a checkpoint fotsim can read: %v", ErrCheckpoint, path, err)
	}
	if c.Format != checkpointFormat {
		return nil, fmt.Errorf("%w: %s has format %d, this fotsim reads %d", ErrCheckpoint, path, c.Format, checkpointFormat)
	}
	return &c, nil
}

// ScenarioAndRun parses the checkpoint's scenario, with sets applied
// (only transport keys may be set: nothing that changes the results), and
// returns it with the checkpoint's run.
func (c *Checkpoint) ScenarioAndRun(sets []string) (*scenarios.Scenario, scenarios.Run, error) {
	for _, s := range sets {
		if !strings.HasPrefix(s, "transport.") {
			return nil, scenarios.Run{}, fmt.Errorf("%w: --set %s: a resumed run keeps its scenario; only transport keys may be set", ErrCheckpoint, s)
		}
	}
	sc, err := scenarios.Parse(c.Scenario, CheckpointFile, sets)
	if err != nil {
		return nil, scenarios.Run{}, err
	}
	runs := sc.Runs()
	if c.Run < 0 || c.Run >= len(runs) || runs[c.Run].Method.Label() != c.Label || runs[c.Run].Seed != c.Seed {
		return nil, scenarios.Run{}, fmt.Errorf("%w: run %d (%s, seed %d) is not in its scenario %s", ErrCheckpoint, c.Run, c.Label, c.Seed, sc.Name)
	}
	return sc, runs[c.Run], nil
}

// checkpointer writes a run's checkpoints to its record folder.
type checkpointer struct {
	x        *Experiment
	dir      string
	scenario []byte
	run      int
	host     client.Behaviour      // the client side, for its state
	rejected func() map[string]int // the client hosts' refusals so far
	wall     func() float64        // the run's wall time so far, in seconds
	every    bool                  // write after every round (Options.CheckpointEveryRound)
	saved    func(dir string)      // called after each write (tests)
	wrote    bool                  // a checkpoint was written
	last     float64               // the run's wall time (wall) when the last write ended
	cost     time.Duration         // how long it took
}

// newCheckpointer returns the checkpoint writer of x's run into dir.
func (x *Experiment) newCheckpointer(dir string, host client.Behaviour, rejected func() map[string]int, wall func() float64) (*checkpointer, error) {
	resolved, err := x.Scenario.Resolved()
	if err != nil {
		return nil, err
	}
	run := -1
	for i, r := range x.Scenario.Runs() {
		if r.Method.Label() == x.Run.Method.Label() && r.Seed == x.Run.Seed {
			run = i
			break
		}
	}
	if run < 0 {
		return nil, fmt.Errorf("%w: run %s seed %d is not in scenario %s", ErrCheckpoint, x.Run.Method.Label(), x.Run.Seed, x.Scenario.Name)
	}
	return &checkpointer{x: x, dir: dir, scenario: resolved, run: run, host: host, rejected: rejected, wall: wall}, nil
}

// checkpointShare bounds the time spent writing checkpoints: after a
// write that took d, the next is skipped until checkpointShare*d has
// passed. Rounds of real size (tens of milliseconds and more) all get
// one; very short rounds (a tiny synthetic model) one every few, so that
// checkpoints cost at most about 1/checkpointShare of the run. Time is
// the run's own (its wall time, without the waits for other runs' turns,
// Options.Turns).
const checkpointShare = 20

// save writes the checkpoint of the server state st, unless the last one
// is too recent (checkpointShare) and k.every is false.
func (k *checkpointer) save(st *server.State) error {
	if !k.every && k.wrote && k.wall()-k.last < checkpointShare*k.cost.Seconds() {
		return nil
	}
	start := time.Now()
	if err := k.write(st); err != nil {
		return err
	}
	k.cost = time.Since(start)
	k.wrote, k.last = true, k.wall()
	if k.saved != nil {
		k.saved(k.dir)
	}
	return nil
}

// write writes the checkpoint of the server state st.
func (k *checkpointer) write(st *server.State) error {
	c := Checkpoint{
		Format: checkpointFormat, Version: Version(), Scenario: k.scenario,
		Run: k.run, Label: k.x.Run.Method.Label(), Seed: k.x.Run.Seed,
		Backend: nn.ActiveBackend().Name(), Server: *st,
		HostRejected: k.rejected(), Wall: k.wall(),
	}
	if sf, ok := k.host.(protocol.Stateful); ok {
		var b bytes.Buffer
		if err := sf.SaveState(&b); err != nil {
			return fmt.Errorf("save the clients' state: %w", err)
		}
		c.Host = b.Bytes()
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&c); err != nil {
		return fmt.Errorf("encode: %w", err)
	}
	if err := os.MkdirAll(k.dir, 0o755); err != nil { // made at the first write: a run stopped before leaves no folder
		return err
	}
	return results.ReplaceFile(k.dir, CheckpointFile, buf.Bytes())
}

// loadHost loads the client side's state of checkpoint c into b.
func loadHost(c *Checkpoint, b client.Behaviour) error {
	sf, ok := b.(protocol.Stateful)
	switch {
	case ok && c.Host == nil:
		return fmt.Errorf("%w: it has no state of the method's clients", ErrCheckpoint)
	case !ok && c.Host != nil:
		return fmt.Errorf("%w: it has a client state, the method's clients keep none", ErrCheckpoint)
	case ok:
		if err := sf.LoadState(bytes.NewReader(c.Host)); err != nil {
			return fmt.Errorf("%w: %v", ErrCheckpoint, err)
		}
	}
	return nil
}

// removeCheckpoint deletes dir's checkpoint (the run record is written).
func removeCheckpoint(dir string) error {
	err := os.Remove(filepath.Join(dir, CheckpointFile))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("sim: remove the finished run's checkpoint: %w", err)
	}
	return nil
}
