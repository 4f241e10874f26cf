package scenarios

import (
	"bytes"
	"errors"
	"github.com/fotsim/fotsim/methods"
	"github.com/fotsim/fotsim/transport"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// parseErrs parses and returns the Errors (failing the test on any other error type).
func parseErrs(t *testing.T, src string, sets ...string) Errors {
	t.Helper()
	_, err := Parse([]byte(src), "t.yaml", sets)
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T (%v), want Errors", err, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(err, ErrInvalid) = false, want true")
	}
	return errs
}

func mustParse(t *testing.T, src string, sets ...string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(src), "t.yaml", sets)
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return s
}

func TestBuiltinsParseAndValidate(t *testing.T) {
	names := Builtins()
	for _, want := range []string{"quickstart", "synthetic"} {
		if !slices.Contains(names, want) {
			t.Errorf("Builtins() = %v, want it to contain %q", names, want)
		}
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := Load(name, nil)
			if err != nil {
				t.Fatalf("Load(%q):\n%v", name, err)
			}
			if err := s.Validate(); err != nil {
				t.Errorf("Validate: %v", err)
			}
			if got, want := s.Source, "builtin:"+name; got != want {
				t.Errorf("Source = %q, want %q", got, want)
			}
			if want := path.Base(name); s.Name != want {
				t.Errorf("Name = %q, want %q (the built-in's base name)", s.Name, want)
			}
			if s.Description == "" {
				t.Errorf("Description is empty, want a one-line description")
			}
		})
	}
}

func TestQuickstart(t *testing.T) {
	s, err := Load("quickstart", nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"methods", s.Methods, []Method{{Name: "fedavg"}}},
		{"dataset", s.Data.Dataset, "mnist"},
		{"stream", s.Data.Stream, "permuted"},
		{"tasks", s.Data.Tasks, 3},
		{"clients", s.Partition.Clients, 10},
		{"scheme", s.Partition.Scheme, "iid"},
		{"hidden", s.Model.Hidden, []int{100, 100}},
		{"rounds_per_task", s.Train.RoundsPerTask, 5},
		{"clients_per_round", s.Train.ClientsPerRound, 5},
		{"eval.every", s.Eval.Every, 5},
		{"train_limit", s.Data.TrainLimit, 0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("quickstart %s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestSyntheticBuiltin(t *testing.T) {
	s, err := Load("synthetic", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Data.Dataset != "synthetic" {
		t.Errorf("dataset = %q, want synthetic", s.Data.Dataset)
	}
	if got, want := len(s.Runs()), 2; got != want {
		t.Errorf("len(Runs()) = %d, want %d", got, want)
	}
	if got, want := s.FOTFor(s.Methods[1]).Epsilon, 0.9; got != want {
		t.Errorf("fot epsilon = %g, want %g", got, want)
	}
}

// base is prepended to validation cases; it is 2 lines long, so the case's own lines
// start at line 3.
const base = "# validation case\n# (the case starts on line 3)\n"

func TestValidationRules(t *testing.T) {
	cases := []struct {
		name     string
		yaml     string // after base (line 3 on)
		sets     []string
		wantLine int
		wantPath string
		wantMsg  string
	}{
		{"unknown dataset", "data:\n  dataset: cifar\n", nil, 4, "data.dataset", `unknown dataset "cifar" (want mnist, fashion or synthetic)`},
		{"unknown stream", "data: {stream: spiral}\n", nil, 3, "data.stream", `unknown stream "spiral" (want permuted, rotated or split)`},
		{"unknown mode", "data: {stream: split, mode: domain}\n", nil, 3, "data.mode", `unknown mode "domain" (want class or task)`},
		{"unknown scheme", "partition:\n  scheme: pathological\n", nil, 4, "partition.scheme", `unknown scheme "pathological" (want iid, shards or dirichlet)`},
		{"unknown arch", "model:\n  arch: resnet\n", nil, 4, "model.arch", `unknown arch "resnet" (want mlp or cnn)`},
		{"unknown heads", "model:\n  heads: multi\n", nil, 4, "model.heads", `unknown heads "multi" (want shared or per_task)`},
		{"unknown weighting", "train:\n  weighting: size\n", nil, 4, "train.weighting", `unknown weighting "size" (want uniform or samples)`},
		{"unknown criterion", "fot:\n  criterion: svd\n", nil, 4, "fot.criterion", `unknown criterion "svd" (want fot or gpm)`},
		{"unknown sketch", "fot:\n  sketch: bernoulli\n", nil, 4, "fot.sketch", `unknown sketch "bernoulli" (want uniform or gaussian)`},
		{"tasks < 1", "data:\n  tasks: 0\n", nil, 4, "data.tasks", "must be at least 1, got 0"},
		{"clients < 1", "partition:\n  clients: 0\n", nil, 4, "partition.clients", "must be at least 1, got 0"},
		{"clients_per_round > clients", "partition:\n  clients: 10\ntrain:\n  clients_per_round: 12\n", nil, 6, "train.clients_per_round",
			"train.clients_per_round (12) is larger than partition.clients (10): lower it or add clients"},
		{"clients_per_round default > clients: blame clients", "partition:\n  clients: 3\n", nil, 4, "train.clients_per_round",
			"train.clients_per_round (5) is larger than partition.clients (3)"},
		{"rounds_per_task < 1", "train:\n  rounds_per_task: 0\n", nil, 4, "train.rounds_per_task", "must be at least 1, got 0"},
		{"local_epochs < 1", "train:\n  local_epochs: -1\n", nil, 4, "train.local_epochs", "must be at least 1, got -1"},
		{"batch_size < 1", "train:\n  batch_size: 0\n", nil, 4, "train.batch_size", "must be at least 1, got 0"},
		{"lr = 0", "train:\n  lr: 0\n", nil, 4, "train.lr", "must be > 0, got 0"},
		{"lr < 0", "train:\n  lr: -0.1\n", nil, 4, "train.lr", "must be > 0, got -0.1"},
		{"weight_decay < 0", "train:\n  weight_decay: -1e-5\n", nil, 4, "train.weight_decay", "must be >= 0, got -1e-05"},
		{"momentum >= 1", "train:\n  momentum: 1\n", nil, 4, "train.momentum", "must be in [0, 1), got 1"},
		{"server_lr = 0", "train:\n  server_lr: 0\n", nil, 4, "train.server_lr", "must be > 0, got 0"},
		{"workers < 0", "train:\n  workers: -2\n", nil, 4, "train.workers", "must be at least 0, got -2"},
		{"deadline < 0", "train:\n  deadline: -1s\n", nil, 4, "train.deadline", "must be >= 0, got -1s"},
		{"dropout length", "model:\n  hidden: [10, 10, 10]\n  dropout: [0.2, 0.5]\n", nil, 5, "model.dropout",
			"has 2 values but model.hidden has 3 layers: give one dropout per hidden layer"},
		{"dropout = 1", "model:\n  hidden: [10]\n  dropout: [1]\n", nil, 5, "model.dropout[0]", "must be in [0, 1), got 1"},
		{"dropout < 0", "model:\n  hidden: [10, 10]\n  dropout:\n    - 0\n    - -0.5\n", nil, 7, "model.dropout[1]", "must be in [0, 1), got -0.5"},
		{"hidden width < 1", "model:\n  hidden: [10, 0]\n", nil, 4, "model.hidden[1]", "must be at least 1, got 0"},
		{"split needs classes", "data:\n  stream: split\n  tasks: 6\n  classes_per_task: 2\n", nil, 5, "data.tasks",
			"split stream needs data.tasks x data.classes_per_task = 6 x 2 = 12 classes but mnist has 10"},
		{"split synthetic classes", "data:\n  dataset: synthetic\n  stream: split\n  tasks: 3\n  synthetic: {classes: 4}\n", nil, 6, "data.tasks",
			"= 6 classes but synthetic has 4"},
		{"classes_per_task < 1", "data:\n  stream: split\n  classes_per_task: 0\n", nil, 5, "data.classes_per_task", "must be at least 1, got 0"},
		{"angles count", "data:\n  stream: rotated\n  tasks: 3\n  angles: [0, 45]\n", nil, 6, "data.angles",
			"has 2 angles but data.tasks is 3: give one angle per task or none"},
		{"angles unused", "data:\n  angles: [0, 45, 90]\n", nil, 4, "data.angles", "is only used by stream rotated (this stream is permuted)"},
		{"rotated synthetic", "data:\n  dataset: synthetic\n  stream: rotated\n", nil, 5, "data.stream", "the rotated stream needs an image dataset"},
		{"std = 0", "data:\n  std: 0\n", nil, 4, "data.std", "must be > 0, got 0"},
		{"train_limit < 0", "data:\n  train_limit: -1\n", nil, 4, "data.train_limit", "must be at least 0, got -1"},
		{"synthetic classes < 2", "data:\n  dataset: synthetic\n  synthetic:\n    classes: 1\n", nil, 6, "data.synthetic.classes", "must be at least 2, got 1"},
		{"synthetic noise < 0", "data:\n  dataset: synthetic\n  synthetic: {noise: -1}\n", nil, 5, "data.synthetic.noise", "must be >= 0, got -1"},
		{"dirichlet alpha", "partition:\n  scheme: dirichlet\n  alpha: 0\n", nil, 5, "partition.alpha", "must be > 0, got 0"},
		{"shards per client", "partition:\n  scheme: shards\n  shards_per_client: 0\n", nil, 5, "partition.shards_per_client", "must be at least 1, got 0"},
		{"conv with mlp", "model:\n  conv: [{out: 8, kernel: 3}]\n", nil, 4, "model.conv", "is only used by arch cnn"},
		{"cnn on synthetic", "data: {dataset: synthetic}\nmodel:\n  arch: cnn\n", nil, 5, "model.arch", "arch cnn needs an image dataset"},
		{"conv kernel < 1", "model:\n  arch: cnn\n  conv:\n    - {out: 8, kernel: 0}\n", nil, 6, "model.conv[0].kernel", "must be at least 1, got 0"},
		{"cnn without conv", "model:\n  arch: cnn\n  conv: []\n", nil, 5, "model.conv", "arch cnn needs at least one conv block"},
		{"eval.every < 0", "eval:\n  every: -1\n", nil, 4, "eval.every", "must be at least 0, got -1"},
		{"eval.batch_size < 1", "eval:\n  batch_size: 0\n", nil, 4, "eval.batch_size", "must be at least 1, got 0"},
		{"epsilon > 1", "fot:\n  epsilon: 1.5\n", nil, 4, "fot.epsilon", "must be in (0, 1], got 1.5"},
		{"epsilon = 0", "fot:\n  epsilon: 0\n", nil, 4, "fot.epsilon", "must be in (0, 1], got 0"},
		{"method epsilon", "methods:\n  - fedavg\n  - {name: fot, epsilon: 0}\n", nil, 5, "methods[1].epsilon", "must be in (0, 1], got 0"},
		{"eps_inc < 0", "fot:\n  eps_inc: -0.1\n", nil, 4, "fot.eps_inc", "must be in [0, 1), got -0.1"},
		{"oversample < 1", "fot:\n  oversample: 0\n", nil, 4, "fot.oversample", "must be at least 1, got 0"},
		{"empty seeds", "seeds: []\n", nil, 3, "seeds", "must list at least one seed"},
		{"negative seed", "seeds: [-1]\n", nil, 3, "seeds[0]", "must be >= 0, got -1"},
		{"empty methods", "methods: []\n", nil, 3, "methods", "must list at least one method"},
		{"duplicate seeds", "seeds: [0, 1, 0]\n", nil, 3, "seeds[2]", "duplicate seed 0 (also seeds[0])"},
		{"duplicate methods", "methods: [fedavg, fot, fedavg]\n", nil, 3, "methods[2]", "duplicate method: fedavg runs the same configuration as methods[0] (fedavg)"},
		{"duplicate via block value", "methods: [fot, {name: fot, epsilon: 0.96}]\n", nil, 3, "methods[1]",
			"duplicate method: fot(eps=0.96) runs the same configuration as methods[0] (fot)"},
		{"nats scheme", "transport:\n  nats: http://host:4222\n", nil, 4, "transport.nats", `want "embedded" or a nats:// or tls:// URL`},
		{"nats no host", "transport:\n  nats: nats://\n", nil, 4, "transport.nats", `got "nats://"`},
		{"nats list item", "transport:\n  nats: nats://a:4222,http://b:4222\n", nil, 4, "transport.nats", `(or several, comma-separated: a cluster's nodes), got "nats://a:4222,http://b:4222"`},
		{"nats list empty item", "transport:\n  nats: 'nats://a:4222,'\n", nil, 4, "transport.nats", `got "nats://a:4222,"`},
		{"timeout < 0", "transport:\n  timeout: -1s\n", nil, 4, "transport.timeout", "must be 0 (the default, 30s) or at least 100ms, got -1s"},
		{"timeout tiny", "transport:\n  timeout: 1ms\n", nil, 4, "transport.timeout", "or at least 100ms, got 1ms"},
		{"timeout not a duration", "transport:\n  timeout: 30\n", nil, 4, "transport.timeout", "want a duration such as 30s"},
		// type errors
		{"want number", "train:\n  lr: fast\n", nil, 4, "train.lr", `want a number, got "fast"`},
		{"want integer", "train:\n  batch_size: 1.5\n", nil, 4, "train.batch_size", "want an integer, got 1.5"},
		{"want bool", "data:\n  normalize: yes\n", nil, 4, "data.normalize", `want true or false, got "yes"`},
		{"want list", "methods: fedavg\n", nil, 3, "methods", "want a list, got \"fedavg\" (write [fedavg] for a one-item list)"},
		{"want mapping", "data: mnist\n", nil, 3, "data", `want a mapping of keys, got "mnist"`},
		{"want duration", "train:\n  deadline: 30\n", nil, 4, "train.deadline", "want a duration such as 30s"},
		{"null number", "train:\n  lr:\n", nil, 4, "train.lr", "want a number, got nothing"},
		{"not finite", "train:\n  lr: .inf\n", nil, 4, "train.lr", "want a finite number, got .inf"},
		{"duplicate key", "train:\n  lr: 0.1\n  lr: 0.2\n", nil, 5, "train.lr", "duplicate key (first at line 4)"},
		{"unknown key", "train:\n  rounds_per_tsk: 3\n", nil, 4, "train.rounds_per_tsk", `unknown key; did you mean "train.rounds_per_task"?`},
		{"malformed YAML: flow list", "train:\n  lr: [0.1\n", nil, 4, "", "malformed YAML: did not find expected ',' or ']' (in the [...] that starts on this line"},
		{"malformed YAML: indentation", "train:\n  lr: 1\n  - 3\n", nil, 4, "", "malformed YAML: did not find expected key (in the mapping that starts on this line"},
		{"malformed YAML: tab", "train:\n\tlr: 1\n", nil, 4, "", "malformed YAML: found character that cannot start any token"},
		{"malformed YAML: quote", "train:\n  x: 'abc\n", nil, 4, "", "malformed YAML: found unexpected end of stream"},
		{"two documents", "train: {}\n---\nname: u\n", nil, 4, "", "found a second one"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, base+c.yaml, c.sets...)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), errs)
			}
			e := errs[0]
			if e.Line != c.wantLine || e.Path != c.wantPath || !strings.Contains(e.Msg, c.wantMsg) {
				t.Errorf("got line %d path %q msg %q,\nwant line %d path %q msg containing %q", e.Line, e.Path, e.Msg, c.wantLine, c.wantPath, c.wantMsg)
			}
			if e.File != "t.yaml" {
				t.Errorf("got File %q, want t.yaml", e.File)
			}
		})
	}
}

func TestEmptyName(t *testing.T) {
	_, err := Parse([]byte("seeds: [0]\n"), "", nil)
	if err == nil || err.Error() != "name: must not be empty" {
		t.Errorf("Parse without name or file: got %v, want %q", err, "name: must not be empty")
	}
	s, err := Parse([]byte("name: ''\n"), "dir/from-file.yml", nil)
	if err != nil || s.Name != "from-file" {
		t.Errorf("empty name with a file: got %v, %v, want name from-file", s, err)
	}
}

func TestValidNATSAndEdgeValues(t *testing.T) {
	cases := []string{
		"transport: {nats: 'nats://host:4222'}",
		"transport: {nats: 'tls://10.0.0.1:4222'}",
		"transport: {nats: 'nats://10.0.0.1:4222,nats://10.0.0.2:4222, tls://10.0.0.3:4222'}",
		"transport: {timeout: 2s}",
		"transport: {timeout: 0s}",
		"fot: {epsilon: 1}",
		"train: {clients_per_round: 10, deadline: 1m30s}",
		"train: {deadline: 0}",
		"data: {stream: split, tasks: 5, classes_per_task: 2}",
		"data: {stream: rotated, tasks: 2, angles: [0, 90]}",
		"model: {hidden: []}",
		"data: {train_limit: 6e4}",
		"seeds: [0, 1, 2]",
		"data:\nmodel:\n", // empty blocks keep their defaults
	}
	for _, src := range cases {
		if _, err := Parse([]byte(src), "t.yaml", nil); err != nil {
			t.Errorf("Parse(%q):\n%v\nwant no error", src, err)
		}
	}
}

func TestMultipleErrorsAtOnce(t *testing.T) {
	src := `name: multi
seeds: [1, 1]
methods: [fedavg, {name: fot, epsilon: two}, fedavgg]
data:
  dataset: cifar
  tasks: 0
lr: 0.1
model:
  hiden: [10]
train:
  batch_size: 1.5
  clients_per_round: 12
transport: {nats: "http://foo"}
`
	errs := parseErrs(t, src, "train.lr=-1", "eval.evry=3")
	want := []struct {
		line int
		file string
		path string
	}{
		{2, "t.yaml", "seeds[1]"},
		{3, "t.yaml", "methods[1].epsilon"},
		{3, "t.yaml", "methods[2]"},
		{5, "t.yaml", "data.dataset"},
		{6, "t.yaml", "data.tasks"},
		{7, "t.yaml", "lr"},
		{9, "t.yaml", "model.hiden"},
		{11, "t.yaml", "train.batch_size"},
		{12, "t.yaml", "train.clients_per_round"},
		{13, "t.yaml", "transport.nats"},
		{0, "--set eval.evry=3", "eval.evry"},
		{0, "--set train.lr=-1", "train.lr"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if e := errs[i]; e.Line != w.line || e.File != w.file || e.Path != w.path {
			t.Errorf("error %d: got %s:%d %s, want %s:%d %s (%v)", i, e.File, e.Line, e.Path, w.file, w.line, w.path, e)
		}
	}
	lines := strings.Split(errs.Error(), "\n")
	if len(lines) != len(want) {
		t.Errorf("Error() has %d lines, want %d", len(lines), len(want))
	}
	if got, wantLine := lines[0], "t.yaml:2:12: seeds[1]: duplicate seed 1 (also seeds[0])"; got != wantLine {
		t.Errorf("first line = %q, want %q", got, wantLine)
	}
	if got, wantLine := lines[8], "t.yaml:12:22: train.clients_per_round (12) is larger than partition.clients (10): lower it or add clients"; got != wantLine {
		t.Errorf("line 9 = %q, want %q", got, wantLine)
	}
}

func TestUnknownKeySuggestions(t *testing.T) {
	cases := []struct {
		yaml, wantPath, wantMsg string
	}{
		{"train: {rouds_per_task: 3}", "train.rouds_per_task", `did you mean "train.rounds_per_task"?`},
		{"train: {rounds: 3}", "train.rounds", `did you mean "train.rounds_per_task"?`},
		{"data: {datset: mnist}", "data.datset", `did you mean "data.dataset"?`},
		{"epsilon: 0.9", "epsilon", `did you mean "dp.epsilon" or "fot.epsilon"?`},
		{"batch_size: 8", "batch_size", `did you mean "train.batch_size" or "eval.batch_size"?`},
		{"model: {hiddne: [4]}", "model.hiddne", `did you mean "model.hidden"?`},
		{"partition: {xyzzy: 1}", "partition.xyzzy", "unknown key (partition takes clients, scheme, alpha, shards_per_client)"},
		{"methods: [{name: fot, epsilno: 0.9}]", "methods[0].epsilno", `did you mean "epsilon"?`},
		{"methods: [{name: fedavg, mu: 0.1}]", "methods[0].mu", "unknown option: method fedavg takes no options"},
	}
	for _, c := range cases {
		errs := parseErrs(t, c.yaml)
		if len(errs) != 1 || errs[0].Path != c.wantPath || !strings.Contains(errs[0].Msg, c.wantMsg) {
			t.Errorf("Parse(%q):\n%v\nwant one error at %s containing %q", c.yaml, errs, c.wantPath, c.wantMsg)
		}
	}
}

func TestSet(t *testing.T) {
	cases := []struct {
		name  string
		yaml  string
		sets  []string
		check func(s *Scenario) (got, want any)
	}{
		{"scalar", "", []string{"train.rounds_per_task=20"}, func(s *Scenario) (any, any) { return s.Train.RoundsPerTask, 20 }},
		{"replaces file value", "data: {tasks: 5}", []string{"data.tasks=3"}, func(s *Scenario) (any, any) { return s.Data.Tasks, 3 }},
		{"last set wins", "", []string{"data.tasks=4", "data.tasks=7"}, func(s *Scenario) (any, any) { return s.Data.Tasks, 7 }},
		{"list", "", []string{"model.hidden=[400,400]"}, func(s *Scenario) (any, any) { return s.Model.Hidden, []int{400, 400} }},
		{"list dropout follows hidden", "", []string{"model.hidden=[400,400,400]"}, func(s *Scenario) (any, any) { return s.Model.Dropout, []float64{0, 0, 0} }},
		{"scalar to one-item list", "", []string{"methods=fot"}, func(s *Scenario) (any, any) { return s.Methods, []Method{{Name: "fot"}} }},
		{"scalar to one-item int list", "", []string{"model.hidden=400"}, func(s *Scenario) (any, any) { return s.Model.Hidden, []int{400} }},
		{"mapping to one-item list", "", []string{"methods={name: fot, epsilon: 0.9}"},
			func(s *Scenario) (any, any) {
				return s.Methods, []Method{{Name: "fot", Options: map[string]any{"epsilon": 0.9}}}
			}},
		{"method list", "", []string{"methods=[fedavg,fot]"}, func(s *Scenario) (any, any) { return len(s.Methods), 2 }},
		{"seeds", "", []string{"seeds=[0,1,2]"}, func(s *Scenario) (any, any) { return s.Seeds, []int64{0, 1, 2} }},
		{"new block", "", []string{"fot.epsilon=0.9"}, func(s *Scenario) (any, any) { return s.FOT.Epsilon, 0.9 }},
		{"into empty block", "fot:\n", []string{"fot.epsilon=0.9"}, func(s *Scenario) (any, any) { return s.FOT.Epsilon, 0.9 }},
		{"index", "model: {hidden: [10, 20]}", []string{"model.hidden[1]=30"}, func(s *Scenario) (any, any) { return s.Model.Hidden, []int{10, 30} }},
		{"method option on plain name", "methods: [fedavg, fot]", []string{"methods[1].epsilon=0.9"},
			func(s *Scenario) (any, any) { return s.Methods[1].Label(), "fot(eps=0.9)" }},
		{"conv item", "model: {arch: cnn, conv: [{out: 8, kernel: 3}]}", []string{"model.conv[0].out=16"},
			func(s *Scenario) (any, any) { return s.Model.Conv, []Conv{{Out: 16, Kernel: 3, Stride: 1, Pool: 1}} }},
		{"duration", "", []string{"train.deadline=30s"}, func(s *Scenario) (any, any) { return s.Train.Deadline, 30 * time.Second }},
		{"url", "", []string{"transport.nats=nats://10.0.0.2:4222"}, func(s *Scenario) (any, any) { return s.Transport.NATS, "nats://10.0.0.2:4222" }},
		{"url list", "", []string{"transport.nats=nats://a:4222,nats://b:4222"}, func(s *Scenario) (any, any) { return s.Transport.NATS, "nats://a:4222,nats://b:4222" }},
		{"timeout", "", []string{"transport.timeout=5s"}, func(s *Scenario) (any, any) { return s.Transport.Timeout, 5 * time.Second }},
		{"empty value is empty string", "description: x", []string{"description="}, func(s *Scenario) (any, any) { return s.Description, "" }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.yaml, c.sets...)
			if got, want := c.check(s); !reflect.DeepEqual(got, want) {
				t.Errorf("got %#v, want %#v", got, want)
			}
		})
	}
}

func TestSetErrors(t *testing.T) {
	cases := []struct {
		name, yaml, set   string
		wantPath, wantMsg string
	}{
		{"no =", "", "train.lr", "", "malformed override: want --set path=value"},
		{"empty path", "", "=3", "", "malformed override: empty path"},
		{"bad index", "", "model.hidden[x]=3", "", "bad list index"},
		{"unknown path", "", "train.rouds_per_task=20", "train.rouds_per_task", `unknown key; did you mean "train.rounds_per_task"?`},
		{"unknown top key", "", "modle.hidden=[4]", "modle", `unknown key; did you mean "model"?`},
		{"key under scalar", "", "train.lr.x=1", "train.lr.x", "train.lr takes a single value, not keys"},
		{"index on non-list", "", "train[0]=1", "train[0]", "train is not a list"},
		{"index out of range", "model: {hidden: [10]}", "model.hidden[3]=5", "model.hidden[3]", "index 3 is out of range: model.hidden has 1 items"},
		{"item of unset list", "", "model.conv[0].out=5", "model.conv", "model.conv is not set"},
		{"bad value yaml", "", "methods=[fedavg,", "methods", "malformed value"},
		{"wrong type", "", "train.lr=fast", "train.lr", `want a number, got "fast"`},
		{"semantic", "", "train.clients_per_round=12", "train.clients_per_round", "is larger than partition.clients (10)"},
		{"unknown method", "", "methods=[fedavg,fott]", "methods[1]", `unknown method "fott" (known: fedavg, fot, fedprox, ewc, fedcurv, flwf, central-seq, central-joint, central-gpm, fedavg-lora, ffa-lora, fedsvd, flora, fedex-lora, opcm, fisher-avg, sculpt, econtrol); did you mean "fot"?`},
		{"option type", "methods: [fot]", "methods[0].epsilon=high", "methods[0].epsilon", `want a number, got "high"`},
		{"nested option", "methods: [fot]", "methods[0].epsilon.x=1", "methods[0].epsilon.x", "method options take a single value"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, c.yaml, c.set)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), errs)
			}
			e := errs[0]
			if e.File != "--set "+c.set || e.Line != 0 || e.Path != c.wantPath || !strings.Contains(e.Msg, c.wantMsg) {
				t.Errorf("got %+v,\nwant File %q, Line 0, Path %q, Msg containing %q", e, "--set "+c.set, c.wantPath, c.wantMsg)
			}
			if !strings.HasPrefix(e.Error(), "--set "+c.set+": ") {
				t.Errorf("Error() = %q, want prefix %q", e.Error(), "--set "+c.set+": ")
			}
		})
	}
}

func TestMethodForms(t *testing.T) {
	cases := []struct {
		name      string
		yaml      string
		want      []Method
		wantLabel []string
	}{
		{"names", "methods: [fedavg, fot]", []Method{{Name: "fedavg"}, {Name: "fot"}}, []string{"fedavg", "fot"}},
		{"block list", "methods:\n  - fedavg\n  - name: fot\n    epsilon: 0.9\n",
			[]Method{{Name: "fedavg"}, {Name: "fot", Options: map[string]any{"epsilon": 0.9}}}, []string{"fedavg", "fot(eps=0.9)"}},
		{"int widened to float", "methods: [{name: fot, epsilon: 1}]",
			[]Method{{Name: "fot", Options: map[string]any{"epsilon": 1.0}}}, []string{"fot(eps=1)"}},
		{"every kind", "methods: [{name: fot, gpse_dropout: false, oversample: 5, criterion: gpm, eps_inc: 0.001, epsilon: 0.87}]",
			[]Method{{Name: "fot", Options: map[string]any{"epsilon": 0.87, "eps_inc": 0.001, "criterion": "gpm", "oversample": 5, "gpse_dropout": false}}},
			[]string{"fot(eps=0.87,eps_inc=0.001,criterion=gpm,oversample=5,gpse_dropout=false)"}},
		{"name only mapping", "methods: [{name: fot}]", []Method{{Name: "fot"}}, []string{"fot"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := mustParse(t, c.yaml)
			if !reflect.DeepEqual(s.Methods, c.want) {
				t.Errorf("Methods = %#v, want %#v", s.Methods, c.want)
			}
			for i, m := range s.Methods {
				if got := m.Label(); got != c.wantLabel[i] {
					t.Errorf("Label() = %q, want %q", got, c.wantLabel[i])
				}
			}
		})
	}
}

func TestMethodErrors(t *testing.T) {
	cases := []struct {
		name, yaml        string
		wantLine, wantCol int
		wantPath, wantMsg string
	}{
		{"unknown name", "methods: [fedavg, fedavgs]", 1, 19, "methods[1]", `unknown method "fedavgs" (known: fedavg, fot, fedprox, ewc, fedcurv, flwf, central-seq, central-joint, central-gpm, fedavg-lora, ffa-lora, fedsvd, flora, fedex-lora, opcm, fisher-avg, sculpt, econtrol); did you mean "fedavg"?`},
		{"unknown name in mapping", "methods: [{name: fott, epsilon: 0.9}]", 1, 18, "methods[0].name", `unknown method "fott"`},
		{"missing name", "methods: [{epsilon: 0.9}]", 1, 11, "methods[0]", `missing "name"`},
		{"name not string", "methods: [{name: 3}]", 1, 18, "methods[0].name", "want a method name, got 3"},
		{"number", "methods: [3]", 1, 11, "methods[0]", "want a method name or a mapping {name: METHOD, option: value, ...}, got 3"},
		{"list", "methods: [[fot]]", 1, 11, "methods[0]", "got a list"},
		{"float option", "methods: [{name: fot, epsilon: high}]", 1, 32, "methods[0].epsilon", `want a number, got "high"`},
		{"quoted number", "methods: [{name: fot, epsilon: '0.9'}]", 1, 32, "methods[0].epsilon", `want a number, got "0.9"`},
		{"int option", "methods: [{name: fot, oversample: 2.5}]", 1, 35, "methods[0].oversample", "want an integer, got 2.5"},
		{"bool option", "methods: [{name: fot, gpse_dropout: 1}]", 1, 37, "methods[0].gpse_dropout", "want true or false, got 1"},
		{"string option allowed", "methods: [{name: fot, sketch: sparse}]", 1, 31, "methods[0].sketch", `unknown value "sparse" (want uniform or gaussian)`},
		{"option is list", "methods: [{name: fot, epsilon: [0.9]}]", 1, 32, "methods[0].epsilon", "want a number, got a list"},
		{"duplicate option", "methods: [{name: fot, epsilon: 0.9, epsilon: 0.8}]", 1, 37, "methods[0].epsilon", "duplicate key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := parseErrs(t, c.yaml)
			if len(errs) != 1 {
				t.Fatalf("got %d errors, want 1:\n%v", len(errs), errs)
			}
			e := errs[0]
			if e.Line != c.wantLine || e.Col != c.wantCol || e.Path != c.wantPath || !strings.Contains(e.Msg, c.wantMsg) {
				t.Errorf("got %d:%d %q %q,\nwant %d:%d %q containing %q", e.Line, e.Col, e.Path, e.Msg, c.wantLine, c.wantCol, c.wantPath, c.wantMsg)
			}
		})
	}
}

func TestMethodYAMLInterfaces(t *testing.T) {
	var ms []Method
	if err := yaml.Unmarshal([]byte("[fedavg, {name: fot, epsilon: 0.9}]"), &ms); err != nil {
		t.Fatal(err)
	}
	want := []Method{{Name: "fedavg"}, {Name: "fot", Options: map[string]any{"epsilon": 0.9}}}
	if !reflect.DeepEqual(ms, want) {
		t.Errorf("Unmarshal = %#v, want %#v", ms, want)
	}
	out, err := yaml.Marshal(ms)
	if err != nil {
		t.Fatal(err)
	}
	if got, wantText := string(out), "- fedavg\n- {name: fot, epsilon: 0.9}\n"; got != wantText {
		t.Errorf("Marshal = %q, want %q", got, wantText)
	}
	var m Method
	err = yaml.Unmarshal([]byte("{name: fot, epsilon: x}"), &m)
	if err == nil || !strings.Contains(err.Error(), `epsilon: want a number, got "x"`) {
		t.Errorf("Unmarshal bad option: got %v, want a type error", err)
	}
}

func TestMethodOptions(t *testing.T) {
	s := mustParse(t, "fot: {epsilon: 0.8, sketch: gaussian}\nmethods: [fot, {name: fot, epsilon: 0.9, criterion: gpm}, {name: fedprox, mu: 2}, fedprox, central-gpm]")
	opts := func(i int) any {
		t.Helper()
		o, err := s.MethodOptions(s.Methods[i])
		if err != nil {
			t.Fatalf("MethodOptions(%s): %v", s.Methods[i].Label(), err)
		}
		return o
	}
	want := DefaultFOT()
	want.Epsilon, want.Sketch = 0.8, "gaussian"
	if got := opts(0); got != any(want) {
		t.Errorf("fot options = %+v, want the fot: block %+v", got, want)
	}
	want.Epsilon, want.Criterion = 0.9, "gpm"
	if got := opts(1); got != any(want) {
		t.Errorf("fot(eps=0.9,criterion=gpm) options = %+v, want %+v", got, want)
	}
	if got, want := opts(2), any(methods.FedProxOptions{Mu: 2}); got != want {
		t.Errorf("fedprox(mu=2) options = %+v, want %+v", got, want)
	}
	if got, want := opts(3), any(methods.FedProxOptions{Mu: 0.01}); got != want {
		t.Errorf("fedprox options = %+v, want the default %+v", got, want)
	}
	if got, want := s.FOTFor(s.Methods[4]), s.FOT; got != want {
		t.Errorf("central-gpm FOT = %+v, want the fot: block %+v", got, want)
	}
	if _, err := s.MethodOptions(Method{Name: "nope"}); err == nil {
		t.Error("MethodOptions of an unknown method: no error")
	}
}

func TestFOTFor(t *testing.T) {
	s := mustParse(t, "methods: [fot, {name: fot, epsilon: 0.9, sketch: gaussian, oversample: 5}]\nfot: {epsilon: 0.94, eps_inc: 0.001}\n")
	cases := []struct {
		m    Method
		want FOT
	}{
		{s.Methods[0], FOT{Epsilon: 0.94, EpsInc: 0.001, Criterion: "fot", Sketch: "uniform", Oversample: 1, GPSEDropout: true}},
		{s.Methods[1], FOT{Epsilon: 0.9, EpsInc: 0.001, Criterion: "fot", Sketch: "gaussian", Oversample: 5, GPSEDropout: true}},
	}
	for _, c := range cases {
		if got := s.FOTFor(c.m); got != c.want {
			t.Errorf("FOTFor(%s) = %+v, want %+v", c.m.Label(), got, c.want)
		}
	}
}

func TestRuns(t *testing.T) {
	s := mustParse(t, "methods: [fedavg, fot]\nseeds: [3, 1]\n")
	want := []Run{
		{Method{Name: "fedavg"}, 3}, {Method{Name: "fedavg"}, 1},
		{Method{Name: "fot"}, 3}, {Method{Name: "fot"}, 1},
	}
	if got := s.Runs(); !reflect.DeepEqual(got, want) {
		t.Errorf("Runs() = %v, want %v", got, want)
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, "")
	want := Default()
	want.Name = "t"
	want.Source = "t.yaml"
	want.Train.Workers = runtime.NumCPU()
	if !reflect.DeepEqual(s, &want) {
		t.Errorf("Parse(\"\") =\n%+v\nwant\n%+v", *s, want)
	}

	cases := []struct {
		name  string
		yaml  string
		check func(s *Scenario) (got, want any)
	}{
		{"mnist norm", "", func(s *Scenario) (any, any) { return [2]float64{s.Data.Mean, s.Data.Std}, [2]float64{0.1307, 0.3081} }},
		{"fashion norm", "data: {dataset: fashion}", func(s *Scenario) (any, any) { return [2]float64{s.Data.Mean, s.Data.Std}, [2]float64{0.2860, 0.3530} }},
		{"synthetic norm", "data: {dataset: synthetic}", func(s *Scenario) (any, any) { return [2]float64{s.Data.Mean, s.Data.Std}, [2]float64{0, 1} }},
		{"user mean kept", "data: {dataset: fashion, mean: 0.5}", func(s *Scenario) (any, any) { return [2]float64{s.Data.Mean, s.Data.Std}, [2]float64{0.5, 0.3530} }},
		{"user zero mean kept", "data: {mean: 0}", func(s *Scenario) (any, any) { return s.Data.Mean, 0.0 }},
		{"dropout zeros", "model: {hidden: [400, 400, 400]}", func(s *Scenario) (any, any) { return s.Model.Dropout, []float64{0, 0, 0} }},
		{"dropout kept", "model: {hidden: [4], dropout: [0.2]}", func(s *Scenario) (any, any) { return s.Model.Dropout, []float64{0.2} }},
		{"cnn conv", "model: {arch: cnn}", func(s *Scenario) (any, any) { return s.Model.Conv, defaultConv() }},
		{"conv item defaults", "model: {arch: cnn, conv: [{out: 4, kernel: 3, pad: 1}]}",
			func(s *Scenario) (any, any) {
				return s.Model.Conv, []Conv{{Out: 4, Kernel: 3, Stride: 1, Pad: 1, Pool: 1}}
			}},
		{"workers", "train: {workers: 0}", func(s *Scenario) (any, any) { return s.Train.Workers, runtime.NumCPU() }},
		{"workers kept", "train: {workers: 3}", func(s *Scenario) (any, any) { return s.Train.Workers, 3 }},
		{"name kept", "name: mine", func(s *Scenario) (any, any) { return s.Name, "mine" }},
		{"block keeps unset keys", "train: {lr: 0.1}", func(s *Scenario) (any, any) { return s.Train.BatchSize, 64 }},
		{"heads", "model: {heads: per_task}\ndata: {tasks: 4}", func(s *Scenario) (any, any) { return s.Heads(), 4 }},
		{"norm off", "data: {normalize: false}", func(s *Scenario) (any, any) {
			m, sd := s.Data.Norm()
			return [2]float32{m, sd}, [2]float32{0, 0}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := c.check(mustParse(t, c.yaml))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}

// roundTripCases are scenarios whose Resolved form must parse back to the same value.
var roundTripCases = []struct {
	name string
	yaml string
	sets []string
}{
	{"empty", "", nil},
	{"methods", "methods: [fedavg, {name: fot, epsilon: 0.9, criterion: gpm, oversample: 5, gpse_dropout: false}]", nil},
	{"cnn", "model: {arch: cnn, hidden: [64], dropout: [0.5]}\ndata: {dataset: fashion, stream: split, tasks: 5, mode: task}\n", nil},
	{"rotated", "data: {stream: rotated, tasks: 3, angles: [0, 22.5, 45]}\ntrain: {deadline: 1m30s}", nil},
	{"sets", "", []string{"methods=[fedavg,fot]", "fot.epsilon=0.94", "partition.scheme=shards", "seeds=[0,1,2]", "data.mean=0"}},
	{"synthetic", "data: {dataset: synthetic, synthetic: {dim: 8, noise: 0.25}}\ntransport: {nats: 'nats://h:4222'}", nil},
	{"timeout", "transport: {nats: 'nats://h:4222,nats://g:4222', timeout: 1m30s}", nil},
}

func TestResolvedRoundTrip(t *testing.T) {
	check := func(t *testing.T, s *Scenario) {
		out, err := s.Resolved()
		if err != nil {
			t.Fatal(err)
		}
		back, err := Parse(out, s.Source, nil)
		if err != nil {
			t.Fatalf("Parse(Resolved()):\n%v\n%s", err, out)
		}
		if !reflect.DeepEqual(back, s) {
			t.Errorf("Parse(Resolved()) =\n%+v\nwant\n%+v\nYAML:\n%s", *back, *s, out)
		}
		// The plain yaml.v3 decoder, strict, agrees with the walker on the resolved form.
		dec := yaml.NewDecoder(bytes.NewReader(out))
		dec.KnownFields(true)
		var plain Scenario
		if err := dec.Decode(&plain); err != nil {
			t.Fatalf("yaml.v3 KnownFields decode of Resolved(): %v", err)
		}
		plain.Source = s.Source
		if !reflect.DeepEqual(&plain, s) {
			t.Errorf("yaml.v3 decode =\n%+v\nwant\n%+v", plain, *s)
		}
	}
	for _, name := range Builtins() {
		t.Run("builtin/"+name, func(t *testing.T) {
			s, err := Load(name, nil)
			if err != nil {
				t.Fatal(err)
			}
			check(t, s)
		})
	}
	for _, c := range roundTripCases {
		t.Run(c.name, func(t *testing.T) { check(t, mustParse(t, c.yaml, c.sets...)) })
	}
}

func TestReferenceCoversSchema(t *testing.T) {
	var refPaths []string
	for _, k := range Reference() {
		refPaths = append(refPaths, k.Path)
	}
	if got, want := refPaths, schemaPaths(); !reflect.DeepEqual(got, want) {
		t.Errorf("Reference paths =\n%v\nwant (schema order)\n%v", got, want)
	}
	def := Default()
	for _, k := range Reference() {
		if k.Kind == "mapping" {
			if k.Default != "" {
				t.Errorf("%s: block has Default %q, want empty", k.Path, k.Default)
			}
			continue
		}
		if k.Default == "" || k.Doc == "" {
			t.Errorf("%s: Default %q Doc %q, want both set", k.Path, k.Default, k.Doc)
		}
		if strings.Contains(k.Default, "(") || strings.Contains(k.Path, "[]") {
			continue // dependent default, described in words
		}
		v := lookupPath(t, reflect.ValueOf(def), k.Path)
		var n yaml.Node
		if err := n.Encode(v.Interface()); err != nil {
			t.Fatal(err)
		}
		n.Style = yaml.FlowStyle
		for _, c := range n.Content {
			c.Style = yaml.FlowStyle
		}
		out, err := yaml.Marshal(&n)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)); got != k.Default {
			t.Errorf("%s: Reference default %q, Default() has %q", k.Path, k.Default, got)
		}
	}
	md := ReferenceMarkdown()
	for _, want := range []string{"| `train.lr` | `0.01` |", "| `fot` | `epsilon` (float, default 0.96)"} {
		if !strings.Contains(md, want) {
			t.Errorf("ReferenceMarkdown() lacks %q", want)
		}
	}
}

func lookupPath(t *testing.T, v reflect.Value, path string) reflect.Value {
	t.Helper()
	for _, key := range strings.Split(path, ".") {
		f, ok := fieldByYAML(v.Type(), key)
		if !ok {
			t.Fatalf("no field %s in %s", key, path)
		}
		v = v.FieldByIndex(f.Index)
	}
	return v
}

func TestRegisteredMethodThroughScenario(t *testing.T) {
	type testOptions struct {
		Mu float64 `yaml:"mu" short:"mu" doc:"proximal weight"`
	}
	methods.Register(methods.Def[testOptions]{
		Spec:     methods.Spec{Name: "testprox", Summary: "FedProx for this test"},
		Defaults: testOptions{Mu: 0.01},
		Validate: func(o testOptions) []methods.Problem {
			if o.Mu < 0 {
				return []methods.Problem{{Key: "mu", Msg: "must be >= 0"}}
			}
			return nil
		},
	})
	t.Cleanup(func() { methods.Unregister("testprox") })

	names := make([]string, 0)
	for _, mi := range Methods() {
		names = append(names, mi.Name)
	}
	if want := []string{"fedavg", "fot", "fedprox", "ewc", "fedcurv", "flwf", "central-seq", "central-joint", "central-gpm", "fedavg-lora", "ffa-lora", "fedsvd", "flora", "fedex-lora", "opcm", "fisher-avg", "sculpt", "econtrol", "testprox"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Methods() names = %v, want %v", names, want)
	}
	s := mustParse(t, "methods: [testprox, {name: testprox, mu: 0.1}]")
	if got, want := s.Methods[1].Label(), "testprox(mu=0.1)"; got != want {
		t.Errorf("Label() = %q, want %q", got, want)
	}
	if got, err := s.MethodOptions(s.Methods[0]); err != nil || got != any(testOptions{Mu: 0.01}) {
		t.Errorf("default options = %+v, %v, want mu 0.01", got, err)
	}
	errs := parseErrs(t, "methods: [{name: testprox, mu: big}]")
	if len(errs) != 1 || errs[0].Path != "methods[0].mu" {
		t.Errorf("got %v, want one error at methods[0].mu", errs)
	}
	errs = parseErrs(t, "methods:\n  - {name: testprox, mu: -1}")
	if len(errs) != 1 || errs[0].Path != "methods[0].mu" || errs[0].Line != 2 || !strings.Contains(errs[0].Msg, "must be >= 0") {
		t.Errorf("got %v, want one error at line 2, methods[0].mu: must be >= 0", errs)
	}
}

func TestValidateProgrammatic(t *testing.T) {
	s := Default()
	s.Name = "prog"
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate(Default()) = %v, want nil", err)
	}
	s.Train.LR = 0
	s.Methods = []Method{{Name: "fot", Options: map[string]any{"epsilon": float32(0.9)}}, {Name: "nope"}}
	err := s.Validate()
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Validate() = %v, want ErrInvalid", err)
	}
	want := []string{
		"methods[0].epsilon: want a number, got Go value 0.9 (float32)",
		`methods[1]: unknown method "nope"`,
		"train.lr: must be > 0, got 0",
	}
	got := err.Error()
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("Validate() =\n%s\nwant a line containing %q", got, w)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mine.yaml")
	if err := os.WriteFile(file, []byte("data: {tasks: 2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := Load(file, []string{"train.lr=0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "mine" || s.Source != file || s.Data.Tasks != 2 || s.Train.LR != 0.1 {
		t.Errorf("Load(file) = name %q source %q tasks %d lr %g, want mine %q 2 0.1", s.Name, s.Source, s.Data.Tasks, s.Train.LR, file)
	}
	if s, err := Load("builtin:quickstart", nil); err != nil || s.Name != "quickstart" {
		t.Errorf("Load(builtin:quickstart) = %v, %v", s, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("train:\n  lr: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, nil)
	if err == nil || !strings.HasPrefix(err.Error(), bad+":2:7: train.lr: ") {
		t.Errorf("Load(bad) = %v, want an error at %s:2:7", err, bad)
	}

	notFound := []struct{ arg, want string }{
		{"quikstart", `"quikstart" is neither a scenario file nor a built-in scenario; did you mean "quickstart"? (built-in: `},
		{filepath.Join(dir, "missing.yaml"), "is neither a scenario file nor a built-in scenario"},
		{"paper/none", "(built-in: fashion-permuted, fedsvd-dp, paper/pmnist-iid, paper/pmnist-noniid, quickstart, rotated-mnist, "},
		{dir, "is a directory"},
	}
	for _, c := range notFound {
		_, err := Load(c.arg, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q", c.arg, err, c.want)
		}
		if !errors.Is(err, ErrNotFound) || !errors.Is(err, ErrInvalid) {
			t.Errorf("Load(%q): errors.Is ErrNotFound %v ErrInvalid %v, want both true", c.arg, errors.Is(err, ErrNotFound), errors.Is(err, ErrInvalid))
		}
	}
}

func TestErrorFormat(t *testing.T) {
	cases := []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yaml", Line: 3, Col: 5, Path: "train.lr", Msg: "must be > 0"}, "a.yaml:3:5: train.lr: must be > 0"},
		{Error{File: "a.yaml", Line: 3, Msg: "malformed YAML: x"}, "a.yaml:3: malformed YAML: x"},
		{Error{File: "a.yaml", Path: "name", Msg: "must not be empty"}, "a.yaml: name: must not be empty"},
		{Error{File: "--set x=1", Path: "x", Msg: "unknown key"}, "--set x=1: x: unknown key"},
		{Error{Path: "train.lr", Msg: "train.lr (1) is odd"}, "train.lr (1) is odd"},
	}
	for _, c := range cases {
		if got := c.e.Error(); got != c.want {
			t.Errorf("Error() = %q, want %q", got, c.want)
		}
	}
}

func TestClosest(t *testing.T) {
	cands := []string{"rounds_per_task", "clients_per_round", "lr"}
	cases := []struct{ in, want string }{
		{"rounds_per_tsk", "rounds_per_task"},
		{"LR", "lr"},
		{"l", ""}, // one letter is too short to guess from
		{"momentum", ""},
	}
	for _, c := range cases {
		if got := closest(c.in, cands); got != c.want {
			t.Errorf("closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func BenchmarkParseQuickstart(b *testing.B) {
	data, ok := Builtin("quickstart")
	if !ok {
		b.Fatal("no quickstart")
	}
	sets := []string{"methods=[fedavg,fot]", "train.rounds_per_task=20"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data, "builtin:quickstart", sets); err != nil {
			b.Fatal(err)
		}
	}
}

// transport.timeout is 0 by default, which means transport.DefaultTimeout,
// and is left out of the resolved scenario then, so that run records of
// scenarios that do not set it stay as they were.
func TestTransportTimeout(t *testing.T) {
	s := mustParse(t, "")
	if s.Transport.Timeout != 0 || s.Transport.DialTimeout() != transport.DefaultTimeout {
		t.Errorf("default: Timeout %v DialTimeout %v, want 0 and %v", s.Transport.Timeout, s.Transport.DialTimeout(), transport.DefaultTimeout)
	}
	out, err := s.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "timeout") {
		t.Errorf("Resolved() of the default mentions the timeout:\n%s", out)
	}
	s = mustParse(t, "transport: {timeout: 2s}")
	if s.Transport.DialTimeout() != 2*time.Second {
		t.Errorf("DialTimeout: got %v, want 2s", s.Transport.DialTimeout())
	}
	if out, err = s.Resolved(); err != nil || !strings.Contains(string(out), "timeout: 2s") {
		t.Errorf("Resolved() with a timeout: got %v\n%s\nwant it to hold timeout: 2s", err, out)
	}
}

// Resolved writes the passwords of transport.nats as xxxxx, and leaves
// the scenario itself alone.
func TestResolvedRedactsNATSPassword(t *testing.T) {
	url := "nats://u:secret@a:4222,nats://b:4222,tls://v:pw2@c:4222"
	s, err := Load("synthetic", []string{"transport.nats=" + url})
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if want := "nats: nats://u:xxxxx@a:4222,nats://b:4222,tls://v:xxxxx@c:4222\n"; !strings.Contains(string(out), want) {
		t.Errorf("Resolved lacks %q:\n%s", want, out)
	}
	if s.Transport.NATS != url {
		t.Errorf("transport.nats changed to %q", s.Transport.NATS)
	}
}
