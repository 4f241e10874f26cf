package scenarios

import (
	"bytes"
	"fmt"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/transport"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Scenario is one experiment description: which data, how it is split among clients,
// which model, how it is trained, and which methods and seeds to run. The yaml tags are
// the public key paths; Reference documents every key and its default.
type Scenario struct {
	// Name identifies the scenario in tables and run records.
	// Default: the built-in name or the file's base name without extension.
	Name string `yaml:"name"`
	// Description is free text. Default: "".
	Description string `yaml:"description"`
	// Seeds lists the random seeds; every method runs once per seed. Default: [0].
	Seeds []int64 `yaml:"seeds,flow"`
	// Methods lists the methods to compare (see Methods). Default: [fedavg].
	Methods []Method `yaml:"methods"`

	Data      Data      `yaml:"data"`
	Partition Partition `yaml:"partition"`
	Model     Model     `yaml:"model"`
	Train     Train     `yaml:"train"`
	Pretrain  Pretrain  `yaml:"pretrain"`
	DP        DP        `yaml:"dp"`
	Eval      Eval      `yaml:"eval"`
	Transport Transport `yaml:"transport"`
	FOT       FOT       `yaml:"fot"`
	// System is the system heterogeneity (see System); nil (the key absent) means
	// none. Default: absent.
	System *System `yaml:"system,omitempty"`
	// SecAgg turns on secure aggregation (see SecAgg); nil (the key absent)
	// aggregates in the clear. Default: absent.
	SecAgg *SecAgg `yaml:"secagg,omitempty"`

	// Source is where the scenario came from: a file path or "builtin:NAME". It is not
	// part of the YAML.
	Source string `yaml:"-"`
}

// Data selects the dataset and the task stream built from it.
type Data struct {
	// Dataset is mnist, fashion (Fashion-MNIST) or synthetic. Default: mnist.
	Dataset string `yaml:"dataset"`
	// Dir holds the dataset files; "" lets package data look in its default places.
	Dir string `yaml:"dir"`
	// Stream is permuted, rotated or split. Default: permuted.
	Stream string `yaml:"stream"`
	// Tasks is the number of tasks. Default: 3.
	Tasks int `yaml:"tasks"`
	// Angles are the rotation angles in degrees, one per task (rotated stream only);
	// empty lets package data space them evenly. Default: [].
	Angles []float64 `yaml:"angles,flow"`
	// ClassesPerTask is the number of classes of each task (split stream only). Default: 2.
	ClassesPerTask int `yaml:"classes_per_task"`
	// Mode is class (class-incremental: global labels) or task (task-incremental: labels
	// renumbered within each task). Split stream only. Default: class.
	Mode string `yaml:"mode"`
	// Normalize applies x = (pixel/255 - Mean)/Std. Default: true.
	Normalize bool `yaml:"normalize"`
	// Mean and Std default by dataset: mnist 0.1307/0.3081, fashion 0.2860/0.3530,
	// synthetic 0/1 (synthetic data is generated standardised; both are ignored for it).
	Mean float64 `yaml:"mean"`
	Std  float64 `yaml:"std"`
	// TrainLimit and TestLimit keep only the first N images of the dataset (0 = all).
	TrainLimit int `yaml:"train_limit"`
	TestLimit  int `yaml:"test_limit"`
	// Synthetic configures the generated dataset (dataset: synthetic only).
	Synthetic Synthetic `yaml:"synthetic"`
}

// Synthetic configures the generated Gaussian-cluster dataset.
type Synthetic struct {
	Train   int     `yaml:"train"`   // training samples. Default: 6000.
	Test    int     `yaml:"test"`    // test samples. Default: 1000.
	Classes int     `yaml:"classes"` // number of classes. Default: 10.
	Dim     int     `yaml:"dim"`     // input dimension. Default: 64.
	Noise   float64 `yaml:"noise"`   // standard deviation around the class centres. Default: 1.
}

// Partition says how each task's training data is dealt to the clients.
type Partition struct {
	// Clients is the number of simulated clients. Default: 10.
	Clients int `yaml:"clients"`
	// Scheme is iid, shards (sort by label, 2 x clients shards, ShardsPerClient each) or
	// dirichlet (label proportions ~ Dirichlet(Alpha)). Default: iid.
	Scheme string `yaml:"scheme"`
	// Alpha is the Dirichlet concentration (dirichlet only). Default: 0.5.
	Alpha float64 `yaml:"alpha"`
	// ShardsPerClient is the number of label-sorted shards per client (shards only).
	// Default: 2.
	ShardsPerClient int `yaml:"shards_per_client"`
}

// Model describes the network.
type Model struct {
	// Arch is mlp or cnn. Default: mlp.
	Arch string `yaml:"arch"`
	// Hidden are the widths of the fully connected hidden layers (after the conv blocks
	// for cnn). Default: [100, 100].
	Hidden []int `yaml:"hidden,flow"`
	// Dropout is the dropout probability after each hidden layer, len(Hidden) values in
	// [0, 1). Default: zeros.
	Dropout []float64 `yaml:"dropout,flow"`
	// Heads is shared (one output layer) or per_task (one output layer per task).
	// Default: shared.
	Heads string `yaml:"heads"`
	// Conv lists the conv -> ReLU -> max-pool blocks (cnn only). Default for cnn:
	// [{out: 32, kernel: 5, stride: 1, pad: 0, pool: 2}, {out: 64, kernel: 5, stride: 1,
	// pad: 0, pool: 2}]; must be empty for mlp.
	Conv []Conv `yaml:"conv,flow"`
	// LoRA adds LoRA adapters to the model (see LoRA); nil (the key absent) means
	// none. Only the LoRA methods use them. Default: absent.
	LoRA *LoRA `yaml:"lora,omitempty"`
}

// Conv is one convolution block.
type Conv struct {
	Out    int `yaml:"out"`    // output channels (required)
	Kernel int `yaml:"kernel"` // square kernel size (required)
	Stride int `yaml:"stride"` // Default: 1.
	Pad    int `yaml:"pad"`    // zero padding on each side. Default: 0.
	Pool   int `yaml:"pool"`   // max-pool size and stride; 1 = no pooling. Default: 1.
}

// Train configures rounds and local training.
type Train struct {
	RoundsPerTask   int     `yaml:"rounds_per_task"`   // communication rounds per task. Default: 5.
	ClientsPerRound int     `yaml:"clients_per_round"` // clients sampled per round. Default: 5.
	LocalEpochs     int     `yaml:"local_epochs"`      // epochs over the local data per round. Default: 1.
	LocalSteps      int     `yaml:"local_steps"`       // > 0: exactly that many SGD steps per round instead of epochs. Default: 0.
	BatchSize       int     `yaml:"batch_size"`        // local mini-batch size. Default: 64.
	LR              float64 `yaml:"lr"`                // client SGD learning rate. Default: 0.01.
	WeightDecay     float64 `yaml:"weight_decay"`      // L2 weight decay. Default: 0.
	Momentum        float64 `yaml:"momentum"`          // SGD momentum in [0, 1). Default: 0.
	// Weighting is uniform (mean over clients, the FOT code) or samples (n_k/n, the
	// FedAvg paper). Default: uniform.
	Weighting string  `yaml:"weighting"`
	ServerLR  float64 `yaml:"server_lr"` // server step on the aggregate. Default: 1.
	// Workers is the number of training goroutines per client host; 0 is replaced by
	// runtime.NumCPU() when loading. Results do not depend on it. Default: 0.
	Workers int `yaml:"workers"`
	// Deadline is how long the server waits for updates each round (a Go duration such
	// as 30s); 0 waits for all of them. Default: 0s.
	Deadline time.Duration `yaml:"deadline"`
	// MaxUpdateNorm is the largest L2 norm of a client update's delta the server
	// accepts (larger ones are rejected and counted); 0 means
	// server.DefaultMaxUpdateNorm (1000). Omitted from the resolved scenario when 0.
	// Default: 0.
	MaxUpdateNorm float64 `yaml:"max_update_norm,omitempty"`
}

// Eval configures evaluation.
type Eval struct {
	// Every evaluates every N rounds as well as at the end of each task; 0 = only at
	// task ends. Default: 5.
	Every int `yaml:"every"`
	// BatchSize is the evaluation batch size. Default: 1000.
	BatchSize int `yaml:"batch_size"`
}

// Transport selects the message bus.
type Transport struct {
	// NATS is "embedded" (an in-process server), a nats:// or tls:// URL, or
	// several comma-separated URLs (the nodes of a NATS cluster). Default:
	// embedded.
	NATS string `yaml:"nats"`
	// Timeout is how long a connection to an external NATS server may stay
	// down while it reconnects before the run ends with an error, and how
	// long the server waits without an update before it sends a round
	// again; 0 means transport.DefaultTimeout (30s). Omitted from the
	// resolved scenario when 0. Default: 0s.
	Timeout time.Duration `yaml:"timeout,omitempty"`
}

// DialTimeout is Timeout with 0 replaced by transport.DefaultTimeout.
func (t Transport) DialTimeout() time.Duration {
	if t.Timeout == 0 {
		return transport.DefaultTimeout
	}
	return t.Timeout
}

// FOT configures Federated Orthogonal Training (docs/ALGORITHMS.md section 3): the
// fot: block. Its type is the options type of the methods that use it (fot,
// central-gpm), whose own options override these values (see MethodOptions);
// methods.FOTOptions documents each key.
type FOT = methods.FOTOptions

// Run is one experiment: one method with one seed.
type Run struct {
	Method Method
	Seed   int64
}

// Dataset-dependent normalisation defaults.
var datasetNorm = map[string][2]float64{
	"mnist":     {0.1307, 0.3081},
	"fashion":   {0.2860, 0.3530},
	"synthetic": {0, 1},
}

// defaultConv is model.conv when arch is cnn and conv is not given.
func defaultConv() []Conv {
	return []Conv{
		{Out: 32, Kernel: 5, Stride: 1, Pad: 0, Pool: 2},
		{Out: 64, Kernel: 5, Stride: 1, Pad: 0, Pool: 2},
	}
}

// Default returns the scenario that an empty YAML file describes, before the
// dependent defaults: Mean/Std are MNIST's, Dropout is zeros for the default Hidden,
// Conv is empty (the mlp default) and Workers is 0 (Parse replaces it by the CPU count).
// Name and Source are empty.
func Default() Scenario {
	return Scenario{
		Seeds:   []int64{0},
		Methods: []Method{{Name: "fedavg"}},
		Data: Data{
			Dataset:        "mnist",
			Stream:         "permuted",
			Tasks:          3,
			Angles:         []float64{},
			ClassesPerTask: 2,
			Mode:           "class",
			Normalize:      true,
			Mean:           datasetNorm["mnist"][0],
			Std:            datasetNorm["mnist"][1],
			Synthetic:      Synthetic{Train: 6000, Test: 1000, Classes: 10, Dim: 64, Noise: 1},
		},
		Partition: Partition{Clients: 10, Scheme: "iid", Alpha: 0.5, ShardsPerClient: 2},
		Model: Model{
			Arch:    "mlp",
			Hidden:  []int{100, 100},
			Dropout: []float64{0, 0},
			Heads:   "shared",
			Conv:    []Conv{},
		},
		Train: Train{
			RoundsPerTask:   5,
			ClientsPerRound: 5,
			LocalEpochs:     1,
			BatchSize:       64,
			LR:              0.01,
			Weighting:       "uniform",
			ServerLR:        1,
		},
		Pretrain:  DefaultPretrain(),
		DP:        DefaultDP(),
		Eval:      Eval{Every: 5, BatchSize: 1000},
		Transport: Transport{NATS: "embedded"},
		FOT:       DefaultFOT(),
	}
}

// DefaultFOT returns the default fot: block.
func DefaultFOT() FOT { return methods.DefaultFOT() }

// Runs returns every method x seed combination, methods in the outer loop, both in the
// order the scenario lists them.
func (s *Scenario) Runs() []Run {
	runs := make([]Run, 0, len(s.Methods)*len(s.Seeds))
	for _, m := range s.Methods {
		for _, seed := range s.Seeds {
			runs = append(runs, Run{Method: m, Seed: seed})
		}
	}
	return runs
}

// FOTFor returns the FOT settings of a method with Block fot: the fot: block with m's
// options of the same keys laid over it; the fot: block for any other method.
func (s *Scenario) FOTFor(m Method) FOT {
	if o, err := s.MethodOptions(m); err == nil {
		if f, ok := o.(FOT); ok {
			return f
		}
	}
	return s.FOT
}

// Heads returns the number of output heads: 1 for shared, Data.Tasks for per_task.
func (s *Scenario) Heads() int {
	if s.Model.Heads == "per_task" {
		return s.Data.Tasks
	}
	return 1
}

// Classes returns the number of classes of the dataset (10 for mnist and fashion,
// Synthetic.Classes for synthetic, 0 for an unknown dataset).
func (d Data) Classes() int {
	switch d.Dataset {
	case "mnist", "fashion":
		return 10
	case "synthetic":
		return d.Synthetic.Classes
	}
	return 0
}

// Norm returns the normalisation to apply, (0, 0) meaning none (Normalize false).
func (d Data) Norm() (mean, std float32) {
	if !d.Normalize {
		return 0, 0
	}
	return float32(d.Mean), float32(d.Std)
}

// redactURLs replaces the passwords of the comma-separated URLs urls by
// "xxxxx".
func redactURLs(urls string) string {
	if !strings.Contains(urls, "@") {
		return urls
	}
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				parts[i] = u.Redacted()
			}
		}
	}
	return strings.Join(parts, ",")
}

// Resolved returns the scenario as YAML with every default filled in and every --set
// applied, in schema order; Parse of the result gives back an equal scenario. It is
// what a run record stores. A password in transport.nats
// (nats://user:password@host:4222) is written as "xxxxx", so that neither
// the record nor a fotsim server's run announcement gives it away.
func (s *Scenario) Resolved() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	out := *s
	out.Transport.NATS = redactURLs(s.Transport.NATS)
	if err := enc.Encode(&out); err != nil {
		return nil, fmt.Errorf("scenarios: encoding %s: %w", s.Name, err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("scenarios: encoding %s: %w", s.Name, err)
	}
	return buf.Bytes(), nil
}
