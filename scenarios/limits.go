package scenarios

import (
	"fmt"

	"github.com/fotsim/fotsim/transport"
)

// Size limits. A scenario above one of them is invalid (exit 2 with the key and its
// line) instead of running out of memory or time: they are far above any setting of
// the papers fotsim reproduces and below what one machine can hold.
const (
	MaxTasks        = 1000
	MaxClients      = transport.MaxClients // a round message lists at most this many ids
	MaxRounds       = 1_000_000            // train.rounds_per_task
	MaxEpochs       = 10_000               // train.local_epochs
	MaxLocalSteps   = 1_000_000            // train.local_steps
	MaxBatch        = 65_536               // train.batch_size, eval.batch_size
	MaxWidth        = 65_536               // model.hidden[i]
	MaxConvOut      = 4096                 // model.conv[i].out
	MaxKernel       = 64                   // model.conv[i].kernel, .pool, .stride, .pad
	MaxWorkers      = 1024                 // train.workers
	MaxSynthetic    = 10_000_000           // data.synthetic.train, .test
	MaxSyntheticDim = 1 << 20              // data.synthetic.dim
	MaxClasses      = 100_000              // data.synthetic.classes
	MaxLoRARank     = 4096                 // model.lora.rank
	// MaxParams caps the model's parameters (MLP: counted from the scenario): 50M
	// float32 are 200 MB per copy, and every worker and the server hold several.
	MaxParams = 50_000_000
)

// atMost reports v above hi at path.
func (c *checker) atMost(path string, v, hi int, why string) {
	if v > hi {
		c.add(path, fmt.Sprintf("must be at most %d (%s), got %d", hi, why, v))
	}
}

// checkLimits checks the size limits.
func (s *Scenario) checkLimits(c *checker) {
	const mem = "size limit: more would exhaust memory or time"
	c.atMost("data.tasks", s.Data.Tasks, MaxTasks, mem)
	c.atMost("partition.clients", s.Partition.Clients, MaxClients, "the wire format's limit on client ids per round")
	c.atMost("train.rounds_per_task", s.Train.RoundsPerTask, MaxRounds, mem)
	c.atMost("train.local_epochs", s.Train.LocalEpochs, MaxEpochs, mem)
	c.atMost("train.local_steps", s.Train.LocalSteps, MaxLocalSteps, mem)
	c.atMost("train.batch_size", s.Train.BatchSize, MaxBatch, mem)
	c.atMost("train.workers", s.Train.Workers, MaxWorkers, mem)
	c.atMost("eval.batch_size", s.Eval.BatchSize, MaxBatch, mem)
	for i, h := range s.Model.Hidden {
		c.atMost(fmt.Sprintf("model.hidden[%d]", i), h, MaxWidth, mem)
	}
	for i, cv := range s.Model.Conv {
		p := fmt.Sprintf("model.conv[%d].", i)
		c.atMost(p+"out", cv.Out, MaxConvOut, mem)
		c.atMost(p+"kernel", cv.Kernel, MaxKernel, mem)
		c.atMost(p+"stride", cv.Stride, MaxKernel, mem)
		c.atMost(p+"pad", cv.Pad, MaxKernel, mem)
		c.atMost(p+"pool", cv.Pool, MaxKernel, mem)
	}
	if l := s.Model.LoRA; l != nil {
		c.atMost("model.lora.rank", l.Rank, MaxLoRARank, mem)
	}
	if s.Data.Dataset == "synthetic" {
		sy := s.Data.Synthetic
		c.atMost("data.synthetic.train", sy.Train, MaxSynthetic, mem)
		c.atMost("data.synthetic.test", sy.Test, MaxSynthetic, mem)
		c.atMost("data.synthetic.dim", sy.Dim, MaxSyntheticDim, mem)
		c.atMost("data.synthetic.classes", sy.Classes, MaxClasses, mem)
	}
	if n, ok := s.mlpParams(); ok && n > MaxParams {
		c.add("model.hidden", fmt.Sprintf("the model would have %d parameters, more than the limit of %d (size limit: more would exhaust memory): use narrower layers", n, MaxParams), "model")
	}
}

// mlpParams counts the parameters of the scenario's MLP (weights and biases of every
// layer, one head per task with per_task heads), without adapters; ok is false for
// other architectures or an unknown input size. It saturates instead of overflowing.
func (s *Scenario) mlpParams() (n int64, ok bool) {
	if s.Model.Arch != "mlp" {
		return 0, false
	}
	var in int64
	switch s.Data.Dataset {
	case "mnist", "fashion":
		in = 28 * 28
	case "synthetic":
		in = int64(s.Data.Synthetic.Dim)
	default:
		return 0, false
	}
	const huge = int64(1) << 50
	add := func(a, b int64) int64 { return min(huge, a+b) }
	mul := func(a, b int64) int64 {
		if a != 0 && b > huge/a {
			return huge
		}
		return a * b
	}
	for _, h := range s.Model.Hidden {
		n = add(n, add(mul(in, int64(h)), int64(h)))
		in = int64(h)
	}
	classes := int64(s.Data.Classes())
	if s.Data.Stream == "split" && s.Data.Mode == "task" {
		classes = int64(s.Data.ClassesPerTask)
	}
	n = add(n, mul(int64(s.Heads()), add(mul(in, classes), classes)))
	return n, true
}
