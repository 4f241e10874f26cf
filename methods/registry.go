package methods

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/client"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/server"
)

// ErrOptions reports options that do not fit a method's options struct.
var ErrOptions = errors.New("methods: bad options")

// Kinds of options (Option.Kind), from the Go type of the field: float64,
// int, bool, string.
const (
	KindFloat  = "float"
	KindInt    = "int"
	KindBool   = "bool"
	KindString = "string"
)

// BlockFOT is the Spec.Block of the methods whose option defaults are the
// scenario's fot: block.
const BlockFOT = "fot"

// Spec is what the rest of fotsim knows about a method besides its options
// and behaviour.
type Spec struct {
	// Name is what scenarios write ("fedavg", "fot").
	Name string
	// Summary is a one-line description for listings.
	Summary string
	// Block names the scenario block whose values are the defaults of the
	// method's options: "fot" (the fot: block, whose type is the method's
	// options type), or "" when the defaults are Def.Defaults.
	Block string
	// LoRA is "ab" or "b" for a LoRA method, whose clients train those
	// LoRA factors only (model.lora required), and "" otherwise.
	LoRA string
	// Central marks a centralised reference: one learner that holds all the
	// data and trains in every round (1 client, 1 per round).
	Central bool
	// JointData makes the learner of task t train on the data of tasks
	// 0..t instead of task t alone.
	JointData bool
	// NoDP, when set, says why the method cannot run with DP-SGD.
	NoDP string
	// SharedHead, when set, says why the method needs model.heads: shared.
	SharedHead string
	// NoSecAgg, when set, says why the method cannot run with secure
	// aggregation (scenario secagg:): its server reads individual updates
	// (Rule.EndTask's messages beyond their clear part, Applied.Ups), not
	// only their sum.
	NoSecAgg string
}

// Option documents one option, as derived from the options struct: the
// field's yaml tag is Key, its Go type the Kind, the Defaults value the
// Default, and the tags doc, short and allowed (comma-separated) fill
// the rest.
type Option struct {
	Key     string
	Kind    string
	Default string   // as YAML text
	Doc     string   // what the option means
	Allowed []string // allowed values of a string option; nil = free text
	Short   string   // name in method labels ("eps" for epsilon); "" = Key
	field   int
}

// Env is what a method's behaviour is built from, besides its options.
type Env struct {
	Model     *nn.Model
	Seed      uint64
	BatchSize int // the clients' mini-batch size
	Weighting aggregator.Weighting
	ServerLR  float32
	// FOT is the scenario's fot: block, for methods that combine with FOT.
	FOT FOTOptions
	// Clients is the number of clients of the federation.
	Clients int
}

// Problem is one invalid option value: the option's key and what is wrong.
type Problem struct{ Key, Msg string }

// Method is a registered method, its options handled as values of its own
// options type (see Def).
type Method interface {
	// Info returns the method's Spec.
	Info() Spec
	// Options lists the method's options in declaration order.
	Options() []Option
	// Resolve returns the method's options: base (nil: the defaults; else
	// a value of the options type, e.g. the fot: block) with the written
	// options laid over it. Values are float64, int, bool or string as the
	// option's kind; ints are accepted for floats.
	Resolve(base any, written map[string]any) (any, error)
	// Check returns the invalid values of resolved options.
	Check(opts any) []Problem
	// Client builds the client side (nil: plain local SGD). Options that
	// fail Check are an error wrapping ErrOptions.
	Client(opts any, e Env) (client.Behaviour, error)
	// Server builds the server side (nil: plain FedAvg), with Client's
	// checks.
	Server(opts any, e Env) (server.Rule, error)
}

// Def defines a method whose options are a struct of type O (NoOptions for
// none). Register it from an init function of the method's own file.
type Def[O any] struct {
	Spec Spec
	// Defaults are the options' default values.
	Defaults O
	// Validate, if set, returns the invalid values of o.
	Validate func(o O) []Problem
	// NewClient, if set, builds the client side.
	NewClient func(o O, e Env) (client.Behaviour, error)
	// NewServer, if set, builds the server side.
	NewServer func(o O, e Env) (server.Rule, error)

	opts []Option
}

// NoOptions is the options type of a method without options.
type NoOptions struct{}

func (d *Def[O]) Info() Spec        { return d.Spec }
func (d *Def[O]) Options() []Option { return slices.Clone(d.opts) }

func (d *Def[O]) Resolve(base any, written map[string]any) (any, error) {
	o := d.Defaults
	if base != nil {
		b, ok := base.(O)
		if !ok {
			return nil, fmt.Errorf("%w: method %s: base options are %T, want %T", ErrOptions, d.Spec.Name, base, o)
		}
		o = b
	}
	v := reflect.ValueOf(&o).Elem()
	for _, k := range sortedKeys(written) {
		i := slices.IndexFunc(d.opts, func(op Option) bool { return op.Key == k })
		if i < 0 {
			return nil, fmt.Errorf("%w: method %s has no option %q", ErrOptions, d.Spec.Name, k)
		}
		f := v.Field(d.opts[i].field)
		w := reflect.ValueOf(written[k])
		switch {
		case w.IsValid() && w.Type() == f.Type():
			f.Set(w)
		case w.IsValid() && w.Kind() == reflect.Int && f.Kind() == reflect.Float64:
			f.SetFloat(float64(w.Int()))
		default:
			return nil, fmt.Errorf("%w: method %s option %s: want %s, got %#v", ErrOptions, d.Spec.Name, k, d.opts[i].Kind, written[k])
		}
	}
	return o, nil
}

func (d *Def[O]) Check(opts any) []Problem {
	o, ok := opts.(O)
	if !ok {
		return []Problem{{Msg: fmt.Sprintf("options are %T, want %T", opts, d.Defaults)}}
	}
	var out []Problem
	if d.Validate != nil {
		out = append(out, d.Validate(o)...)
	}
	return out
}

func (d *Def[O]) Client(opts any, e Env) (client.Behaviour, error) {
	if d.NewClient == nil {
		return nil, nil
	}
	o, err := d.valid(opts)
	if err != nil {
		return nil, err
	}
	return d.NewClient(o, e)
}

func (d *Def[O]) Server(opts any, e Env) (server.Rule, error) {
	if d.NewServer == nil {
		return nil, nil
	}
	o, err := d.valid(opts)
	if err != nil {
		return nil, err
	}
	return d.NewServer(o, e)
}

// valid returns opts as O if they are of that type and pass Check.
func (d *Def[O]) valid(opts any) (O, error) {
	o, ok := opts.(O)
	if !ok {
		return o, fmt.Errorf("%w: method %s: options are %T, want %T", ErrOptions, d.Spec.Name, opts, d.Defaults)
	}
	if p := d.Check(o); len(p) > 0 {
		return o, fmt.Errorf("%w: method %s: %s: %s", ErrOptions, d.Spec.Name, p[0].Key, p[0].Msg)
	}
	return o, nil
}

// The registry: a documented global, written by Register from init
// functions and read by everything that names methods.
var (
	mu    sync.RWMutex
	index = map[string]int{}
	list  []Method
)

// reserved are option keys that every method takes from the scenario
// (dp_epsilon) or that name the method in YAML.
var reserved = []string{"name", "dp_epsilon"}

// Register adds d to the registry. It panics on a programmer error: an
// empty or already registered name, an unknown Block or LoRA value, a
// Block whose type is not the options type, an options type that is not
// a struct, a field without a yaml tag or of an unsupported type, a
// repeated or reserved key, or a default outside its allowed values.
func Register[O any](d Def[O]) {
	if d.Spec.Name == "" {
		panic("methods: Register with an empty name")
	}
	if d.Spec.LoRA != "" && d.Spec.LoRA != "ab" && d.Spec.LoRA != "b" {
		panic(fmt.Sprintf("methods: %s: LoRA %q (want \"\", \"ab\" or \"b\")", d.Spec.Name, d.Spec.LoRA))
	}
	switch d.Spec.Block {
	case "":
	case BlockFOT:
		if reflect.TypeFor[O]() != reflect.TypeFor[FOTOptions]() {
			panic(fmt.Sprintf("methods: %s: block fot needs options of type FOTOptions, not %v", d.Spec.Name, reflect.TypeFor[O]()))
		}
	default:
		panic(fmt.Sprintf("methods: %s: unknown block %q (want \"\" or \"fot\")", d.Spec.Name, d.Spec.Block))
	}
	opts, err := optionsOf(d.Defaults)
	if err != nil {
		panic(fmt.Sprintf("methods: %s: %v", d.Spec.Name, err))
	}
	d.opts = opts
	mu.Lock()
	defer mu.Unlock()
	if _, dup := index[d.Spec.Name]; dup {
		panic(fmt.Sprintf("methods: %s registered twice", d.Spec.Name))
	}
	index[d.Spec.Name] = len(list)
	list = append(list, &d)
}

// Lookup returns the method called name.
func Lookup(name string) (Method, bool) {
	mu.RLock()
	defer mu.RUnlock()
	i, ok := index[name]
	if !ok {
		return nil, false
	}
	return list[i], true
}

// All returns the registered methods in the order of Order, then any
// others in registration order.
func All() []Method {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]Method, 0, len(list))
	for _, name := range Order {
		if i, ok := index[name]; ok {
			out = append(out, list[i])
		}
	}
	for _, m := range list {
		if !slices.Contains(Order, m.Info().Name) {
			out = append(out, m)
		}
	}
	return out
}

// Order is the order of listings (fotsim list, the README): the FedAvg
// core and FOT, the baselines, the centralised references, the LoRA
// methods. A method missing here is listed after them.
var Order = []string{
	"fedavg", "fot",
	"fedprox", "ewc", "fedcurv", "flwf",
	"central-seq", "central-joint", "central-gpm",
	"fedavg-lora", "ffa-lora", "fedsvd", "flora", "fedex-lora",
	"opcm", "fisher-avg", "sculpt", "econtrol",
}

// Names returns the names of All, in order.
func Names() []string {
	var out []string
	for _, m := range All() {
		out = append(out, m.Info().Name)
	}
	return out
}

// optionsOf derives the options of the struct value def.
func optionsOf(def any) ([]Option, error) {
	v := reflect.ValueOf(def)
	if v.Kind() != reflect.Struct {
		return nil, fmt.Errorf("options type %T is not a struct", def)
	}
	var out []Option
	for i := 0; i < v.NumField(); i++ {
		f := v.Type().Field(i)
		key, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if key == "" || key == "-" {
			return nil, fmt.Errorf("option field %s has no yaml key", f.Name)
		}
		if slices.Contains(reserved, key) || slices.ContainsFunc(out, func(o Option) bool { return o.Key == key }) {
			return nil, fmt.Errorf("reserved or repeated option key %q", key)
		}
		o := Option{Key: key, Doc: f.Tag.Get("doc"), Short: f.Tag.Get("short"), field: i}
		if a := f.Tag.Get("allowed"); a != "" {
			o.Allowed = strings.Split(a, ",")
		}
		switch fv := v.Field(i); f.Type.Kind() {
		case reflect.Float64:
			o.Kind, o.Default = KindFloat, strconv.FormatFloat(fv.Float(), 'g', -1, 64)
			if math.IsNaN(fv.Float()) || math.IsInf(fv.Float(), 0) {
				return nil, fmt.Errorf("option %s: default %v is not finite", key, fv.Float())
			}
		case reflect.Int:
			o.Kind, o.Default = KindInt, strconv.Itoa(int(fv.Int()))
		case reflect.Bool:
			o.Kind, o.Default = KindBool, strconv.FormatBool(fv.Bool())
		case reflect.String:
			o.Kind, o.Default = KindString, fv.String()
			if o.Allowed != nil && !slices.Contains(o.Allowed, fv.String()) {
				return nil, fmt.Errorf("option %s: default %q not in %v", key, fv.String(), o.Allowed)
			}
		default:
			return nil, fmt.Errorf("option %s: unsupported type %v (want float64, int, bool or string)", key, f.Type)
		}
		out = append(out, o)
	}
	return out, nil
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Unregister removes the method called name, if registered. It is for tests
// that register a method for their own duration.
func Unregister(name string) {
	mu.Lock()
	defer mu.Unlock()
	i, ok := index[name]
	if !ok {
		return
	}
	list = slices.Delete(list, i, i+1)
	delete(index, name)
	for j := i; j < len(list); j++ {
		index[list[j].Info().Name] = j
	}
}
