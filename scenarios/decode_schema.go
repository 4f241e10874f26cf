package scenarios

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
)

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
