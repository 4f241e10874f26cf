// Package plots draws the figures of fotsim runs from their records
// (results.Record), with gonum.org/v1/plot, as PNG and SVG:
//
//	accuracy_matrix  heatmap of the accuracy matrix: row = after task i,
//	                 column = task j, every cell annotated, the upper
//	                 triangle (tasks not yet seen) blank          [AccuracyMatrix]
//	curves           accuracy on every task over the rounds, one line per
//	                 task, dashed lines at the task boundaries (from the
//	                 accuracy matrix at each task's end when the record
//	                 has no curves)                                [Curves]
//	subspace         FOT only: basis dimension over capacity (k/d_in) per
//	                 layer after each task, and the share of each layer's
//	                 aggregated update removed by the projection  [Subspace]
//	summary          ACC and FGT per method label over several records:
//	                 mean over seeds, sample-std error bars       [Summary]
//
// Each constructor returns a [Figure], which renders to a writer
// ([Figure.Render]) or to files NAME.png and NAME.svg in a folder
// ([Figure.Save]). [WriteRun] writes every figure of one run, [WriteSummary]
// the summary of several. Rendering is deterministic: the same record gives
// the same bytes in either format. PNGs are drawn at [DPI] dots per inch;
// SVGs name their fonts (Liberation) without embedding them.
//
// Undefined values (NaN accuracies, a NaN ACC) are left out of lines and
// shown as "n/a" in annotations; nothing here panics on a degenerate
// record (no tasks, one task, NaN cells): it draws what there is or
// returns an error.
package plots
