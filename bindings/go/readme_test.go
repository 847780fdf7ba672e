package backlite_test

import (
	"os"
	"strings"
	"testing"
)

// normalize drops indentation and blank lines, so that a block of the README and the
// same code inside a function compare equal.
func normalize(code string) string {
	var out []string
	for _, line := range strings.Split(code, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func TestReadmeExampleIsExampleOpen(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "## Example\n\n```go\n")
	block, _, closed := strings.Cut(after, "\n```")
	if !ok || !closed {
		t.Fatal("README.md: no ```go block under ## Example")
	}
	source, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, ok := strings.Cut(string(source), "func ExampleOpen() {")
	body, _, _ = strings.Cut(body, "\n}\n")
	if !ok || !strings.Contains(normalize(body), normalize(block)) {
		t.Fatal("the README's example is not the body of ExampleOpen in example_test.go: copy one to the other")
	}
}
