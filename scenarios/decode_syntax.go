package scenarios

import (
	"bytes"
	"errors"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

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
