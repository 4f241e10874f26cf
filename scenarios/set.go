package scenarios

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// setSeg is one segment of a --set path: a key or a list index.
type setSeg struct {
	key   string
	index int // >= 0 for an index segment
}

func (s setSeg) isIndex() bool { return s.index >= 0 }

// parseSetPath splits "model.conv[0].out" into key and index segments.
func parseSetPath(p string) ([]setSeg, error) {
	if p == "" {
		return nil, fmt.Errorf("empty path")
	}
	var segs []setSeg
	for _, part := range strings.Split(p, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key == "" {
			return nil, fmt.Errorf("empty key in path %q", p)
		}
		segs = append(segs, setSeg{key: key, index: -1})
		for rest != "" {
			num, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(num)
			if !ok || err != nil || i < 0 {
				return nil, fmt.Errorf("bad list index in path %q (want key[N])", p)
			}
			segs = append(segs, setSeg{index: i})
			if after == "" {
				break
			}
			if !strings.HasPrefix(after, "[") {
				return nil, fmt.Errorf("bad list index in path %q (want key[N])", p)
			}
			rest = after[1:]
		}
	}
	return segs, nil
}

func segsString(segs []setSeg) string {
	var b strings.Builder
	for _, s := range segs {
		if s.isIndex() {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// schemaTypes resolves each segment's Go type against the schema. A method option has
// type nil (its kind depends on the method; the decoder checks it).
func schemaTypes(segs []setSeg) ([]reflect.Type, string, string) {
	types := make([]reflect.Type, len(segs))
	t := scenarioType
	for i, s := range segs {
		here := segsString(segs[:i+1])
		switch {
		case t == nil:
			return nil, here, "method options take a single value"
		case s.isIndex():
			if t.Kind() != reflect.Slice {
				return nil, here, fmt.Sprintf("%s is not a list", segsString(segs[:i]))
			}
			t = t.Elem()
		case t == methodType:
			if s.key == "name" {
				t = reflect.TypeFor[string]()
			} else {
				t = nil
			}
		case t.Kind() == reflect.Struct && t != durationType:
			f, ok := fieldByYAML(t, s.key)
			if !ok {
				return nil, here, unknownKey(t, segsString(segs[:i]), s.key)
			}
			t = f.Type
			if t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct && i+1 < len(segs) {
				t = t.Elem() // a key inside an optional block (model.lora.rank)
			}
		default:
			return nil, here, fmt.Sprintf("%s takes a single value, not keys", segsString(segs[:i]))
		}
		types[i] = t
	}
	return types, "", ""
}

// applySet applies one --set override to the scenario's node tree. The nodes it adds
// are recorded in origin so that problems with them are reported against the --set.
func applySet(root *yaml.Node, expr string, origin map[*yaml.Node]string) *Error {
	src := setPrefix + expr
	fail := func(path, msg string) *Error { return &Error{File: src, Path: path, Msg: msg} }
	pathStr, valStr, ok := strings.Cut(expr, "=")
	pathStr = strings.TrimSpace(pathStr)
	if !ok {
		return fail("", "malformed override: want --set path=value (the value in YAML, e.g. train.lr=0.05 or 'methods=[fedavg,fot]')")
	}
	segs, err := parseSetPath(pathStr)
	if err != nil {
		return fail("", "malformed override: "+err.Error())
	}
	types, where, msg := schemaTypes(segs)
	if msg != "" {
		return fail(where, msg)
	}
	val, err := parseSetValue(valStr)
	if err != nil {
		return fail(pathStr, "malformed value: "+err.Error())
	}
	if t := types[len(types)-1]; t != nil && t.Kind() == reflect.Slice && val.Kind != yaml.SequenceNode && !isNull(val) {
		val = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: []*yaml.Node{val}}
	}
	markOrigin(val, src, origin)

	cur := deref(root)
	parentType := scenarioType
	for i, s := range segs {
		last := i == len(segs)-1
		here := segsString(segs[:i+1])
		if isNull(cur) {
			*cur = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: cur.Line, Column: cur.Column}
		}
		if s.isIndex() {
			if cur.Kind != yaml.SequenceNode {
				return fail(here, fmt.Sprintf("%s is not a list here (it is %s)", segsString(segs[:i]), describe(cur)))
			}
			if s.index >= len(cur.Content) {
				return fail(here, fmt.Sprintf("index %d is out of range: %s has %d items", s.index, segsString(segs[:i]), len(cur.Content)))
			}
			if last {
				cur.Content[s.index] = val
				return nil
			}
			cur = deref(cur.Content[s.index])
			parentType = types[i]
			continue
		}
		if parentType == methodType && cur.Kind == yaml.ScalarNode {
			// methods[i].opt=v on a plain "name": turn it into {name: name, opt: v}.
			name := *cur
			key := strNode("name")
			origin[key] = src
			*cur = yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: name.Line, Column: name.Column,
				Content: []*yaml.Node{key, &name}}
		}
		if cur.Kind != yaml.MappingNode {
			what := segsString(segs[:i])
			if what == "" {
				what = "the scenario's top level"
			}
			return fail(here, fmt.Sprintf("%s is not a mapping here (it is %s)", what, describe(cur)))
		}
		var next *yaml.Node
		for j := 0; j+1 < len(cur.Content); j += 2 {
			if cur.Content[j].Value == s.key {
				if last {
					cur.Content[j+1] = val
					return nil
				}
				next = deref(cur.Content[j+1])
			}
		}
		if next == nil {
			key := strNode(s.key)
			origin[key] = src
			if last {
				cur.Content = append(cur.Content, key, val)
				return nil
			}
			if types[i].Kind() == reflect.Slice {
				return fail(here, fmt.Sprintf("%s is not set, so it has no item to change (set the whole list)", here))
			}
			next = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			origin[next] = src
			cur.Content = append(cur.Content, key, next)
		}
		cur = next
		parentType = types[i]
	}
	return nil
}

// parseSetValue parses the value of a --set as YAML; an empty value is the empty
// string.
func parseSetValue(s string) (*yaml.Node, error) {
	if strings.TrimSpace(s) == "" {
		return strNode(""), nil
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(s), &doc); err != nil {
		return nil, fmt.Errorf("%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return strNode(s), nil
	}
	return doc.Content[0], nil
}

func markOrigin(n *yaml.Node, src string, origin map[*yaml.Node]string) {
	if n == nil {
		return
	}
	origin[n] = src
	for _, c := range n.Content {
		markOrigin(c, src, origin)
	}
}
