package backlite_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

var errCompute = errors.New("compute failed")

func TestCachedComputesOnAMissThenAnswersFromTheCache(t *testing.T) {
	s := memory(t)
	calls := 0
	compute := func() ([]byte, error) { calls++; return []byte("42"), nil }
	for i := 0; i < 2; i++ {
		v, err := s.Cached([]byte("answer"), compute)
		if err != nil || string(v) != "42" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d computations", calls)
	}
	if st := stats(t, s); st.Hits != 1 || st.Misses != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestCachedStoresWithTheExpirationGiven(t *testing.T) {
	s := memory(t)
	compute := func() ([]byte, error) { return []byte("v"), nil }
	if _, err := s.Cached([]byte("minute"), compute, backlite.WithExpiration(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if _, ttl, _ := s.GetWithTTL([]byte("minute")); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if _, err := s.Cached([]byte("never"), compute, backlite.WithExpiration(backlite.ExpireNever)); err != nil {
		t.Fatal(err)
	}
	if _, ttl, _ := s.GetWithTTL([]byte("never")); ttl != backlite.ExpireNever {
		t.Fatalf("ttl %v", ttl)
	}
	_, err := s.Cached([]byte("k"), compute, backlite.WithExpiration(-time.Hour))
	wantCode(t, err, backlite.ErrInvalidArgument)
}

func TestCachedReturnsTheComputeErrorAndStoresNothing(t *testing.T) {
	s := memory(t)
	_, err := s.Cached([]byte("k"), func() ([]byte, error) { return nil, errCompute })
	if !errors.Is(err, errCompute) {
		t.Fatalf("got %v", err)
	}
	if has(t, s, "k") {
		t.Fatal("stored after an error")
	}
}

func TestAPanickingComputePanicsInTheCallerAndStoresNothing(t *testing.T) {
	s := memory(t)
	var mu sync.Mutex
	func() {
		defer func() {
			if p := recover(); p != "compute broke" {
				t.Fatalf("recovered %v", p)
			}
		}()
		s.Cached([]byte("k"), func() ([]byte, error) { panic("compute broke") }, backlite.WithLock(&mu))
		t.Fatal("Cached returned")
	}()
	if has(t, s, "k") {
		t.Fatal("stored after a panic")
	}
	if !mu.TryLock() {
		t.Fatal("the lock was left held")
	}
	mu.Unlock()
	// Everything still works.
	if v, err := s.Cached([]byte("k"), func() ([]byte, error) { return []byte("ok"), nil }); err != nil || string(v) != "ok" {
		t.Fatalf("got %q, %v", v, err)
	}
}

// countingLocker records what the library does with it.
type countingLocker struct {
	mu             sync.Mutex
	locks, unlocks int
	panicOnLock    bool
}

func (l *countingLocker) Lock() {
	if l.panicOnLock {
		panic("no lock for you")
	}
	l.mu.Lock()
	l.locks++
}

func (l *countingLocker) Unlock() { l.unlocks++; l.mu.Unlock() }

func TestCachedWithLockLocksOnceAroundAMissOnly(t *testing.T) {
	s := memory(t)
	var l countingLocker
	compute := func() ([]byte, error) { return []byte("v"), nil }
	for i := 0; i < 2; i++ {
		if _, err := s.Cached([]byte("k"), compute, backlite.WithLock(&l)); err != nil {
			t.Fatal(err)
		}
	}
	if l.locks != 1 || l.unlocks != 1 {
		t.Fatalf("%d locks, %d unlocks", l.locks, l.unlocks)
	}
	_, err := s.Cached([]byte("j"), func() ([]byte, error) { return nil, errCompute }, backlite.WithLock(&l))
	if !errors.Is(err, errCompute) || l.locks != 2 || l.unlocks != 2 {
		t.Fatalf("%v: %d locks, %d unlocks", err, l.locks, l.unlocks)
	}
}

func TestAPanickingLockPanicsInTheCallerWithoutComputing(t *testing.T) {
	s := memory(t)
	l := &countingLocker{panicOnLock: true}
	computed := false
	func() {
		defer func() {
			if p := recover(); p != "no lock for you" {
				t.Fatalf("recovered %v", p)
			}
		}()
		s.Cached([]byte("k"), func() ([]byte, error) { computed = true; return nil, nil }, backlite.WithLock(l))
	}()
	if computed || l.unlocks != 0 {
		t.Fatalf("computed %v, %d unlocks", computed, l.unlocks)
	}
}

// panicsInCaller calls f and reports whether it panicked, a panic(nil) included (which
// recover gives as nil under GODEBUG=panicnil=1).
func panicsInCaller(f func()) bool {
	returned := false
	func() {
		defer func() { _ = recover() }()
		f()
		returned = true
	}()
	return !returned
}

// nilPanicLocker panics with a nil value in Lock.
type nilPanicLocker struct{ unlocks int }

func (l *nilPanicLocker) Lock()   { panic(nil) }
func (l *nilPanicLocker) Unlock() { l.unlocks++ }

// panicWriter counts its writes and panics with a nil value in each.
type panicWriter struct{ writes int }

func (w *panicWriter) Write([]byte) (int, error) { w.writes++; panic(nil) }

func TestAPanicWithANilValueInACallbackIsAPanicAsAnyOther(t *testing.T) {
	// recover gives a panic(nil) as nil under GODEBUG=panicnil=1, the default of a main
	// module that declares go 1.20 or older.
	t.Setenv("GODEBUG", "panicnil=1")
	s := memory(t)
	if !panicsInCaller(func() { _, _ = s.Cached([]byte("k"), func() ([]byte, error) { panic(nil) }) }) {
		t.Error("Cached returned after its compute panicked")
	}
	if has(t, s, "k") {
		t.Error("a compute that panicked stored a value")
	}

	l := &nilPanicLocker{}
	computed := false
	compute := func() ([]byte, error) { computed = true; return []byte("v"), nil }
	if !panicsInCaller(func() { _, _ = s.Cached([]byte("k"), compute, backlite.WithLock(l)) }) {
		t.Error("Cached returned after its lock panicked")
	}
	if computed || l.unlocks != 0 || has(t, s, "k") {
		t.Errorf("after a lock that panicked: computed %v, %d unlocks, stored %v", computed, l.unlocks, has(t, s, "k"))
	}

	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireNever)
	}
	visited := 0
	if !panicsInCaller(func() { _ = s.Keys(func([]byte) bool { visited++; panic(nil) }) }) {
		t.Error("Keys returned after its visitor panicked")
	}
	if visited != 1 {
		t.Errorf("the walk went on after its visitor panicked: %d keys visited", visited)
	}

	mustSet(t, s, "big", string(bytes.Repeat([]byte("x"), 600<<10)), backlite.ExpireNever)
	w := &panicWriter{}
	if !panicsInCaller(func() { _ = s.GetTo([]byte("big"), w) }) {
		t.Error("GetTo returned after its writer panicked")
	}
	if w.writes != 1 {
		t.Errorf("the copy went on after its writer panicked: %d writes", w.writes)
	}
}

func TestCachedReturnsAValueTooLargeToStore(t *testing.T) {
	s := memory(t, backlite.WithMaxSize(4))
	v, err := s.Cached([]byte("k"), func() ([]byte, error) { return []byte("much too long"), nil })
	if err != nil || string(v) != "much too long" {
		t.Fatalf("got %q, %v", v, err)
	}
	if has(t, s, "k") {
		t.Fatal("stored")
	}
}

func TestCachedComputeMayUseTheStorage(t *testing.T) {
	s := memory(t)
	v, err := s.Cached([]byte("outer"), func() ([]byte, error) {
		inner, err := s.Cached([]byte("inner"), func() ([]byte, error) { return []byte("nested"), nil })
		return append(inner, '!'), err
	})
	if err != nil || string(v) != "nested!" || mustGet(t, s, "inner") != "nested" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestEightGoroutinesWithAMutexComputeOnce(t *testing.T) {
	s := memory(t)
	var mu sync.Mutex
	var computations atomic.Int32
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v, err := s.Cached([]byte("shared"), func() ([]byte, error) {
				computations.Add(1)
				return []byte("once"), nil
			}, backlite.WithLock(&mu))
			if err != nil || string(v) != "once" {
				t.Errorf("got %q, %v", v, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := computations.Load(); n != 1 {
		t.Fatalf("%d computations", n)
	}
}

// ---- CachedContext ---------------------------------------------------------------------

func TestCachedContextComputesOnceThenHits(t *testing.T) {
	s := memory(t)
	calls := 0
	compute := func(context.Context) ([]byte, error) { calls++; return []byte("v"), nil }
	for i := 0; i < 3; i++ {
		v, err := s.CachedContext(context.Background(), []byte("k"), compute, backlite.WithExpiration(time.Hour))
		if err != nil || string(v) != "v" {
			t.Fatalf("got %q, %v", v, err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d computations", calls)
	}
	if _, ttl, _ := s.GetWithTTL([]byte("k")); ttl <= 0 || ttl > time.Hour {
		t.Fatalf("ttl %v", ttl)
	}
}

func TestCachedContextEightGoroutinesComputeOnceAndShareTheValue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "flight.db"))
	release := make(chan struct{})
	var computations atomic.Int32
	var wg sync.WaitGroup
	results := make([][]byte, 8)
	for g := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
				computations.Add(1)
				<-release // everyone else arrives while this computes
				return []byte("shared"), nil
			})
			if err != nil {
				t.Error(err)
			}
			results[g] = v
		}()
	}
	close(release)
	wg.Wait()
	if n := computations.Load(); n != 1 {
		t.Fatalf("%d computations", n)
	}
	for _, r := range results {
		if string(r) != "shared" {
			t.Fatalf("results %q", results)
		}
	}
	results[0][0] = 'X' // each caller has its own copy
	if string(results[1]) != "shared" {
		t.Fatal("results share memory")
	}
}

func TestCachedContextWaitsAcrossHandlesAndHonoursCancellation(t *testing.T) {
	// Two handles on one file stand for two processes: the second sees the first's
	// lease in the file and polls.
	db := filepath.Join(t.TempDir(), "lease.db")
	a, b := open(t, db), open(t, db)
	computing, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := a.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
			close(computing)
			<-release
			return []byte("from a"), nil
		})
		done <- err
	}()
	<-computing

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.CachedContext(ctx, []byte("k"), func(context.Context) ([]byte, error) {
		t.Error("b computed while a held the lease")
		return nil, nil
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}

	waiting := make(chan []byte)
	go func() {
		v, err := b.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
			return []byte("from b"), nil
		})
		if err != nil {
			t.Error(err)
		}
		waiting <- v
	}()
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if v := <-waiting; string(v) != "from a" {
		t.Fatalf("b got %q", v)
	}
}

func TestCachedContextFailureStoresNothingAndAWaiterTakesOver(t *testing.T) {
	s := memory(t)
	_, err := s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
		return nil, errCompute
	})
	if !errors.Is(err, errCompute) || has(t, s, "k") {
		t.Fatalf("got %v", err)
	}

	// A leader that fails while others wait: one of them computes instead.
	failing, release := make(chan struct{}), make(chan struct{})
	leaderDone := make(chan error)
	go func() {
		_, err := s.CachedContext(context.Background(), []byte("j"), func(context.Context) ([]byte, error) {
			close(failing)
			<-release
			return nil, errCompute
		})
		leaderDone <- err
	}()
	<-failing
	waiterDone := make(chan []byte)
	go func() {
		v, err := s.CachedContext(context.Background(), []byte("j"), func(context.Context) ([]byte, error) {
			return []byte("second try"), nil
		})
		if err != nil {
			t.Error(err)
		}
		waiterDone <- v
	}()
	close(release)
	if err := <-leaderDone; !errors.Is(err, errCompute) {
		t.Fatalf("leader got %v", err)
	}
	if v := <-waiterDone; string(v) != "second try" {
		t.Fatalf("waiter got %q", v)
	}
}

func TestCachedContextPanicAbandonsTheLease(t *testing.T) {
	s := memory(t)
	func() {
		defer func() {
			if p := recover(); p != "compute broke" {
				t.Fatalf("recovered %v", p)
			}
		}()
		s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) { panic("compute broke") })
	}()
	// The lease was given up: the next caller computes at once instead of waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := s.CachedContext(ctx, []byte("k"), func(context.Context) ([]byte, error) { return []byte("ok"), nil })
	if err != nil || string(v) != "ok" {
		t.Fatalf("got %q, %v", v, err)
	}
}

func TestCachedContextComputesOnceWhenComputeOutlivesTheLeaseLength(t *testing.T) {
	db := filepath.Join(t.TempDir(), "renew.db")
	a := open(t, db, backlite.WithLeaseLength(300*time.Millisecond))
	b := open(t, db, backlite.WithLeaseLength(300*time.Millisecond))
	computing := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := a.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
			close(computing)
			time.Sleep(1500 * time.Millisecond) // five lease lengths: the library renews it
			return []byte("from a"), nil
		})
		done <- err
	}()
	<-computing
	v, err := b.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
		return []byte("from b"), nil
	})
	if err != nil || string(v) != "from a" {
		t.Fatalf("b got %q, %v: the lease was taken over while a computed", v, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if st, _ := b.Stats(); st.Misses != 1 {
		t.Fatalf("b counted %d misses for one wait", st.Misses)
	}
}

func TestCachedContextMapsAHeldLeaseToErrLeaseHeldWithItsTimeLeft(t *testing.T) {
	db := filepath.Join(t.TempDir(), "held.db")
	a, b := open(t, db), open(t, db)
	computing, release := make(chan struct{}), make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := a.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
			close(computing)
			<-release
			return []byte("v"), nil
		})
		done <- err
	}()
	<-computing
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := b.CachedContext(ctx, []byte("k"), func(context.Context) ([]byte, error) { return nil, nil })
	var e *backlite.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, backlite.ErrLeaseHeld) ||
		!errors.As(err, &e) || e.LeaseTimeLeft <= 0 || e.LeaseTimeLeft > 30*time.Second {
		t.Fatalf("got %#v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestCachedContextHonoursADoneContextAndBadOptions(t *testing.T) {
	s := memory(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.CachedContext(ctx, []byte("k"), func(context.Context) ([]byte, error) { return nil, nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v", err)
	}
	_, err = backlite.Open(":memory:", backlite.WithLeaseLength(0))
	wantCode(t, err, backlite.ErrInvalidArgument)
	s.Close()
	_, err = s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) { return nil, nil })
	if !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("got %v", err)
	}
}

// holdWriteLock has another process (python3 and its sqlite3 module, as the C tests'
// lock_holder.h) take the write lock of the file at path; the returned func lets it go
// and waits for that process to end.
func holdWriteLock(t *testing.T, path string) (release func()) {
	t.Helper()
	if exec.Command("python3", "-c", "import sqlite3").Run() != nil {
		t.Skip("needs python3 with its sqlite3 module")
	}
	cmd := exec.Command("python3", "-c", `
import sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
con.execute('BEGIN IMMEDIATE')
print('locked', flush=True)
sys.stdin.readline()
con.execute('COMMIT')
`, path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(stdout).ReadString('\n'); line != "locked\n" {
		t.Fatalf("lock holder: %q, %v", line, err)
	}
	return func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("lock holder: %v", err)
		}
	}
}

// A look-up that waits for another process's write lock (up to the busy timeout) is
// waiting too: a context that ends meanwhile ends the call, and the look-up given up
// lets go of the lease it may take, so the next caller computes at once.
func TestCachedContextStopsWaitingForAWriteLockWhenItsContextEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s, err := backlite.Open(path, backlite.WithBusyTimeout(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release := holdWriteLock(t, path)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	compute := func(context.Context) ([]byte, error) { return []byte("computed"), nil }
	_, err = s.CachedContext(ctx, []byte("k"), compute)
	// Before: a minute behind the lock, then ErrBusy.
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, backlite.ErrBusy) {
		t.Fatalf("CachedContext behind a write lock, its context done: %v", err)
	}
	release()
	v, err := s.CachedContext(context.Background(), []byte("k"), compute)
	if err != nil || string(v) != "computed" {
		t.Fatalf("after the lock: %q, %v", v, err)
	}
}

func TestCachedContextReturnsAValueTooLargeToStore(t *testing.T) {
	s := memory(t, backlite.WithMaxSize(4))
	v, err := s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
		return []byte("much too long"), nil
	})
	if err != nil || string(v) != "much too long" {
		t.Fatalf("got %q, %v", v, err)
	}
	if has(t, s, "k") {
		t.Fatal("stored")
	}
}

// An empty value is a non-nil empty slice however CachedContext gets it: computed,
// computed inside its own compute (a recursion), or a hit, as Cached and Get give it.
// The computing call returned the compute's nil as it was and the hits []byte{}, so
// json.Marshal of one cached value gave null the first time and "" after.
func TestCachedContextGivesAnEmptyValueAsTheHitsDo(t *testing.T) {
	s := memory(t)
	empty := func(context.Context) ([]byte, error) { return nil, nil }
	var nested []byte
	computed, err := s.CachedContext(context.Background(), []byte("k"), func(ctx context.Context) ([]byte, error) {
		var err error
		nested, err = s.CachedContext(ctx, []byte("k"), empty)
		return nil, err
	})
	if err != nil {
		t.Fatal(err)
	}
	hit, err := s.CachedContext(context.Background(), []byte("k"), empty)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string][]byte{"computed": computed, "computed inside its compute": nested, "a hit": hit} {
		if v == nil || len(v) != 0 {
			t.Errorf("%s: %#v; want []byte{}, as a hit gives it", name, v)
		}
	}
}

// WithLock is Cached's: CachedContext takes no lock. Given one, it ignored it and
// computed with the lock free, where its caller expected the lock held around the
// compute. It is ErrInvalidArgument, before anything is looked up or computed.
func TestCachedContextRefusesALockItWouldNotTake(t *testing.T) {
	s := memory(t)
	var mu sync.Mutex
	computed := false
	_, err := s.CachedContext(context.Background(), []byte("k"), func(context.Context) ([]byte, error) {
		computed = true
		return []byte("v"), nil
	}, backlite.WithLock(&mu))
	if !errors.Is(err, backlite.ErrInvalidArgument) || computed {
		t.Fatalf("CachedContext with WithLock: %v, computed %v; want ErrInvalidArgument, not computed", err, computed)
	}
	if found, err := s.Contains([]byte("k")); found || err != nil {
		t.Fatalf("Contains after the refused call = %v, %v; want nothing stored", found, err)
	}
}
