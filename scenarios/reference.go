package scenarios

import (
	"fmt"
	"slices"
	"strings"
)

// reference documents every scenario key, in schema order. A test checks that it
// covers exactly the keys of the Go types and that the defaults agree with Default().
var reference = []KeyDoc{
	{Path: "name", Kind: KindString, Default: "(file or built-in name)", Doc: "scenario name for tables and run records"},
	{Path: "description", Kind: KindString, Default: `""`, Doc: "free text"},
	{Path: "seeds", Kind: "list of int", Default: "[0]", Doc: "random seeds (>= 0, distinct); every method runs once per seed"},
	{Path: "methods", Kind: "list of method", Default: "[fedavg]", Doc: "methods to compare: names, or {name: NAME, option: value} (see the method list); labels must be distinct"},

	{Path: "data", Kind: "mapping", Doc: "dataset and task stream"},
	{Path: "data.dataset", Kind: KindString, Default: "mnist", Allowed: datasets, Doc: "dataset (mnist/fashion read idx files from data.dir; synthetic is generated)"},
	{Path: "data.dir", Kind: KindString, Default: `""`, Doc: "directory of the dataset files; empty = package data's default places"},
	{Path: "data.stream", Kind: KindString, Default: "permuted", Allowed: streams, Doc: "how tasks are made: pixel permutations (task 0 = identity), rotations, or disjoint class splits"},
	{Path: "data.tasks", Kind: KindInt, Default: "3", Doc: "number of tasks (>= 1)"},
	{Path: "data.angles", Kind: "list of float", Default: "[]", Doc: "rotated stream: one angle in degrees per task; empty = evenly spaced"},
	{Path: "data.classes_per_task", Kind: KindInt, Default: "2", Doc: "split stream: classes per task; tasks x classes_per_task <= classes of the dataset"},
	{Path: "data.mode", Kind: KindString, Default: "class", Allowed: modes, Doc: "split stream: class-incremental (global labels) or task-incremental (labels renumbered per task)"},
	{Path: "data.normalize", Kind: KindBool, Default: "true", Doc: "apply x = (pixel/255 - mean)/std"},
	{Path: "data.mean", Kind: KindFloat, Default: "0.1307 (mnist), 0.2860 (fashion), 0 (synthetic)", Doc: "normalisation mean; the default depends on the dataset"},
	{Path: "data.std", Kind: KindFloat, Default: "0.3081 (mnist), 0.3530 (fashion), 1 (synthetic)", Doc: "normalisation std (> 0 when normalize); the default depends on the dataset"},
	{Path: "data.train_limit", Kind: KindInt, Default: "0", Doc: "use only the first N training images (0 = all)"},
	{Path: "data.test_limit", Kind: KindInt, Default: "0", Doc: "use only the first N test images (0 = all)"},
	{Path: "data.synthetic", Kind: "mapping", Doc: "generated Gaussian-cluster data (dataset: synthetic only)"},
	{Path: "data.synthetic.train", Kind: KindInt, Default: "6000", Doc: "training samples"},
	{Path: "data.synthetic.test", Kind: KindInt, Default: "1000", Doc: "test samples"},
	{Path: "data.synthetic.classes", Kind: KindInt, Default: "10", Doc: "classes (>= 2)"},
	{Path: "data.synthetic.dim", Kind: KindInt, Default: "64", Doc: "input dimension"},
	{Path: "data.synthetic.noise", Kind: KindFloat, Default: "1", Doc: "standard deviation around the class centres"},

	{Path: "partition", Kind: "mapping", Doc: "how each task's training data is dealt to clients"},
	{Path: "partition.clients", Kind: KindInt, Default: "10", Doc: "number of simulated clients"},
	{Path: "partition.scheme", Kind: KindString, Default: "iid", Allowed: schemes, Doc: "iid shuffle and deal; shards = sort by label, cut, deal shards_per_client each; dirichlet = label mix ~ Dir(alpha)"},
	{Path: "partition.alpha", Kind: KindFloat, Default: "0.5", Doc: "dirichlet: concentration (> 0; small = skewed)"},
	{Path: "partition.shards_per_client", Kind: KindInt, Default: "2", Doc: "shards: shards per client"},

	{Path: "model", Kind: "mapping", Doc: "the network"},
	{Path: "model.arch", Kind: KindString, Default: "mlp", Allowed: archs, Doc: "mlp, or cnn (conv blocks then the hidden layers)"},
	{Path: "model.hidden", Kind: "list of int", Default: "[100, 100]", Doc: "widths of the fully connected hidden layers"},
	{Path: "model.dropout", Kind: "list of float", Default: "(zeros, one per hidden layer)", Doc: "dropout after each hidden layer's ReLU, in [0, 1); len = len(hidden)"},
	{Path: "model.heads", Kind: KindString, Default: "shared", Allowed: headKinds, Doc: "one output layer, or one per task (multi-head, task-incremental)"},
	{Path: "model.conv", Kind: "list of conv", Default: "[] (mlp), [{out: 32, kernel: 5, stride: 1, pad: 0, pool: 2}, {out: 64, kernel: 5, stride: 1, pad: 0, pool: 2}] (cnn)", Doc: "cnn: conv -> ReLU -> max-pool blocks; must be empty for mlp"},
	{Path: "model.conv[].out", Kind: KindInt, Default: "(required)", Doc: "output channels"},
	{Path: "model.conv[].kernel", Kind: KindInt, Default: "(required)", Doc: "square kernel size"},
	{Path: "model.conv[].stride", Kind: KindInt, Default: "1", Doc: "convolution stride"},
	{Path: "model.conv[].pad", Kind: KindInt, Default: "0", Doc: "zero padding on each side"},
	{Path: "model.conv[].pool", Kind: KindInt, Default: "1", Doc: "max-pool size and stride (1 = no pooling)"},
	{Path: "model.lora", Kind: "mapping", Doc: "LoRA adapters W = W0 + (alpha/rank) B A on the adapted weights (B starts at 0); absent = none. The LoRA methods need it; other methods run without adapters"},
	{Path: "model.lora.rank", Kind: KindInt, Default: "8 (when model.lora is given)", Doc: "adapter rank r (>= 1)"},
	{Path: "model.lora.alpha", Kind: KindFloat, Default: "8 (when model.lora is given)", Doc: "scale s = alpha / rank (> 0)"},
	{Path: "model.lora.layers", Kind: "list of string", Default: "[] (when model.lora is given)", Doc: "weights to adapt (fc0.weight, conv1.weight, head.weight, ...); empty = every shared weight (trunk and shared head)"},

	{Path: "train", Kind: "mapping", Doc: "rounds and local training"},
	{Path: "train.rounds_per_task", Kind: KindInt, Default: "5", Doc: "communication rounds per task"},
	{Path: "train.clients_per_round", Kind: KindInt, Default: "5", Doc: "clients sampled each round (<= partition.clients)"},
	{Path: "train.local_epochs", Kind: KindInt, Default: "1", Doc: "local epochs per round"},
	{Path: "train.local_steps", Kind: KindInt, Default: "0", Doc: "> 0: exactly that many local SGD steps per round instead of local_epochs epochs (batches continue the epoch shuffles; FedSVD paper: 10 steps of batch 128)"},
	{Path: "train.batch_size", Kind: KindInt, Default: "64", Doc: "local mini-batch size"},
	{Path: "train.lr", Kind: KindFloat, Default: "0.01", Doc: "client SGD learning rate (> 0)"},
	{Path: "train.weight_decay", Kind: KindFloat, Default: "0", Doc: "L2 weight decay (>= 0)"},
	{Path: "train.momentum", Kind: KindFloat, Default: "0", Doc: "SGD momentum in [0, 1)"},
	{Path: "train.weighting", Kind: KindString, Default: "uniform", Allowed: weightings, Doc: "aggregation weights: uniform mean (FOT code) or n_k/n (FedAvg paper)"},
	{Path: "train.server_lr", Kind: KindFloat, Default: "1", Doc: "server learning rate applied to the aggregate (> 0)"},
	{Path: "train.workers", Kind: KindInt, Default: "0", Doc: "training goroutines per client host; 0 = runtime.NumCPU(), filled in when loading (results do not depend on it)"},
	{Path: "train.deadline", Kind: "duration", Default: "0s", Doc: "how long the server waits for updates each round (Go duration: 30s, 1m30s); 0 = wait for all"},
	{Path: "train.max_update_norm", Kind: KindFloat, Default: "0", Doc: "the server rejects client updates whose delta has a larger L2 norm (and so any larger value); 0 = 1000, about 300 times the largest honest update of the built-in scenarios"},

	{Path: "pretrain", Kind: "mapping", Doc: "train the base model on the first tasks before the methods' own training (e.g. a base for LoRA fine-tuning)"},
	{Path: "pretrain.tasks", Kind: KindInt, Default: "0", Doc: "leading tasks that train every base parameter (adapters stay at B = 0); they stay rows and columns of the accuracy matrix; < data.tasks"},
	{Path: "pretrain.epochs", Kind: KindInt, Default: "1", Doc: "central mode: epochs over each pretraining task's training data"},
	{Path: "pretrain.lr", Kind: KindFloat, Default: "0", Doc: "pretraining learning rate; 0 = train.lr"},
	{Path: "pretrain.mode", Kind: KindString, Default: "central", Allowed: pretrainModes, Doc: "central: one learner with all of the task's training data; federated: plain FedAvg rounds with the train: settings"},

	{Path: "dp", Kind: "mapping", Doc: "example-level DP-SGD on every client (docs/ALGORITHMS.md 5); a method's dp_epsilon option overrides dp.epsilon"},
	{Path: "dp.epsilon", Kind: KindFloat, Default: "0", Doc: "target epsilon of each client over the whole run; 0 or .inf = DP off. sigma is calibrated per client for the steps it is scheduled to take"},
	{Path: "dp.delta", Kind: KindFloat, Default: "1e-05", Doc: "target delta, in (0, 1)"},
	{Path: "dp.clip", Kind: KindFloat, Default: "2", Doc: "L2 norm C each per-sample gradient (over all trained tensors together) is clipped to"},

	{Path: "eval", Kind: "mapping", Doc: "evaluation"},
	{Path: "eval.every", Kind: KindInt, Default: "5", Doc: "also evaluate every N rounds; 0 = only at task ends"},
	{Path: "eval.batch_size", Kind: KindInt, Default: "1000", Doc: "evaluation batch size"},

	{Path: "transport", Kind: "mapping", Doc: "message bus"},
	{Path: "transport.nats", Kind: KindString, Default: "embedded", Doc: `"embedded" (in-process NATS server), a nats:// or tls:// URL, or several comma-separated (a cluster's nodes: a connection moves to another node when its node goes away)`},
	{Path: "transport.timeout", Kind: "duration", Default: "0s", Doc: "external NATS: how long a connection may stay down while it reconnects before the run ends with an error naming the URL, and how long the server waits without any update before it sends the round again to the clients it has not heard from; 0 = 30s; else at least 100ms"},

	{Path: "fot", Kind: "mapping", Doc: "FOT settings; a fot method's own options override them"},
	{Path: "fot.epsilon", Kind: KindFloat, Default: "0.96", Doc: "GPSE energy threshold in (0, 1] (paper: 0.96 IID, 0.94 non-IID PMNIST)"},
	{Path: "fot.eps_inc", Kind: KindFloat, Default: "0", Doc: "added to epsilon after each task, in [0, 1)"},
	{Path: "fot.criterion", Kind: KindString, Default: "fot", Allowed: criteria, Doc: "fot (ratio rule of the paper) or gpm (squared ratio, Saha et al. 2021)"},
	{Path: "fot.sketch", Kind: KindString, Default: "uniform", Allowed: sketches, Doc: "GPSE random matrix: uniform U[-1,1] (MLP setting) or gaussian N(0,1) (conv setting)"},
	{Path: "fot.oversample", Kind: KindInt, Default: "1", Doc: "sketch width m = oversample x d_in (paper: 1 for MLPs, 5 for conv nets)"},
	{Path: "fot.gpse_dropout", Kind: KindBool, Default: "true", Doc: "run the GPSE pass in training mode (earlier dropouts active), as the authors' MLP code"},
	{Path: "fot.gpse_samples", Kind: KindInt, Default: "0", Doc: "samples per client in the GPSE pass (its first rows of the task); 0 = all, as the paper; conv nets see one column per patch, so a few hundred keeps the sketch affordable"},

	{Path: "system", Kind: "mapping", Doc: "system heterogeneity (README: System heterogeneity); absent = every client online and reporting, no virtual deadline. Every draw is from a named stream of the seed"},
	{Path: "system.availability", Kind: KindFloat, Default: "1 (when system is given)", Doc: "probability in (0, 1] that a client is online in a round; the server samples clients_per_round among the online clients (all of them if fewer)"},
	{Path: "system.dropout", Kind: KindFloat, Default: "0 (when system is given)", Doc: "probability in [0, 1) that a selected client fails before reporting"},
	{Path: "system.speed", Kind: "mapping", Doc: "distribution of the clients' relative compute speeds, one draw per client"},
	{Path: "system.speed.dist", Kind: KindString, Default: "constant (when system is given)", Allowed: speedDists, Doc: "constant: every speed 1; lognormal: exp(sigma N(0,1)); uniform: U[min, max]"},
	{Path: "system.speed.sigma", Kind: KindFloat, Default: "0.5 (when system is given)", Doc: "lognormal: sigma (>= 0)"},
	{Path: "system.speed.min", Kind: KindFloat, Default: "0.5 (when system is given)", Doc: "uniform: smallest speed (> 0)"},
	{Path: "system.speed.max", Kind: KindFloat, Default: "2 (when system is given)", Doc: "uniform: largest speed (>= min)"},
	{Path: "system.deadline", Kind: KindFloat, Default: "0 (when system is given)", Doc: "virtual time budget of a round in epochs at speed 1: a client's round takes (epochs of its local data it processes: local_epochs, or local_steps x batch_size / its samples) / speed; clients over it are late and not asked to train; 0 = none"},
	{Path: "system.quorum", Kind: KindInt, Default: "1 (when system is given)", Doc: "fewest updates a round aggregates (<= clients_per_round); a round with fewer is skipped: the model is unchanged, the round counts"},

	{Path: "secagg", Kind: "mapping", Doc: "secure aggregation (package secagg: pairwise masks, Shamir-shared seeds): the server sees only the sum of the clients' weighted deltas and, on FOT's sketch rounds, of their GPSE sketches; absent = aggregation in the clear. Methods whose server reads individual updates refuse it"},
	{Path: "secagg.ring", Kind: KindString, Default: "default (when secagg is given)", Allowed: rings, Doc: "fixed-point ring: default = Z_2^64, 32 fractional bits, 8 bytes a value, error <= k 2^-33 per value; compact = Z_2^32, 16 fractional bits, clip +-256, at most 127 clients, 4 bytes a value"},
	{Path: "secagg.threshold", Kind: KindInt, Default: "0 (when secagg is given)", Doc: "Shamir threshold t: a round survives k - t dropouts of its k clients; 0 = max(2, k/2+1); system.dropout must leave t clients on average"},
}

// Reference returns the documentation of every scenario key in schema order: its path
// (list items as "model.conv[].out"), kind, default and meaning. Blocks (mappings) are
// included with an empty Default.
func Reference() []KeyDoc {
	out := slices.Clone(reference)
	for i := range out {
		out[i].Allowed = slices.Clone(out[i].Allowed)
	}
	return out
}

// ReferenceMarkdown renders Reference and Methods as Markdown tables, for the README
// and `fotsim list`.
func ReferenceMarkdown() string {
	var b strings.Builder
	b.WriteString("| key | default | meaning |\n|---|---|---|\n")
	for _, k := range reference {
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", k.Path, mdDefault(k.Default), mdDoc(k))
	}
	b.WriteString("\n| method | options | summary |\n|---|---|---|\n")
	for _, mi := range Methods() {
		opts := make([]string, len(mi.Options))
		for i, o := range mi.Options {
			opts[i] = fmt.Sprintf("`%s` (%s, default %s)", o.Path, o.Kind, o.Default)
		}
		if len(opts) == 0 {
			opts = []string{"none"}
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", mi.Name, strings.Join(opts, ", "), mi.Summary)
	}
	for _, o := range commonOptions {
		fmt.Fprintf(&b, "| (every method) | `%s` (%s, default %s) | %s |\n", o.Path, o.Kind, o.Default, strings.ReplaceAll(o.Doc, "|", `\|`))
	}
	return b.String()
}

func mdDefault(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

func mdDoc(k KeyDoc) string {
	doc := k.Doc
	if len(k.Allowed) > 0 {
		doc += " (one of: " + strings.Join(k.Allowed, ", ") + ")"
	}
	return strings.ReplaceAll(doc, "|", `\|`)
}
