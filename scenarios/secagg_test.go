package scenarios

import (
	"strings"
	"testing"
)

func TestSecAggDecode(t *testing.T) {
	sc, err := Parse([]byte("name: x\n"), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.SecAgg != nil || sc.SecAgg.Protocol() != nil {
		t.Errorf("absent secagg: got %+v, want nil", sc.SecAgg)
	}
	out, err := sc.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "secagg") {
		t.Errorf("resolved scenario without secagg: mentions it:\n%s", out)
	}
	sc, err = Parse([]byte("name: x\nsecagg: {}\n"), "t.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sc.SecAgg == nil || *sc.SecAgg != DefaultSecAgg() {
		t.Errorf("secagg: {} gives %+v, want %+v", sc.SecAgg, DefaultSecAgg())
	}
	sc, err = Parse([]byte("name: x\n"), "t.yaml", []string{"secagg.ring=compact", "secagg.threshold=3"})
	if err != nil {
		t.Fatal(err)
	}
	if p := sc.SecAgg.Protocol(); p == nil || p.Ring != "compact" || p.Threshold != 3 {
		t.Errorf("--set: got %+v", p)
	}
	out, err = sc.Resolved()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out, "r.yaml", nil)
	if err != nil || *back.SecAgg != *sc.SecAgg {
		t.Errorf("round trip: %v, %+v", err, back.SecAgg)
	}
}

// Invalid secure aggregation settings, and methods whose server reads
// individual updates, are errors naming the key, file and line.
func TestSecAggValidation(t *testing.T) {
	cases := []struct {
		yaml string
		line int
		path string
		msg  string
	}{
		{"secagg:\n  ring: huge\n", 4, "secagg.ring", `unknown ring "huge"`},
		{"secagg:\n  threshold: 1\n", 4, "secagg.threshold", "must be 0 (the default, max(2, k/2+1)) or in [2, train.clients_per_round = 5], got 1"},
		{"secagg:\n  threshold: 6\n", 4, "secagg.threshold", "got 6"},
		{"secagg: {}\nsystem:\n  dropout: 0.5\n", 5, "system.dropout", "leaves fewer than the secure aggregation threshold 3 of 5"},
		{"secagg: {}\nmethods: [fedavg, fedcurv]\n", 4, "methods[1]", "method fedcurv cannot run with secure aggregation (secagg:): its server anchors"},
		{"secagg: {}\nmethods: [{name: flora}]\nmodel: {lora: {rank: 2}}\n", 4, "methods[0]", "method flora cannot run with secure aggregation"},
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
	// A dropout the threshold leaves room for is fine, and so are the
	// methods that only need sums (and the centralised references, which
	// ignore the block).
	for _, ok := range []string{
		"secagg: {threshold: 2}\nsystem:\n  dropout: 0.5\n",
		"secagg: {}\nmethods: [fedavg, fot, fedprox, flwf, central-seq, {name: fedavg, dp_epsilon: 4}]\n",
	} {
		if errs := parseErrs(t, base+ok); len(errs) != 0 {
			t.Errorf("%q: %v", ok, errs)
		}
	}
}
