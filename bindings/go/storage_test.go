package backlite_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// open opens a cache for one test, closed when the test ends.
func open(t *testing.T, path string, opts ...backlite.Option) *backlite.Storage {
	t.Helper()
	s, err := backlite.Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func memory(t *testing.T, opts ...backlite.Option) *backlite.Storage {
	return open(t, ":memory:", opts...)
}

func mustSet(t *testing.T, s *backlite.Storage, key, value string, exp time.Duration) {
	t.Helper()
	if err := s.Set([]byte(key), []byte(value), exp); err != nil {
		t.Fatalf("Set(%q): %v", key, err)
	}
}

func mustGet(t *testing.T, s *backlite.Storage, key string) string {
	t.Helper()
	v, err := s.Get([]byte(key))
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	return string(v)
}

func has(t *testing.T, s *backlite.Storage, key string) bool {
	t.Helper()
	ok, err := s.Contains([]byte(key))
	if err != nil {
		t.Fatalf("Contains(%q): %v", key, err)
	}
	return ok
}

func stats(t *testing.T, s *backlite.Storage) backlite.Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	return st
}

func allKeys(t *testing.T, s *backlite.Storage) []string {
	t.Helper()
	var keys []string
	if err := s.Keys(func(k []byte) bool { keys = append(keys, string(k)); return true }); err != nil {
		t.Fatalf("Keys: %v", err)
	}
	sort.Strings(keys)
	return keys
}

// wantCode checks that err is an *Error of the code, through errors.Is and errors.As.
func wantCode(t *testing.T, err error, sentinel *backlite.Error) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("got %v, want %v", err, sentinel)
	}
	var e *backlite.Error
	if !errors.As(err, &e) || e.Code != sentinel.Code || e.Message == "" {
		t.Fatalf("errors.As(%v): %#v", err, e)
	}
}

func TestVersionOfHeaderAndLibraryAgree(t *testing.T) {
	if backlite.Version() != backlite.HeaderVersion {
		t.Fatalf("library %s, header %s", backlite.Version(), backlite.HeaderVersion)
	}
}

func TestErrorsCarryTheCodeAndMatchTheirSentinelOnly(t *testing.T) {
	s := memory(t)
	_, err := s.Get([]byte("absent"))
	wantCode(t, err, backlite.ErrNotFound)
	if errors.Is(err, backlite.ErrTooLarge) {
		t.Fatal("a not-found error matched ErrTooLarge")
	}
	wrapped := fmt.Errorf("loading: %w", err)
	if !errors.Is(wrapped, backlite.ErrNotFound) {
		t.Fatal("a wrapped error lost its code")
	}
	if got := backlite.CodeNotFound.String(); got == "" {
		t.Fatal("no text for CodeNotFound")
	}
	if backlite.ErrBusy.Error() == "" || backlite.Code(99).String() == "" {
		t.Fatal("empty error text")
	}
}

func TestOptionsAreApplied(t *testing.T) {
	s := memory(t,
		backlite.WithMaxSize(1000),
		backlite.WithEvictionPolicy(backlite.FirstInFirstOut),
		backlite.WithDefaultExpiration(time.Hour),
		backlite.WithBusyTimeout(250*time.Millisecond),
		backlite.WithVersionTag("v1"))
	if st := stats(t, s); st.MaxSize != 1000 {
		t.Fatalf("MaxSize %d", st.MaxSize)
	}
	mustSet(t, s, "k", "v", backlite.ExpireDefault)
	_, ttl, err := s.GetWithTTL([]byte("k"))
	if err != nil || ttl <= 0 || ttl > time.Hour {
		t.Fatalf("ttl %v, err %v", ttl, err)
	}
}

func TestBadOptionsFailOpenWithInvalidArgument(t *testing.T) {
	for name, opt := range map[string]backlite.Option{
		"max size 0":         backlite.WithMaxSize(0),
		"max size 2^63":      backlite.WithMaxSize(1 << 63),
		"policy 99":          backlite.WithEvictionPolicy(99),
		"expiration 0":       backlite.WithDefaultExpiration(0),
		"expiration -5s":     backlite.WithDefaultExpiration(-5 * time.Second),
		"busy timeout -1s":   backlite.WithBusyTimeout(-time.Second),
		"busy timeout 1000d": backlite.WithBusyTimeout(1000 * 24 * time.Hour),
		"tag with NUL":       backlite.WithVersionTag("a\x00b"),
		"file threshold 0":   backlite.WithFileThreshold(0),
		"file threshold -2":  backlite.WithFileThreshold(-2),
	} {
		s, err := backlite.Open(":memory:", opt)
		if s != nil {
			s.Close()
		}
		if !errors.Is(err, backlite.ErrInvalidArgument) {
			t.Errorf("%s: got %v", name, err)
		}
	}
}

func TestEvictionPolicyNames(t *testing.T) {
	for p := backlite.LeastRecentlyUsed; p <= backlite.LastInFirstOut; p++ {
		back, err := backlite.ParseEvictionPolicy(p.String())
		if err != nil || back != p {
			t.Errorf("%v: %v, %v", p, back, err)
		}
	}
	if _, err := backlite.ParseEvictionPolicy("most-popular"); !errors.Is(err, backlite.ErrInvalidArgument) {
		t.Fatalf("got %v", err)
	}
}

func TestOpenCreatesTheFileAndValuesOutliveTheHandle(t *testing.T) {
	db := filepath.Join(t.TempDir(), "cache.db")
	s, err := backlite.Open(db)
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "k", "v", backlite.ExpireNever)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(db); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, open(t, db), "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
}

func TestOpenRefusesWhatIsNotACache(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "notes.txt")
	content := []byte("not a cache, just some text that is long enough to be recognised\n")
	if err := os.WriteFile(text, content, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := backlite.Open(text)
	wantCode(t, err, backlite.ErrNotACache)
	if after, _ := os.ReadFile(text); !bytes.Equal(after, content) {
		t.Fatal("the file was modified")
	}
	_, err = backlite.Open(dir)
	wantCode(t, err, backlite.ErrIO)
	_, err = backlite.Open(filepath.Join(dir, "missing", "cache.db"))
	wantCode(t, err, backlite.ErrIO)
	_, err = backlite.Open("a\x00b")
	wantCode(t, err, backlite.ErrInvalidArgument)
}

func TestAnotherVersionTagDropsEveryEntry(t *testing.T) {
	db := filepath.Join(t.TempDir(), "tagged.db")
	s := open(t, db, backlite.WithVersionTag("1"))
	mustSet(t, s, "k", "v", backlite.ExpireDefault)
	s.Close()
	if !has(t, open(t, db, backlite.WithVersionTag("1")), "k") {
		t.Fatal("the same tag lost the entry")
	}
	if has(t, open(t, db, backlite.WithVersionTag("2")), "k") {
		t.Fatal("another tag kept the entry")
	}
}

func TestSetThenGet(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "greeting", "hello", time.Minute)
	if got := mustGet(t, s, "greeting"); got != "hello" {
		t.Fatalf("got %q", got)
	}
	// The result is the caller's copy.
	v, _ := s.Get([]byte("greeting"))
	v[0] = 'J'
	if got := mustGet(t, s, "greeting"); got != "hello" {
		t.Fatalf("got %q", got)
	}
}

func TestBinaryEmptyAndNilKeysAndValuesRoundTrip(t *testing.T) {
	s := memory(t)
	key, value := []byte("k\x00ey"), []byte{0, 0xff, 1, 0}
	if err := s.Set(key, value, backlite.ExpireDefault); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(key); !bytes.Equal(got, value) {
		t.Fatalf("got %v", got)
	}
	if err := s.Set(nil, []byte("the empty key"), backlite.ExpireDefault); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, ""); got != "the empty key" {
		t.Fatalf("got %q", got)
	}
	if err := s.Set([]byte("empty"), nil, backlite.ExpireDefault); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get([]byte("empty")); err != nil || got == nil || len(got) != 0 {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestExpirations(t *testing.T) {
	s := memory(t, backlite.WithDefaultExpiration(time.Hour))
	mustSet(t, s, "never", "v", backlite.ExpireNever)
	mustSet(t, s, "default", "v", backlite.ExpireDefault)
	mustSet(t, s, "minute", "v", time.Minute)
	mustSet(t, s, "nanosecond", "v", time.Nanosecond) // rounds up to 1 ms
	for key, want := range map[string]func(time.Duration) bool{
		"never":   func(d time.Duration) bool { return d == backlite.ExpireNever },
		"default": func(d time.Duration) bool { return d > time.Minute && d <= time.Hour },
		"minute":  func(d time.Duration) bool { return d > 0 && d <= time.Minute },
	} {
		_, ttl, err := s.GetWithTTL([]byte(key))
		if err != nil || !want(ttl) {
			t.Errorf("%s: ttl %v, err %v", key, ttl, err)
		}
	}
	wantCode(t, s.Set([]byte("k"), []byte("v"), -time.Second), backlite.ErrInvalidArgument)
}

// An entry set from C, Zig or the CLI may have more time left than a time.Duration
// holds (about 292 years): GetWithTTL and Reader.TTL gave the wrapped product of its
// milliseconds, a negative Duration (-170 years for 1,000 years left), as if expired
// long ago. It is the largest Duration.
func TestATimeLeftBeyondTheLargestDurationIsTheLargestDuration(t *testing.T) {
	s := memory(t)
	const thousandYears = 1000 * 365 * 24 * int64(time.Hour/time.Millisecond)
	if err := s.SetMS([]byte("k"), []byte("v"), thousandYears); err != nil {
		t.Fatal(err)
	}
	if _, ttl, err := s.GetWithTTL([]byte("k")); err != nil || ttl != math.MaxInt64 {
		t.Errorf("GetWithTTL: ttl %v, err %v; want %v", ttl, err, time.Duration(math.MaxInt64))
	}
	r, err := s.OpenReader([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.TTL() != math.MaxInt64 {
		t.Errorf("Reader.TTL: %v; want %v", r.TTL(), time.Duration(math.MaxInt64))
	}
}

func TestATooLargeValueFailsAndRemovesTheOlderValue(t *testing.T) {
	s := memory(t, backlite.WithMaxSize(10))
	mustSet(t, s, "k", "small", backlite.ExpireDefault)
	wantCode(t, s.Set([]byte("k"), []byte("eleven byte"), backlite.ExpireDefault), backlite.ErrTooLarge)
	if has(t, s, "k") {
		t.Fatal("the older value survived")
	}
}

func TestSetManyWritesAllWithTheirExpirations(t *testing.T) {
	s := memory(t)
	err := s.SetMany([]backlite.Entry{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("b"), Value: []byte("2"), Expiration: time.Minute},
		{Key: []byte("c"), Value: []byte("3"), Expiration: backlite.ExpireNever},
		{Key: nil, Value: nil},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := allKeys(t, s); !slices.Equal(got, []string{"", "a", "b", "c"}) {
		t.Fatalf("keys %q", got)
	}
	if _, ttl, _ := s.GetWithTTL([]byte("b")); ttl <= 0 || ttl > time.Minute {
		t.Fatalf("ttl %v", ttl)
	}
	if err := s.SetMany(nil); err != nil {
		t.Fatal(err)
	}
}

func TestSetManyIsAllOrNothing(t *testing.T) {
	s := memory(t, backlite.WithMaxSize(4))
	err := s.SetMany([]backlite.Entry{
		{Key: []byte("a"), Value: []byte("1")},
		{Key: []byte("b"), Value: []byte("12345")},
	})
	wantCode(t, err, backlite.ErrTooLarge)
	if st := stats(t, s); st.Count != 0 {
		t.Fatalf("count %d", st.Count)
	}
	err = s.SetMany([]backlite.Entry{{Key: []byte("a"), Value: []byte("1"), Expiration: -time.Hour}})
	wantCode(t, err, backlite.ErrInvalidArgument)
}

func TestDeleteReportsAMissingEntry(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "k", "v", backlite.ExpireDefault)
	if err := s.Delete([]byte("k")); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Delete([]byte("k")), backlite.ErrNotFound)
}

func TestContainsIsNotAnAccess(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "k", "v", backlite.ExpireDefault)
	if !has(t, s, "k") || has(t, s, "absent") {
		t.Fatal("wrong answers")
	}
	if st := stats(t, s); st.Hits != 0 || st.Misses != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestKeysVisitsLiveKeysUntilFalse(t *testing.T) {
	s := memory(t)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireDefault)
	}
	if got := allKeys(t, s); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("keys %q", got)
	}
	visited := 0
	if err := s.Keys(func([]byte) bool { visited++; return visited < 2 }); err != nil {
		t.Fatal(err)
	}
	if visited != 2 {
		t.Fatalf("visited %d", visited)
	}
}

func TestKeysVisitorMayUseTheStorage(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "a", "1", backlite.ExpireDefault)
	mustSet(t, s, "b", "2", backlite.ExpireDefault)
	err := s.Keys(func(k []byte) bool {
		v, err := s.Get(k)
		if err == nil {
			err = s.Set(append([]byte("copy-"), k...), v, backlite.ExpireDefault)
		}
		return err == nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if mustGet(t, s, "copy-a") != "1" || mustGet(t, s, "copy-b") != "2" {
		t.Fatal("copies missing")
	}
}

func TestAPanickingVisitorStopsTheWalkAndPanicsInTheCaller(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "a", "1", backlite.ExpireDefault)
	mustSet(t, s, "b", "2", backlite.ExpireDefault)
	visited := 0
	func() {
		defer func() {
			if p := recover(); p != "visitor broke" {
				t.Fatalf("recovered %v", p)
			}
		}()
		s.Keys(func([]byte) bool { visited++; panic("visitor broke") })
		t.Fatal("Keys returned")
	}()
	if visited != 1 {
		t.Fatalf("visited %d", visited)
	}
	if got := allKeys(t, s); len(got) != 2 {
		t.Fatalf("keys %q", got)
	}
}

func TestAllRangesOverTheKeys(t *testing.T) {
	s := memory(t)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireDefault)
	}
	var got []string
	for k, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(k))
		if len(got) == 2 {
			break
		}
	}
	if len(got) != 2 {
		t.Fatalf("got %q", got)
	}
	s.Close()
	for _, err := range s.All() {
		if !errors.Is(err, backlite.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	}
}

// t.Fatal or t.FailNow in the body of a range over All ends the goroutine
// (runtime.Goexit), which skipped the C frames of the key walk the body ran in, when
// it ran inside it: the library's connection pool was left pointing into their stack
// (AddressSanitizer: a stack-use-after-return in the next walk).
func TestAnAllLoopEndedByGoexitLeavesTheStorageWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s := open(t, path)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireDefault)
	}
	for i := 0; i < 8; i++ {
		done := make(chan struct{})
		go func() {
			defer close(done)
			for range s.All() {
				runtime.Goexit() // what t.FailNow does
			}
		}()
		<-done
	}
	mustSet(t, s, "d", "v", backlite.ExpireDefault)
	if got := allKeys(t, s); len(got) != 4 {
		t.Fatalf("keys %q", got)
	}
	var got []string
	for k, err := range s.All() {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(k))
	}
	if len(got) != 4 {
		t.Fatalf("All: %q", got)
	}
	if err := s.Vacuum(); err != nil {
		t.Fatal(err)
	}
}

// A panic in the body of a range over All continues in its caller, and the walk ends.
func TestAPanicInAnAllLoopContinuesInItsCaller(t *testing.T) {
	s := memory(t)
	for _, k := range []string{"a", "b", "c"} {
		mustSet(t, s, k, "v", backlite.ExpireDefault)
	}
	visited := 0
	func() {
		defer func() {
			if p := recover(); p != "body broke" {
				t.Fatalf("recovered %v", p)
			}
		}()
		for range s.All() {
			visited++
			panic("body broke")
		}
	}()
	if visited != 1 {
		t.Fatalf("visited %d", visited)
	}
	if got := allKeys(t, s); len(got) != 3 {
		t.Fatalf("keys %q", got)
	}
}

func TestClearRemovesEverything(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "a", "1", backlite.ExpireDefault)
	mustSet(t, s, "b", "2", backlite.ExpireDefault)
	if err := s.Clear(); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Count != 0 || st.TotalSize != 0 {
		t.Fatalf("%+v", st)
	}
}

func TestStatsCountEntriesSizesHitsMissesAndEvictions(t *testing.T) {
	s := memory(t, backlite.WithMaxSize(7), backlite.WithEvictionPolicy(backlite.LeastRecentlyUsed))
	mustSet(t, s, "a", "123", backlite.ExpireDefault)
	mustSet(t, s, "b", "4567", backlite.ExpireDefault)
	mustGet(t, s, "a")
	mustGet(t, s, "a")
	s.Get([]byte("absent"))
	st := stats(t, s)
	if st != (backlite.Stats{Count: 2, TotalSize: 7, MaxSize: 7, Hits: 2, Misses: 1}) {
		t.Fatalf("%+v", st)
	}
	mustSet(t, s, "c", "8", backlite.ExpireDefault) // evicts b, the least recently used
	if got := allKeys(t, s); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("keys %q", got)
	}
	if st := stats(t, s); st.Evictions != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestCloseIsFinalAndIdempotent(t *testing.T) {
	s, err := backlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get([]byte("k"))
	if !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("got %v", err)
	}
	for _, err := range []error{
		s.Set([]byte("k"), nil, 0), s.SetMany([]backlite.Entry{{}}), s.Delete(nil), s.Clear(),
		s.Keys(func([]byte) bool { return true }), s.GetTo([]byte("k"), io.Discard),
		// Nothing to store, but the Storage is closed all the same (it said nil).
		s.SetMany(nil),
	} {
		if !errors.Is(err, backlite.ErrClosed) {
			t.Fatalf("got %v", err)
		}
	}
	if _, err := s.Contains(nil); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("got %v", err)
	}
	if _, err := s.Stats(); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := s.GetWithTTL([]byte("k")); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("GetWithTTL: got %v", err)
	}
	if _, err := s.Cached([]byte("k"), func() ([]byte, error) { return nil, nil }); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("Cached: got %v", err)
	}
	pairs := 0
	for key, err := range s.All() {
		pairs++
		if key != nil || !errors.Is(err, backlite.ErrClosed) {
			t.Fatalf("All: got %q, %v", key, err)
		}
	}
	if pairs != 1 {
		t.Fatalf("All after Close gave %d pairs, want the error alone", pairs)
	}
}

func TestCloseFromACallbackWaitsForTheCallInProgress(t *testing.T) {
	s, err := backlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "a", "1", backlite.ExpireDefault)
	mustSet(t, s, "b", "2", backlite.ExpireDefault)
	var during []error
	err = s.Keys(func(k []byte) bool {
		s.Close()
		_, err := s.Get(k)
		during = append(during, err)
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(during) != 2 || !errors.Is(during[0], backlite.ErrClosed) {
		t.Fatalf("got %v", during)
	}
}

// openFiles counts this process's descriptors open on path (Linux).
func openFiles(t *testing.T, path string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && target == path {
			n++
		}
	}
	return n
}

func TestAForgottenStorageIsClosedByItsFinalizer(t *testing.T) {
	db := filepath.Join(t.TempDir(), "forgotten.db")
	func() {
		s, err := backlite.Open(db)
		if err != nil {
			t.Fatal(err)
		}
		mustSet(t, s, "k", "v", backlite.ExpireDefault)
	}()
	if openFiles(t, db) == 0 {
		t.Fatal("the open handle holds no descriptor on its file")
	}
	// Finalizers run on their own goroutine after a collection: poll, with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for openFiles(t, db) > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the forgotten Storage was not closed")
		}
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if got := mustGet(t, open(t, db), "k"); got != "v" {
		t.Fatalf("got %q", got)
	}
}

// useUntilClosed makes calls of every kind on s until one fails with ErrClosed (nil),
// or with another error than ErrNotFound (that error), counting those that did not.
func useUntilClosed(s *backlite.Storage, g int, ops *atomic.Int64) error {
	for i := 0; ; i++ {
		key := []byte(fmt.Sprintf("g%d-%d", g, i%8))
		want := bytes.Repeat(key, 1+i%2*400) // in the database, then in a file
		var err error
		switch i % 7 {
		case 0:
			err = s.Set(key, want, backlite.ExpireNever)
		case 1:
			var got []byte
			if got, err = s.Get(key); err == nil && !bytes.HasPrefix(got, key) {
				err = fmt.Errorf("Get(%s) = %q", key, got)
			}
		case 2:
			_, err = s.Cached(key, func() ([]byte, error) { return want, nil })
		case 3:
			var r *backlite.Reader
			if r, err = s.OpenReader(key); err == nil {
				_, err = io.Copy(io.Discard, r)
				r.Close()
			}
		case 4:
			for _, e := range s.All() {
				if e != nil {
					err = e
				}
			}
		case 5:
			err = s.GetTo(key, io.Discard)
		case 6:
			_, err = s.Stats()
		}
		switch {
		case errors.Is(err, backlite.ErrClosed):
			return nil
		case err != nil && !errors.Is(err, backlite.ErrNotFound):
			return err
		}
		ops.Add(1)
	}
}

func TestCloseWhile64GoroutinesUseTheStorageEndsEachWithErrClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "closing.db")
	s, err := backlite.Open(path, backlite.WithFileThreshold(1024))
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, 64) // each goroutine's unexpected error
	var ops atomic.Int64
	var wg sync.WaitGroup
	for g := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[g] = useUntilClosed(s, g, &ops)
		}()
	}
	// Close while every goroutine is busy: once each has made calls, on average.
	for deadline := time.Now().Add(time.Minute); ops.Load() < int64(len(errs))*20 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for g, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", g, err)
		}
	}
	// The file is whole: every value stored is its key repeated.
	again := open(t, path)
	for k, err := range again.All() {
		if err != nil {
			t.Fatal(err)
		}
		if v := mustGet(t, again, string(k)); !bytes.HasPrefix([]byte(v), k) || len(v)%len(k) != 0 {
			t.Fatalf("%s = %q", k, v)
		}
	}
}

func TestEightGoroutinesShareOneStorage(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "goroutines.db"))
	const goroutines, keys = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < keys; i++ {
				key := []byte(fmt.Sprintf("g%d-%d", g, i))
				want := append(slices.Clone(key), "-value"...)
				if err := s.Set(key, want, backlite.ExpireDefault); err != nil {
					errs <- err
					return
				}
				if got, err := s.Get(key); err != nil || !bytes.Equal(got, want) {
					errs <- fmt.Errorf("Get(%s) = %q, %v", key, got, err)
					return
				}
				if i%2 == 1 {
					if err := s.Delete(key); err != nil {
						errs <- err
						return
					}
				}
				if i%25 == 0 {
					if err := s.Keys(func([]byte) bool { return true }); err != nil {
						errs <- err
						return
					}
					if _, err := s.Stats(); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if st := stats(t, s); st.Count != goroutines*keys/2 {
		t.Fatalf("count %d", st.Count)
	}
}

// chunkRecorder is an io.Writer that keeps what it is given and its largest write.
type chunkRecorder struct {
	bytes.Buffer
	largest int
	fail    error
}

func (c *chunkRecorder) Write(p []byte) (int, error) {
	if c.fail != nil {
		return 0, c.fail
	}
	c.largest = max(c.largest, len(p))
	return c.Buffer.Write(p)
}

func bigValue(n int) []byte {
	v := make([]byte, n)
	for i := range v {
		v[i] = byte(i*131 + 7)
	}
	return v
}

func TestGetToWritesALargeValueInBoundedChunks(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"))
	big := bigValue(3*256*1024 + 5)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	var out chunkRecorder
	if err := s.GetTo([]byte("big"), &out); err != nil {
		t.Fatalf("GetTo: %v", err)
	}
	if !bytes.Equal(out.Bytes(), big) || out.largest > 256*1024 {
		t.Fatalf("got %d bytes (largest write %d), want %d", out.Len(), out.largest, len(big))
	}
	if err := s.GetTo([]byte("missing"), &out); !errors.Is(err, backlite.ErrNotFound) {
		t.Fatalf("GetTo of a miss: %v, want ErrNotFound", err)
	}
}

func TestGetToReturnsTheWritersError(t *testing.T) {
	s := memory(t)
	if err := s.Set([]byte("k"), bigValue(600*1024), backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	full := errors.New("disk full")
	if err := s.GetTo([]byte("k"), &chunkRecorder{fail: full}); err != full {
		t.Fatalf("GetTo: %v, want the writer's error", err)
	}
}

// shortWriter breaks io.Writer's contract: it takes at most 1000 bytes and reports no
// error.
type shortWriter struct{ bytes.Buffer }

func (w *shortWriter) Write(p []byte) (int, error) { return w.Buffer.Write(p[:min(len(p), 1000)]) }

// A writer that takes fewer bytes than it is given without an error is
// io.ErrShortWrite, as io.Copy makes it (and Reader.WriteTo): never a nil error over a
// copy that lost bytes.
func TestGetToOfAShortWriteIsErrShortWrite(t *testing.T) {
	s := memory(t)
	if err := s.Set([]byte("k"), bigValue(600*1024), backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	var w shortWriter
	if err := s.GetTo([]byte("k"), &w); err != io.ErrShortWrite {
		t.Fatalf("GetTo: %v after %d bytes, want io.ErrShortWrite", err, w.Len())
	}
}

func TestNewReaderReadsTheValueAndAMissIsErrNotFound(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"))
	big := bigValue(1<<20 + 3)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	r := s.NewReader([]byte("big"))
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("ReadAll: %d bytes, %v", len(got), err)
	}
	miss := s.NewReader([]byte("missing"))
	if _, err := io.ReadAll(miss); !errors.Is(err, backlite.ErrNotFound) {
		t.Fatalf("ReadAll of a miss: %v, want ErrNotFound", err)
	}
	miss.Close()
	// Closing early ends the read.
	early := s.NewReader([]byte("big"))
	buf := make([]byte, 10)
	if _, err := io.ReadFull(early, buf); err != nil || !bytes.Equal(buf, big[:10]) {
		t.Fatalf("ReadFull: %v", err)
	}
	early.Close()
}

// A value found damaged only after chunks were handed over (a byte of its file's last
// chunk changed) is an error of the reader, ErrNotFound, never an early end of file:
// io.ReadAll must not return a short value as if it were whole.
func TestNewReaderOfAValueDamagedAtItsEndIsErrNotFound(t *testing.T) {
	db := filepath.Join(t.TempDir(), "c.db")
	s := open(t, db, backlite.WithFileThreshold(4096))
	big := bigValue(1<<20 + 3)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	names, err := filepath.Glob(filepath.Join(db+".values", "v*.blv"))
	if err != nil || len(names) != 1 {
		t.Fatalf("value files: %v, %v", names, err)
	}
	f, err := os.OpenFile(names[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := f.Stat()
	if _, err := f.WriteAt([]byte{big[len(big)-1] ^ 1}, info.Size()-valueRecordLen-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err := io.ReadAll(s.NewReader([]byte("big")))
	if !errors.Is(err, backlite.ErrNotFound) || len(got) >= len(big) {
		t.Fatalf("ReadAll of a damaged value: %d of %d bytes, %v; want ErrNotFound", len(got), len(big), err)
	}
	if valueFiles(t, db) != 0 {
		t.Fatal("the damaged value's file is still there")
	}
	if _, err := s.Get([]byte("big")); !errors.Is(err, backlite.ErrNotFound) {
		t.Fatalf("Get after: %v, want ErrNotFound", err)
	}
}

// valueRecordLen is the length of the record (magic, length, CRC-32) that follows a
// value in its file (format 2, v2-*.blv).
const valueRecordLen = 24

// valueFiles counts the value files (v2-*.blv, and v-*.blv of format 1) in the cache's
// folder.
func valueFiles(t *testing.T, db string) int {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(db+".values", "v*.blv"))
	if err != nil {
		t.Fatal(err)
	}
	return len(names)
}

func TestAValueAboveTheFileThresholdLivesInAFileAndReadsBack(t *testing.T) {
	db := filepath.Join(t.TempDir(), "c.db")
	s := open(t, db, backlite.WithFileThreshold(4096))
	small, large := bigValue(4095), bigValue(300*1024)
	if err := s.Set([]byte("small"), small, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	if n := valueFiles(t, db); n != 0 {
		t.Fatalf("%d value files after a value below the threshold", n)
	}
	if err := s.Set([]byte("large"), large, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	if n := valueFiles(t, db); n != 1 {
		t.Fatalf("%d value files after a value above the threshold, want 1", n)
	}
	for key, want := range map[string][]byte{"small": small, "large": large} {
		got, err := s.Get([]byte(key))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("Get(%q): %d bytes, %v", key, len(got), err)
		}
	}
	streamed, err := io.ReadAll(s.NewReader([]byte("large")))
	if err != nil || !bytes.Equal(streamed, large) {
		t.Fatalf("NewReader: %d bytes, %v", len(streamed), err)
	}
	if err := s.Delete([]byte("large")); err != nil {
		t.Fatal(err)
	}
	if n := valueFiles(t, db); n != 0 {
		t.Fatalf("%d value files after the delete", n)
	}

	never := filepath.Join(t.TempDir(), "never.db")
	n := open(t, never, backlite.WithFileThreshold(backlite.FileThresholdNever))
	if err := n.Set([]byte("large"), large, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(never + ".values"); !os.IsNotExist(err) {
		t.Fatalf("FileThresholdNever made a folder: %v", err)
	}
}

// A positive busy timeout is rounded up to whole milliseconds, as expirations are: a
// timeout under a millisecond was truncated to 0, which the library takes as "do not
// wait at all" (ErrBusy at once on any lock held elsewhere).
func TestABusyTimeoutUnderAMillisecondStillWaits(t *testing.T) {
	for d, want := range map[time.Duration]uint32{
		0:                                 0,
		time.Nanosecond:                   1,
		999 * time.Microsecond:            1,
		time.Millisecond:                  1,
		1500 * time.Microsecond:           2,
		250 * time.Millisecond:            250,
		math.MaxUint32 * time.Millisecond: math.MaxUint32,
	} {
		got, err := backlite.BusyTimeoutMS(d)
		if err != nil || got != want {
			t.Errorf("WithBusyTimeout(%v) gives %d ms (%v), want %d", d, got, err, want)
		}
	}
	for _, d := range []time.Duration{-time.Nanosecond, math.MaxUint32*time.Millisecond + 1, math.MaxInt64} {
		if _, err := backlite.BusyTimeoutMS(d); !errors.Is(err, backlite.ErrInvalidArgument) {
			t.Errorf("WithBusyTimeout(%v): %v", d, err)
		}
	}
	s, err := backlite.Open(":memory:", backlite.WithBusyTimeout(500*time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// A lease length is rounded up to whole milliseconds, as busy timeouts and expirations
// are: truncated, 1.5 ms was a lease of 1 ms (shorter than asked) and 999 µs refused.
func TestALeaseLengthIsRoundedUpToWholeMilliseconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{
		time.Nanosecond:         1,
		999 * time.Microsecond:  1,
		time.Millisecond:        1,
		1500 * time.Microsecond: 2,
		30 * time.Second:        30000,
		math.MaxInt64:           math.MaxInt64/int64(time.Millisecond) + 1,
	} {
		got, err := backlite.LeaseMS(d)
		if err != nil || got != want {
			t.Errorf("WithLeaseLength(%v) gives %d ms (%v), want %d", d, got, err, want)
		}
	}
	for _, d := range []time.Duration{0, -time.Nanosecond, math.MinInt64} {
		if _, err := backlite.LeaseMS(d); !errors.Is(err, backlite.ErrInvalidArgument) {
			t.Errorf("WithLeaseLength(%v): %v", d, err)
		}
	}
	s, err := backlite.Open(":memory:", backlite.WithLeaseLength(500*time.Microsecond))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}
