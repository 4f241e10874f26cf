package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// prettyJSON re-indents compact JSON for people to read while keeping it
// deterministic: two-space indentation, and a value on one line when it is
// a scalar, an array or object of scalars, or an object whose members are
// scalars or arrays/objects of scalars. So a matrix prints one row per
// line, a curve point or a task detail one per line, and the record itself
// one field per line. Numbers and strings are copied as they are.
func prettyJSON(compact []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(compact))
	dec.UseNumber()
	root, err := parseNode(dec)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(len(compact) + len(compact)/2)
	root.render(&b, 0)
	b.WriteByte('\n')
	return b.Bytes(), nil
}

type jsonNode struct {
	text     string // scalar: its JSON text
	open     byte   // '[' or '{' for composites, 0 for scalars
	keys     []string
	children []*jsonNode
	level    int // 0 scalar, 1 + max child level otherwise
}

func parseNode(dec *json.Decoder) (*jsonNode, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &jsonNode{open: byte(v), level: 1}
		for dec.More() {
			if n.open == '{' {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				ks, ok := k.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				kb, err := json.Marshal(ks)
				if err != nil {
					return nil, err
				}
				n.keys = append(n.keys, string(kb))
			}
			c, err := parseNode(dec)
			if err != nil {
				return nil, err
			}
			n.children = append(n.children, c)
			n.level = max(n.level, c.level+1)
		}
		if _, err := dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
		return n, nil
	case json.Number:
		return &jsonNode{text: v.String()}, nil
	case string:
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return &jsonNode{text: string(b)}, nil
	case bool:
		return &jsonNode{text: fmt.Sprint(v)}, nil
	case nil:
		return &jsonNode{text: "null"}, nil
	}
	return nil, fmt.Errorf("unexpected JSON token %v", tok)
}

func (n *jsonNode) inline() bool {
	return n.level <= 1 || (n.open == '{' && n.level == 2)
}

func (n *jsonNode) render(b *bytes.Buffer, depth int) {
	if n.open == 0 {
		b.WriteString(n.text)
		return
	}
	closer := byte(']')
	if n.open == '{' {
		closer = '}'
	}
	b.WriteByte(n.open)
	if len(n.children) == 0 {
		b.WriteByte(closer)
		return
	}
	inline := n.inline()
	for i, c := range n.children {
		if i > 0 {
			b.WriteByte(',')
			if inline {
				b.WriteByte(' ')
			}
		}
		if !inline {
			newline(b, depth+1)
		}
		if n.open == '{' {
			b.WriteString(n.keys[i])
			b.WriteString(": ")
		}
		c.render(b, depth+1)
	}
	if !inline {
		newline(b, depth)
	}
	b.WriteByte(closer)
}

func newline(b *bytes.Buffer, depth int) {
	b.WriteByte('\n')
	for range depth {
		b.WriteString("  ")
	}
}
