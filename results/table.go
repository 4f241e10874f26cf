package results

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
)

// Column headers that name the forgetting definition they show.
const (
	headFGT    = "FGT (final vs just-learnt)"
	headMaxFGT = "max-FGT (Chaudhry)"
	headFTACC  = "ACC after pretrain"
	headEps    = "eps spent (max)"
	notAvail   = "n/a"
	noDP       = "-"
)

// anyDP reports whether some record ran with DP-SGD; anyPretrain whether
// some record pretrained its first tasks. The tables add a column for each.
func anyDP(recs []*Record) bool {
	for _, r := range recs {
		if r != nil && r.DP != nil {
			return true
		}
	}
	return false
}

func anyPretrain(recs []*Record) bool {
	for _, r := range recs {
		if r != nil && r.PretrainTasks > 0 {
			return true
		}
	}
	return false
}

// epsCell is a record's spent epsilon (max over clients), "-" without DP.
func epsCell(r *Record) string {
	if r.DP == nil {
		return noDP
	}
	return fmt2(r.DP.EpsilonSpentMax, notAvail)
}

// AccuracyTable renders rec's accuracy matrix: one row per "after task i",
// one column per task T0..T{n-1} (n = max(rec.Tasks, widest row)), values
// in percent with two decimals, blank where not evaluated.
func AccuracyTable(w io.Writer, rec *Record) error {
	if rec == nil {
		return ErrNilRecord
	}
	n := tableWidth(rec)
	head := make([]string, 0, n+1)
	head = append(head, "acc (%)")
	for j := range n {
		head = append(head, "T"+strconv.Itoa(j))
	}
	t := NewTable(w)
	t.Header(head)
	for i := range rec.AccMatrix {
		row := make([]string, 0, n+1) // fresh: the table keeps the slice
		row = append(row, "after task "+strconv.Itoa(i))
		for j := range n {
			row = append(row, fmt2(rec.AccMatrix.At(i, j), ""))
		}
		if err := t.Append(row); err != nil {
			return fmt.Errorf("results: accuracy table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("results: accuracy table: %w", err)
	}
	return nil
}

// SummaryTable renders one row per record, in the given order: method
// label, seed, ACC, FGT (final vs just-learnt), BWT, rounds, bytes up and
// down ([HumanBytes]) and wall time ("12.3s", "4m05s", "1h02m").
// Undefined values show as "n/a". When some record pretrained its first
// tasks, an "ACC after pretrain" column ([FinetuneACC]) follows ACC; when
// some record ran with DP-SGD, an "eps spent (max)" column (the largest
// epsilon a client spent, "-" without DP) ends the row.
func SummaryTable(w io.Writer, recs []*Record) error {
	pre, dp := anyPretrain(recs), anyDP(recs)
	head := []string{"method", "seed", "ACC"}
	if pre {
		head = append(head, headFTACC)
	}
	head = append(head, headFGT, "BWT", "rounds", "bytes up", "bytes down", "wall time")
	if dp {
		head = append(head, headEps)
	}
	t := NewTable(w)
	t.Header(head)
	for _, r := range recs {
		if r == nil {
			return fmt.Errorf("results: summary table: %w", ErrNilRecord)
		}
		row := []string{label(r), strconv.FormatUint(r.Seed, 10), fmt2(r.ACC, notAvail)}
		if pre {
			row = append(row, fmt2(r.FinetuneACC, notAvail))
		}
		row = append(row,
			fmt2(r.FGT, notAvail),
			fmt2(r.BWT, notAvail),
			strconv.Itoa(r.Rounds),
			HumanBytes(r.BytesUp),
			HumanBytes(r.BytesDown),
			humanSeconds(r.WallSeconds),
		)
		if dp {
			row = append(row, epsCell(r))
		}
		if err := t.Append(row); err != nil {
			return fmt.Errorf("results: summary table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("results: summary table: %w", err)
	}
	return nil
}

// ComparisonTable groups records by method label (MethodLabel, or Method
// when the label is empty), in order of first appearance, and renders one
// row per group: the number of records (seeds), then "mean +- std" of ACC,
// FGT (final vs just-learnt), BWT and max-FGT (Chaudhry), with the sample
// standard deviation (n-1) from [MeanStd] and two decimals. A group of one
// record shows just the mean. A NaN in any record makes that cell "n/a".
// Pass records of one scenario: the grouping ignores the scenario. As in
// [SummaryTable], "ACC after pretrain" follows ACC when some record
// pretrained, and "eps spent (max)" ends the row when some record ran with
// DP-SGD (mean +- std over the group's records of each one's largest
// client epsilon; "-" for a group without DP).
func ComparisonTable(w io.Writer, recs []*Record) error {
	for _, r := range recs {
		if r == nil {
			return fmt.Errorf("results: comparison table: %w", ErrNilRecord)
		}
	}
	var cols []Metric // the columns shared with [Compare]
	for _, m := range []Metric{metricACC, metricFinetuneACC, metricFGT, metricBWT, metricMaxFGT, metricEps} {
		if m.when == nil || m.when(recs) {
			cols = append(cols, m)
		}
	}
	head := []string{"method", "seeds"}
	for _, m := range cols {
		head = append(head, m.Title)
	}
	t := NewTable(w)
	t.Header(head)
	for _, idx := range groupBy(recs, label) {
		g := make([]*Record, len(idx))
		for i, j := range idx {
			g[i] = recs[j]
		}
		row := []string{label(g[0]), strconv.Itoa(len(g))}
		for _, m := range cols {
			row = append(row, m.cell(statOf(m, g), len(g)))
		}
		if err := t.Append(row); err != nil {
			return fmt.Errorf("results: comparison table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("results: comparison table: %w", err)
	}
	return nil
}

// NewTable returns a table, in the style of all fotsim tables, with ASCII borders, headers printed as given
// (no upper-casing) and centred, the first column left-aligned and the
// others right-aligned.
func NewTable(w io.Writer) *tablewriter.Table {
	return tablewriter.NewTable(w,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{Symbols: tw.NewSymbols(tw.StyleASCII)})),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithHeaderAlignment(tw.AlignCenter),
		tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignRight, PerColumn: []tw.Align{tw.AlignLeft}}),
	)
}

func label(r *Record) string {
	if r.MethodLabel != "" {
		return r.MethodLabel
	}
	return r.Method
}

// fmt2 formats v with two decimals, nan for NaN/Inf, and never "-0.00".
func fmt2(v float64, nan string) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nan
	}
	s := strconv.FormatFloat(v, 'f', 2, 64)
	if s == "-0.00" {
		s = "0.00"
	}
	return s
}

func meanStdCell(xs []float64) string {
	m, s := MeanStd(xs)
	if math.IsNaN(m) || math.IsInf(m, 0) {
		return notAvail
	}
	if len(xs) == 1 {
		return fmt2(m, notAvail)
	}
	return fmt2(m, notAvail) + " +- " + fmt2(s, notAvail)
}

// HumanBytes formats a byte count with binary (IEC) units and one decimal:
// "512 B", "1.5 KiB", "12.0 MiB", "3.2 GiB", ... up to EiB. A value that
// would round to 1024.0 of a unit moves to the next unit. Negative counts
// keep their sign.
func HumanBytes(n int64) string {
	if n > -1024 && n < 1024 {
		return strconv.FormatInt(n, 10) + " B"
	}
	units := [...]string{"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v := math.Abs(float64(n)) / 1024
	u := 0
	for v >= 1024-0.05 && u < len(units)-1 {
		v /= 1024
		u++
	}
	s := strconv.FormatFloat(v, 'f', 1, 64) + " " + units[u]
	if n < 0 {
		s = "-" + s
	}
	return s
}

// humanSeconds formats a duration given in seconds: "0.4s", "12.3s" below
// a minute, "4m05s" below an hour, "1h02m" above; "n/a" when undefined or
// negative.
func humanSeconds(s float64) string {
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0) || s < 0:
		return notAvail
	case s < 59.95:
		return strconv.FormatFloat(s, 'f', 1, 64) + "s"
	case s < 3600-0.5:
		t := int64(math.Round(s))
		return fmt.Sprintf("%dm%02ds", t/60, t%60)
	default:
		t := int64(math.Round(s / 60))
		return fmt.Sprintf("%dh%02dm", t/60, t%60)
	}
}

// SubspaceTable writes FOT's per-task subspace report: for every projected
// layer, the basis dimension after the task over its capacity d_in, and the
// mean share of the aggregated update the projection removed during the
// task (||D U U^T||_F / ||D||_F; "-" in task 0, which is not projected). A
// layer whose basis reaches its capacity can no longer learn anything new
// in the directions of its inputs. It writes nothing when the record has no
// subspace details.
func SubspaceTable(w io.Writer, rec *Record) error {
	var layers []string
	for _, d := range rec.TasksDetail {
		for l := range d.BasisDims {
			if !slices.Contains(layers, l) {
				layers = append(layers, l)
			}
		}
	}
	if len(layers) == 0 {
		return nil
	}
	slices.Sort(layers)
	t := NewTable(w)
	header := []string{"task"}
	for _, l := range layers {
		header = append(header, l+" k/d_in", l+" removed")
	}
	t.Header(header)
	for _, d := range rec.TasksDetail {
		row := []string{fmt.Sprintf("T%d", d.Task)}
		for _, l := range layers {
			k, cap := d.BasisDims[l], d.BasisCapacity[l]
			dims := fmt.Sprintf("%d", k)
			if cap > 0 {
				dims = fmt.Sprintf("%d/%d", k, cap)
				if k == cap {
					dims += " full"
				}
			}
			removed := "-"
			if f, ok := d.ProjectedFraction[l]; ok && d.Task > 0 {
				removed = fmt.Sprintf("%.1f%%", 100*f)
			}
			row = append(row, dims, removed)
		}
		if err := t.Append(row); err != nil {
			return fmt.Errorf("results: subspace table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("results: subspace table: %w", err)
	}
	return nil
}
