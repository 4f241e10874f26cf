package results

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestFinetuneACC(t *testing.T) {
	n := math.NaN()
	m := Matrix{{90, n, n}, {80, 70, n}, {60, 50, 40}}
	const tol = 1e-12
	cases := []struct {
		pretrain int
		want     float64
	}{
		{0, 50}, {-1, 50}, {1, 45}, {2, 40}, {3, n}, {5, n},
	}
	for _, c := range cases {
		got := FinetuneACC(m, c.pretrain)
		if math.IsNaN(c.want) != math.IsNaN(got) || (!math.IsNaN(got) && math.Abs(got-c.want) > tol) {
			t.Errorf("FinetuneACC(pretrain=%d) = %v, want %v", c.pretrain, got, c.want)
		}
	}
	if got := FinetuneACC(nil, 0); !math.IsNaN(got) {
		t.Errorf("FinetuneACC(nil) = %v, want NaN", got)
	}
}

// The summary and comparison tables grow an "ACC after pretrain" column
// when a record pretrained and an "eps spent (max)" column when one ran
// with DP ("-" for the runs without).
func TestTablesDPAndPretrainColumns(t *testing.T) {
	mk := func(label string, seed uint64, ft float64, eps float64) *Record {
		r := &Record{Method: label, MethodLabel: label, Seed: seed, Tasks: 2, PretrainTasks: 1,
			AccMatrix: Matrix{{95, math.NaN()}, {60, ft}}}
		if eps > 0 {
			r.DP = &DP{EpsilonTarget: 6, Delta: 1e-5, Clip: 2, Sigma: []float64{1}, EpsilonSpent: []float64{eps}, EpsilonSpentMax: eps}
		}
		r.FillMetrics()
		return r
	}
	recs := []*Record{mk("fedsvd", 0, 90, 0), mk("fedsvd", 1, 92, 0), mk("fedsvd(eps_dp=6)", 0, 80, 5.99), mk("fedsvd(eps_dp=6)", 1, 82, 5.98)}
	var b bytes.Buffer
	if err := SummaryTable(&b, recs); err != nil {
		t.Fatal(err)
	}
	sum := b.String()
	b.Reset()
	if err := ComparisonTable(&b, recs); err != nil {
		t.Fatal(err)
	}
	cmp := b.String()
	for _, c := range []struct{ table, what, want string }{
		{sum, "pretrain header", headFTACC},
		{sum, "eps header", headEps},
		{sum, "fine-tune acc", "|              92.00 |"},
		{sum, "eps cell", "|            5.99 |"},
		{sum, "no-dp cell", "|               - |"},
		{cmp, "fine-tune mean", "91.00 +- 1.41"},
		{cmp, "eps mean", "5.99 +- 0.01"},
		{cmp, "no-dp group", "|               - |"},
	} {
		if !strings.Contains(c.table, c.want) {
			t.Errorf("%s: table lacks %q:\n%s", c.what, c.want, c.table)
		}
	}
	// Without DP or pretraining the tables keep their old columns.
	plain := &Record{Method: "fedavg", Tasks: 1, AccMatrix: Matrix{{50}}}
	plain.FillMetrics()
	b.Reset()
	if err := ComparisonTable(&b, []*Record{plain}); err != nil {
		t.Fatal(err)
	}
	if s := b.String(); strings.Contains(s, headEps) || strings.Contains(s, headFTACC) {
		t.Errorf("plain records got DP or pretrain columns:\n%s", s)
	}
}
