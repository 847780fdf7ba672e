package backlite_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	backlite "github.com/backlite/backlite/bindings/go"
)

// openReader opens a reader that the test closes when it ends.
func openReader(t *testing.T, s *backlite.Storage, key string) *backlite.Reader {
	t.Helper()
	r, err := s.OpenReader([]byte(key))
	if err != nil {
		t.Fatalf("OpenReader(%q): %v", key, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// A value in a file of its own and one in the database, each larger than a chunk, and
// a small one read a byte at a time: every Read copies into the caller's slice, and
// the value ends with io.EOF.
func TestOpenReaderReadsFileAndDatabaseValuesIntoTheCallersSlices(t *testing.T) {
	big := bigValue(1<<20 + 3)
	for name, threshold := range map[string]int64{"file": 4096, "database": backlite.FileThresholdNever} {
		t.Run(name, func(t *testing.T) {
			s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(threshold))
			if err := s.Set([]byte("big"), big, time.Hour); err != nil {
				t.Fatal(err)
			}
			r := openReader(t, s, "big")
			if r.Size() != int64(len(big)) {
				t.Fatalf("Size = %d, want %d", r.Size(), len(big))
			}
			if ttl := r.TTL(); ttl <= 0 || ttl > time.Hour {
				t.Fatalf("TTL = %v, want up to an hour", ttl)
			}
			var got []byte
			buf := make([]byte, 100_000)
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Read after %d bytes: %v", len(got), err)
				}
			}
			if !bytes.Equal(got, big) {
				t.Fatalf("read %d bytes, not the value's %d", len(got), len(big))
			}
			if n, err := r.Read(buf); n != 0 || err != io.EOF {
				t.Fatalf("Read after the end = %d, %v; want 0, io.EOF", n, err)
			}
		})
	}

	s := memory(t)
	mustSet(t, s, "small", "hello", backlite.ExpireNever)
	r := openReader(t, s, "small")
	if r.TTL() != backlite.ExpireNever {
		t.Fatalf("TTL = %v, want ExpireNever", r.TTL())
	}
	var got []byte
	one := make([]byte, 1)
	for {
		n, err := r.Read(one)
		if n > 1 {
			t.Fatalf("Read into 1 byte gave %d", n)
		}
		got = append(got, one[:n]...)
		if err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if string(got) != "hello" {
		t.Fatalf("read %q byte by byte", got)
	}
	if st := stats(t, s); st.Hits != 1 {
		t.Fatalf("Stats = %+v, want the open counted as one hit", st)
	}
}

func TestOpenReaderOfAMissIsErrNotFoundAndAnEmptyValueEndsAtOnce(t *testing.T) {
	s := memory(t)
	if r, err := s.OpenReader([]byte("missing")); !errors.Is(err, backlite.ErrNotFound) || r != nil {
		t.Fatalf("OpenReader of a miss = %v, %v; want nil, ErrNotFound", r, err)
	}
	if st := stats(t, s); st.Misses != 1 {
		t.Fatalf("Stats = %+v, want one miss", st)
	}
	mustSet(t, s, "empty", "", backlite.ExpireNever)
	r := openReader(t, s, "empty")
	if r.Size() != 0 {
		t.Fatalf("Size = %d", r.Size())
	}
	if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("Read of an empty value = %d, %v; want 0, io.EOF", n, err)
	}
}

// io.Copy uses the Reader's WriteTo: writes of up to 256 KiB (io.Copy's own buffer
// is 32 KiB), the whole value, and no error at its end.
func TestIoCopyOfAReaderWritesInChunksOfTheLibrary(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(4096))
	big := bigValue(3*256*1024 + 5)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	var out chunkRecorder
	n, err := io.Copy(&out, openReader(t, s, "big"))
	if err != nil || n != int64(len(big)) || !bytes.Equal(out.Bytes(), big) {
		t.Fatalf("io.Copy = %d, %v; got %d bytes", n, err, out.Len())
	}
	if out.largest <= 32*1024 || out.largest > 256*1024 {
		t.Fatalf("largest write %d, want more than io.Copy's 32 KiB and at most 256 KiB", out.largest)
	}
	full := errors.New("disk full")
	if _, err := openReader(t, s, "big").WriteTo(&chunkRecorder{fail: full}); err != full {
		t.Fatalf("WriteTo into a failing writer = %v, want its error", err)
	}
}

// A value whose file's last byte changed: WriteTo (io.Copy) ends with ErrNotFound, not
// with a clean end, and the entry is gone.
func TestWriteToOfAValueDamagedAtItsEndIsErrNotFound(t *testing.T) {
	db := filepath.Join(t.TempDir(), "c.db")
	s := open(t, db, backlite.WithFileThreshold(4096))
	big := bigValue(600 * 1024)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	names, _ := filepath.Glob(filepath.Join(db+".values", "v*.blv"))
	if len(names) != 1 {
		t.Fatalf("value files: %v", names)
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
	var out bytes.Buffer
	if _, err := io.Copy(&out, openReader(t, s, "big")); !errors.Is(err, backlite.ErrNotFound) {
		t.Fatalf("io.Copy of a damaged value = %v, want ErrNotFound", err)
	}
	if has(t, s, "big") {
		t.Fatal("the damaged entry is still there")
	}
}

// Closed before its end: the library's reader is freed, later reads say so, a second
// Close is harmless, and the entry can be written again at once.
func TestAReaderClosedEarlyFreesItsValue(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(4096))
	big := bigValue(600 * 1024)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, s, "big")
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil || !bytes.Equal(buf, big[:10]) {
		t.Fatalf("ReadFull: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n, err := r.Read(buf); n != 0 || !errors.Is(err, backlite.ErrReaderClosed) {
		t.Fatalf("Read after Close = %d, %v; want ErrReaderClosed", n, err)
	}
	if _, err := r.WriteTo(io.Discard); !errors.Is(err, backlite.ErrReaderClosed) {
		t.Fatalf("WriteTo after Close = %v; want ErrReaderClosed", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	mustSet(t, s, "big", "new", backlite.ExpireNever)
	if got := mustGet(t, s, "big"); got != "new" {
		t.Fatalf("Get after rewriting = %q", got)
	}
	var zero backlite.Reader
	if _, err := zero.Read(buf); !errors.Is(err, backlite.ErrReaderClosed) {
		t.Fatalf("Read of a zero Reader = %v, want ErrReaderClosed", err)
	}
	var none *backlite.Reader
	if _, err := none.Read(buf); !errors.Is(err, backlite.ErrReaderClosed) || none.Close() != nil {
		t.Fatalf("Read of a nil *Reader = %v, want ErrReaderClosed", err)
	}
}

// A Reader does not need its Storage: closed after the open, the value still reads
// to its end (under -asan, with nothing leaked).
func TestAReaderOutlivesItsStorage(t *testing.T) {
	big := bigValue(600 * 1024)
	for name, threshold := range map[string]int64{"file": 4096, "database": backlite.FileThresholdNever} {
		t.Run(name, func(t *testing.T) {
			s, err := backlite.Open(filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(threshold))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
				t.Fatal(err)
			}
			r := openReader(t, s, "big")
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, big) {
				t.Fatalf("ReadAll after the storage closed: %d bytes, %v", len(got), err)
			}
			if _, err := s.OpenReader([]byte("big")); !errors.Is(err, backlite.ErrClosed) {
				t.Fatalf("OpenReader on a closed Storage = %v, want ErrClosed", err)
			}
			if _, err := s.NewReader([]byte("big")).Read(make([]byte, 1)); !errors.Is(err, backlite.ErrClosed) {
				t.Fatalf("NewReader on a closed Storage reads %v, want ErrClosed", err)
			}
		})
	}
}

// Goroutines sharing one Reader (the caller's business, as with an os.File) are
// serialised: together they read every byte once, and -race sees no race.
func TestGoroutinesSharingAReaderReadEachByteOnce(t *testing.T) {
	s := memory(t)
	big := bigValue(300 * 1024)
	if err := s.Set([]byte("big"), big, backlite.ExpireNever); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, s, "big")
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1000)
			for {
				n, err := r.Read(buf)
				mu.Lock()
				total += n
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if total != len(big) {
		t.Fatalf("the goroutines read %d bytes in all, want %d", total, len(big))
	}
}

// The value read is the one opened: a set, delete or clear of its key, or Close of
// the Storage, while a Reader is half way leaves it whole (a value file held open, or
// a read snapshot of the database), never a mix of two values and never an error.
func TestAReaderReadsTheValueItOpenedWhateverHappensToItsKey(t *testing.T) {
	v := bigValue(1<<20 + 11)
	for name, threshold := range map[string]int64{"file": 4096, "database": backlite.FileThresholdNever} {
		for _, op := range []string{"set", "delete", "clear", "close"} {
			t.Run(name+"/"+op, func(t *testing.T) {
				s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(threshold))
				if err := s.Set([]byte("k"), v, backlite.ExpireNever); err != nil {
					t.Fatal(err)
				}
				r := openReader(t, s, "k")
				head := make([]byte, 1000)
				if _, err := io.ReadFull(r, head); err != nil {
					t.Fatal(err)
				}
				var err error
				switch op {
				case "set":
					err = s.Set([]byte("k"), bytes.Repeat([]byte{'x'}, 2<<20), backlite.ExpireNever)
				case "delete":
					err = s.Delete([]byte("k"))
				case "clear":
					err = s.Clear()
				case "close":
					err = s.Close()
				}
				if err != nil {
					t.Fatal(err)
				}
				rest, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(append(head, rest...), v) {
					t.Fatalf("read %d bytes (%v), want the %d opened", len(head)+len(rest), err, len(v))
				}
			})
		}
	}
}

// testing/iotest's checks of the io.Reader contract, on values of every shape: empty,
// smaller than a read, a blob copied at open, a blob read from a snapshot, a file.
func TestAReaderPassesIotestTestReader(t *testing.T) {
	for _, size := range []int{0, 1, 5000, 300 * 1024, 1<<20 + 7} {
		for _, threshold := range []int64{4096, backlite.FileThresholdNever} {
			s := open(t, filepath.Join(t.TempDir(), "c.db"), backlite.WithFileThreshold(threshold))
			v := bigValue(size)
			if err := s.Set([]byte("k\x00z"), v, backlite.ExpireNever); err != nil {
				t.Fatal(err)
			}
			if err := iotest.TestReader(openReader(t, s, "k\x00z"), v); err != nil {
				t.Errorf("%d bytes, threshold %d: %v", size, threshold, err)
			}
		}
	}
}
