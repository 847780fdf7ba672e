package backlite_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"testing"

	backlite "github.com/backlite/backlite/bindings/go"
)

// The policy values are checked against the header at compile time (options.go); their
// names live only in the header's doc comments, so this test reads them from there.
func TestEvictionPolicyNamesAreTheHeaders(t *testing.T) {
	dir := os.Getenv("BACKLITE_INCLUDE_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "include")
	}
	header, err := os.ReadFile(filepath.Join(dir, "backlite.h"))
	if err != nil {
		t.Fatal(err)
	}
	// A doc comment opening with the quoted name, then `#define BACKLITE_EVICTION_POLICY_X n`.
	re := regexp.MustCompile(`/\*\*\s*\n\s*\*\s*"([a-z-]+)"(?:[^*]|\*[^/])*\*/\s*#define BACKLITE_EVICTION_POLICY_\w+ (\d+)`)
	found := re.FindAllSubmatch(header, -1)
	if len(found) == 0 {
		t.Fatal("no BACKLITE_EVICTION_POLICY_* with a quoted name found in the header")
	}
	sort.Slice(found, func(i, j int) bool {
		a, _ := strconv.Atoi(string(found[i][2]))
		b, _ := strconv.Atoi(string(found[j][2]))
		return a < b
	})
	if got, want := int(backlite.LastInFirstOut)+1, len(found); got != want {
		t.Fatalf("the package has %d policies, the header %d", got, want)
	}
	for _, m := range found {
		value, _ := strconv.Atoi(string(m[2]))
		p := backlite.EvictionPolicy(value)
		if p.String() != string(m[1]) {
			t.Errorf("policy %d: the header names it %q, the package %q", value, m[1], p.String())
		}
	}
}
