package methods

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/aggregator"
	"github.com/fotsim/fotsim/nn"
	"github.com/fotsim/fotsim/rng"
)

type regOptions struct {
	Beta  float64 `yaml:"beta" short:"b" doc:"a weight"`
	Steps int     `yaml:"steps" doc:"a count"`
	On    bool    `yaml:"on" doc:"a switch"`
	Mode  string  `yaml:"mode" allowed:"x,y" doc:"a choice"`
}

func TestRegisterDerivesOptions(t *testing.T) {
	Register(Def[regOptions]{
		Spec:     Spec{Name: "reg-test", Summary: "test"},
		Defaults: regOptions{Beta: 0.5, Steps: 3, On: true, Mode: "y"},
	})
	t.Cleanup(func() { Unregister("reg-test") })
	m, ok := Lookup("reg-test")
	if !ok {
		t.Fatal("reg-test not registered")
	}
	want := []Option{
		{Key: "beta", Kind: KindFloat, Default: "0.5", Doc: "a weight", Short: "b", field: 0},
		{Key: "steps", Kind: KindInt, Default: "3", Doc: "a count", field: 1},
		{Key: "on", Kind: KindBool, Default: "true", Doc: "a switch", field: 2},
		{Key: "mode", Kind: KindString, Default: "y", Doc: "a choice", Allowed: []string{"x", "y"}, field: 3},
	}
	if got := m.Options(); !reflect.DeepEqual(got, want) {
		t.Errorf("Options() =\n%+v\nwant\n%+v", got, want)
	}
	if names := Names(); names[len(names)-1] != "reg-test" {
		t.Errorf("Names() = %v, want reg-test last (not in Order)", names)
	}
	got, err := m.Resolve(nil, map[string]any{"beta": 2, "mode": "x"})
	if err != nil || got != any(regOptions{Beta: 2, Steps: 3, On: true, Mode: "x"}) {
		t.Errorf("Resolve(beta: 2 (an int), mode: x) = %+v, %v", got, err)
	}
	got, err = m.Resolve(regOptions{Steps: 9}, map[string]any{"on": true})
	if err != nil || got != any(regOptions{Steps: 9, On: true}) {
		t.Errorf("Resolve over a base = %+v, %v, want the base with on set", got, err)
	}
	for _, bad := range []struct {
		base    any
		written map[string]any
		want    string
	}{
		{nil, map[string]any{"gamma": 1.0}, `no option "gamma"`},
		{nil, map[string]any{"steps": 1.5}, "option steps: want int"},
		{nil, map[string]any{"on": "yes"}, "option on: want bool"},
		{FOTOptions{}, nil, "base options are methods.FOTOptions"},
	} {
		if _, err := m.Resolve(bad.base, bad.written); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("Resolve(%v, %v) = %v, want ErrOptions containing %q", bad.base, bad.written, err, bad.want)
		}
	}
	if b, err := m.Client(got, Env{}); b != nil || err != nil {
		t.Errorf("Client of a method without one = %v, %v, want nil, nil", b, err)
	}
	if r, err := m.Server(got, Env{}); r != nil || err != nil {
		t.Errorf("Server of a method without one = %v, %v, want nil, nil", r, err)
	}
	Unregister("reg-test")
	if _, ok := Lookup("reg-test"); ok {
		t.Error("Lookup after Unregister found reg-test")
	}
}

func TestRegisterPanics(t *testing.T) {
	type noTag struct{ A float64 }
	type badType struct {
		A []int `yaml:"a"`
	}
	type reservedKey struct {
		A float64 `yaml:"dp_epsilon"`
	}
	type repeated struct {
		A int `yaml:"a"`
		B int `yaml:"a"`
	}
	type badDefault struct {
		A string `yaml:"a" allowed:"x,y"`
	}
	cases := []struct {
		name string
		reg  func()
	}{
		{"empty name", func() { Register(Def[NoOptions]{}) }},
		{"duplicate", func() { Register(Def[NoOptions]{Spec: Spec{Name: "fedavg"}}) }},
		{"bad LoRA", func() { Register(Def[NoOptions]{Spec: Spec{Name: "p1", LoRA: "a"}}) }},
		{"unknown block", func() { Register(Def[NoOptions]{Spec: Spec{Name: "p2", Block: "lora"}}) }},
		{"fot block, other options", func() { Register(Def[NoOptions]{Spec: Spec{Name: "p3", Block: BlockFOT}}) }},
		{"options not a struct", func() { Register(Def[int]{Spec: Spec{Name: "p4"}}) }},
		{"field without yaml key", func() { Register(Def[noTag]{Spec: Spec{Name: "p5"}}) }},
		{"unsupported type", func() { Register(Def[badType]{Spec: Spec{Name: "p6"}}) }},
		{"reserved key", func() { Register(Def[reservedKey]{Spec: Spec{Name: "p7"}}) }},
		{"repeated key", func() { Register(Def[repeated]{Spec: Spec{Name: "p8"}}) }},
		{"default not allowed", func() { Register(Def[badDefault]{Spec: Spec{Name: "p9"}, Defaults: badDefault{A: "z"}}) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(Names())
			defer func() {
				if recover() == nil {
					t.Errorf("Register did not panic")
				}
				if n := len(Names()); n != before {
					t.Errorf("%d methods after a failed Register, want %d", n, before)
				}
			}()
			c.reg()
		})
	}
}

// TestEveryMethodBuilds checks each registered method's defaults against
// its own Validate and builds both sides on a model with LoRA adapters
// (a LoRA method needs them; the others ignore them).
func TestEveryMethodBuilds(t *testing.T) {
	if got, want := Names(), Order; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want Order %v", got, want)
	}
	model, err := nn.Build(nn.Spec{Arch: "mlp", In: nn.Shape{C: 1, H: 4, W: 4}, Hidden: []int{8}, Dropout: []float64{0}, Classes: 3, Heads: 1,
		LoRA: &nn.LoRASpec{Rank: 2, Alpha: 2}})
	if err != nil {
		t.Fatal(err)
	}
	params := make([]float32, model.NumParams())
	model.Init(params, rng.New(1, "init"))
	env := Env{Model: model, Seed: 1, BatchSize: 4, Weighting: aggregator.Uniform, ServerLR: 1, FOT: DefaultFOT(), Clients: 4}
	for _, m := range All() {
		spec := m.Info()
		t.Run(spec.Name, func(t *testing.T) {
			var base any
			if spec.Block == BlockFOT {
				base = DefaultFOT()
			}
			opts, err := m.Resolve(base, nil)
			if err != nil {
				t.Fatal(err)
			}
			if p := m.Check(opts); len(p) > 0 {
				t.Errorf("defaults fail their own checks: %v", p)
			}
			for _, o := range m.Options() {
				if o.Doc == "" {
					t.Errorf("option %s has no doc", o.Key)
				}
			}
			if _, err := m.Client(opts, env); err != nil {
				t.Errorf("Client: %v", err)
			}
			rule, err := m.Server(opts, env)
			if err != nil {
				t.Errorf("Server: %v", err)
			}
			if spec.LoRA != "" && rule == nil {
				t.Error("a LoRA method without a server rule")
			}
		})
	}
}

func TestValidateRejectsBadOptions(t *testing.T) {
	cases := []struct {
		method  string
		written map[string]any
		key     string
	}{
		{"fot", map[string]any{"epsilon": 1.5}, "epsilon"},
		{"fot", map[string]any{"criterion": "x"}, "criterion"},
		{"fot", map[string]any{"oversample": 0}, "oversample"},
		{"central-gpm", map[string]any{"gpse_samples": -1}, "gpse_samples"},
		{"fedprox", map[string]any{"mu": -0.1}, "mu"},
		{"ewc", map[string]any{"lambda": -1.0}, "lambda"},
		{"fedcurv", map[string]any{"fisher_samples": -2}, "fisher_samples"},
		{"flwf", map[string]any{"temperature": 0.0}, "temperature"},
		{"flwf", map[string]any{"alpha": -1.0}, "alpha"},
		{"fedsvd", map[string]any{"period": 0}, "period"},
		{"fedsvd", map[string]any{"warmup": -1}, "warmup"},
	}
	for _, c := range cases {
		m, _ := Lookup(c.method)
		var base any
		if m.Info().Block == BlockFOT {
			base = DefaultFOT()
		}
		opts, err := m.Resolve(base, c.written)
		if err != nil {
			t.Fatalf("%s %v: %v", c.method, c.written, err)
		}
		p := m.Check(opts)
		if len(p) != 1 || p[0].Key != c.key || p[0].Msg == "" {
			t.Errorf("%s %v: Check = %v, want one problem at %s", c.method, c.written, p, c.key)
		}
	}
	m, _ := Lookup("fot")
	opts, _ := m.Resolve(DefaultFOT(), map[string]any{"epsilon": 2.0})
	if _, err := m.Server(opts, Env{}); !errors.Is(err, ErrOptions) || !strings.Contains(err.Error(), "epsilon") {
		t.Errorf("fot Server with epsilon 2 = %v, want ErrOptions naming epsilon", err)
	}
}
