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
// written are absent. It is what the scenario says (labels, scenario.yaml); the options a
// run uses are Scenario.MethodOptions, a value of the method's own options type.
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

// effectiveKey identifies what a method runs, for duplicate detection: the name, every
// option's effective value (MethodOptions: written, else the block's, else the registry
// default) and the DP target.
func (s *Scenario) effectiveKey(m Method) string {
	info, _ := LookupMethod(m.Name)
	var b strings.Builder
	b.WriteString(m.Name)
	opts, _ := s.MethodOptions(m)
	vals := structValues(opts)
	for _, o := range info.Options {
		fmt.Fprintf(&b, "|%s=%s", o.Path, formatValue(vals[o.Path]))
	}
	fmt.Fprintf(&b, "|%s=%s", OptionDPEpsilon, formatValue(s.DPFor(m).Epsilon))
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
