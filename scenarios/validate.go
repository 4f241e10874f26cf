package scenarios

import (
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fotsim/fotsim/transport"
)

// issue is one semantic problem: the key path to blame, the message, and the other
// keys the check read (used to place and de-duplicate the message).
type issue struct {
	path    string
	msg     string
	related []string
}

// Validate checks the semantic rules on a decoded scenario (Parse runs it for you, with
// file positions). It returns nil or an Errors, with Path and Msg set and no position,
// matching ErrInvalid. It expects the defaults to be filled (use Default() as the base
// when building a Scenario in Go).
func (s *Scenario) Validate() error {
	issues := s.check()
	if len(issues) == 0 {
		return nil
	}
	errs := make(Errors, len(issues))
	for i, is := range issues {
		errs[i] = Error{Path: is.path, Msg: is.msg}
	}
	return errs
}

// checker accumulates issues.
type checker struct{ issues []issue }

func (c *checker) add(path, msg string, related ...string) {
	c.issues = append(c.issues, issue{path: path, msg: msg, related: related})
}

func (c *checker) allowed(path, what, v string, vals []string) {
	if !slices.Contains(vals, v) {
		c.add(path, fmt.Sprintf("unknown %s %q (want %s)", what, v, oneOf(vals)))
	}
}

func (c *checker) atLeast(path string, v, lo int) {
	if v < lo {
		c.add(path, fmt.Sprintf("must be at least %d, got %d", lo, v))
	}
}

func (c *checker) positive(path string, v float64) {
	if !(v > 0) {
		c.add(path, fmt.Sprintf("must be > 0, got %g", v))
	}
}

func (c *checker) nonNegative(path string, v float64) {
	if !(v >= 0) {
		c.add(path, fmt.Sprintf("must be >= 0, got %g", v))
	}
}

func (c *checker) unitOpen(path string, v float64) {
	if !(v >= 0 && v < 1) {
		c.add(path, fmt.Sprintf("must be in [0, 1), got %g", v))
	}
}

// check runs every semantic rule and returns the problems in schema order.
func (s *Scenario) check() []issue {
	c := &checker{}
	if strings.TrimSpace(s.Name) == "" {
		c.add("name", "must not be empty")
	}
	s.checkSeeds(c)
	s.checkMethods(c)
	s.checkData(c)
	s.checkPartition(c)
	s.checkModel(c)
	s.checkTrain(c)
	s.checkFineTune(c)
	s.checkLimits(c)
	c.atLeast("eval.every", s.Eval.Every, 0)
	c.atLeast("eval.batch_size", s.Eval.BatchSize, 1)
	checkNATS(c, s.Transport.NATS)
	if t := s.Transport.Timeout; t != 0 && t < minTimeout {
		c.add("transport.timeout", fmt.Sprintf("must be 0 (the default, %s) or at least %s, got %s", transport.DefaultTimeout, minTimeout, t))
	}
	for _, p := range s.FOT.Validate() {
		c.add("fot."+p.Key, p.Msg)
	}
	s.checkSystem(c)
	s.checkSecAgg(c)
	return c.issues
}

func (s *Scenario) checkSeeds(c *checker) {
	if len(s.Seeds) == 0 {
		c.add("seeds", "must list at least one seed")
	}
	first := map[int64]int{}
	for i, seed := range s.Seeds {
		p := fmt.Sprintf("seeds[%d]", i)
		if seed < 0 {
			c.add(p, fmt.Sprintf("must be >= 0, got %d", seed))
		}
		if j, dup := first[seed]; dup {
			c.add(p, fmt.Sprintf("duplicate seed %d (also seeds[%d])", seed, j), fmt.Sprintf("seeds[%d]", j))
			continue
		}
		first[seed] = i
	}
}

func (s *Scenario) checkMethods(c *checker) {
	if len(s.Methods) == 0 {
		c.add("methods", "must list at least one method")
	}
	first := map[string]int{}
	for i, m := range s.Methods {
		p := fmt.Sprintf("methods[%d]", i)
		info, ok := LookupMethod(m.Name)
		if !ok {
			c.add(p, unknownMethod(m.Name))
			continue
		}
		bad := false
		for _, k := range m.optionOrder(info) {
			o := info.Option(k)
			if o == nil {
				c.add(p+"."+k, unknownOption(info, k))
				bad = true
				continue
			}
			if msg := checkGoOption(*o, m.Options[k]); msg != "" {
				c.add(p+"."+k, msg)
				bad = true
			}
		}
		if bad {
			continue
		}
		// The method's own checks, on the options written on it (the fot: block's
		// values, which a Block fot method starts from, are checked as fot.*).
		opts, err := s.MethodOptions(m)
		if err != nil {
			c.add(p, err.Error())
			continue
		}
		for _, pr := range info.def.Check(opts) {
			if _, set := m.Options[pr.Key]; set {
				c.add(p+"."+pr.Key, pr.Msg)
			}
		}
		key := s.effectiveKey(m)
		if j, dup := first[key]; dup {
			c.add(p, fmt.Sprintf("duplicate method: %s runs the same configuration as methods[%d] (%s)",
				m.Label(), j, s.Methods[j].Label()), fmt.Sprintf("methods[%d]", j))
			continue
		}
		first[key] = i
	}
}

func (s *Scenario) checkData(c *checker) {
	d := s.Data
	c.allowed("data.dataset", "dataset", d.Dataset, datasets)
	c.allowed("data.stream", "stream", d.Stream, streams)
	c.atLeast("data.tasks", d.Tasks, 1)
	c.allowed("data.mode", "mode", d.Mode, modes)
	c.atLeast("data.train_limit", d.TrainLimit, 0)
	c.atLeast("data.test_limit", d.TestLimit, 0)
	if d.Normalize {
		c.positive("data.std", d.Std)
	}
	if d.Stream == "split" {
		c.atLeast("data.classes_per_task", d.ClassesPerTask, 1)
		if classes := d.Classes(); classes > 0 && d.Tasks >= 1 && d.ClassesPerTask >= 1 && d.Tasks*d.ClassesPerTask > classes {
			c.add("data.tasks", fmt.Sprintf(
				"split stream needs data.tasks x data.classes_per_task = %d x %d = %d classes but %s has %d: use fewer tasks or fewer classes per task",
				d.Tasks, d.ClassesPerTask, d.Tasks*d.ClassesPerTask, d.Dataset, classes),
				"data.classes_per_task", "data.stream", "data.dataset", "data.synthetic.classes")
		}
	}
	if d.Stream == "rotated" {
		if d.Dataset == "synthetic" {
			c.add("data.stream", "the rotated stream needs an image dataset (mnist or fashion), not synthetic", "data.dataset")
		}
		if len(d.Angles) > 0 && len(d.Angles) != d.Tasks {
			c.add("data.angles", fmt.Sprintf("has %s but data.tasks is %d: give one angle per task or none", plural(len(d.Angles), "angle"), d.Tasks), "data.tasks")
		}
	} else if len(d.Angles) > 0 {
		c.add("data.angles", fmt.Sprintf("is only used by stream rotated (this stream is %s): remove it", d.Stream), "data.stream")
	}
	if d.Dataset == "synthetic" {
		sy := d.Synthetic
		c.atLeast("data.synthetic.train", sy.Train, 1)
		c.atLeast("data.synthetic.test", sy.Test, 1)
		c.atLeast("data.synthetic.classes", sy.Classes, 2)
		c.atLeast("data.synthetic.dim", sy.Dim, 1)
		c.nonNegative("data.synthetic.noise", sy.Noise)
	}
}

func (s *Scenario) checkPartition(c *checker) {
	p := s.Partition
	c.atLeast("partition.clients", p.Clients, 1)
	c.allowed("partition.scheme", "scheme", p.Scheme, schemes)
	switch p.Scheme {
	case "dirichlet":
		c.positive("partition.alpha", p.Alpha)
	case "shards":
		c.atLeast("partition.shards_per_client", p.ShardsPerClient, 1)
	}
}

func (s *Scenario) checkModel(c *checker) {
	m := s.Model
	c.allowed("model.arch", "arch", m.Arch, archs)
	c.allowed("model.heads", "heads", m.Heads, headKinds)
	for i, h := range m.Hidden {
		c.atLeast(fmt.Sprintf("model.hidden[%d]", i), h, 1)
	}
	if len(m.Dropout) != len(m.Hidden) {
		c.add("model.dropout", fmt.Sprintf("has %s but model.hidden has %s: give one dropout per hidden layer",
			plural(len(m.Dropout), "value"), plural(len(m.Hidden), "layer")), "model.hidden")
	}
	for i, p := range m.Dropout {
		c.unitOpen(fmt.Sprintf("model.dropout[%d]", i), p)
	}
	switch m.Arch {
	case "cnn":
		if len(m.Conv) == 0 {
			c.add("model.conv", "arch cnn needs at least one conv block")
		}
		if s.Data.Dataset == "synthetic" {
			c.add("model.arch", "arch cnn needs an image dataset (mnist or fashion), not synthetic", "data.dataset")
		}
	case "mlp":
		if len(m.Conv) > 0 {
			c.add("model.conv", "is only used by arch cnn: remove it or set model.arch: cnn", "model.arch")
		}
	}
	for i, cv := range m.Conv {
		p := fmt.Sprintf("model.conv[%d].", i)
		c.atLeast(p+"out", cv.Out, 1)
		c.atLeast(p+"kernel", cv.Kernel, 1)
		c.atLeast(p+"stride", cv.Stride, 1)
		c.atLeast(p+"pad", cv.Pad, 0)
		c.atLeast(p+"pool", cv.Pool, 1)
	}
}

func (s *Scenario) checkTrain(c *checker) {
	t := s.Train
	c.atLeast("train.rounds_per_task", t.RoundsPerTask, 1)
	c.atLeast("train.clients_per_round", t.ClientsPerRound, 1)
	if t.ClientsPerRound > s.Partition.Clients && s.Partition.Clients >= 1 {
		c.add("train.clients_per_round", fmt.Sprintf(
			"train.clients_per_round (%d) is larger than partition.clients (%d): lower it or add clients",
			t.ClientsPerRound, s.Partition.Clients), "partition.clients")
	}
	c.atLeast("train.local_epochs", t.LocalEpochs, 1)
	c.atLeast("train.batch_size", t.BatchSize, 1)
	c.positive("train.lr", t.LR)
	c.nonNegative("train.weight_decay", t.WeightDecay)
	c.unitOpen("train.momentum", t.Momentum)
	c.allowed("train.weighting", "weighting", t.Weighting, weightings)
	c.positive("train.server_lr", t.ServerLR)
	c.atLeast("train.workers", t.Workers, 0)
	if t.Deadline < 0 {
		c.add("train.deadline", fmt.Sprintf("must be >= 0, got %s", t.Deadline))
	}
	c.nonNegative("train.max_update_norm", t.MaxUpdateNorm)
}

// minTimeout is the shortest transport.timeout: a connection must be
// allowed a few reconnect attempts.
const minTimeout = 100 * time.Millisecond

func checkNATS(c *checker, v string) {
	if v == "embedded" {
		return
	}
	ok := true
	for _, p := range strings.Split(v, ",") {
		u, err := url.Parse(strings.TrimSpace(p))
		ok = ok && err == nil && (u.Scheme == "nats" || u.Scheme == "tls") && u.Host != ""
	}
	if ok {
		return
	}
	c.add("transport.nats", fmt.Sprintf(`want "embedded" or a nats:// or tls:// URL such as nats://host:4222 (or several, comma-separated: a cluster's nodes), got %q`, v))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
