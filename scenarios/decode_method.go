package scenarios

import (
	"fmt"
	"strings"

	"github.com/fotsim/fotsim/methods"

	"gopkg.in/yaml.v3"
)

const methodForms = "a method name or a mapping {name: METHOD, option: value, ...}"

// method decodes one methods: entry, reporting every problem; ok is false if any.
func (d *decoder) method(n *yaml.Node, path string) (m Method, ok bool) {
	n = deref(n)
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() != "!!str" {
			d.errorAt(n, path, "want "+methodForms+", got "+describe(n))
			return Method{}, false
		}
		return Method{Name: n.Value}, d.methodName(n, path, n.Value)
	case yaml.MappingNode:
	default:
		d.errorAt(n, path, "want "+methodForms+", got "+describe(n))
		return Method{}, false
	}
	ok = true
	var nameNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == "name" {
			nameNode = deref(n.Content[i+1])
			break
		}
	}
	switch {
	case nameNode == nil:
		d.errorAt(n, path, `missing "name" (want `+methodForms+")")
		ok = false
	case nameNode.Kind != yaml.ScalarNode || nameNode.ShortTag() != "!!str":
		d.errorAt(nameNode, path+".name", "want a method name, got "+describe(nameNode))
		ok = false
	default:
		m.Name = nameNode.Value
		d.nodes[path+".name"] = nameNode
		ok = d.methodName(nameNode, path+".name", m.Name)
	}
	info, known := LookupMethod(m.Name)
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], deref(n.Content[i+1])
		p := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			d.errorAt(k, p, fmt.Sprintf("duplicate key (first at line %d)", first.Line))
			ok = false
			continue
		}
		seen[k.Value] = k
		if k.Value == "name" {
			continue
		}
		d.nodes[p] = val
		if !known {
			continue // the options of an unknown method cannot be checked
		}
		o := info.Option(k.Value)
		if o == nil {
			d.errorAt(k, p, unknownOption(info, k.Value))
			ok = false
			continue
		}
		x, msg := decodeScalar(val, o.Kind)
		if k.Value == OptionDPEpsilon && isInf(val) {
			x, msg = 0.0, "" // infinite epsilon: no DP
		}
		if msg == "" {
			if i, isInt := x.(int64); isInt {
				x = int(i)
				if int64(x.(int)) != i {
					msg = fmt.Sprintf("%d is too large", i)
				}
			}
		}
		if msg == "" {
			msg = checkAllowed(*o, x)
		}
		if msg != "" {
			d.errorAt(val, p, msg)
			ok = false
			continue
		}
		if m.Options == nil {
			m.Options = map[string]any{}
		}
		m.Options[k.Value] = x
	}
	return m, ok
}

func (d *decoder) methodName(n *yaml.Node, path, name string) bool {
	if _, ok := LookupMethod(name); ok {
		return true
	}
	d.errorAt(n, path, unknownMethod(name))
	return false
}

func unknownMethod(name string) string {
	names := methods.Names()
	msg := fmt.Sprintf("unknown method %q (known: %s)", name, strings.Join(names, ", "))
	if c := closest(name, names); c != "" {
		msg += fmt.Sprintf("; did you mean %q?", c)
	}
	return msg
}

func unknownOption(info MethodInfo, key string) string {
	keys := info.optionKeys()
	if len(keys) == 0 {
		return fmt.Sprintf("unknown option: method %s takes no options (every method takes %s)", info.Name, OptionDPEpsilon)
	}
	msg := fmt.Sprintf("unknown option of method %s (it takes %s, and %s)", info.Name, strings.Join(keys, ", "), OptionDPEpsilon)
	if c := closest(key, append(keys, OptionDPEpsilon)); c != "" {
		msg += fmt.Sprintf("; did you mean %q?", c)
	}
	return msg
}
