package backlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// A memoised recursion with the same key, through the ctx its compute was given, on the
// same Storage or on another one of the same file (the lease is the file's): the inner
// call computes at once and stores nothing, the outer one stores its value. Before, the
// inner call waited for the key's lease, its own caller's, which the library renews:
// for ever under context.Background(), here until the guard's deadline.
func TestACallOfTheKeyBeingComputedFromInsideItsComputeComputesAtOnce(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "c.db")
	if err := os.Symlink(db, filepath.Join(dir, "link.db")); err != nil {
		t.Fatal(err)
	}
	a := open(t, db)
	others := map[string]*backlite.Storage{
		"the same Storage":                 a,
		"another Storage of the same file": open(t, db),
		"the same file through a link":     open(t, filepath.Join(dir, "link.db")),
	}
	for name, inner := range others {
		t.Run(name, func(t *testing.T) {
			key := []byte("fib " + name)
			// A guard only: a test that hangs says nothing. No duration is asserted.
			guard, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			var innerValue []byte
			var innerErr error
			v, err := a.CachedContext(guard, key, func(ctx context.Context) ([]byte, error) {
				innerValue, innerErr = inner.CachedContext(ctx, key, func(context.Context) ([]byte, error) {
					return []byte("inner"), nil
				})
				return []byte("outer"), nil
			})
			if err != nil || string(v) != "outer" {
				t.Fatalf("outer call = %q, %v; want outer", v, err)
			}
			if innerErr != nil || string(innerValue) != "inner" {
				t.Fatalf("inner call of the key being computed = %q, %v; want inner, computed at once", innerValue, innerErr)
			}
			if got := mustGet(t, a, string(key)); got != "outer" {
				t.Fatalf("stored %q; want the outer call's value", got)
			}
		})
	}
}

// A goroutine the compute starts keeps its ctx after the compute has returned: its
// calls of the key are then memoised as any other (a hit), not computed at once.
func TestAfterItsComputeReturnedACallWithItsContextIsMemoisedAsAnyOther(t *testing.T) {
	s := memory(t)
	var kept context.Context
	if _, err := s.CachedContext(context.Background(), []byte("k"), func(ctx context.Context) ([]byte, error) {
		kept = ctx
		return []byte("stored"), nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := s.CachedContext(kept, []byte("k"), func(context.Context) ([]byte, error) {
		return []byte("computed again"), nil
	})
	if err != nil || string(v) != "stored" {
		t.Fatalf("a call with the ctx of a compute that returned = %q, %v; want the stored value", v, err)
	}
}
