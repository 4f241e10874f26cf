package scenarios

import (
	"reflect"
	"strconv"
	"strings"
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
