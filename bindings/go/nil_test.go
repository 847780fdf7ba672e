package backlite_test

import (
	"context"
	"errors"
	"io"
	"testing"

	backlite "github.com/backlite/backlite/bindings/go"
)

// A nil *Storage, a nil compute, visitor, writer or context: an error naming the
// mistake, never a nil-pointer panic (a C caller's NULL is NULL_PARAMETER, not a crash).
func TestNilArgumentsAreErrorsNotPanics(t *testing.T) {
	s := memory(t)
	calls := map[string]func() error{
		"Cached(nil compute)": func() error {
			_, err := s.Cached([]byte("k"), nil)
			return err
		},
		"CachedContext(nil compute)": func() error {
			_, err := s.CachedContext(context.Background(), []byte("k"), nil)
			return err
		},
		"CachedContext(nil ctx)": func() error {
			_, err := s.CachedContext(nil, []byte("k"), func(context.Context) ([]byte, error) {
				return []byte("v"), nil
			})
			return err
		},
		"Keys(nil visitor)": func() error { return s.Keys(nil) },
		"GetTo(nil writer)": func() error {
			mustSet(t, s, "present", "v", backlite.ExpireNever)
			return s.GetTo([]byte("present"), nil)
		},
		"Reader.WriteTo(nil writer)": func() error {
			mustSet(t, s, "present", "v", backlite.ExpireNever)
			r, err := s.OpenReader([]byte("present"))
			if err != nil {
				return err
			}
			defer r.Close()
			_, err = r.WriteTo(nil)
			return err
		},
	}
	for name, call := range calls {
		var err error
		func() {
			defer func() {
				if p := recover(); p != nil {
					t.Errorf("%s panicked: %v", name, p)
				}
			}()
			err = call()
		}()
		if !errors.Is(err, backlite.ErrInvalidArgument) {
			t.Errorf("%s = %v, want ErrInvalidArgument", name, err)
		}
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, backlite.ErrNotFound) {
		t.Errorf("a refused Cached stored something: Get = %v", err)
	}
}

func TestANilStorageIsClosed(t *testing.T) {
	var s *backlite.Storage
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("a method of a nil *Storage panicked: %v", p)
		}
	}()
	if err := s.Close(); err != nil {
		t.Errorf("Close of a nil *Storage = %v, want nil (as a second Close)", err)
	}
	if _, err := s.Get([]byte("k")); !errors.Is(err, backlite.ErrClosed) {
		t.Errorf("Get on a nil *Storage = %v, want ErrClosed", err)
	}
	if err := s.Set([]byte("k"), []byte("v"), 0); !errors.Is(err, backlite.ErrClosed) {
		t.Errorf("Set on a nil *Storage = %v, want ErrClosed", err)
	}
}

// A nil *Reader is a closed one: every method answers as after Close (Size and TTL
// zero, as a NewReader miss's), none panics.
func TestANilReaderIsClosed(t *testing.T) {
	var r *backlite.Reader
	defer func() {
		if p := recover(); p != nil {
			t.Fatalf("a method of a nil *Reader panicked: %v", p)
		}
	}()
	if n := r.Size(); n != 0 {
		t.Errorf("Size of a nil *Reader = %d, want 0", n)
	}
	if ttl := r.TTL(); ttl != 0 {
		t.Errorf("TTL of a nil *Reader = %v, want 0", ttl)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, backlite.ErrReaderClosed) {
		t.Errorf("Read of a nil *Reader = %v, want ErrReaderClosed", err)
	}
	if _, err := r.WriteTo(io.Discard); !errors.Is(err, backlite.ErrReaderClosed) {
		t.Errorf("WriteTo of a nil *Reader = %v, want ErrReaderClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("Close of a nil *Reader = %v, want nil", err)
	}
}
