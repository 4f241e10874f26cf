package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// setPrefix starts Error.File for problems caused by a --set override.
const setPrefix = "--set "

var (
	scenarioType = reflect.TypeFor[Scenario]()
	methodType   = reflect.TypeFor[Method]()
	durationType = reflect.TypeFor[time.Duration]()
)

// Parse decodes a scenario from YAML, applies the --set overrides (each "path=value",
// see package doc), fills the defaults and validates the result. file names the source
// in error messages and becomes Scenario.Source ("builtin:NAME" for built-ins); it may
// be empty.
//
// Decoding is strict (every key must be known, every value of the right type), but
// Parse does not stop at the first problem: the error is an Errors with every problem
// found (syntax, unknown keys with a suggestion, wrong types, malformed or unknown
// --set paths, then the semantic checks of Validate), each with its file:line:col and
// key path. It matches ErrInvalid.
func Parse(data []byte, file string, sets []string) (*Scenario, error) {
	var errs Errors
	root, synErr := parseYAML(data, file)
	if synErr != nil {
		errs = append(errs, *synErr)
	}
	if root == nil {
		root = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	}
	origin := map[*yaml.Node]string{}
	for _, expr := range sets {
		if e := applySet(root, expr, origin); e != nil {
			errs = append(errs, *e)
		}
	}
	if synErr != nil {
		errs.sort()
		return nil, errs
	}

	d := newDecoder(file, origin)
	s := Default()
	d.value(root, reflect.ValueOf(&s).Elem(), "")
	s.Source = file
	s.fill(d.present)
	for _, is := range s.check() {
		if d.suppressed(is) {
			continue
		}
		d.errorAt(d.locate(is), is.path, is.msg)
	}
	errs = append(errs, d.errs...)
	if len(errs) > 0 {
		errs.sort()
		return nil, errs
	}
	return &s, nil
}

var yamlLine = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)

// parseYAML parses one YAML document and returns its root node (nil for an empty
// document) or the syntax error.
func parseYAML(data []byte, file string) (*yaml.Node, *Error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, syntaxError(file, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		if err != nil {
			return nil, syntaxError(file, err)
		}
		return nil, &Error{File: file, Line: extra.Line, Col: extra.Column,
			Msg: "a scenario holds one YAML document, found a second one (remove the --- separator)"}
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, nil
	}
	return doc.Content[0], nil
}

// syntaxError turns a yaml.v3 syntax error into an Error. yaml.v3 reports parser
// errors (as opposed to scanner errors) with a 0-based line, and the line is the start
// of the enclosing collection rather than the offending line; syntaxError makes the
// line 1-based and says so.
func syntaxError(file string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	e := &Error{File: file, Msg: "malformed YAML: " + msg}
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return e
	}
	e.Line, _ = strconv.Atoi(m[1])
	msg = m[2]
	for _, h := range parserHints {
		if strings.HasPrefix(msg, h.prefix) {
			e.Line++
			msg += h.hint
			break
		}
	}
	e.Msg = "malformed YAML: " + msg
	return e
}

// parserHints are the yaml.v3 parser errors (0-based line) with a hint on where to look.
var parserHints = []struct{ prefix, hint string }{
	{"did not find expected key", " (in the mapping that starts on this line: check the indentation of the lines below)"},
	{"did not find expected '-' indicator", " (in the list that starts on this line: check the indentation of the lines below)"},
	{"did not find expected ',' or ']'", " (in the [...] that starts on this line: is a ']' missing?)"},
	{"did not find expected ',' or '}'", " (in the {...} that starts on this line: is a '}' missing?)"},
	{"did not find expected", ""},
	{"found duplicate %", ""},
	{"found incompatible YAML document", ""},
	{"found undefined tag handle", ""},
}

// decoder walks a yaml.Node tree against the Scenario types, filling the struct and
// collecting every problem instead of stopping at the first.
type decoder struct {
	file   string
	origin map[*yaml.Node]string // nodes made by a --set -> "--set EXPR"
	nodes  map[string]*yaml.Node // key path -> value node, for every value present
	bad    map[string]bool       // key paths that could not be decoded
	errs   Errors
}

func newDecoder(file string, origin map[*yaml.Node]string) *decoder {
	return &decoder{file: file, origin: origin, nodes: map[string]*yaml.Node{}, bad: map[string]bool{}}
}

// errorAt records a problem at node n (nil: no position) and marks path as bad.
func (d *decoder) errorAt(n *yaml.Node, path, msg string) {
	e := Error{File: d.file, Path: path, Msg: msg}
	if src, ok := d.origin[n]; ok {
		e.File = src
	} else if n != nil {
		e.Line, e.Col = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
	d.bad[path] = true
}

func (d *decoder) present(path string) bool { return d.nodes[path] != nil }

// locate returns the node to blame for a semantic problem: the problem's own key if
// present, else the first related key present, else the nearest present ancestor.
func (d *decoder) locate(is issue) *yaml.Node {
	for _, p := range append([]string{is.path}, is.related...) {
		if n := d.nodes[p]; n != nil {
			return n
		}
	}
	for p := parentPath(is.path); p != ""; p = parentPath(p) {
		if n := d.nodes[p]; n != nil {
			return n
		}
	}
	return nil
}

// suppressed reports whether a semantic problem concerns a key that already failed to
// decode (its value is then a default, and the check would only add noise).
func (d *decoder) suppressed(is issue) bool {
	for _, p := range append([]string{is.path}, is.related...) {
		for b := range d.bad {
			if pathOverlaps(p, b) {
				return true
			}
		}
	}
	return false
}

// pathOverlaps reports whether one path is the other or contains it.
func pathOverlaps(a, b string) bool {
	if len(a) > len(b) {
		a, b = b, a
	}
	return a == b || (strings.HasPrefix(b, a) && (b[len(a)] == '.' || b[len(a)] == '['))
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe names a node's value for "got ..." messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "nothing"
		case "!!str":
			return strconv.Quote(n.Value)
		}
		return n.Value
	}
	return "an unsupported YAML node"
}

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
	names := methodNames()
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

// unknownKey builds the message for key, unknown in struct type t at parent path: it
// suggests a sibling key within typo distance (or one that key is a prefix of), and
// keys of the same name elsewhere in the schema.
func unknownKey(t reflect.Type, parent, key string) string {
	names := yamlNames(t)
	var sugg []string
	add := func(p string) {
		if q := strconv.Quote(p); !slices.Contains(sugg, q) {
			sugg = append(sugg, q)
		}
	}
	if c := closest(key, names); c != "" {
		add(joinPath(parent, c))
	} else if len(key) >= 3 {
		for _, n := range names {
			if strings.HasPrefix(n, key) || strings.HasPrefix(key, n) {
				add(joinPath(parent, n))
				break
			}
		}
	}
	for _, p := range schemaPaths() {
		if !strings.Contains(p, "[]") && p[strings.LastIndexByte(p, '.')+1:] == key {
			add(p)
		}
	}
	if len(sugg) > 0 {
		return fmt.Sprintf("unknown key; did you mean %s?", strings.Join(sugg, " or "))
	}
	where := "the top level"
	if parent != "" {
		where = parent
	}
	return fmt.Sprintf("unknown key (%s takes %s)", where, strings.Join(names, ", "))
}

// fieldByYAML finds the field of struct type t whose yaml name is name.
func fieldByYAML(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if n := yamlName(f); n != "" && n == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlName returns the field's yaml key ("" for yaml:"-").
func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	name, _, _ := strings.Cut(tag, ",")
	if name == "-" || !f.IsExported() {
		return ""
	}
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

func yamlNames(t reflect.Type) []string {
	var names []string
	for i := 0; i < t.NumField(); i++ {
		if n := yamlName(t.Field(i)); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// structValues maps the yaml keys of a struct to its field values.
func structValues(x any) map[string]any {
	v := reflect.ValueOf(x)
	out := map[string]any{}
	for i := 0; i < v.NumField(); i++ {
		if n := yamlName(v.Type().Field(i)); n != "" {
			out[n] = v.Field(i).Interface()
		}
	}
	return out
}

// schemaPaths lists every key path of the schema; items of lists appear as
// "path[].key" (and are skipped by the "did you mean" search).
var schemaPaths = sync.OnceValue(func() []string {
	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			n := yamlName(f)
			if n == "" {
				continue
			}
			p := joinPath(prefix, n)
			paths = append(paths, p)
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem() // an optional block
			}
			switch {
			case ft == durationType || ft == methodType:
			case ft.Kind() == reflect.Struct:
				walk(ft, p)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct && ft.Elem() != methodType:
				walk(ft.Elem(), p+"[]")
			}
		}
	}
	walk(scenarioType, "")
	return paths
})

// fill applies the defaults that depend on other keys or on the machine; present says
// which key paths the YAML (or a --set) gave.
func (s *Scenario) fill(present func(string) bool) {
	if s.Name == "" {
		s.Name = defaultName(s.Source)
	}
	if norm, ok := datasetNorm[s.Data.Dataset]; ok {
		if !present("data.mean") {
			s.Data.Mean = norm[0]
		}
		if !present("data.std") {
			s.Data.Std = norm[1]
		}
	}
	if !present("model.dropout") {
		s.Model.Dropout = make([]float64, len(s.Model.Hidden))
	}
	if !present("model.conv") && s.Model.Arch == "cnn" {
		s.Model.Conv = defaultConv()
	}
	for i := range s.Model.Conv {
		p := fmt.Sprintf("model.conv[%d]", i)
		if !present(p) {
			continue
		}
		if !present(p + ".stride") {
			s.Model.Conv[i].Stride = 1
		}
		if !present(p + ".pool") {
			s.Model.Conv[i].Pool = 1
		}
	}
	if s.Train.Workers == 0 {
		s.Train.Workers = runtime.NumCPU()
	}
}

// defaultName derives a scenario name from its source: the built-in name, or the file
// name without directory and extension.
func defaultName(source string) string {
	if name, ok := strings.CutPrefix(source, builtinPrefix); ok {
		return name
	}
	base := filepath.Base(source)
	if base == "." || base == string(filepath.Separator) {
		return ""
	}
	return strings.TrimSuffix(base, filepath.Ext(base))
}
