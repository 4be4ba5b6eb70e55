package stream

import (
	"os"
	"strings"
	"testing"
)

// TestDocExamplesCompile keeps the SQL examples of docs/rules.md valid.
func TestDocExamplesCompile(t *testing.T) {
	b, err := os.ReadFile("../../../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(b), "```sql\n")[1:] {
		src, _, _ := strings.Cut(block, "```")
		for _, stmt := range strings.Split(src, "\n\n") {
			if strings.TrimSpace(stmt) == "" || !strings.Contains(stmt, "SELECT") {
				continue
			}
			n++
			if _, err := Compile("doc", stmt, Options{}); err != nil {
				t.Errorf("%s\n: %v", stmt, err)
			}
		}
	}
	if n < 6 {
		t.Fatalf("only %d examples found", n)
	}
}
