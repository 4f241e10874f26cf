package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"sync"
)

// Kinds of method options (KeyDoc.Kind). A float option accepts any YAML number, an int
// option an integer, a bool option true or false, a string option any scalar (one of
// KeyDoc.Allowed when that is set).
const (
	KindFloat  = "float"
	KindInt    = "int"
	KindBool   = "bool"
	KindString = "string"
)

// KeyDoc documents one key: a scenario key (Reference) or a method option
// (MethodInfo.Options).
type KeyDoc struct {
	// Path is the key path ("train.lr", "model.conv[].out") or, for a method option,
	// the option key ("epsilon").
	Path string
	// Kind is the value's type: KindFloat, KindInt, KindBool, KindString, or for
	// scenario keys also "duration", "list of int", "list of float", "list of method",
	// "list of conv" and "mapping".
	Kind string
	// Default is the default value as YAML text; dataset- or arch-dependent defaults
	// say so in parentheses.
	Default string
	// Doc says what the key means.
	Doc string
	// Allowed lists the allowed values of a string key; nil means free text.
	Allowed []string
	// Short is the option's name in Method.Label ("eps" for epsilon); "" means Path.
	Short string
}

// MethodInfo describes one method that scenarios may name in methods:.
type MethodInfo struct {
	// Name is what scenarios write ("fedavg", "fot").
	Name string
	// Summary is a one-line description for listings.
	Summary string
	// Block names the scenario block whose keys give this method's option defaults
	// ("fot": the fot: block, overridden by the method's options, see
	// Scenario.FOTFor), or "" when the defaults are the options' own Default.
	Block string
	// Options are the method's options; Kind must be one of KindFloat, KindInt,
	// KindBool, KindString and Default must parse as that kind. Every method also
	// takes the CommonOptions (dp_epsilon), which are not listed here.
	Options []KeyDoc
	// LoRA is "ab" or "b" for a LoRA method, whose clients train those LoRA factors
	// only (model.lora required), and "" otherwise.
	LoRA string
}

// Option returns the option with key k (the method's own, else a common option such
// as dp_epsilon), or nil.
func (mi MethodInfo) Option(k string) *KeyDoc {
	for i := range mi.Options {
		if mi.Options[i].Path == k {
			return &mi.Options[i]
		}
	}
	for i := range commonOptions {
		if commonOptions[i].Path == k {
			return &commonOptions[i]
		}
	}
	return nil
}

func (mi MethodInfo) optionKeys() []string {
	keys := make([]string, len(mi.Options))
	for i, o := range mi.Options {
		keys[i] = o.Path
	}
	return keys
}

// Allowed values of the enumerated keys, shared by the loader, Validate, Reference and
// the method registry.
var (
	datasets   = []string{"mnist", "fashion", "synthetic"}
	streams    = []string{"permuted", "rotated", "split"}
	modes      = []string{"class", "task"}
	schemes    = []string{"iid", "shards", "dirichlet"}
	archs      = []string{"mlp", "cnn"}
	headKinds  = []string{"shared", "per_task"}
	weightings = []string{"uniform", "samples"}
	criteria   = []string{"fot", "gpm"}
	sketches   = []string{"uniform", "gaussian"}
)

// The method registry: a documented global, written by RegisterMethod (normally from
// init functions) and read by the loader.
var (
	methodsMu   sync.RWMutex
	methodIndex = map[string]int{}
	methodList  []MethodInfo
)

func init() {
	RegisterMethod(MethodInfo{
		Name:    "fedavg",
		Summary: "FedAvg: clients run local SGD, the server averages their models (ALGORITHMS.md 1)",
	})
	RegisterMethod(MethodInfo{
		Name:    "fot",
		Summary: "Federated Orthogonal Training: FedAvg + server-side projection on the old tasks' input subspaces, extracted by GPSE (ALGORITHMS.md 3)",
		Block:   "fot",
		Options: fotOptions(),
	})
}

// The baselines the FOT paper compares with (ALGORITHMS.md §6) and the
// centralised references.
func init() {
	fisherSamples := KeyDoc{Path: "fisher_samples", Kind: KindInt, Default: "256", Doc: "samples per client for the diagonal Fisher at the end of a task (0 = all)"}
	RegisterMethod(MethodInfo{
		Name:    "fedprox",
		Summary: "FedProx: local loss + (mu/2)||w - w_global||^2",
		Options: []KeyDoc{{Path: "mu", Kind: KindFloat, Default: "0.01", Doc: "proximal coefficient (>= 0)"}},
	})
	RegisterMethod(MethodInfo{
		Name:    "ewc",
		Summary: "FL+EWC: local loss + (lambda/2) sum_t sum_i F_t,i (w_i - w*_t,i)^2, Fisher averaged over clients, w*_t the global model after task t",
		Options: []KeyDoc{{Path: "lambda", Kind: KindFloat, Default: "100", Short: "lambda", Doc: "penalty strength (>= 0)"}, fisherSamples},
	})
	RegisterMethod(MethodInfo{
		Name:    "fedcurv",
		Summary: "FedCurv: EWC-style penalty built from the other clients' Fisher terms, anchored at their local models",
		Options: []KeyDoc{{Path: "lambda", Kind: KindFloat, Default: "100", Short: "lambda", Doc: "penalty strength (>= 0)"}, fisherSamples},
	})
	RegisterMethod(MethodInfo{
		Name:    "flwf",
		Summary: "FLwF: local loss + alpha T^2 KL(previous-task model || model) on current data (shared head)",
		Options: []KeyDoc{
			{Path: "alpha", Kind: KindFloat, Default: "1", Doc: "distillation weight (>= 0)"},
			{Path: "temperature", Kind: KindFloat, Default: "2", Short: "T", Doc: "distillation temperature (> 0)"},
		},
	})
	RegisterMethod(MethodInfo{
		Name:    "central-seq",
		Summary: "centralised sequential fine-tuning (lower reference): one learner with all the data, task after task",
	})
	RegisterMethod(MethodInfo{
		Name:    "central-joint",
		Summary: "centralised joint training (upper reference): one learner that trains at task t on the data of tasks 0..t",
	})
	RegisterMethod(MethodInfo{
		Name:    "central-gpm",
		Summary: "centralised GPM: FOT's projection and subspace extraction with one learner holding all the data",
		Block:   "fot",
		Options: fotOptions(),
	})
}

// The LoRA methods come after the baselines (finetune.go).
func init() { registerLoRAMethods() }

// RegisterMethod adds a method to the registry so that scenarios can name it. It is
// meant to be called from init functions and panics on a programmer error: an empty or
// already registered name, an option without key, a repeated option, an option named
// "name" or like a common option (dp_epsilon), an unknown LoRA value, an unknown Kind, a Default that does not parse as its Kind (or is not
// Allowed), an unknown Block, or a Block option whose Kind does not match the block's
// key of the same name.
func RegisterMethod(mi MethodInfo) {
	if mi.Name == "" {
		panic("scenarios: RegisterMethod with an empty name")
	}
	var block reflect.Type
	switch mi.Block {
	case "":
	case "fot":
		block = reflect.TypeFor[FOT]()
	default:
		panic(fmt.Sprintf("scenarios: method %s: unknown block %q (want \"\" or \"fot\")", mi.Name, mi.Block))
	}
	if mi.LoRA != "" && mi.LoRA != "ab" && mi.LoRA != "b" {
		panic(fmt.Sprintf("scenarios: method %s: LoRA %q (want \"\", \"ab\" or \"b\")", mi.Name, mi.LoRA))
	}
	seen := map[string]bool{}
	for _, c := range commonOptions {
		seen[c.Path] = true
	}
	for _, o := range mi.Options {
		if o.Path == "" || o.Path == "name" || seen[o.Path] {
			panic(fmt.Sprintf("scenarios: method %s: bad or repeated option key %q", mi.Name, o.Path))
		}
		seen[o.Path] = true
		v, err := parseOption(o.Kind, o.Default)
		if err != nil {
			panic(fmt.Sprintf("scenarios: method %s: option %s: %v", mi.Name, o.Path, err))
		}
		if msg := checkAllowed(o, v); msg != "" {
			panic(fmt.Sprintf("scenarios: method %s: option %s: default %s", mi.Name, o.Path, msg))
		}
		if block != nil {
			if f, ok := fieldByYAML(block, o.Path); ok && reflect.TypeOf(v) != f.Type {
				panic(fmt.Sprintf("scenarios: method %s: option %s is %s but %s.%s is %s", mi.Name, o.Path, o.Kind, mi.Block, o.Path, f.Type))
			}
		}
	}
	mi.Options = slices.Clone(mi.Options)
	methodsMu.Lock()
	defer methodsMu.Unlock()
	if _, dup := methodIndex[mi.Name]; dup {
		panic(fmt.Sprintf("scenarios: method %s registered twice", mi.Name))
	}
	methodIndex[mi.Name] = len(methodList)
	methodList = append(methodList, mi)
}

// Methods returns the registered methods in registration order (fedavg, fot, then
// later registrations).
func Methods() []MethodInfo {
	methodsMu.RLock()
	defer methodsMu.RUnlock()
	out := make([]MethodInfo, len(methodList))
	for i, mi := range methodList {
		mi.Options = slices.Clone(mi.Options)
		out[i] = mi
	}
	return out
}

// LookupMethod returns the registered method called name.
func LookupMethod(name string) (MethodInfo, bool) {
	methodsMu.RLock()
	defer methodsMu.RUnlock()
	i, ok := methodIndex[name]
	if !ok {
		return MethodInfo{}, false
	}
	return methodList[i], true
}

func methodNames() []string {
	methodsMu.RLock()
	defer methodsMu.RUnlock()
	names := make([]string, len(methodList))
	for i, mi := range methodList {
		names[i] = mi.Name
	}
	return names
}

// parseOption parses an option's text as its kind: float64, int, bool or string.
func parseOption(kind, s string) (any, error) {
	switch kind {
	case KindFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("%q is not a finite number", s)
		}
		return f, nil
	case KindInt:
		i, err := strconv.Atoi(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an integer", s)
		}
		return i, nil
	case KindBool:
		b, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return nil, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	case KindString:
		return s, nil
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

// checkAllowed returns "" if v is an allowed value of o, else a message.
func checkAllowed(o KeyDoc, v any) string {
	s, ok := v.(string)
	if !ok || o.Allowed == nil || slices.Contains(o.Allowed, s) {
		return ""
	}
	return fmt.Sprintf("unknown value %q (want %s)", s, oneOf(o.Allowed))
}

// checkGoOption checks a programmatically built option value against its KeyDoc and
// returns "" or a message.
func checkGoOption(o KeyDoc, v any) string {
	want := map[string]reflect.Type{
		KindFloat: reflect.TypeFor[float64](), KindInt: reflect.TypeFor[int](),
		KindBool: reflect.TypeFor[bool](), KindString: reflect.TypeFor[string](),
	}[o.Kind]
	if reflect.TypeOf(v) != want {
		return fmt.Sprintf("want %s, got Go value %#v (%T)", kindPhrase(o.Kind), v, v)
	}
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Sprintf("want a finite number, got %v", f)
	}
	return checkAllowed(o, v)
}

func kindPhrase(kind string) string {
	switch kind {
	case KindFloat:
		return "a number"
	case KindInt:
		return "an integer"
	case KindBool:
		return "true or false"
	}
	return "a string"
}

// fotOptions are the options of the methods that use the fot: block.
func fotOptions() []KeyDoc {
	return []KeyDoc{
		{Path: "epsilon", Kind: KindFloat, Default: "0.96", Short: "eps", Doc: "GPSE energy threshold in (0, 1] (overrides fot.epsilon)"},
		{Path: "eps_inc", Kind: KindFloat, Default: "0", Doc: "added to epsilon after each task (overrides fot.eps_inc)"},
		{Path: "criterion", Kind: KindString, Default: "fot", Allowed: criteria, Doc: "subspace growth rule (overrides fot.criterion)"},
		{Path: "sketch", Kind: KindString, Default: "uniform", Allowed: sketches, Doc: "distribution of the GPSE random matrix (overrides fot.sketch)"},
		{Path: "oversample", Kind: KindInt, Default: "1", Doc: "sketch width as a multiple of d_in (overrides fot.oversample)"},
		{Path: "gpse_dropout", Kind: KindBool, Default: "true", Doc: "GPSE pass in training mode (overrides fot.gpse_dropout)"},
		{Path: "gpse_samples", Kind: KindInt, Default: "0", Doc: "samples per client in the GPSE pass, 0 = all (overrides fot.gpse_samples)"},
	}
}
