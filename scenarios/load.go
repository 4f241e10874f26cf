package scenarios

import (
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// builtinFS holds the built-in scenarios. Files under builtin/ are named by their base
// name ("builtin/quickstart.yaml" is "quickstart"); files under any other directory
// keep it ("paper/pmnist-iid.yaml" is "paper/pmnist-iid"). To add a directory of
// scenarios, create it next to builtin/ and add its pattern here, e.g.
//
//	//go:embed builtin/*.yaml paper/*.yaml
//
// (go:embed refuses a pattern that matches nothing, so add the pattern together with
// the first file).
//
//go:embed builtin/*.yaml paper/*.yaml
var builtinFS embed.FS

// builtinPrefix starts Scenario.Source for built-in scenarios.
const builtinPrefix = "builtin:"

// builtinFiles maps built-in names to their embedded paths.
func builtinFiles() map[string]string {
	files := map[string]string{}
	_ = fs.WalkDir(builtinFS, ".", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		ext := path.Ext(p)
		if ext != ".yaml" && ext != ".yml" {
			return nil
		}
		name := strings.TrimSuffix(p, ext)
		if dir, base := path.Split(name); dir == "builtin/" {
			name = base
		}
		files[name] = p
		return nil
	})
	return files
}

// Builtins returns the names of the built-in scenarios, sorted.
func Builtins() []string {
	files := builtinFiles()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Builtin returns the YAML text of a built-in scenario.
func Builtin(name string) ([]byte, bool) {
	p, ok := builtinFiles()[strings.TrimPrefix(name, builtinPrefix)]
	if !ok {
		return nil, false
	}
	data, err := builtinFS.ReadFile(p)
	return data, err == nil
}

// Load reads a scenario and parses it with Parse (applying sets). nameOrPath is a file
// if such a file exists; otherwise a built-in name ("quickstart", "paper/pmnist-iid",
// also accepted as "builtin:quickstart"), or the path of a built-in inside this
// repository when no such file exists ("scenarios/fedsvd-dp.yaml",
// "scenarios/builtin/fedsvd-dp.yaml", "scenarios/paper/pmnist-iid.yaml": the issue's
// and the README's spellings work from any folder). A name that is neither gives an error that
// matches ErrNotFound and ErrInvalid and lists the built-ins.
func Load(nameOrPath string, sets []string) (*Scenario, error) {
	fi, statErr := os.Stat(nameOrPath)
	if statErr == nil && !fi.IsDir() {
		data, err := os.ReadFile(nameOrPath)
		if err != nil {
			return nil, fmt.Errorf("scenarios: reading %s: %w", nameOrPath, err)
		}
		return Parse(data, nameOrPath, sets)
	}
	name := strings.TrimPrefix(nameOrPath, builtinPrefix)
	if data, ok := Builtin(name); ok {
		return Parse(data, builtinPrefix+name, sets)
	}
	if alias, ok := builtinAlias(nameOrPath); ok && errors.Is(statErr, fs.ErrNotExist) {
		data, _ := Builtin(alias)
		return Parse(data, builtinPrefix+alias, sets)
	}
	names := Builtins()
	looksLikeFile := strings.ContainsRune(nameOrPath, os.PathSeparator) || strings.Contains(nameOrPath, "/") ||
		strings.HasSuffix(nameOrPath, ".yaml") || strings.HasSuffix(nameOrPath, ".yml")
	var msg string
	switch {
	case statErr == nil: // a directory
		msg = fmt.Sprintf("%s is a directory, not a scenario file", nameOrPath)
	case looksLikeFile && !errors.Is(statErr, fs.ErrNotExist):
		msg = statErr.Error()
	default:
		msg = fmt.Sprintf("%q is neither a scenario file nor a built-in scenario", nameOrPath)
	}
	if c := closest(name, names); c != "" {
		msg += fmt.Sprintf("; did you mean %q?", c)
	}
	msg += " (built-in: " + strings.Join(names, ", ") + ")"
	return nil, &notFoundError{msg: "scenarios: " + msg}
}

// builtinAlias maps a repository path of a built-in scenario to its name:
// [./]scenarios/[builtin/]NAME.yaml (or .yml) to NAME when NAME is a built-in.
func builtinAlias(p string) (string, bool) {
	p = path.Clean(strings.ReplaceAll(p, "\\", "/"))
	ext := path.Ext(p)
	if ext != ".yaml" && ext != ".yml" {
		return "", false
	}
	name, ok := strings.CutPrefix(strings.TrimSuffix(p, ext), "scenarios/")
	if !ok {
		return "", false
	}
	if base, ok := strings.CutPrefix(name, "builtin/"); ok && !strings.Contains(base, "/") {
		name = base
	}
	_, found := builtinFiles()[name]
	return name, found
}
