package results

import (
	"bytes"
	"strings"
	"testing"
)

func TestSubspaceTable(t *testing.T) {
	rec := &Record{TasksDetail: []TaskDetail{
		{Task: 0, BasisDims: map[string]int{"fc0.weight": 120, "head.weight": 7}, BasisCapacity: map[string]int{"fc0.weight": 784, "head.weight": 100},
			ProjectedFraction: map[string]float64{"fc0.weight": 0, "head.weight": 0}},
		{Task: 1, BasisDims: map[string]int{"fc0.weight": 230, "head.weight": 100}, BasisCapacity: map[string]int{"fc0.weight": 784, "head.weight": 100},
			ProjectedFraction: map[string]float64{"fc0.weight": 0.4213, "head.weight": 0.05}},
	}}
	var b bytes.Buffer
	if err := SubspaceTable(&b, rec); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"fc0.weight k/d_in", "head.weight removed", "120/784", "230/784", "100/100 full", "42.1%", "5.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Task 0 is never projected: its removed share shows "-".
	lines := strings.Split(out, "\n")
	for _, l := range lines {
		if strings.Contains(l, "T0") && !strings.Contains(l, "-") {
			t.Errorf("task 0 row shows a removed share: %q", l)
		}
	}
	b.Reset()
	if err := SubspaceTable(&b, &Record{TasksDetail: []TaskDetail{{Task: 0}}}); err != nil || b.Len() != 0 {
		t.Errorf("record without subspaces: wrote %q, err %v; want nothing", b.String(), err)
	}
}
