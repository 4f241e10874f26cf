package scenarios

import (
	"os"
	"strings"
	"testing"
)

// The README's scenario reference is the code's: every key and every
// method with its options appears there exactly as Reference and Methods
// describe it.
func TestReadmeDocumentsEveryKey(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, line := range strings.Split(strings.TrimSpace(ReferenceMarkdown()), "\n") {
		if !strings.Contains(readme, line) {
			t.Errorf("README lacks the reference line:\n%s\n(regenerate the table from scenarios.ReferenceMarkdown)", line)
		}
	}
}
