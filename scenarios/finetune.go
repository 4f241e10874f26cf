package scenarios

import (
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoRA asks for LoRA adapters (docs/ALGORITHMS.md section 4): every adapted weight W0 is used
// as W = W0 + (Alpha/Rank) B A with B (d_out x Rank) starting at 0 and A (Rank x d_in)
// uniform. It maps onto nn.LoRASpec.
type LoRA struct {
	// Rank is r. Default: 8.
	Rank int `yaml:"rank"`
	// Alpha sets the scale s = Alpha / Rank. Default: 8.
	Alpha float64 `yaml:"alpha"`
	// Layers names the adapted weights ("fc0.weight", "conv1.weight", "head.weight");
	// empty adapts every shared weight (the trunk and a shared head). Default: [].
	Layers []string `yaml:"layers,flow"`
}

// DefaultLoRA returns the model.lora block that `lora: {}` describes.
func DefaultLoRA() LoRA { return LoRA{Rank: 8, Alpha: 8, Layers: []string{}} }

// defaults fills a model.lora block before decoding it (see decoder.value).
func (l *LoRA) defaults() { *l = DefaultLoRA() }

// Pretrain makes the first Tasks tasks of the stream train the base model (every base
// parameter; LoRA adapters stay at B = 0, so the model computes the base's function)
// before the methods' own training starts on the later tasks.
type Pretrain struct {
	// Tasks is the number of leading tasks that pretrain the base. Default: 0.
	Tasks int `yaml:"tasks"`
	// Epochs is the number of epochs of central pretraining over each task. Default: 1.
	Epochs int `yaml:"epochs"`
	// LR is the pretraining learning rate; 0 means train.lr. Default: 0.
	LR float64 `yaml:"lr"`
	// Mode is central (one learner with all of the task's training data) or federated
	// (plain FedAvg rounds with the train: settings). Default: central.
	Mode string `yaml:"mode"`
}

// DefaultPretrain returns the default pretrain: block (no pretraining).
func DefaultPretrain() Pretrain { return Pretrain{Tasks: 0, Epochs: 1, LR: 0, Mode: "central"} }

// DP configures example-level DP-SGD on the clients (docs/ALGORITHMS.md section 5). A
// method's dp_epsilon option overrides Epsilon (see Scenario.DPFor).
type DP struct {
	// Epsilon is the target epsilon of each client over the whole run; 0 (or .inf in
	// YAML) turns DP off. Default: 0.
	Epsilon float64 `yaml:"epsilon"`
	// Delta is the target delta, in (0, 1). Default: 1e-5.
	Delta float64 `yaml:"delta"`
	// Clip is the L2 norm C every per-sample gradient is clipped to. Default: 2.
	Clip float64 `yaml:"clip"`
}

// DefaultDP returns the default dp: block (DP off).
func DefaultDP() DP { return DP{Epsilon: 0, Delta: 1e-5, Clip: 2} }

// On reports whether DP-SGD is on.
func (d DP) On() bool { return d.Epsilon > 0 }

// OptionDPEpsilon is the option every method takes: the method's DP target epsilon,
// overriding dp.epsilon, so that one scenario can compare one method with and without
// privacy: methods: [fedsvd, {name: fedsvd, dp_epsilon: 6}].
const OptionDPEpsilon = "dp_epsilon"

// commonOptions are the options every registered method takes besides its own
// (MethodInfo.Option finds them; Methods does not list them under each method).
var commonOptions = []KeyDoc{
	{Path: OptionDPEpsilon, Kind: KindFloat, Default: "0", Short: "eps_dp",
		Doc: "DP-SGD target epsilon of this method, overriding dp.epsilon; 0 or .inf = no DP (labels show inf)"},
}

// CommonOptions returns the options every method takes besides its own (dp_epsilon).
func CommonOptions() []KeyDoc { return slices.Clone(commonOptions) }

// DPFor returns the dp: block with m's dp_epsilon, if set, as Epsilon.
func (s *Scenario) DPFor(m Method) DP {
	d := s.DP
	if v, ok := m.Options[OptionDPEpsilon].(float64); ok {
		d.Epsilon = v
	}
	return d
}

// isInf reports whether a YAML scalar spells infinity: .inf, +.inf, inf, infinity (any
// case). dp.epsilon and dp_epsilon accept it for "no DP".
func isInf(n *yaml.Node) bool {
	if n == nil || n.Kind != yaml.ScalarNode {
		return false
	}
	switch strings.ToLower(n.Value) {
	case ".inf", "+.inf", "inf", "+inf", "infinity", "+infinity":
		return true
	}
	return false
}

// Pretraining modes.
var pretrainModes = []string{"central", "federated"}

// checkFineTune checks model.lora, pretrain:, train.local_steps, dp: and how the
// methods use them.
func (s *Scenario) checkFineTune(c *checker) {
	if l := s.Model.LoRA; l != nil {
		c.atLeast("model.lora.rank", l.Rank, 1)
		c.positive("model.lora.alpha", l.Alpha)
		seen := map[string]int{}
		for i, name := range l.Layers {
			p := fmt.Sprintf("model.lora.layers[%d]", i)
			if j, dup := seen[name]; dup {
				c.add(p, fmt.Sprintf("duplicate layer %q (also model.lora.layers[%d])", name, j))
				continue
			}
			seen[name] = i
			if !strings.HasSuffix(name, ".weight") {
				c.add(p, fmt.Sprintf("want a weight name such as fc0.weight or head.weight, got %q", name))
			}
		}
	}
	p := s.Pretrain
	c.atLeast("pretrain.tasks", p.Tasks, 0)
	if p.Tasks > 0 && s.Data.Tasks >= 1 && p.Tasks >= s.Data.Tasks {
		c.add("pretrain.tasks", fmt.Sprintf(
			"pretrain.tasks (%d) must be below data.tasks (%d): the methods need at least one task after pretraining",
			p.Tasks, s.Data.Tasks), "data.tasks")
	}
	c.atLeast("pretrain.epochs", p.Epochs, 1)
	c.nonNegative("pretrain.lr", p.LR)
	c.allowed("pretrain.mode", "mode", p.Mode, pretrainModes)
	c.atLeast("train.local_steps", s.Train.LocalSteps, 0)

	d := s.DP
	c.nonNegative("dp.epsilon", d.Epsilon)
	if !(d.Delta > 0 && d.Delta < 1) {
		c.add("dp.delta", fmt.Sprintf("must be in (0, 1), got %g", d.Delta))
	}
	c.positive("dp.clip", d.Clip)

	for i, m := range s.Methods {
		info, ok := LookupMethod(m.Name)
		if !ok {
			continue
		}
		path := fmt.Sprintf("methods[%d]", i)
		if v, ok := m.Options[OptionDPEpsilon].(float64); ok && !(v >= 0) {
			c.add(path+"."+OptionDPEpsilon, fmt.Sprintf("must be >= 0 (0 = no DP), got %g", v))
		}
		if info.LoRA != "" && s.Model.LoRA == nil {
			c.add(path, fmt.Sprintf("method %s trains LoRA adapters but model.lora is not set: add model.lora: {rank: 8} (or remove the method)", m.Name), "model.lora", "model")
		}
		if info.LoRA != "" && s.Model.LoRA != nil && len(s.Model.LoRA.Layers) == 0 && s.Model.Heads == "per_task" {
			c.add(path, fmt.Sprintf("method %s trains only LoRA adapters, which model.lora puts on shared weights only, so the per-task heads (model.heads: per_task) would never train: use model.heads: shared or list the heads in model.lora.layers (head0.weight, ...)", m.Name), "model.heads", "model.lora")
		}
		if info.NoDP != "" && s.DPFor(m).On() {
			c.add(path, fmt.Sprintf("method %s cannot run with DP-SGD (dp.epsilon or dp_epsilon > 0): %s", m.Name, info.NoDP), "dp.epsilon")
		}
		if info.SharedHead != "" && s.Model.Heads == "per_task" {
			c.add(path, fmt.Sprintf("method %s needs model.heads: shared (%s)", m.Name, info.SharedHead), "model.heads")
		}
	}
}
