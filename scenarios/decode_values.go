package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"
)

// value decodes n into v (a field of the Scenario) at key path.
func (d *decoder) value(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	d.nodes[path] = n
	switch t := v.Type(); {
	case t == methodType:
		m, _ := d.method(n, path)
		v.Set(reflect.ValueOf(m))
	case t == durationType:
		d.duration(n, v, path)
	case t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Struct:
		d.optional(n, v, path)
	case t.Kind() == reflect.Struct:
		d.mapping(n, v, path)
	case t.Kind() == reflect.Slice:
		d.list(n, v, path)
	default:
		d.scalar(n, v, path)
	}
}

// optional decodes an optional block (a pointer to a struct, such as model.lora): null
// leaves it nil (absent); a mapping fills a new value, starting from the type's
// defaults() when it has them.
func (d *decoder) optional(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.Zero(v.Type()))
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "want a mapping of keys, got "+describe(n))
		return
	}
	p := reflect.New(v.Type().Elem())
	if df, ok := p.Interface().(interface{ defaults() }); ok {
		df.defaults()
	}
	d.mapping(n, p.Elem(), path)
	v.Set(p)
}

func (d *decoder) mapping(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		return // an empty block keeps its defaults
	}
	if n.Kind != yaml.MappingNode {
		d.errorAt(n, path, "want a mapping of keys, got "+describe(n))
		return
	}
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := joinPath(path, k.Value)
		if first, dup := seen[k.Value]; dup {
			d.errorAt(k, p, fmt.Sprintf("duplicate key (first at line %d)", first.Line))
			continue
		}
		seen[k.Value] = k
		f, ok := fieldByYAML(v.Type(), k.Value)
		if !ok {
			d.errorAt(k, p, unknownKey(v.Type(), path, k.Value))
			continue
		}
		d.value(val, v.FieldByIndex(f.Index), p)
	}
}

func (d *decoder) list(n *yaml.Node, v reflect.Value, path string) {
	if isNull(n) {
		v.Set(reflect.MakeSlice(v.Type(), 0, 0))
		return
	}
	if n.Kind != yaml.SequenceNode {
		msg := "want a list, got " + describe(n)
		if n.Kind == yaml.ScalarNode {
			msg += fmt.Sprintf(" (write [%s] for a one-item list)", n.Value)
		}
		d.errorAt(n, path, msg)
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, el := range n.Content {
		d.value(el, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(s)
}

func (d *decoder) scalar(n *yaml.Node, v reflect.Value, path string) {
	var kind string
	switch v.Kind() {
	case reflect.String:
		kind = KindString
	case reflect.Int, reflect.Int64:
		kind = KindInt
	case reflect.Float64:
		kind = KindFloat
	case reflect.Bool:
		kind = KindBool
	default:
		panic(fmt.Sprintf("scenarios: no decoder for %s at %s", v.Type(), path))
	}
	if kind == KindString && isNull(n) {
		v.SetString("")
		return
	}
	if path == "dp.epsilon" && isInf(n) {
		v.SetFloat(0) // infinite epsilon: no DP
		return
	}
	x, msg := decodeScalar(n, kind)
	if msg != "" {
		d.errorAt(n, path, msg)
		return
	}
	switch x := x.(type) {
	case string:
		v.SetString(x)
	case int64:
		if v.OverflowInt(x) {
			d.errorAt(n, path, fmt.Sprintf("%d is too large", x))
			return
		}
		v.SetInt(x)
	case float64:
		v.SetFloat(x)
	case bool:
		v.SetBool(x)
	}
}

// decodeScalar decodes a scalar node strictly as kind: int64 for KindInt (integral
// floats such as 6e4 are accepted), float64 (finite) for KindFloat, bool (true/false
// only) for KindBool, the text for KindString. It returns a message on a mismatch.
func decodeScalar(n *yaml.Node, kind string) (any, string) {
	fail := func() (any, string) { return nil, "want " + kindPhrase(kind) + ", got " + describe(n) }
	if n.Kind != yaml.ScalarNode {
		return fail()
	}
	tag := n.ShortTag()
	switch kind {
	case KindString:
		if tag == "!!null" {
			return fail()
		}
		return n.Value, ""
	case KindBool:
		var b bool
		if tag != "!!bool" || n.Decode(&b) != nil {
			return fail()
		}
		return b, ""
	case KindInt:
		if tag == "!!int" {
			var i int64
			if err := n.Decode(&i); err != nil {
				return nil, fmt.Sprintf("want an integer, got %s (out of range)", n.Value)
			}
			return i, ""
		}
		var f float64
		if tag == "!!float" && n.Decode(&f) == nil && f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return int64(f), ""
		}
		return fail()
	case KindFloat:
		var f float64
		if (tag != "!!int" && tag != "!!float") || n.Decode(&f) != nil {
			return fail()
		}
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, "want a finite number, got " + n.Value
		}
		return f, ""
	}
	return fail()
}

func (d *decoder) duration(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.ScalarNode && !isNull(n) {
		if dur, err := time.ParseDuration(n.Value); err == nil {
			v.SetInt(int64(dur))
			return
		}
	}
	d.errorAt(n, path, "want a duration such as 30s, 1m30s or 0 (no deadline), got "+describe(n))
}
