package scenarios

import (
	"fmt"
	"github.com/fotsim/fotsim/methods"
	"math"
	"reflect"
	"slices"
)

// Kinds of method options (KeyDoc.Kind), as the methods registry derives them from the
// Go type of each option's field. A float option accepts any YAML number, an int
// option an integer, a bool option true or false, a string option any scalar (one of
// KeyDoc.Allowed when that is set).
const (
	KindFloat  = methods.KindFloat
	KindInt    = methods.KindInt
	KindBool   = methods.KindBool
	KindString = methods.KindString
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

// MethodInfo describes one registered method (package methods) as scenarios see it: its
// Spec (name, summary, fot: block, LoRA factors, ...) and its options as KeyDocs. Every
// method also takes the CommonOptions (dp_epsilon), which are not listed here.
type MethodInfo struct {
	methods.Spec
	Options []KeyDoc
	def     methods.Method
}

// methodInfo converts a registered method.
func methodInfo(m methods.Method) MethodInfo {
	mi := MethodInfo{Spec: m.Info(), def: m}
	for _, o := range m.Options() {
		mi.Options = append(mi.Options, KeyDoc{Path: o.Key, Kind: o.Kind, Default: o.Default, Doc: o.Doc, Allowed: o.Allowed, Short: o.Short})
	}
	return mi
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

// Methods returns the registered methods in listing order (methods.All).
func Methods() []MethodInfo {
	var out []MethodInfo
	for _, m := range methods.All() {
		out = append(out, methodInfo(m))
	}
	return out
}

// LookupMethod returns the registered method called name.
func LookupMethod(name string) (MethodInfo, bool) {
	m, ok := methods.Lookup(name)
	if !ok {
		return MethodInfo{}, false
	}
	return methodInfo(m), true
}

// MethodOptions returns m's options as a value of its method's options type (package
// methods): the registry defaults, or for a method with Block fot the scenario's fot:
// block, with the options written on m laid over them.
func (s *Scenario) MethodOptions(m Method) (any, error) {
	info, ok := LookupMethod(m.Name)
	if !ok {
		return nil, fmt.Errorf("scenarios: unknown method %q", m.Name)
	}
	var base any
	if info.Block == methods.BlockFOT {
		base = s.FOT
	}
	written := make(map[string]any, len(m.Options))
	for k, v := range m.Options {
		if k != OptionDPEpsilon {
			written[k] = v
		}
	}
	return info.def.Resolve(base, written)
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
