package backlite_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	backlite "github.com/backlite/backlite/bindings/go"
)

func TestCheckReportsAHealthyFileAndItsCounts(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"))
	mustSet(t, s, "a", strings.Repeat("v", 10), backlite.ExpireNever)
	mustSet(t, s, "b", strings.Repeat("v", 1000), backlite.ExpireNever)
	mustSet(t, s, "c", strings.Repeat("v", 10), backlite.ExpireNever)
	r, err := s.Check(false)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	want := backlite.CheckReport{
		Healthy: true, IntegrityOK: true, Repaired: false,
		Entries: 3, Damaged: 0, OrphanValues: 0,
		RecordedCount: 3, RecordedTotalSize: 1020,
		ActualCount: 3, ActualTotalSize: 1020,
	}
	if r != want {
		t.Fatalf("Check(false) = %+v, want %+v", r, want)
	}
}

func TestCheckWithRepairOnAHealthyCacheChangesNothing(t *testing.T) {
	s := memory(t)
	mustSet(t, s, "k", "value", backlite.ExpireNever)
	r, err := s.Check(true)
	if err != nil {
		t.Fatalf("Check(true): %v", err)
	}
	if !r.Healthy || r.Repaired {
		t.Fatalf("Check(true) on a healthy cache = %+v, want healthy and not repaired", r)
	}
	if got := mustGet(t, s, "k"); got != "value" {
		t.Fatalf("Get after repair = %q", got)
	}
}

func TestVacuumGivesTheSpaceOfDeletedEntriesBack(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	s := open(t, path)
	big := strings.Repeat("v", 10_000)
	for i := range 200 {
		mustSet(t, s, fmt.Sprintf("k%d", i), big, backlite.ExpireNever)
	}
	if err := s.Clear(); err != nil {
		t.Fatalf("Clear: %v", err)
	}
	if err := s.Vacuum(); err != nil {
		t.Fatalf("Vacuum: %v", err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() >= 100_000 {
		t.Fatalf("the file is still %d bytes after Vacuum", fi.Size())
	}
	if wal, err := os.Stat(path + "-wal"); err == nil && wal.Size() != 0 {
		t.Fatalf("the write-ahead log is %d bytes after Vacuum, want 0", wal.Size())
	}
	mustSet(t, s, "after", "v", backlite.ExpireNever)
	if got := mustGet(t, s, "after"); got != "v" {
		t.Fatalf("Get after Vacuum = %q", got)
	}
}

func TestCheckAndVacuumAfterCloseReturnErrClosed(t *testing.T) {
	s, err := backlite.Open(":memory:")
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := s.Check(false); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("Check after Close: %v, want ErrClosed", err)
	}
	if err := s.Vacuum(); !errors.Is(err, backlite.ErrClosed) {
		t.Fatalf("Vacuum after Close: %v, want ErrClosed", err)
	}
}
