package scenarios

import (
	"strings"
	"testing"
)

func TestSystemDefaults(t *testing.T) {
	sc, err := Parse([]byte("name: x\n"), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.System != nil || !sc.System.IsDefault() {
		t.Errorf("absent system: got %+v, want nil", sc.System)
	}
	out, err := sc.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "system") {
		t.Errorf("resolved scenario without system: mentions it:\n%s", out)
	}
	sc, err = Parse([]byte("name: x\nsystem: {}\n"), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.System == nil || *sc.System != DefaultSystem() || !sc.System.IsDefault() {
		t.Errorf("system: {} gives %+v, want %+v", sc.System, DefaultSystem())
	}
}

func TestSystemDecode(t *testing.T) {
	src := "name: x\nsystem:\n  availability: 0.8\n  dropout: 0.1\n  speed: {dist: uniform, min: 0.25, max: 4}\n  deadline: 1.5\n  quorum: 2\n"
	sc, err := Parse([]byte(src), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := System{Availability: 0.8, Dropout: 0.1, Speed: Speed{Dist: "uniform", Sigma: 0.5, Min: 0.25, Max: 4}, Deadline: 1.5, Quorum: 2}
	if sc.System == nil || *sc.System != want || sc.System.IsDefault() {
		t.Fatalf("got %+v, want %+v", sc.System, want)
	}
	// The resolved scenario parses back to the same block.
	out, err := sc.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "r.yaml", nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if *back.System != want {
		t.Errorf("round trip %+v, want %+v", *back.System, want)
	}
	// --set reaches the block.
	sc, err = Parse([]byte("name: x\n"), "t.yaml", []string{"system.dropout=0.3", "system.speed.dist=lognormal"})
	if err != nil {
		t.Fatal(err)
	}
	if sc.System == nil || sc.System.Dropout != 0.3 || sc.System.Speed.Dist != "lognormal" || sc.System.Availability != 1 {
		t.Errorf("--set: got %+v", sc.System)
	}
}

func TestSystemValidation(t *testing.T) {
	cases := []struct {
		yaml string
		line int
		path string
		msg  string
	}{
		{"system:\n  availability: 0\n", 4, "system.availability", "must be in (0, 1], got 0"},
		{"system:\n  availability: 1.5\n", 4, "system.availability", "must be in (0, 1], got 1.5"},
		{"system:\n  dropout: 1\n", 4, "system.dropout", "must be in [0, 1), got 1"},
		{"system:\n  speed: {dist: gamma}\n", 4, "system.speed.dist", `unknown speed distribution "gamma" (want constant, lognormal or uniform)`},
		{"system:\n  speed: {dist: lognormal, sigma: -1}\n", 4, "system.speed.sigma", "must be >= 0, got -1"},
		{"system:\n  speed: {dist: uniform, min: 0}\n", 4, "system.speed.min", "must be > 0, got 0"},
		{"system:\n  speed: {dist: uniform, min: 3, max: 2}\n", 4, "system.speed.max", "must be >= system.speed.min (3), got 2"},
		{"system:\n  deadline: -0.5\n", 4, "system.deadline", "must be >= 0, got -0.5"},
		{"system:\n  quorum: 0\n", 4, "system.quorum", "must be at least 1, got 0"},
		{"system:\n  quorum: 6\n", 4, "system.quorum", "must be at most train.clients_per_round (5), got 6"},
	}
	for _, c := range cases {
		errs := parseErrs(t, base+c.yaml)
		if len(errs) != 1 {
			t.Errorf("%q: got %d errors, want 1: %v", c.yaml, len(errs), errs)
			continue
		}
		e := errs[0]
		if e.Line != c.line || e.Path != c.path || !strings.Contains(e.Msg, c.msg) || e.File != "t.yaml" {
			t.Errorf("%q: got %s:%d %q %q, want line %d path %q msg %q", c.yaml, e.File, e.Line, e.Path, e.Msg, c.line, c.path, c.msg)
		}
	}
}
