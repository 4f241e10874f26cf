// Package scenarios is fotsim's library of experiment descriptions: the YAML schema,
// the built-in scenarios (embedded with go:embed), and a strict loader that reports
// every problem at once.
//
// # Loading
//
//	s, err := scenarios.Load("quickstart", []string{"methods=[fedavg,fot]"})
//	if errors.Is(err, scenarios.ErrInvalid) { /* print err, exit 2 */ }
//	for _, r := range s.Runs() { /* r.Method, r.Seed */ }
//	record, _ := s.Resolved() // the YAML actually run, defaults filled
//
// Load takes a file path (used if the file exists) or a built-in name (Builtins:
// "quickstart", "synthetic", "fedsvd-dp", ...; a repository path such as
// "scenarios/fedsvd-dp.yaml" also names the built-in when no such file exists).
// Parse does the same from bytes.
//
// # Schema
//
// The keys and their defaults are listed by Reference (and rendered by
// ReferenceMarkdown); the Go types Scenario, Data, Synthetic, Partition, Model, Conv,
// LoRA, Train, Pretrain, DP, Eval, Transport and FOT mirror them through their yaml
// tags (model.lora is optional: absent means no adapters):
//
//	name: quickstart
//	seeds: [0]
//	methods: [fedavg, {name: fot, epsilon: 0.9}]
//	data:      {dataset: mnist, stream: permuted, tasks: 3}
//	partition: {clients: 10, scheme: iid}
//	model:     {arch: mlp, hidden: [100, 100], heads: shared}
//	train:     {rounds_per_task: 5, clients_per_round: 5, lr: 0.01, deadline: 0s}
//	eval:      {every: 5}
//	transport: {nats: embedded}
//	fot:       {epsilon: 0.96}
//
// Defaults are filled after decoding. Keys not written take the value of Default();
// then the dependent defaults apply: data.mean and data.std follow the dataset (mnist
// 0.1307/0.3081, fashion 0.2860/0.3530, synthetic 0/1) unless written; model.dropout
// is zeros of len(model.hidden); model.conv gets two 5x5 blocks for arch cnn; a conv
// block's stride and pool default to 1; train.workers 0 becomes runtime.NumCPU(); name
// defaults to the built-in or file name.
//
// # Methods
//
// methods: lists names or mappings {name: NAME, option: value}. The methods are those
// of the registry in package methods (Methods and LookupMethod show them as MethodInfo):
// each option written is checked against the method's options struct (key, kind,
// allowed values) with its file and line, then the method's own Validate runs on the
// result. Scenario.MethodOptions(m) returns the options a run uses, a value of the
// method's options type: the defaults, or for fot and central-gpm the fot: block
// (Scenario.FOTFor), with the written options laid over them. Every method also takes
// dp_epsilon (CommonOptions), its DP-SGD target overriding dp.epsilon (Scenario.DPFor;
// 0 or .inf = no DP, labelled eps_dp=inf). The LoRA methods (MethodInfo.LoRA) need
// model.lora. Method.Label names a method in tables ("fot(eps=0.9)"); two methods that
// would run the same configuration are a validation error, so labels are unique. A new
// method is registered in package methods (see its doc) and scenarios can name it.
//
// # Errors
//
// Decoding walks the yaml.Node tree itself, so that one pass reports every problem:
// malformed YAML (with yaml's line), unknown keys (with a "did you mean" by edit
// distance), wrong types, then the semantic rules of Validate (unknown enum values with
// the allowed list, out-of-range numbers, inconsistent keys). The result is an Errors,
// one line per problem, "file:line:col: path: msg", sorted by line; it matches
// ErrInvalid, on which the CLI exits with status 2.
//
// # Overrides
//
// Each --set is "path=value" with a YAML value, applied to the node tree before decoding
// so that it gets the same checks:
//
//	--set train.rounds_per_task=20
//	--set 'methods=[fedavg,fot]'
//	--set model.hidden=[400,400]
//	--set methods=fot               # a single value where a list is expected is a one-item list
//	--set 'methods[1].epsilon=0.9'  # list items by index; a plain method name becomes {name: ...}
//	--set 'model.conv[0].out=64'
//
// A --set replaces the whole value at its path. Problems it causes are reported as
// "--set PATH=VALUE: path: msg"; an unknown path names the closest key; a --set
// without '=' is an error.
//
// # Built-in scenarios
//
// builtin/*.yaml are embedded and named by their base name. To add a directory such as
// paper/ (names "paper/pmnist-iid"), create scenarios/paper/*.yaml and add the pattern
// to the go:embed line in load.go ("//go:embed builtin/*.yaml paper/*.yaml").
//
// The package imports only gopkg.in/yaml.v3 and the standard library; sim turns a
// Scenario into data, nn, server and client configurations.
package scenarios
