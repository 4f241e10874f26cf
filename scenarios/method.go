package scenarios

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Method is one entry of methods:. In YAML it is either a plain name
//
//	methods: [fedavg, fot]
//
// or a mapping with the name and options
//
//	methods: [fedavg, {name: fot, epsilon: 0.9}]
//
// Options holds the options written on the method, typed by the registry's kinds:
// float64 (KindFloat, integers are widened), int, bool or string. Options that were not
// written are absent; the accessors Float, Int, Bool and Str fall back to the registry
// default, and Scenario.FOTFor to the fot: block.
type Method struct {
	Name    string
	Options map[string]any
}

// Label returns the method's name for tables: the name, followed by the options set on
// the method in registry order, e.g. "fot(eps=0.9)" or "fot(eps=0.9,criterion=gpm)";
// dp_epsilon shows as eps_dp, 0 as inf ("fedsvd(eps_dp=6)", "fedsvd(eps_dp=inf)").
// Labels are unique within a valid scenario.
func (m Method) Label() string {
	if len(m.Options) == 0 {
		return m.Name
	}
	info, _ := LookupMethod(m.Name)
	parts := make([]string, 0, len(m.Options))
	for _, k := range m.optionOrder(info) {
		name := k
		if o := info.Option(k); o != nil && o.Short != "" {
			name = o.Short
		}
		v := formatValue(m.Options[k])
		if k == OptionDPEpsilon && m.Options[k] == 0.0 {
			v = "inf" // no DP
		}
		parts = append(parts, name+"="+v)
	}
	return m.Name + "(" + strings.Join(parts, ",") + ")"
}

// optionOrder returns the keys of m.Options: registered options in registry order, the
// common options (dp_epsilon), then unknown keys sorted.
func (m Method) optionOrder(info MethodInfo) []string {
	keys := make([]string, 0, len(m.Options))
	for _, o := range append(slices.Clip(info.Options), commonOptions...) {
		if _, ok := m.Options[o.Path]; ok {
			keys = append(keys, o.Path)
		}
	}
	var extra []string
	for k := range m.Options {
		if info.Option(k) == nil {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	return append(keys, extra...)
}

// option returns the option's value as written, else the registry default, else nil.
func (m Method) option(key string) any {
	if v, ok := m.Options[key]; ok {
		return v
	}
	if info, ok := LookupMethod(m.Name); ok {
		if o := info.Option(key); o != nil {
			v, _ := parseOption(o.Kind, o.Default)
			return v
		}
	}
	return nil
}

// Float returns a float option (as written, else the registry default, else 0).
func (m Method) Float(key string) float64 {
	switch v := m.option(key).(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return 0
}

// Int returns an int option (as written, else the registry default, else 0).
func (m Method) Int(key string) int {
	v, _ := m.option(key).(int)
	return v
}

// Bool returns a bool option (as written, else the registry default, else false).
func (m Method) Bool(key string) bool {
	v, _ := m.option(key).(bool)
	return v
}

// Str returns a string option (as written, else the registry default, else "").
func (m Method) Str(key string) string {
	v, _ := m.option(key).(string)
	return v
}

// MarshalYAML writes a plain name when the method has no options, else a flow mapping
// {name: ..., option: value, ...} with the options in registry order.
func (m Method) MarshalYAML() (any, error) {
	if len(m.Options) == 0 {
		return m.Name, nil
	}
	info, _ := LookupMethod(m.Name)
	n := &yaml.Node{Kind: yaml.MappingNode, Style: yaml.FlowStyle}
	n.Content = append(n.Content, strNode("name"), strNode(m.Name))
	for _, k := range m.optionOrder(info) {
		var v yaml.Node
		if err := v.Encode(m.Options[k]); err != nil {
			return nil, fmt.Errorf("scenarios: method %s option %s: %w", m.Name, k, err)
		}
		n.Content = append(n.Content, strNode(k), &v)
	}
	return n, nil
}

// UnmarshalYAML decodes a name or a mapping with name and options, checking the name
// and the options against the registry. It returns the first problem; Parse reports
// all of them.
func (m *Method) UnmarshalYAML(n *yaml.Node) error {
	d := newDecoder("", nil)
	got, _ := d.method(n, "")
	if len(d.errs) > 0 {
		d.errs.sort()
		return d.errs[0]
	}
	*m = got
	return nil
}

// effectiveKey identifies what a method runs, for duplicate detection: the name and
// every registered option's effective value (written, else the block's, else the
// registry default), plus unregistered options.
func (s *Scenario) effectiveKey(m Method) string {
	info, _ := LookupMethod(m.Name)
	var b strings.Builder
	b.WriteString(m.Name)
	var block map[string]any
	if info.Block == "fot" {
		block = structValues(s.FOTFor(m))
	}
	if block == nil {
		block = map[string]any{}
	}
	block[OptionDPEpsilon] = s.DP.Epsilon
	for _, o := range append(slices.Clip(info.Options), commonOptions...) {
		v, ok := m.Options[o.Path]
		if !ok {
			if bv, inBlock := block[o.Path]; inBlock {
				v = bv
			} else {
				v, _ = parseOption(o.Kind, o.Default)
			}
		}
		fmt.Fprintf(&b, "|%s=%s", o.Path, formatValue(v))
	}
	for _, k := range m.optionOrder(info) {
		if info.Option(k) == nil {
			fmt.Fprintf(&b, "|%s=%s", k, formatValue(m.Options[k]))
		}
	}
	return b.String()
}

// formatValue formats an option value compactly: floats in the shortest form that
// round-trips.
func formatValue(v any) string {
	switch v := v.(type) {
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case string:
		return v
	}
	return fmt.Sprint(v)
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}
