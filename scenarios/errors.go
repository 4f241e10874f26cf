package scenarios

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors. Every problem that a user can fix (a bad key, a bad value, a malformed
// --set, an unknown scenario name) matches ErrInvalid with errors.Is; the CLI exits with
// status 2 on those.
var (
	// ErrInvalid marks a scenario that cannot be used as written.
	ErrInvalid = errors.New("scenarios: invalid scenario")
	// ErrNotFound marks a name that is neither a readable file nor a built-in scenario.
	// Errors matching ErrNotFound also match ErrInvalid.
	ErrNotFound = errors.New("scenarios: scenario not found")
)

// Error is one problem in a scenario.
//
// File is the scenario's file name (or "builtin:NAME"), or "--set PATH=VALUE" when the
// problem comes from a command-line override. Line and Col are 1-based; 0 means unknown
// (always 0 for --set). Path is the key path ("train.lr", "methods[1].epsilon",
// "model.conv[0].out"); it is empty for YAML syntax errors.
type Error struct {
	File      string
	Line, Col int
	Path, Msg string
}

// Error formats the problem as "file:line:col: path: msg", leaving out the parts that are
// unknown. The path is not repeated when the message already starts with it.
func (e Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
			if e.Col > 0 {
				fmt.Fprintf(&b, ":%d", e.Col)
			}
		}
		b.WriteString(": ")
	}
	if e.Path != "" && !strings.HasPrefix(e.Msg, e.Path) {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Is reports whether target is ErrInvalid.
func (e Error) Is(target error) bool { return target == ErrInvalid }

// Errors is every problem found in one scenario, sorted: problems in the file by line
// and column, then problems without a line, then problems caused by --set overrides in
// the order they were given. It is never returned empty.
type Errors []Error

// Error returns one line per problem.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Is reports whether target is ErrInvalid.
func (es Errors) Is(target error) bool { return target == ErrInvalid }

func (es Errors) sort() {
	rank := func(e Error) int {
		switch {
		case strings.HasPrefix(e.File, setPrefix):
			return 2
		case e.Line == 0:
			return 1
		}
		return 0
	}
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if ra, rb := rank(a), rank(b); ra != rb {
			return ra < rb
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

// notFoundError is returned by Load for a name that is neither a file nor a built-in.
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func (e *notFoundError) Is(target error) bool {
	return target == ErrNotFound || target == ErrInvalid
}

// levenshtein returns the edit distance between a and b (case-insensitive).
func levenshtein(a, b string) int {
	a, b = strings.ToLower(a), strings.ToLower(b)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// closest returns the candidate nearest to s by edit distance, or "" when none is close
// enough to be a plausible typo (distance at most max(2, len(s)/3)).
func closest(s string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		d := levenshtein(s, c)
		if bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	if bestD < 0 || bestD > max(2, len(s)/3) || bestD >= len(s) {
		return ""
	}
	return best
}

// oneOf formats a list of allowed values: "a, b or c".
func oneOf(vals []string) string {
	switch len(vals) {
	case 0:
		return ""
	case 1:
		return vals[0]
	}
	return strings.Join(vals[:len(vals)-1], ", ") + " or " + vals[len(vals)-1]
}
