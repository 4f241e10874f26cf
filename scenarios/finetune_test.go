package scenarios

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func ftParse(t *testing.T, src string, sets ...string) *Scenario {
	t.Helper()
	s, err := Parse([]byte(src), "ft.yaml", sets)
	if err != nil {
		t.Fatalf("Parse(%q):\n%v", src, err)
	}
	return s
}

func ftErrs(t *testing.T, src string, sets ...string) Errors {
	t.Helper()
	_, err := Parse([]byte(src), "ft.yaml", sets)
	var errs Errors
	if err != nil && !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T (%v), want Errors", err, err)
	}
	return errs
}

func TestFineTuneKeysDefaultsAndParsing(t *testing.T) {
	s := ftParse(t, "")
	if s.Model.LoRA != nil || s.Pretrain != DefaultPretrain() || s.DP != DefaultDP() || s.Train.LocalSteps != 0 {
		t.Errorf("defaults: lora %v pretrain %+v dp %+v local_steps %d", s.Model.LoRA, s.Pretrain, s.DP, s.Train.LocalSteps)
	}
	cases := []struct {
		name  string
		yaml  string
		sets  []string
		check func(s *Scenario) (got, want any)
	}{
		{"lora empty block gets defaults", "model: {lora: {}}", nil,
			func(s *Scenario) (any, any) { return *s.Model.LoRA, DefaultLoRA() }},
		{"lora null is absent", "model: {lora: null}", nil,
			func(s *Scenario) (any, any) { return s.Model.LoRA == nil, true }},
		{"lora keys", "model: {lora: {rank: 4, alpha: 16, layers: [fc0.weight, head.weight]}}", nil,
			func(s *Scenario) (any, any) {
				return *s.Model.LoRA, LoRA{Rank: 4, Alpha: 16, Layers: []string{"fc0.weight", "head.weight"}}
			}},
		{"lora by --set", "", []string{"model.lora.rank=4"},
			func(s *Scenario) (any, any) { return *s.Model.LoRA, LoRA{Rank: 4, Alpha: 8, Layers: []string{}} }},
		{"dp epsilon inf is off", "dp: {epsilon: .inf}", nil,
			func(s *Scenario) (any, any) { return [2]any{s.DP.Epsilon, s.DP.On()}, [2]any{0.0, false} }},
		{"dp epsilon inf word", "dp: {epsilon: inf}", nil, func(s *Scenario) (any, any) { return s.DP.Epsilon, 0.0 }},
		{"dp on", "dp: {epsilon: 3, clip: 1}", nil,
			func(s *Scenario) (any, any) { return s.DP, DP{Epsilon: 3, Delta: 1e-5, Clip: 1} }},
		{"pretrain", "pretrain: {tasks: 1, mode: federated, lr: 0.2}\ndata: {tasks: 2}", nil,
			func(s *Scenario) (any, any) {
				return s.Pretrain, Pretrain{Tasks: 1, Epochs: 1, LR: 0.2, Mode: "federated"}
			}},
		{"local steps", "train: {local_steps: 10}", nil, func(s *Scenario) (any, any) { return s.Train.LocalSteps, 10 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := c.check(ftParse(t, c.yaml, c.sets...))
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got %+v, want %+v", got, want)
			}
		})
	}
}

// dp_epsilon is an option of every method, shown in labels as eps_dp (inf
// for 0 or .inf), overriding dp.epsilon; a method that repeats the block's
// value is a duplicate.
func TestDPEpsilonOption(t *testing.T) {
	s := ftParse(t, `
model: {lora: {}}
dp: {epsilon: 6}
methods: [fedsvd, {name: fedsvd, dp_epsilon: 3}, {name: fedsvd, dp_epsilon: .inf}, {name: fot, epsilon: 0.9, dp_epsilon: 2}, {name: fedavg, dp_epsilon: 1}]
`)
	wantLabels := []string{"fedsvd", "fedsvd(eps_dp=3)", "fedsvd(eps_dp=inf)", "fot(eps=0.9,eps_dp=2)", "fedavg(eps_dp=1)"}
	wantEps := []float64{6, 3, 0, 2, 1}
	for i, m := range s.Methods {
		if got := m.Label(); got != wantLabels[i] {
			t.Errorf("methods[%d] label %q, want %q", i, got, wantLabels[i])
		}
		if got := s.DPFor(m).Epsilon; got != wantEps[i] {
			t.Errorf("methods[%d] DP epsilon %v, want %v", i, got, wantEps[i])
		}
	}
	errs := ftErrs(t, "model: {lora: {}}\ndp: {epsilon: 3}\nmethods: [fedsvd, {name: fedsvd, dp_epsilon: 3}]")
	if len(errs) != 1 || errs[0].Path != "methods[1]" || !strings.Contains(errs[0].Msg, "duplicate method") {
		t.Errorf("duplicate via dp_epsilon: got %v", errs)
	}
	// Round trip through the resolved YAML, also with the plain decoder.
	out, err := s.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, s.Source, nil)
	if err != nil {
		t.Fatalf("Parse(Resolved()):\n%v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("Parse(Resolved()) differs:\n%+v\nwant\n%+v", *back, *s)
	}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	dec.KnownFields(true)
	var plain Scenario
	if err := dec.Decode(&plain); err != nil {
		t.Fatalf("yaml.v3 decode of Resolved(): %v", err)
	}
	plain.Source = s.Source
	if !reflect.DeepEqual(&plain, s) {
		t.Errorf("yaml.v3 decode differs:\n%+v\nwant\n%+v", plain, *s)
	}
}

func TestFineTuneValidation(t *testing.T) {
	cases := []struct {
		name, yaml        string
		wantPath, wantMsg string
	}{
		{"lora method without model.lora", "methods: [fedavg, fedsvd]", "methods[1]", "method fedsvd trains LoRA adapters but model.lora is not set"},
		{"lora method with per-task heads", "model: {lora: {}, heads: per_task}\nmethods: [ffa-lora]", "methods[0]", "the per-task heads (model.heads: per_task) would never train"},
		{"lora rank", "model: {lora: {rank: 0}}", "model.lora.rank", "must be at least 1"},
		{"lora alpha", "model: {lora: {alpha: -1}}", "model.lora.alpha", "must be > 0"},
		{"lora layer name", "model: {lora: {layers: [fc0]}}", "model.lora.layers[0]", "want a weight name"},
		{"lora duplicate layer", "model: {lora: {layers: [fc0.weight, fc0.weight]}}", "model.lora.layers[1]", "duplicate layer"},
		{"pretrain all tasks", "data: {tasks: 2}\npretrain: {tasks: 2}", "pretrain.tasks", "must be below data.tasks (2)"},
		{"pretrain mode", "pretrain: {mode: local}", "pretrain.mode", `unknown mode "local"`},
		{"pretrain epochs", "pretrain: {epochs: 0}", "pretrain.epochs", "must be at least 1"},
		{"local steps", "train: {local_steps: -1}", "train.local_steps", "must be at least 0"},
		{"dp delta", "dp: {delta: 1}", "dp.delta", "must be in (0, 1)"},
		{"dp clip", "dp: {clip: 0}", "dp.clip", "must be > 0"},
		{"dp epsilon", "dp: {epsilon: -1}", "dp.epsilon", "must be >= 0"},
		{"dp_epsilon", "methods: [{name: fedavg, dp_epsilon: -2}]", "methods[0].dp_epsilon", "must be >= 0"},
		{"flwf with dp", "methods: [{name: flwf, dp_epsilon: 3}]", "methods[0]", "flwf cannot run with DP-SGD"},
		{"flwf with per-task heads", "model: {heads: per_task}\nmethods: [flwf]", "methods[0]", "method flwf needs model.heads: shared (flwf distils the shared head)"},
		{"fedsvd period", "model: {lora: {}}\nmethods: [{name: fedsvd, period: 0}]", "methods[0].period", "must be at least 1"},
		{"fedsvd warmup", "model: {lora: {}}\nmethods: [{name: fedsvd, warmup: -1}]", "methods[0].warmup", "must be at least 0"},
		{"option of another method", "methods: [{name: fedavg, period: 2}]", "methods[0].period", "takes no options (every method takes dp_epsilon)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := ftErrs(t, c.yaml)
			if len(errs) != 1 || errs[0].Path != c.wantPath || !strings.Contains(errs[0].Msg, c.wantMsg) {
				t.Errorf("Parse(%q):\n%v\nwant one error at %s containing %q", c.yaml, errs, c.wantPath, c.wantMsg)
			}
		})
	}
	// The LoRA error names both keys and points at the method's line.
	errs := ftErrs(t, "seeds: [0]\nmethods:\n  - ffa-lora\n")
	if len(errs) != 1 || errs[0].Line != 3 || !strings.Contains(errs[0].Error(), "methods[0]") || !strings.Contains(errs[0].Error(), "model.lora") {
		t.Errorf("got %v, want one error on line 3 naming methods[0] and model.lora", errs)
	}
}

func TestLoRAMethodsRegistered(t *testing.T) {
	want := map[string]string{"fedavg-lora": "ab", "ffa-lora": "b", "fedsvd": "b", "flora": "ab", "fedex-lora": "ab", "fedavg": "", "fot": ""}
	for name, factors := range want {
		if info, ok := LookupMethod(name); !ok || info.LoRA != factors {
			t.Errorf("LookupMethod(%s).LoRA = %q (registered %v), want %q", name, info.LoRA, ok, factors)
		}
	}
	info, _ := LookupMethod("fedsvd")
	for _, k := range []string{"period", "warmup", "fot", OptionDPEpsilon} {
		if info.Option(k) == nil {
			t.Errorf("fedsvd lacks option %s", k)
		}
	}
	md := ReferenceMarkdown()
	for _, s := range []string{"| `fedsvd` | `period` (int, default 1)", "| (every method) | `dp_epsilon` (float, default 0)", "| `model.lora.rank` |", "| `dp.epsilon` | `0` |"} {
		if !strings.Contains(md, s) {
			t.Errorf("ReferenceMarkdown lacks %q", s)
		}
	}
}

// The built-in fedsvd-dp scenario compares the three LoRA methods at
// epsilon inf, 6 and 3 over 5 seeds; it also loads by its repository
// paths when no such file exists in the working directory.
func TestFedSVDDPBuiltinAndPathAlias(t *testing.T) {
	s, err := Load("fedsvd-dp", nil)
	if err != nil {
		t.Fatal(err)
	}
	var labels []string
	for _, m := range s.Methods {
		labels = append(labels, m.Label())
	}
	want := []string{"fedavg-lora", "fedavg-lora(eps_dp=6)", "fedavg-lora(eps_dp=3)", "ffa-lora", "ffa-lora(eps_dp=6)", "ffa-lora(eps_dp=3)", "fedsvd", "fedsvd(eps_dp=6)", "fedsvd(eps_dp=3)"}
	if !reflect.DeepEqual(labels, want) || len(s.Seeds) != 5 || s.Model.LoRA == nil || s.Pretrain.Tasks != 1 ||
		s.Partition.Clients != 6 || s.Train.ClientsPerRound != 3 || s.Partition.Scheme != "dirichlet" || s.Partition.Alpha != 0.5 {
		t.Errorf("fedsvd-dp: labels %v seeds %v lora %v pretrain %+v partition %+v", labels, s.Seeds, s.Model.LoRA, s.Pretrain, s.Partition)
	}

	dir := t.TempDir()
	t.Chdir(dir)
	for _, p := range []string{"scenarios/fedsvd-dp.yaml", "./scenarios/fedsvd-dp.yaml", "scenarios/builtin/fedsvd-dp.yaml", "scenarios/paper/pmnist-iid.yaml"} {
		s, err := Load(p, nil)
		if err != nil {
			t.Errorf("Load(%q): %v", p, err)
			continue
		}
		if !strings.HasPrefix(s.Source, "builtin:") {
			t.Errorf("Load(%q) source %q, want the built-in", p, s.Source)
		}
	}
	for _, p := range []string{"scenarios/none.yaml", "other/fedsvd-dp.yaml", "scenarios/fedsvd-dp"} {
		if _, err := Load(p, nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("Load(%q) = %v, want ErrNotFound", p, err)
		}
	}
	// A real file of that path wins over the built-in.
	if err := os.MkdirAll("scenarios", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("scenarios", "fedsvd-dp.yaml"), []byte("name: mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := Load("scenarios/fedsvd-dp.yaml", nil); err != nil || s.Name != "mine" {
		t.Errorf("Load(existing file) = %v, %v; want the file (name mine)", s, err)
	}
}
