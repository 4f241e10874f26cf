package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fotsim/fotsim/plots"
	"github.com/fotsim/fotsim/results"
)

func init() {
	register(command{name: "plot", usage: "[flags] DIR...           draw a run's or a sweep's plots (PNG and SVG)", order: 50, run: cmdPlot})
}

const plotUsage = `Usage: fotsim plot [flags] DIR...

Draws the plots of runs from their records. DIR is a run folder (holding
result.json): its plots go into it. Or DIR is a sweep folder (sub-folders
holding result.json, as "fotsim run --out DIR" writes for several runs):
each run's plots go into its folder, and the ACC/FGT summary over all of
them into DIR. Plots of a run: accuracy_matrix, curves and, for FOT,
subspace; of a sweep: summary. Each as .png and .svg.

Flags:
`

func cmdPlot(_ context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("plot", plotUsage, stderr)
	format := fs.String("format", strings.Join(plots.Formats, ","), "comma-separated formats: "+strings.Join(plots.Formats, ", "))
	out := fs.String("out", "", "write the plots here instead (with several DIRs: into OUT/<base name of DIR>)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usagef("plot takes at least one run or sweep folder")
	}
	formats, err := plots.ParseFormats(*format)
	if err != nil {
		return usageError{err}
	}
	// Read every record first: bad input stops before anything is written.
	type input struct {
		dir, out string
		runs     []plotRun
		sweep    bool
	}
	var ins []input
	for _, dir := range fs.Args() {
		runs, sweep, err := readPlotDir(dir)
		if err != nil {
			return err
		}
		o := dir
		if *out != "" {
			o = *out
			if fs.NArg() > 1 {
				o = filepath.Join(*out, filepath.Base(filepath.Clean(dir)))
			}
		}
		ins = append(ins, input{dir: dir, out: o, runs: runs, sweep: sweep})
	}
	for _, in := range ins {
		var recs []*results.Record
		for _, r := range in.runs {
			o := in.out
			if in.sweep {
				o = filepath.Join(in.out, filepath.Base(r.dir))
			}
			if err := plotRunTo(stdout, o, r.rec, formats, false); err != nil {
				return err
			}
			recs = append(recs, r.rec)
		}
		if in.sweep {
			if err := plotSummaryTo(stdout, in.out, recs, formats, false); err != nil {
				return err
			}
		}
	}
	return nil
}

// plotRun is one run folder and its record.
type plotRun struct {
	dir string
	rec *results.Record
}

// readPlotDir reads the record of the run folder dir (sweep false), or the
// records of its sub-folders when dir has none of its own (sweep true), in
// the sub-folders' name order. A missing folder, a folder without records
// and an unreadable record are bad input naming the path.
func readPlotDir(dir string) ([]plotRun, bool, error) {
	st, err := os.Stat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, usagef("%s: no such folder", dir)
	}
	if err != nil {
		return nil, false, usageError{err}
	}
	if !st.IsDir() {
		return nil, false, usagef("%s: not a folder (give a run folder holding %s, or a sweep folder)", dir, results.RecordFile)
	}
	own := filepath.Join(dir, results.RecordFile)
	if _, err := os.Stat(own); err == nil {
		rec, err := results.ReadRecord(own)
		if err != nil {
			return nil, false, usageError{err}
		}
		return []plotRun{{dir, rec}}, false, nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, false, usageError{err}
	}
	var runs []plotRun
	for _, e := range entries { // sorted by name
		if !e.IsDir() {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		p := filepath.Join(sub, results.RecordFile)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		rec, err := results.ReadRecord(p)
		if err != nil {
			return nil, false, usageError{err}
		}
		runs = append(runs, plotRun{sub, rec})
	}
	if len(runs) == 0 {
		return nil, false, usagef("%s: no %s in it or in its sub-folders", dir, results.RecordFile)
	}
	return runs, true, nil
}

// plotRunTo writes the plots of one run into dir and, unless quiet, names
// them on stdout.
func plotRunTo(stdout io.Writer, dir string, rec *results.Record, formats []string, quiet bool) error {
	paths, err := plots.WriteRun(dir, rec, formats)
	if err != nil {
		return fmt.Errorf("plots in %s: %w", dir, err)
	}
	if !quiet {
		fmt.Fprintf(stdout, "plots: %s\n", plotFiles(dir, paths))
	}
	return nil
}

// plotSummaryTo writes the summary bars of recs into dir and, unless quiet,
// names them on stdout.
func plotSummaryTo(stdout io.Writer, dir string, recs []*results.Record, formats []string, quiet bool) error {
	paths, err := plots.WriteSummary(dir, recs, formats)
	if err != nil {
		return fmt.Errorf("summary plots in %s: %w", dir, err)
	}
	if !quiet {
		fmt.Fprintf(stdout, "plots: %s\n", plotFiles(dir, paths))
	}
	return nil
}

// plotFiles names the files of one folder briefly:
// "DIR/{accuracy_matrix,curves}.{png,svg}".
func plotFiles(dir string, paths []string) string {
	var stems, exts []string
	for _, p := range paths {
		base := filepath.Base(p)
		ext := filepath.Ext(base)
		if s := strings.TrimSuffix(base, ext); !slices.Contains(stems, s) {
			stems = append(stems, s)
		}
		if e := strings.TrimPrefix(ext, "."); !slices.Contains(exts, e) {
			exts = append(exts, e)
		}
	}
	brace := func(xs []string) string {
		if len(xs) == 1 {
			return xs[0]
		}
		return "{" + strings.Join(xs, ",") + "}"
	}
	if len(stems) == 0 {
		return dir
	}
	return filepath.Join(dir, brace(stems)+"."+brace(exts))
}
