package backlite_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

func TestLifetimeStatsCountEveryHandleOfTheFileAndSurviveReopening(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	before := time.Now().Add(-time.Second)
	a := open(t, path)
	mustSet(t, a, "k", "v", backlite.ExpireNever)
	mustGet(t, a, "k")
	if _, err := a.Get([]byte("missing")); !errors.Is(err, backlite.ErrNotFound) {
		t.Fatalf("Get of a key never set: %v, want ErrNotFound", err)
	}
	b := open(t, path)
	mustGet(t, b, "k")
	if err := a.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	c := open(t, path)
	got, err := c.LifetimeStats()
	if err != nil {
		t.Fatalf("LifetimeStats: %v", err)
	}
	if got.Hits != 2 || got.Misses != 1 || got.Evictions != 0 || got.Expirations != 0 {
		t.Fatalf("LifetimeStats = %+v, want 2 hits and 1 miss from two closed handles", got)
	}
	if got.Since.Before(before) || got.Since.After(time.Now()) {
		t.Fatalf("Since = %v, want the file's creation (after %v)", got.Since, before)
	}
	if s := stats(t, c); s.Hits != 0 || s.Misses != 0 {
		t.Fatalf("a new handle's own Stats = %+v, want no hits or misses", s)
	}
}

func TestZeroStatsStartsTheLifetimeCountersAgain(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"))
	mustSet(t, s, "k", "v", backlite.ExpireNever)
	mustGet(t, s, "k")
	first, err := s.LifetimeStats()
	if err != nil {
		t.Fatalf("LifetimeStats: %v", err)
	}
	if err := s.ZeroStats(); err != nil {
		t.Fatalf("ZeroStats: %v", err)
	}
	got, err := s.LifetimeStats()
	if err != nil {
		t.Fatalf("LifetimeStats: %v", err)
	}
	if got.Hits != 0 || got.Misses != 0 || got.Since.Before(first.Since) {
		t.Fatalf("after ZeroStats: %+v (before: %+v), want zero counts and a later Since", got, first)
	}
	if own := stats(t, s); own.Hits != 1 {
		t.Fatalf("the handle's own Stats after ZeroStats = %+v, want its hit kept", own)
	}
}

func TestLifetimeStatsOfAClosedStorageIsAnError(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.LifetimeStats(); err == nil {
		t.Fatal("LifetimeStats on a closed Storage succeeded")
	}
	if err := s.ZeroStats(); err == nil {
		t.Fatal("ZeroStats on a closed Storage succeeded")
	}
}
