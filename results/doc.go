// Package results turns what a fotsim run measured into numbers, files and
// tables: the accuracy matrix and the continual-learning metrics computed
// from it, the run record (result.json and its CSV companions), and the text
// tables `fotsim run` prints.
//
// # Accuracy matrix and metrics
//
// A [Matrix] holds test accuracies in percent: m[i][j] is the accuracy on
// task j of the global model at the end of task i. A cell that was not
// evaluated is NaN (short rows are read as NaN too). From it:
//
//	ACC    = (1/T) sum_j m[T-1][j]                                   average final accuracy
//	FGT    = (1/(T-1)) sum_{j<T-1} (m[j][j] - m[T-1][j])             forgetting, FOT paper
//	BWT    = -FGT                                                    backward transfer
//	MaxFGT = (1/(T-1)) sum_{j<T-1} (max_{j<=i<T-1} m[i][j] - m[T-1][j])  Chaudhry et al. 2018
//
// with T = len(m), the number of tasks learnt. See the function docs for the
// edge cases (T = 0, T = 1, NaN cells).
//
// # Run record
//
// A [Record] is the public, versioned summary of one run (scenario x method x
// seed), schema "fotsim.result/v1". Fields are only ever added, never
// renamed. Its JSON form is deterministic: identical records marshal to
// identical bytes, floats are written exactly (shortest round-trip form),
// map keys are sorted, and NaN/Inf become null (read back as NaN).
//
//	rec := &results.Record{Scenario: "pmnist-iid", Method: "fot", Seed: 1,
//		Tasks: 10, AccMatrix: m /* ... */}
//	rec.FillMetrics() // ACC, FGT, BWT, MaxFGT from AccMatrix
//	err := results.Write("runs/pmnist-iid/fot/seed1", rec, resolvedYAML)
//	...
//	back, err := results.ReadRecord("runs/pmnist-iid/fot/seed1/result.json")
//
// [Write] produces result.json, acc_matrix.csv, curves.csv and scenario.yaml,
// each written to a temporary file and renamed into place, result.json last,
// so a crash never leaves a half-written file and a present result.json
// means the whole directory is complete.
//
// # Tables
//
// [AccuracyTable], [SummaryTable] and [ComparisonTable] render ASCII tables
// (github.com/olekukonko/tablewriter, '+', '-' and '|' borders only) with
// two decimals. Forgetting columns always say which definition they show:
// "FGT (final vs just-learnt)" for [FGT] and "max-FGT (Chaudhry)" for
// [MaxFGT]. Spread over seeds is written "mean +- std" with the sample
// standard deviation (n-1); plain ASCII "+-" is used rather than "±" so that
// column widths never depend on the terminal's East Asian width setting.
//
// The package is pure: no NATS, no clock, no goroutines, no global state.
package results
