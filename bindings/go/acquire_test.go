package backlite_test

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// The two-phase lease of the C API (backlite_lease_try_acquire, _extend, _fulfill,
// _abandon), for code that waits its own way, as C++'s try_acquire and Zig's
// tryAcquire give it: a miss gives a Lease, another handle finds the key held (with
// the holder's time left), Fulfill stores, and then the key is a hit.
func TestTryAcquireGivesALeaseThatOthersFindHeldUntilItIsFulfilled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	one, two := open(t, path), open(t, path)
	value, lease, err := one.TryAcquire([]byte("k"), 10*time.Second)
	if err != nil || value != nil || lease == nil {
		t.Fatalf("a miss: TryAcquire = %q, %v, %v; want a lease", value, lease, err)
	}
	_, other, err := two.TryAcquire([]byte("k"), 10*time.Second)
	wantCode(t, err, backlite.ErrLeaseHeld)
	var e *backlite.Error
	if errors.As(err, &e); other != nil || e.LeaseTimeLeft <= 0 || e.LeaseTimeLeft > 10*time.Second {
		t.Fatalf("held: lease %v, time left %v", other, e.LeaseTimeLeft)
	}
	if err := lease.Extend(20 * time.Second); err != nil {
		t.Fatalf("Extend: %v", err)
	}
	if err := lease.Fulfill([]byte("computed"), backlite.ExpireNever); err != nil {
		t.Fatalf("Fulfill: %v", err)
	}
	value, other, err = two.TryAcquire([]byte("k"), 10*time.Second)
	if err != nil || other != nil || !bytes.Equal(value, []byte("computed")) {
		t.Fatalf("after Fulfill: TryAcquire = %q, %v, %v; want the value", value, other, err)
	}
	// A hit of an empty value is a hit: a non-nil empty value, no lease.
	mustSet(t, one, "empty", "", backlite.ExpireNever)
	if value, other, err := one.TryAcquire([]byte("empty"), time.Second); err != nil || other != nil || value == nil || len(value) != 0 {
		t.Fatalf("a hit of an empty value: %q (nil %v), %v, %v", value, value == nil, other, err)
	}
	// A released Lease: Extend and Fulfill say so, Abandon does nothing.
	wantCode(t, lease.Extend(time.Second), backlite.ErrNullParameter)
	wantCode(t, lease.Fulfill([]byte("again"), backlite.ExpireNever), backlite.ErrNullParameter)
	lease.Abandon()
	if got := mustGet(t, two, "k"); got != "computed" {
		t.Fatalf("Get = %q", got)
	}
}

func TestAnAbandonedLeaseLetsTheNextCallerComputeAndBadLengthsAreRefused(t *testing.T) {
	s := memory(t)
	_, lease, err := s.TryAcquire([]byte("k"), time.Minute)
	if err != nil || lease == nil {
		t.Fatalf("TryAcquire: %v, %v", lease, err)
	}
	lease.Abandon()
	lease.Abandon() // twice is harmless
	_, next, err := s.TryAcquire([]byte("k"), time.Minute)
	if err != nil || next == nil {
		t.Fatalf("after Abandon: %v, %v; want a lease", next, err)
	}
	defer next.Abandon()
	for _, d := range []time.Duration{0, -time.Second} {
		_, _, err := s.TryAcquire([]byte("other"), d)
		wantCode(t, err, backlite.ErrInvalidArgument)
		wantCode(t, next.Extend(d), backlite.ErrInvalidArgument)
	}
	// Rounded up, as every duration: a lease under a millisecond is one of 1 ms.
	if _, l, err := s.TryAcquire([]byte("short"), time.Microsecond); err != nil || l == nil {
		t.Fatalf("TryAcquire(1us): %v, %v", l, err)
	} else {
		l.Abandon()
	}
	if err := next.Fulfill([]byte("v"), -5*time.Second); !errors.Is(err, backlite.ErrInvalidArgument) {
		t.Fatalf("Fulfill with a bad expiration = %v", err)
	}
	// That Fulfill stored nothing and kept the lease: it can still be fulfilled.
	if err := next.Fulfill([]byte("v"), backlite.ExpireNever); err != nil {
		t.Fatalf("Fulfill: %v", err)
	}
	if got := mustGet(t, s, "k"); got != "v" {
		t.Fatalf("Get = %q", got)
	}
}

// A lease whose deadline passed is taken over by the next caller; the first owner's
// Fulfill then stores nothing: ErrLeaseLost.
func TestALeaseTakenOverIsLost(t *testing.T) {
	s := memory(t)
	_, first, err := s.TryAcquire([]byte("k"), time.Millisecond)
	if err != nil || first == nil {
		t.Fatalf("TryAcquire: %v, %v", first, err)
	}
	time.Sleep(20 * time.Millisecond) // past its deadline (later is as good)
	_, second, err := s.TryAcquire([]byte("k"), time.Minute)
	if err != nil || second == nil {
		t.Fatalf("after the deadline: %v, %v; want the lease", second, err)
	}
	wantCode(t, first.Fulfill([]byte("stale"), backlite.ExpireNever), backlite.ErrLeaseLost)
	if err := second.Fulfill([]byte("fresh"), backlite.ExpireNever); err != nil {
		t.Fatalf("Fulfill: %v", err)
	}
	if got := mustGet(t, s, "k"); got != "fresh" {
		t.Fatalf("Get = %q", got)
	}
}

// A Lease stays valid after its Storage is closed; TryAcquire on a closed one is
// ErrClosed.
func TestALeaseOutlivesItsStorage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cache.db")
	s, err := backlite.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	_, lease, err := s.TryAcquire([]byte("k"), time.Minute)
	if err != nil || lease == nil {
		t.Fatalf("TryAcquire: %v, %v", lease, err)
	}
	s.Close()
	if _, _, err := s.TryAcquire([]byte("k"), time.Minute); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("TryAcquire after Close = %v", err)
	}
	if err := lease.Fulfill([]byte("v"), backlite.ExpireNever); err != nil {
		t.Fatalf("Fulfill after Close: %v", err)
	}
	if got := mustGet(t, open(t, path), "k"); got != "v" {
		t.Fatalf("Get = %q", got)
	}
}
