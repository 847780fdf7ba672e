package backlite_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// withoutHanging runs call and fails the test if it has not returned within a minute. A
// guard only: a test that hangs says nothing. No duration is asserted.
func withoutHanging(t *testing.T, what string, call func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		call()
	}()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%s: still waiting after a minute (a deadlock)", what)
	}
}

// A Cached with WithLock(l), called from inside a compute that a Cached holding l runs
// (the same key, another key, or through another Storage), would wait for l, which its
// own caller holds: a sync.Mutex is not reentrant, so it waited for ever. It returns
// ErrCallbackFailed (a lock that failed, as the C contract answers it) without running
// its compute; the outer call goes on and releases l.
func TestCachedWithTheLockItsOwnComputeHoldsFailsInsteadOfWaitingForItself(t *testing.T) {
	s := memory(t)
	for _, tc := range []struct {
		name  string
		inner *backlite.Storage
		key   string
	}{
		{"the same key", s, "outer"},
		{"another key", s, "inner"},
		{"another Storage", memory(t), "outer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			var innerErr error
			innerComputed := false
			var v []byte
			var err error
			withoutHanging(t, "a nested Cached with the same lock", func() {
				v, err = s.Cached([]byte("outer"), func() ([]byte, error) {
					_, innerErr = tc.inner.Cached([]byte(tc.key), func() ([]byte, error) {
						innerComputed = true
						return []byte("inner"), nil
					}, backlite.WithLock(&mu))
					return []byte("outer value"), nil
				}, backlite.WithLock(&mu))
			})
			if !errors.Is(innerErr, backlite.ErrCallbackFailed) || innerComputed {
				t.Fatalf("inner call: %v, computed %v; want ErrCallbackFailed, not computed", innerErr, innerComputed)
			}
			if err != nil || string(v) != "outer value" {
				t.Fatalf("outer call = %q, %v", v, err)
			}
			if !mu.TryLock() {
				t.Fatal("the lock is still held after the outer call returned")
			}
			mu.Unlock()
			_ = s.Delete([]byte("outer"))
		})
	}
}

// Deeper: the call that holds the lock is two computes up, with another lock between.
// Other lockers are taken as ever, and so is the same one once its holder has returned.
func TestCachedWithALockHeldFurtherUpFailsAndOtherLocksAreTaken(t *testing.T) {
	s := memory(t)
	var a, b sync.Mutex
	var deepest error
	withoutHanging(t, "a Cached two computes below the holder of its lock", func() {
		_, err := s.Cached([]byte("1"), func() ([]byte, error) {
			return s.Cached([]byte("2"), func() ([]byte, error) {
				_, deepest = s.Cached([]byte("3"), func() ([]byte, error) { return []byte("3"), nil }, backlite.WithLock(&a))
				return []byte("2"), nil
			}, backlite.WithLock(&b))
		}, backlite.WithLock(&a))
		if err != nil {
			t.Errorf("outer calls: %v", err)
		}
	})
	if !errors.Is(deepest, backlite.ErrCallbackFailed) {
		t.Fatalf("the innermost call = %v; want ErrCallbackFailed", deepest)
	}
	if got := mustGet(t, s, "2"); got != "2" {
		t.Fatalf("the middle call, under another lock, stored %q", got)
	}
	v, err := s.Cached([]byte("3"), func() ([]byte, error) { return []byte("later"), nil }, backlite.WithLock(&a))
	if err != nil || string(v) != "later" {
		t.Fatalf("once released, the lock is taken again: %q, %v", v, err)
	}
}
