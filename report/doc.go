// Package report writes the HTML views of fotsim runs: a self-contained
// report.html per run folder or sweep, and the live view of running runs.
//
// # Report
//
// [Write] (or [Render]) turns run records into one HTML file that needs
// nothing else: the records are embedded as JSON in a
// <script type="application/json" id="fotsim-data"> block, and a small
// inline JavaScript renderer (assets/render.js, no library) draws from
// them, as SVG and HTML tables:
//
//   - a summary table, one row per run (every method label, seed, ACC,
//     FGT, BWT, max-FGT, rounds, bytes, wall time; ACC after pretrain and
//     the spent epsilon when some run has them);
//   - the comparison over seeds: a table and bar charts of ACC and FGT per
//     method, mean +- sample standard deviation (as results.MeanStd);
//   - per run: the accuracy matrix as a colour table, the accuracy on every
//     task over the rounds (the record's curves plus each task's end from
//     the matrix) with the task boundaries dashed, and, for FOT runs, the
//     basis dimension and the share of the update removed by the
//     projection per layer after each task.
//
// The page loads nothing: no URL of any kind appears in it (the SVG
// namespace is read from an inline <svg> element), its Content Security
// Policy forbids every fetch (default-src 'none'), styles and script are
// inline, and the favicon is an empty data: URL. JSON inside the script
// block has '<', '>', '&', U+2028 and U+2029 escaped as \uXXXX, so no
// record can end the block; the renderer sets text with textContent only.
//
// # Live view
//
// [LivePage] writes the live page, the same renderer in live mode: it
// opens an EventSource on an events URL and draws, per run, the accuracy
// per task and the training loss over the rounds as the metrics documents
// (sim.Metrics, JSON) arrive. A [Hub] is that events endpoint: it fans the
// documents it is given out to every connected page as Server-Sent Events,
// replaying those it already has to a page that connects late.
package report
