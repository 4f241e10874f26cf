package main

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fotsim/fotsim/methods"
)

const module = "github.com/fotsim/fotsim/"

// layer ranks the project's packages as docs/DESIGN.md draws them: a
// package imports only packages of a lower rank; the libraries (rank 0)
// also import each other. server and client share a rank, so neither
// imports the other; their test-support packages (clienttest, servertest)
// sit above them, beside methods, so neither imports the other either.
// auth (message signatures) is a library: protocol, server and client
// import it, and it imports none of the project's packages.
var layer = map[string]int{
	"cmd/fotsim":        6,
	"sim":               5,
	"scenarios":         4,
	"methods":           3,
	"client/clienttest": 3,
	"server/servertest": 3,
	"server":            2,
	"client":            2,
	"protocol":          1,
	"auth":              0,
}

func rank(pkg string) int { return layer[pkg] } // libraries: 0

type listedPackage struct {
	ImportPath                         string
	Imports, TestImports, XTestImports []string
	Deps                               []string
}

func listPackages(t *testing.T) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json", "../../...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

func TestLayersImportDownward(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		from := strings.TrimPrefix(p.ImportPath, module)
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, "github.com/nats-io/") && from != "transport" {
				t.Errorf("%s imports %s: only transport talks to NATS", from, imp)
			}
			if !strings.HasPrefix(imp, module) {
				continue
			}
			to := strings.TrimPrefix(imp, module)
			if from == "auth" {
				t.Errorf("auth imports %s: it is a leaf (the standard library only)", to)
			}
			if r, s := rank(from), rank(to); s > r || (s == r && r > 0) {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports must point down", from, r, to, s)
			}
		}
		// server and client, and the test-support packages of each, never
		// depend on the other side.
		if o, ok := map[string]string{
			"server": "client", "client": "server",
			"server/servertest": "client", "client/clienttest": "server",
		}[from]; ok {
			other := module + o
			for _, list := range [][]string{p.Deps, p.TestImports, p.XTestImports} {
				for _, d := range list {
					if d == other {
						t.Errorf("%s depends on %s (directly, transitively or in its tests)", from, d)
					}
				}
			}
		}
	}
}

// TestNoMethodNameBranches fails if code outside the methods registry
// branches on a method's name: a name (or a name's prefix such as
// "central-") compared with ==/!=, used as a case, or passed to
// strings.HasPrefix/HasSuffix/Contains/EqualFold.
func TestNoMethodNameBranches(t *testing.T) {
	names := methods.Names()
	isName := func(e ast.Expr, prefix bool) bool {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return false
		}
		s, err := strconv.Unquote(lit.Value)
		if err != nil || s == "" {
			return false
		}
		for _, n := range names {
			if s == n || (prefix && strings.HasPrefix(n, s)) {
				return true
			}
		}
		return false
	}
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir("../..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "methods" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "../.." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BinaryExpr:
				if (n.Op == token.EQL || n.Op == token.NEQ) && (isName(n.X, false) || isName(n.Y, false)) {
					t.Errorf("%s: compares with a method name; use the registry (methods.Spec)", fset.Position(n.Pos()))
				}
			case *ast.CaseClause:
				for _, e := range n.List {
					if isName(e, false) {
						t.Errorf("%s: case on a method name; use the registry (methods.Spec)", fset.Position(e.Pos()))
					}
				}
			case *ast.CallExpr:
				if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "strings" {
						switch sel.Sel.Name {
						case "HasPrefix", "HasSuffix", "Contains", "EqualFold":
							for _, a := range n.Args {
								if isName(a, true) {
									t.Errorf("%s: strings.%s on a method name; use the registry (methods.Spec)", fset.Position(a.Pos()), sel.Sel.Name)
								}
							}
						}
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d files, want the whole tree", checked)
	}
}
