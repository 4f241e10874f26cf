package results

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// tableRecords: FedAvg over three seeds, FOT over two (one labelled run
// interleaved), and a one-seed run with undefined metrics.
func tableRecords() []*Record {
	mk := func(method, label string, seed uint64, acc, fgt, maxFGT float64, wall float64) *Record {
		return &Record{Method: method, MethodLabel: label, Seed: seed, ACC: acc, FGT: fgt, BWT: -fgt, MaxFGT: maxFGT,
			Rounds: 2000, BytesUp: 1536 << 20, BytesDown: 3 << 30, WallSeconds: wall}
	}
	return []*Record{
		mk("fedavg", "", 1, 85.1, 8.9, 9.5, 12.34),
		mk("fot", "FOT (eps=0.96)", 1, 90.3, 1.7, 2.0, 245),
		mk("fedavg", "", 2, 86.2, 7.7, 8.1, 13.0),
		mk("fot", "FOT (eps=0.96)", 2, 90.4, 1.8, 2.2, 3725),
		mk("fedavg", "", 3, 85.74, 8.27, 8.6, 0.4),
		mk("fedprox", "", 1, math.NaN(), 0, 0, math.NaN()),
	}
}

func TestAccuracyTable(t *testing.T) {
	var b bytes.Buffer
	rec := sampleRecord()
	rec.Tasks = 4 // a task never reached still gets its column
	if err := AccuracyTable(&b, rec); err != nil {
		t.Fatalf("AccuracyTable: %v", err)
	}
	golden(t, "accuracy_table.golden", b.Bytes())
}

func TestSummaryTable(t *testing.T) {
	var b bytes.Buffer
	if err := SummaryTable(&b, tableRecords()); err != nil {
		t.Fatalf("SummaryTable: %v", err)
	}
	golden(t, "summary_table.golden", b.Bytes())
}

func TestComparisonTable(t *testing.T) {
	var b bytes.Buffer
	if err := ComparisonTable(&b, tableRecords()); err != nil {
		t.Fatalf("ComparisonTable: %v", err)
	}
	golden(t, "comparison_table.golden", b.Bytes())
}

func TestTablesAreASCII(t *testing.T) {
	var b bytes.Buffer
	if err := AccuracyTable(&b, sampleRecord()); err != nil {
		t.Fatal(err)
	}
	if err := SummaryTable(&b, tableRecords()); err != nil {
		t.Fatal(err)
	}
	if err := ComparisonTable(&b, tableRecords()); err != nil {
		t.Fatal(err)
	}
	for i, c := range b.Bytes() {
		if c >= 0x80 {
			t.Fatalf("byte %d is not ASCII (%#x) in:\n%s", i, c, b.Bytes())
		}
	}
}

func TestTablesRejectNil(t *testing.T) {
	var b bytes.Buffer
	for name, err := range map[string]error{
		"accuracy":   AccuracyTable(&b, nil),
		"summary":    SummaryTable(&b, []*Record{nil}),
		"comparison": ComparisonTable(&b, []*Record{sampleRecord(), nil}),
	} {
		if !errors.Is(err, ErrNilRecord) {
			t.Errorf("%s: got %v, want ErrNilRecord", name, err)
		}
	}
}

func TestMeanStdCell(t *testing.T) {
	tests := []struct {
		xs   []float64
		want string
	}{
		{[]float64{85.68}, "85.68"},
		{[]float64{1, 2, 3, 4}, "2.50 +- 1.29"},
		{[]float64{-0.001, 0.001}, "0.00 +- 0.00"},
		{[]float64{-0.004}, "0.00"},
		{[]float64{1, math.NaN()}, "n/a"},
		{nil, "n/a"},
	}
	for _, tc := range tests {
		if got := meanStdCell(tc.xs); got != tc.want {
			t.Errorf("meanStdCell(%v): got %q, want %q", tc.xs, got, tc.want)
		}
	}
}

func BenchmarkComparisonTable(b *testing.B) {
	recs := tableRecords()
	var buf bytes.Buffer
	b.ReportAllocs()
	for b.Loop() {
		buf.Reset()
		if err := ComparisonTable(&buf, recs); err != nil {
			b.Fatal(err)
		}
	}
}
