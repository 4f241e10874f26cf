package results

import (
	"bytes"
	"cmp"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

var (
	// ErrNoRuns is returned when a folder holds no run record, or when
	// there is nothing to compare.
	ErrNoRuns = errors.New("no run records")
	// ErrMixedScenarios is returned by [Compare] for records of different
	// scenarios (unless [CompareOptions.AllowMixed]).
	ErrMixedScenarios = errors.New("runs of different scenarios")
	// ErrDuplicateRun is returned by [Compare] when two records have the
	// same scenario, method label and seed.
	ErrDuplicateRun = errors.New("the same method and seed twice")
	// ErrFormat is returned by [Comparison.Write] for an unknown format.
	ErrFormat = errors.New("unknown comparison format")
)

// CompareSchema names the structure [Comparison.WriteJSON] writes.
const CompareSchema = "fotsim.compare/v1"

// CompareFormats are the formats [Comparison.Write] accepts.
var CompareFormats = []string{"table", "markdown", "csv", "json"}

// notFound names a path that does not exist; it matches fs.ErrNotExist.
type notFound string

func (p notFound) Error() string      { return "results: " + string(p) + ": no such folder" }
func (notFound) Is(target error) bool { return target == fs.ErrNotExist }

// Run is one run record and the result.json it was read from.
type Run struct {
	Path   string // the record file
	Record *Record
}

// LoadRuns reads the run records under paths, in order. A folder holding a
// result.json is one run; any other folder contributes the runs of its
// immediate sub-folders that hold one (a sweep written by `fotsim run --out
// DIR`, or the default runs/ folder), in name order; sub-folders without a
// result.json (runs still in progress) are skipped. A path to a file is
// read as a record. A record file reached twice (the same folder given
// twice) is read once.
//
// Errors name the path: a path that does not exist (matches
// fs.ErrNotExist), a folder without any run record ([ErrNoRuns]), a record
// that does not parse or has another schema (from [ReadRecord]; [ErrSchema]).
// No path at all is [ErrNoRuns].
func LoadRuns(paths ...string) ([]Run, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("results: %w: no folder given", ErrNoRuns)
	}
	var runs []Run
	seen := make(map[string]bool)
	for _, p := range paths {
		files, err := recordFiles(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			key := f
			if abs, err := filepath.Abs(f); err == nil {
				key = abs
			}
			if seen[key] {
				continue
			}
			seen[key] = true
			rec, err := ReadRecord(f)
			if err != nil {
				return nil, err
			}
			runs = append(runs, Run{Path: f, Record: rec})
		}
	}
	return runs, nil
}

// recordFiles lists the record files path stands for (see [LoadRuns]).
func recordFiles(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound(path)
	}
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	if f := filepath.Join(path, RecordFile); isFile(f) {
		return []string{f}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, fmt.Errorf("results: %w", err)
	}
	var files []string
	for _, e := range entries {
		if f := filepath.Join(path, e.Name(), RecordFile); isFile(f) {
			files = append(files, f)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("results: %s: %w (no %s in it or in its sub-folders)", path, ErrNoRuns, RecordFile)
	}
	return files, nil
}

// isFile reports whether path exists and is not a folder (symbolic links
// followed).
func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir()
}

// Better says which way a metric improves: which group [Compare] marks as
// the best of a column.
type Better int

// The directions of a [Metric].
const (
	BetterNone   Better = iota // no best marked (costs such as rounds, bytes, time)
	BetterHigher               // the highest mean is best
	BetterLower                // the lowest mean is best
)

// String returns "higher", "lower" or "none".
func (b Better) String() string {
	switch b {
	case BetterHigher:
		return "higher"
	case BetterLower:
		return "lower"
	}
	return "none"
}

// metricKind selects how a metric's cells are written in the text tables.
type metricKind int

const (
	kindPercent metricKind = iota // two decimals
	kindCount                     // an integer when all seeds agree
	kindBytes                     // HumanBytes
	kindSeconds                   // humanSeconds
)

// Metric is one column of a comparison: a number of every record,
// summarised per group over its seeds.
type Metric struct {
	Name   string // key in JSON and prefix of the CSV columns: "acc", "max_fgt"
	Title  string // column header of the text tables: "ACC", "max-FGT (Chaudhry)"
	Better Better // which group is marked best

	// value returns the record's number, ok false when the metric does not
	// apply to the record (no DP).
	value func(*Record) (v float64, ok bool)
	kind  metricKind
	// when reports whether the text tables show the column for these
	// records (nil: always).
	when func([]*Record) bool
}

func always(f func(*Record) float64) func(*Record) (float64, bool) {
	return func(r *Record) (float64, bool) { return f(r), true }
}

var (
	metricACC         = Metric{Name: "acc", Title: "ACC", Better: BetterHigher, value: always(func(r *Record) float64 { return r.ACC })}
	metricFinetuneACC = Metric{Name: "finetune_acc", Title: headFTACC, Better: BetterHigher, value: always(func(r *Record) float64 { return r.FinetuneACC }), when: anyPretrain}
	metricFGT         = Metric{Name: "fgt", Title: headFGT, Better: BetterLower, value: always(func(r *Record) float64 { return r.FGT })}
	metricBWT         = Metric{Name: "bwt", Title: "BWT", Better: BetterHigher, value: always(func(r *Record) float64 { return r.BWT })}
	metricMaxFGT      = Metric{Name: "max_fgt", Title: headMaxFGT, Better: BetterLower, value: always(func(r *Record) float64 { return r.MaxFGT })}
	metricLastTask    = Metric{Name: "last_task_acc", Title: "last-task ACC", Better: BetterHigher, value: always(lastTaskACC)}
	metricRounds      = Metric{Name: "rounds", Title: "rounds", value: always(func(r *Record) float64 { return float64(r.Rounds) }), kind: kindCount}
	metricBytesUp     = Metric{Name: "bytes_up", Title: "bytes up", value: always(func(r *Record) float64 { return float64(r.BytesUp) }), kind: kindBytes}
	metricBytesDown   = Metric{Name: "bytes_down", Title: "bytes down", value: always(func(r *Record) float64 { return float64(r.BytesDown) }), kind: kindBytes}
	metricWall        = Metric{Name: "wall_seconds", Title: "wall time", value: always(func(r *Record) float64 { return r.WallSeconds }), kind: kindSeconds}
	metricEps         = Metric{Name: "eps_spent_max", Title: headEps, when: anyDP,
		value: func(r *Record) (float64, bool) {
			if r.DP == nil {
				return math.NaN(), false
			}
			return r.DP.EpsilonSpentMax, true
		}}
)

// lastTaskACC is the accuracy on the last task right after learning it
// (the bottom-right cell of the matrix): how well the model still learns.
func lastTaskACC(r *Record) float64 {
	t := len(r.AccMatrix)
	if t == 0 {
		return math.NaN()
	}
	return r.AccMatrix.At(t-1, t-1)
}

// CompareMetrics returns the metrics of a comparison, in column order:
//
//	acc            ACC                          best: higher
//	finetune_acc   ACC after pretrain           best: higher  (= acc without pretraining)
//	fgt            FGT (final vs just-learnt)   best: lower
//	bwt            BWT                          best: higher
//	max_fgt        max-FGT (Chaudhry)           best: lower
//	last_task_acc  last-task ACC                best: higher  (acc[T-1][T-1], plasticity)
//	rounds         rounds
//	bytes_up       bytes up
//	bytes_down     bytes down
//	wall_seconds   wall time
//	eps_spent_max  eps spent (max)                            (DP-SGD only)
//
// JSON and CSV always carry all of them; the text tables show "ACC after
// pretrain" only when some record pretrained and "eps spent (max)" only
// when some record ran with DP-SGD.
func CompareMetrics() []Metric {
	return []Metric{metricACC, metricFinetuneACC, metricFGT, metricBWT, metricMaxFGT, metricLastTask,
		metricRounds, metricBytesUp, metricBytesDown, metricWall, metricEps}
}

// Stat is a metric summarised over one group's records.
type Stat struct {
	Mean, Std float64 // mean and sample std (n-1; 0 for one record); NaN when undefined
	N         int     // records the metric applies to (DP: those with DP)
	Best      bool    // the best mean of its column (see [Compare])

	vals []float64
}

// statOf summarises m over recs. Mean and Std are NaN when some record's
// value is NaN or when the metric applies to some records but not all.
func statOf(m Metric, recs []*Record) Stat {
	var s Stat
	for _, r := range recs {
		if v, ok := m.value(r); ok {
			s.vals = append(s.vals, v)
		}
	}
	s.N = len(s.vals)
	s.Mean, s.Std = MeanStd(s.vals)
	if s.N != len(recs) {
		s.Mean, s.Std = math.NaN(), math.NaN()
	}
	return s
}

// cell writes s for the text tables: "mean +- std" (just the mean for one
// record), "n/a" when undefined, "-" when the metric applies to no record
// of the group (no DP).
func (m Metric) cell(s Stat, n int) string {
	switch {
	case s.N == 0 && n > 0:
		return noDP
	case s.N != n:
		return notAvail // a group mixing runs with and without DP
	}
	switch m.kind {
	case kindCount:
		if mean := s.Mean; s.Std == 0 && mean == math.Trunc(mean) && math.Abs(mean) < 1<<53 {
			return strconv.FormatInt(int64(mean), 10)
		}
	case kindBytes:
		if math.IsNaN(s.Mean) || math.IsInf(s.Mean, 0) {
			return notAvail
		}
		c := HumanBytes(int64(math.Round(s.Mean)))
		if n > 1 && s.Std > 0 {
			c += " +- " + HumanBytes(int64(math.Round(s.Std)))
		}
		return c
	case kindSeconds:
		c := humanSeconds(s.Mean)
		if n > 1 && c != notAvail {
			c += " +- " + humanSeconds(s.Std)
		}
		return c
	}
	return meanStdCell(s.vals)
}

// groupBy groups recs by key in order of first appearance: the indices
// into recs of every group's records, in the order given. Records must not
// be nil.
func groupBy(recs []*Record, key func(*Record) string) [][]int {
	var groups [][]int
	byKey := make(map[string]int)
	for i, r := range recs {
		k := key(r)
		g, ok := byKey[k]
		if !ok {
			g = len(groups)
			byKey[k] = g
			groups = append(groups, nil)
		}
		groups[g] = append(groups[g], i)
	}
	return groups
}

// CompareOptions tune [Compare].
type CompareOptions struct {
	// AllowMixed compares records of different scenarios: one group per
	// scenario and method label, the best marked within each scenario.
	AllowMixed bool
}

// Comparison is a methods x seeds summary of runs of one scenario.
type Comparison struct {
	Scenario  string   // the scenario; "" when Scenarios has several (AllowMixed)
	Scenarios []string // every scenario, in order of first appearance
	Metrics   []Metric // [CompareMetrics]
	Methods   []MethodStats
	shown     []Metric // the columns of the text tables
}

// MethodStats is one group of a [Comparison]: the runs of one method label
// (and scenario) over its seeds.
type MethodStats struct {
	Label    string   // Record.MethodLabel, or Record.Method when it is empty
	Method   string   // Record.Method
	Scenario string   // Record.Scenario
	Seeds    []uint64 // ascending
	Files    []string // the record files, one per seed
	Stats    []Stat   // one per Comparison.Metrics
}

// Best returns the names of the metrics this group is best at; metrics
// are the comparison's (Comparison.Metrics, which Stats follows).
func (m *MethodStats) Best(metrics []Metric) []string {
	best := []string{}
	for i, s := range m.Stats {
		if s.Best && i < len(metrics) {
			best = append(best, metrics[i].Name)
		}
	}
	return best
}

// Compare groups runs by method label (Record.MethodLabel, or Method when
// the label is empty) in order of first appearance, sorts each group's runs
// by seed, and summarises every [CompareMetrics] metric per group: mean and
// sample standard deviation over the seeds ([MeanStd]). In each column with
// a direction ([Metric].Better) the group with the best mean is marked
// (every group tied with it too), provided at least two groups have a
// defined value.
//
// Errors: no runs ([ErrNoRuns]), a nil record ([ErrNilRecord]), records of
// different scenarios ([ErrMixedScenarios], naming both scenarios and
// files; allowed with opt.AllowMixed), and two records with the same
// scenario, label and seed ([ErrDuplicateRun], naming both files).
func Compare(runs []Run, opt CompareOptions) (*Comparison, error) {
	if len(runs) == 0 {
		return nil, fmt.Errorf("results: %w to compare", ErrNoRuns)
	}
	c := &Comparison{Metrics: CompareMetrics()}
	first := make(map[string]Run) // scenario -> its first run
	type runKey struct {
		scenario, label string
		seed            uint64
	}
	seen := make(map[runKey]string)
	recs := make([]*Record, 0, len(runs))
	for _, run := range runs {
		r := run.Record
		if r == nil {
			return nil, fmt.Errorf("results: %s: %w", run.Path, ErrNilRecord)
		}
		if _, ok := first[r.Scenario]; !ok {
			if len(first) > 0 && !opt.AllowMixed {
				f := first[c.Scenarios[0]]
				return nil, fmt.Errorf("results: %w: %s is %q, %s is %q", ErrMixedScenarios,
					f.Path, f.Record.Scenario, run.Path, r.Scenario)
			}
			first[r.Scenario] = run
			c.Scenarios = append(c.Scenarios, r.Scenario)
		}
		k := runKey{r.Scenario, label(r), r.Seed}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("results: %w: %s and %s are both %s seed %d", ErrDuplicateRun, prev, run.Path, k.label, k.seed)
		}
		seen[k] = run.Path
		recs = append(recs, r)
	}
	if len(c.Scenarios) == 1 {
		c.Scenario = c.Scenarios[0]
	}
	for _, m := range c.Metrics {
		if m.when == nil || m.when(recs) {
			c.shown = append(c.shown, m)
		}
	}
	for _, idx := range groupBy(recs, func(r *Record) string { return r.Scenario + "\x00" + label(r) }) {
		g := make([]Run, len(idx))
		for i, j := range idx {
			g[i] = runs[j]
		}
		slices.SortStableFunc(g, func(a, b Run) int { return cmp.Compare(a.Record.Seed, b.Record.Seed) })
		ms := MethodStats{Label: label(g[0].Record), Method: g[0].Record.Method, Scenario: g[0].Record.Scenario}
		sorted := make([]*Record, len(g))
		for i, run := range g {
			sorted[i] = run.Record
			ms.Seeds = append(ms.Seeds, run.Record.Seed)
			ms.Files = append(ms.Files, run.Path)
		}
		for _, m := range c.Metrics {
			ms.Stats = append(ms.Stats, statOf(m, sorted))
		}
		c.Methods = append(c.Methods, ms)
	}
	for i, m := range c.Metrics {
		if m.Better != BetterNone {
			for _, sc := range c.Scenarios {
				c.markBest(i, sc)
			}
		}
	}
	return c, nil
}

// markBest marks the best mean of metric i among the groups of scenario sc.
func (c *Comparison) markBest(i int, sc string) {
	sign := 1.0
	if c.Metrics[i].Better == BetterLower {
		sign = -1
	}
	best, defined := math.Inf(-1), 0
	for _, ms := range c.Methods {
		if v := ms.Stats[i].Mean; ms.Scenario == sc && !math.IsNaN(v) {
			defined++
			best = max(best, sign*v)
		}
	}
	if defined < 2 {
		return
	}
	for j := range c.Methods {
		ms := &c.Methods[j]
		if v := ms.Stats[i].Mean; ms.Scenario == sc && !math.IsNaN(v) && sign*v == best {
			ms.Stats[i].Best = true
		}
	}
}

// Write renders c in format: "table", "markdown", "csv" or "json" (see
// [CompareFormats]); any other format is [ErrFormat].
func (c *Comparison) Write(w io.Writer, format string) error {
	switch format {
	case "table":
		return c.WriteTable(w)
	case "markdown":
		return c.WriteMarkdown(w)
	case "csv":
		return c.WriteCSV(w)
	case "json":
		return c.WriteJSON(w)
	}
	return fmt.Errorf("results: %w %q (want %s)", ErrFormat, format, strings.Join(CompareFormats, ", "))
}

// legend is the line above the text tables: what the cells are and which
// direction of each marked column is best.
func (c *Comparison) legend() string {
	var hi, lo []string
	for _, m := range c.shown {
		switch m.Better {
		case BetterHigher:
			hi = append(hi, m.Title)
		case BetterLower:
			lo = append(lo, m.Title)
		}
	}
	scen := c.Scenario
	if len(c.Scenarios) > 1 {
		scen = strings.Join(c.Scenarios, ", ")
	}
	return fmt.Sprintf("Comparison of %s over seeds (mean +- sample std); * = best: highest %s; lowest %s",
		scen, strings.Join(hi, ", "), strings.Join(lo, ", "))
}

// textRows returns the header and rows of the text tables.
func (c *Comparison) textRows() (head []string, rows [][]string) {
	mixed := len(c.Scenarios) > 1
	head = []string{"method"}
	if mixed {
		head = append(head, "scenario")
	}
	head = append(head, "n", "seeds")
	for _, m := range c.shown {
		head = append(head, m.Title)
	}
	for _, ms := range c.Methods {
		row := []string{ms.Label}
		if mixed {
			row = append(row, ms.Scenario)
		}
		seeds := make([]string, len(ms.Seeds))
		for i, s := range ms.Seeds {
			seeds[i] = strconv.FormatUint(s, 10)
		}
		row = append(row, strconv.Itoa(len(ms.Seeds)), strings.Join(seeds, ","))
		for _, m := range c.shown {
			s := ms.Stats[c.metricIndex(m.Name)]
			cell := m.cell(s, len(ms.Seeds))
			if s.Best {
				cell += " *"
			}
			row = append(row, cell)
		}
		rows = append(rows, row)
	}
	return head, rows
}

func (c *Comparison) metricIndex(name string) int {
	return slices.IndexFunc(c.Metrics, func(m Metric) bool { return m.Name == name })
}

// WriteTable writes the legend line and an ASCII table in the style of
// [ComparisonTable]: one row per group with its label (and scenario when
// several), number of seeds, the seeds (left-aligned), then "mean +- std" per metric, a
// " *" after the best cell of a column.
func (c *Comparison) WriteTable(w io.Writer) error {
	head, rows := c.textRows()
	if _, err := fmt.Fprintln(w, c.legend()); err != nil {
		return fmt.Errorf("results: comparison: %w", err)
	}
	align := []tw.Align{tw.AlignLeft} // method, [scenario,] n, seeds: text left, numbers right
	if len(c.Scenarios) > 1 {
		align = append(align, tw.AlignLeft)
	}
	align = append(align, tw.AlignRight, tw.AlignLeft)
	t := NewTable(w)
	t.Options(tablewriter.WithRowAlignmentConfig(tw.CellAlignment{Global: tw.AlignRight, PerColumn: align}))
	t.Header(head)
	for _, row := range rows {
		if err := t.Append(row); err != nil {
			return fmt.Errorf("results: comparison: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("results: comparison: %w", err)
	}
	return nil
}

// WriteMarkdown writes the legend line, a blank line and the table of
// [Comparison.WriteTable] as a GitHub markdown table (first columns
// left-aligned, numbers right-aligned; "|" in a cell escaped).
func (c *Comparison) WriteMarkdown(w io.Writer) error {
	head, rows := c.textRows()
	var b strings.Builder
	b.WriteString(c.legend())
	b.WriteString("\n\n")
	line := func(cells []string) {
		b.WriteString("|")
		for _, s := range cells {
			b.WriteString(" " + strings.ReplaceAll(s, "|", `\|`) + " |")
		}
		b.WriteString("\n")
	}
	line(head)
	b.WriteString("|")
	for i := range head {
		if i < len(head)-len(c.shown) && head[i] != "n" {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, row := range rows {
		line(row)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("results: comparison: %w", err)
	}
	return nil
}

// WriteCSV writes one row per group, with the header
//
//	scenario,label,method,n,seeds,acc_mean,acc_std,acc_best,...,rounds_mean,rounds_std,...
//
// every metric of [CompareMetrics] as <name>_mean and <name>_std, followed
// by <name>_best (true or false) for the metrics with a direction. seeds are
// separated by spaces; numbers are exact (shortest round-trip form);
// undefined values are empty.
func (c *Comparison) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	head := []string{"scenario", "label", "method", "n", "seeds"}
	for _, m := range c.Metrics {
		head = append(head, m.Name+"_mean", m.Name+"_std")
		if m.Better != BetterNone {
			head = append(head, m.Name+"_best")
		}
	}
	if err := cw.Write(head); err != nil {
		return fmt.Errorf("results: comparison csv: %w", err)
	}
	num := func(v float64) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return ""
		}
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	for _, ms := range c.Methods {
		seeds := make([]string, len(ms.Seeds))
		for i, s := range ms.Seeds {
			seeds[i] = strconv.FormatUint(s, 10)
		}
		row := []string{ms.Scenario, ms.Label, ms.Method, strconv.Itoa(len(ms.Seeds)), strings.Join(seeds, " ")}
		for i, m := range c.Metrics {
			s := ms.Stats[i]
			row = append(row, num(s.Mean), num(s.Std))
			if m.Better != BetterNone {
				row = append(row, strconv.FormatBool(s.Best))
			}
		}
		if err := cw.Write(row); err != nil {
			return fmt.Errorf("results: comparison csv: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("results: comparison csv: %w", err)
	}
	return nil
}

// WriteJSON writes the comparison as JSON (schema [CompareSchema]; fields
// are only ever added), one method per line:
//
//	{
//	  "schema": "fotsim.compare/v1",
//	  "scenario": "synthetic",          // "" when several (AllowMixed)
//	  "scenarios": ["synthetic"],
//	  "metrics": [{"name": "acc", "title": "ACC", "better": "higher"}, ...],
//	  "methods": [
//	    {"label": "fedavg", "method": "fedavg", "scenario": "synthetic", "seeds": [0, 1], "n": 2,
//	     "files": [".../result.json", ...], "acc": {"mean": 77.625, "std": 4.07}, ...,
//	     "best": ["acc", "bwt"]},
//	    ...
//	  ]
//	}
//
// "metrics" lists every metric of [CompareMetrics] in order, with the
// direction that is best ("higher", "lower" or "none"); each method has one
// {"mean", "std"} object per metric, under the metric's name (null when
// undefined), and "best" lists the metrics it is best at.
func (c *Comparison) WriteJSON(w io.Writer) error {
	b, err := c.marshalJSON()
	if err != nil {
		return fmt.Errorf("results: comparison json: %w", err)
	}
	if b, err = prettyJSON(b); err != nil {
		return fmt.Errorf("results: comparison json: %w", err)
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("results: comparison json: %w", err)
	}
	return nil
}

// marshalJSON writes the compact JSON of [Comparison.WriteJSON], keys in
// their documented order.
func (c *Comparison) marshalJSON() ([]byte, error) {
	type metricJSON struct {
		Name   string `json:"name"`
		Title  string `json:"title"`
		Better string `json:"better"`
	}
	type statJSON struct {
		Mean jfloat `json:"mean"`
		Std  jfloat `json:"std"`
	}
	var b bytes.Buffer
	enc := func(v any) error {
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b.Write(j)
		return nil
	}
	field := func(first bool, key string, v any) error {
		if !first {
			b.WriteByte(',')
		}
		if err := enc(key); err != nil {
			return err
		}
		b.WriteByte(':')
		return enc(v)
	}
	metrics := make([]metricJSON, len(c.Metrics))
	for i, m := range c.Metrics {
		metrics[i] = metricJSON{m.Name, m.Title, m.Better.String()}
	}
	scenarios := c.Scenarios
	if scenarios == nil {
		scenarios = []string{}
	}
	b.WriteByte('{')
	for i, kv := range []struct {
		k string
		v any
	}{{"schema", CompareSchema}, {"scenario", c.Scenario}, {"scenarios", scenarios}, {"metrics", metrics}} {
		if err := field(i == 0, kv.k, kv.v); err != nil {
			return nil, err
		}
	}
	b.WriteString(`,"methods":[`)
	for i, ms := range c.Methods {
		if i > 0 {
			b.WriteByte(',')
		}
		seeds, files := ms.Seeds, ms.Files
		if seeds == nil {
			seeds = []uint64{}
		}
		if files == nil {
			files = []string{}
		}
		b.WriteByte('{')
		for j, kv := range []struct {
			k string
			v any
		}{{"label", ms.Label}, {"method", ms.Method}, {"scenario", ms.Scenario}, {"seeds", seeds}, {"n", len(ms.Seeds)}, {"files", files}} {
			if err := field(j == 0, kv.k, kv.v); err != nil {
				return nil, err
			}
		}
		for j, m := range c.Metrics {
			if err := field(false, m.Name, statJSON{jfloat(ms.Stats[j].Mean), jfloat(ms.Stats[j].Std)}); err != nil {
				return nil, err
			}
		}
		if err := field(false, "best", ms.Best(c.Metrics)); err != nil {
			return nil, err
		}
		b.WriteByte('}')
	}
	b.WriteString("]}")
	return b.Bytes(), nil
}
