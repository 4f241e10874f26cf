package scenarios

import (
	"strings"
	"testing"
)

// train.max_update_norm is 0 by default, which means the server's default
// bound, and is left out of the resolved scenario then, so that run
// records of scenarios that do not set it stay as they were.
func TestMaxUpdateNorm(t *testing.T) {
	s, err := Parse(nil, "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.MaxUpdateNorm != 0 {
		t.Errorf("default: got %v, want 0", s.Train.MaxUpdateNorm)
	}
	out, err := s.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "max_update_norm") {
		t.Errorf("Resolved() of the default mentions max_update_norm:\n%s", out)
	}
	s, err = Parse([]byte("train: {max_update_norm: 50}"), "t.yaml", []string{"train.max_update_norm=1e4"})
	if err != nil {
		t.Fatal(err)
	}
	if s.Train.MaxUpdateNorm != 1e4 {
		t.Errorf("set: got %v, want 1e4", s.Train.MaxUpdateNorm)
	}
	if out, err = s.Resolved(); err != nil || !strings.Contains(string(out), "max_update_norm: 10000") {
		t.Errorf("Resolved() with a bound: got %v\n%s\nwant it to hold max_update_norm: 10000", err, out)
	}
	for src, want := range map[string]string{
		"train:\n  max_update_norm: -1\n":   "t.yaml:2:20: train.max_update_norm: must be >= 0, got -1",
		"train:\n  max_update_norm: .nan\n": "t.yaml:2:20: train.max_update_norm: want a finite number",
		"train:\n  max_update_norm: big\n":  `t.yaml:2:20: train.max_update_norm: want a number, got "big"`,
	} {
		_, err := Parse([]byte(src), "t.yaml", nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: got %v, want an error containing %q", src, err, want)
		}
	}
}
