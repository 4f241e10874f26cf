package scenarios

import (
	"flag"
	"os"
	"strings"
	"testing"
)

var updateReadme = flag.Bool("update-readme", false, "rewrite the README's scenario reference from the code")

const (
	refBegin = "<!-- scenario-reference:begin (generated: go test ./scenarios -run Readme -update-readme) -->\n"
	refEnd   = "<!-- scenario-reference:end -->\n"
)

// The README's scenario reference is the code's: the block between the
// markers is exactly ReferenceMarkdown().
func TestReadmeDocumentsEveryKey(t *testing.T) {
	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	i, j := strings.Index(readme, refBegin), strings.Index(readme, refEnd)
	if i < 0 || j < i {
		t.Fatalf("README lacks the reference markers %q ... %q", refBegin, refEnd)
	}
	want := strings.TrimSpace(ReferenceMarkdown()) + "\n"
	got := readme[i+len(refBegin) : j]
	if got == want {
		return
	}
	if *updateReadme {
		if err := os.WriteFile(path, []byte(readme[:i+len(refBegin)]+want+readme[j:]), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the README's scenario reference is out of date: run go test ./scenarios -run Readme -update-readme")
}
