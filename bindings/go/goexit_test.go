package backlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"

	backlite "github.com/backlite/backlite/bindings/go"
)

// goexitIn runs f on a goroutine of its own and reports whether f ended by
// runtime.Goexit (what t.FailNow and t.SkipNow do) rather than by returning.
func goexitIn(f func()) (exited bool) {
	done := make(chan bool)
	go func() {
		returned := false
		defer func() { done <- !returned }()
		f()
		returned = true
	}()
	return <-done
}

// t.Fatal, t.FailNow and t.SkipNow end the goroutine with runtime.Goexit, and a test
// calls them inside a compute, a key visitor, a writer or a lock as anywhere else. Goexit skips C
// frames without running them down: from inside the C call it left the library with a
// read snapshot or a connection held by frames that no longer existed (ASan: a
// stack-use-after-return in the next backlite_storage_free; a WithLock mutex left
// held). Those callbacks run on the calling goroutine outside the C call, so Goexit
// ends the caller as it would anywhere, and the storage stays whole.
func TestGoexitInACallbackEndsTheCallerAndLeavesTheStorageWhole(t *testing.T) {
	s := open(t, t.TempDir()+"/c.db", backlite.WithFileThreshold(backlite.FileThresholdNever))
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireNever)
	}
	big := bytes.Repeat([]byte("x"), 600<<10)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	l := &countingLocker{}
	cases := map[string]func(){
		"compute": func() {
			_, _ = s.Cached([]byte("k"), func() ([]byte, error) { runtime.Goexit(); return nil, nil })
		},
		"compute with a lock": func() {
			_, _ = s.Cached([]byte("k"), func() ([]byte, error) { runtime.Goexit(); return nil, nil }, backlite.WithLock(&mu))
		},
		"writer": func() { _ = s.GetTo([]byte("big"), goexitWriter{}) },
		"lock": func() {
			_, _ = s.Cached([]byte("k"), func() ([]byte, error) { return []byte("v"), nil }, backlite.WithLock(goexitLocker{}))
		},
	}
	for round := 0; round < 4; round++ {
		for name, f := range cases {
			if !goexitIn(f) {
				t.Fatalf("%s: the call returned after its callback called runtime.Goexit", name)
			}
			if has(t, s, "k") {
				t.Fatalf("%s: a value was stored", name)
			}
			if !mu.TryLock() {
				t.Fatalf("%s: the lock was left held", name)
			}
			mu.Unlock()
			// Every kind of call still works, on every connection of the handle.
			if got := allKeys(t, s); len(got) != 4 {
				t.Fatalf("%s: keys %q", name, got)
			}
			var out bytes.Buffer
			if err := s.GetTo([]byte("big"), &out); err != nil || out.Len() != len(big) {
				t.Fatalf("%s: GetTo: %d bytes, %v", name, out.Len(), err)
			}
			if v, err := s.Cached([]byte("j"), func() ([]byte, error) { return []byte("w"), nil }, backlite.WithLock(l)); err != nil || string(v) != "w" {
				t.Fatalf("%s: Cached: %q, %v", name, v, err)
			}
			if err := s.Delete([]byte("j")); err != nil {
				t.Fatalf("%s: Delete: %v", name, err)
			}
		}
	}
	// No read snapshot was left open: the file can be rebuilt.
	if err := s.Vacuum(); err != nil {
		t.Fatalf("Vacuum: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// An unlock that calls Goexit ends the caller too, after the value is stored.
func TestGoexitInAnUnlockEndsTheCallerAfterTheValueIsStored(t *testing.T) {
	s := memory(t)
	l := &goexitUnlocker{}
	if !goexitIn(func() {
		_, _ = s.Cached([]byte("k"), func() ([]byte, error) { return []byte("v"), nil }, backlite.WithLock(l))
	}) {
		t.Fatal("Cached returned after its unlock called runtime.Goexit")
	}
	if !l.mu.TryLock() {
		t.Fatal("the lock was left held")
	}
	if got := mustGet(t, s, "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
	if got := allKeys(t, s); len(got) != 1 {
		t.Fatalf("keys %q", got)
	}
}

// t.SkipNow (a Goexit) in a compute ends the (sub)test that called Cached: the compute
// runs on the test's goroutine, as testing requires of FailNow and SkipNow.
func TestSkipNowInAComputeSkipsTheTest(t *testing.T) {
	s := memory(t)
	var sub *testing.T
	after := false
	t.Run("skipped", func(st *testing.T) {
		sub = st
		_, _ = s.Cached([]byte("k"), func() ([]byte, error) { st.SkipNow(); return nil, nil })
		after = true
	})
	if !sub.Skipped() || after {
		t.Fatalf("skipped %v, went on after SkipNow %v", sub.Skipped(), after)
	}
	t.Run("visitor", func(st *testing.T) {
		mustSet(t, s, "a", "v", backlite.ExpireNever)
		sub = st
		_ = s.Keys(func([]byte) bool { st.SkipNow(); return true })
		after = true
	})
	if !sub.Skipped() || after {
		t.Fatalf("visitor: skipped %v, went on after SkipNow %v", sub.Skipped(), after)
	}
	t.Run("writer", func(st *testing.T) {
		mustSet(t, s, "a", "v", backlite.ExpireNever)
		sub = st
		_ = s.GetTo([]byte("a"), skipWriter{st})
		after = true
	})
	if !sub.Skipped() || after {
		t.Fatalf("writer: skipped %v, went on after SkipNow %v", sub.Skipped(), after)
	}
	if v, err := s.Cached([]byte("k"), func() ([]byte, error) { return []byte("v"), nil }); err != nil || string(v) != "v" {
		t.Fatalf("got %q, %v", v, err)
	}
}

type goexitWriter struct{}

func (goexitWriter) Write([]byte) (int, error) { runtime.Goexit(); return 0, errors.New("unreachable") }

type skipWriter struct{ t *testing.T }

func (w skipWriter) Write([]byte) (int, error) { w.t.SkipNow(); return 0, errors.New("unreachable") }

type goexitLocker struct{}

func (goexitLocker) Lock()   { runtime.Goexit() }
func (goexitLocker) Unlock() {}

type goexitUnlocker struct{ mu sync.Mutex }

func (l *goexitUnlocker) Lock() { l.mu.Lock() }
func (l *goexitUnlocker) Unlock() {
	l.mu.Unlock()
	runtime.Goexit()
}

// A key walk of many keys (handed over in batches) shows each live key once, in key
// order, stops at the first false, and Goexit in its visitor on a later batch leaves
// the storage whole too.
func TestKeysShowsEachKeyOnceAcrossBatchesAndStopsAtFalse(t *testing.T) {
	s := open(t, t.TempDir()+"/c.db")
	var entries []backlite.Entry
	for i := 0; i < 1000; i++ {
		entries = append(entries, backlite.Entry{Key: []byte(fmt.Sprintf("k%04d", i)), Value: []byte("v")})
	}
	if err := s.SetMany(entries); err != nil {
		t.Fatal(err)
	}
	var seen []string
	if err := s.Keys(func(k []byte) bool { seen = append(seen, string(k)); return true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 1000 || !slices.IsSorted(seen) || slices.Compact(slices.Clone(seen))[999] != "k0999" {
		t.Fatalf("%d keys, sorted %v", len(seen), slices.IsSorted(seen))
	}
	n := 0
	if err := s.Keys(func([]byte) bool { n++; return n < 700 }); err != nil || n != 700 {
		t.Fatalf("visited %d, %v", n, err)
	}
	n = 0
	if !goexitIn(func() {
		_ = s.Keys(func([]byte) bool {
			n++
			if n == 600 {
				runtime.Goexit()
			}
			return true
		})
	}) || n != 600 {
		t.Fatalf("visited %d", n)
	}
	if got := allKeys(t, s); len(got) != 1000 {
		t.Fatalf("%d keys", len(got))
	}
	if err := s.Vacuum(); err != nil {
		t.Fatal(err)
	}
}

// A key the visitor deletes before its turn is not shown, in the batch being visited
// or a later one; keys it sets are not shown (they came after the walk began).
func TestKeysSkipsAKeyTheVisitorDeletedAndOnesItSets(t *testing.T) {
	s := open(t, t.TempDir()+"/c.db")
	var entries []backlite.Entry
	for i := 0; i < 600; i++ {
		entries = append(entries, backlite.Entry{Key: []byte(fmt.Sprintf("k%04d", i)), Value: []byte("v")})
	}
	if err := s.SetMany(entries); err != nil {
		t.Fatal(err)
	}
	var seen []string
	err := s.Keys(func(k []byte) bool {
		seen = append(seen, string(k))
		if string(k) == "k0000" {
			for _, gone := range []string{"k0001", "k0300", "k0599"} {
				if err := s.Delete([]byte(gone)); err != nil {
					t.Errorf("Delete(%s): %v", gone, err)
				}
			}
		}
		if err := s.Set(append([]byte("new-"), k...), []byte("v"), backlite.ExpireNever); err != nil {
			t.Errorf("Set: %v", err)
		}
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) != 597 || slices.Contains(seen, "k0001") || slices.Contains(seen, "k0300") || slices.Contains(seen, "k0599") {
		t.Fatalf("%d keys seen; k0001 %v, k0300 %v, k0599 %v", len(seen),
			slices.Contains(seen, "k0001"), slices.Contains(seen, "k0300"), slices.Contains(seen, "k0599"))
	}
	for _, k := range seen {
		if len(k) > 3 && k[:4] == "new-" {
			t.Fatalf("a key set during the walk was shown: %s", k)
		}
	}
}
