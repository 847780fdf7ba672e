package backlite

// #include <stdlib.h>
// #include <backlite.h>
// #include "shim.h"
import "C"

import (
	"io"
	"iter"
	"runtime"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Storage is an open cache file. It is safe for concurrent use by any number of
// goroutines. Close it when done; a finalizer closes a forgotten one, as a safety net.
type Storage struct {
	mu      sync.Mutex
	ptr     *C.backlite_storage // nil once freed
	active  int                 // calls in progress
	closing bool
	cache   cacheIdentity // the cache it has open, whatever the path (computing.go)
}

// Open opens the cache file at path, creating it if it is missing (not its folder).
// ":memory:" opens a private in-memory cache. A file that is not a BackLite cache is
// left untouched and gives ErrNotACache; a directory gives ErrIO.
func Open(path string, opts ...Option) (*Storage, error) {
	if strings.IndexByte(path, 0) >= 0 {
		return nil, invalid("Open: the path contains a NUL byte")
	}
	o := C.backlite_options_new()
	if o == nil {
		return nil, &Error{Code: CodeInternal, Message: "Open: out of memory"}
	}
	defer C.backlite_options_free(o)
	for _, opt := range opts {
		if opt.apply == nil {
			continue
		}
		if err := opt.apply(o); err != nil {
			return nil, err
		}
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var ptr *C.backlite_storage
	var cerr *C.backlite_error
	if rc := C.backlite_storage_open(cpath, o, &ptr, &cerr); rc != C.BACKLITE_RESULT_OK {
		return nil, takeError(rc, cerr, "Open")
	}
	s := &Storage{ptr: ptr, cache: identityOf(path)}
	runtime.SetFinalizer(s, (*Storage).Close)
	return s, nil
}

// Close closes the storage. Calls already in progress finish first (the handle is freed
// when the last one returns, so Close may even be called from a callback); calls made
// after Close return ErrClosed. Closing twice is harmless. Freeing the handle writes
// its buffered hits: behind another process's write lock it waits at most the busy
// timeout, then closes without them.
func (s *Storage) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	if s.closing || s.ptr == nil {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	var free *C.backlite_storage
	if s.active == 0 {
		free, s.ptr = s.ptr, nil
	}
	s.mu.Unlock()
	runtime.SetFinalizer(s, nil)
	if free != nil {
		C.backlite_storage_free(free)
	}
	return nil
}

// acquire returns the C handle for one call, which must end with s.release().
func (s *Storage) acquire() (*C.backlite_storage, error) {
	if s == nil {
		return nil, ErrClosed
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing || s.ptr == nil {
		return nil, ErrClosed
	}
	s.active++
	return s.ptr, nil
}

func (s *Storage) release() {
	s.mu.Lock()
	s.active--
	var free *C.backlite_storage
	if s.closing && s.active == 0 && s.ptr != nil {
		free, s.ptr = s.ptr, nil
	}
	s.mu.Unlock()
	if free != nil {
		C.backlite_storage_free(free)
	}
	// The Storage (and so its handle) must outlive the C call that just returned.
	runtime.KeepAlive(s)
}

// cbytes points the C API at b's bytes (NULL for an empty slice). cgo keeps b pinned
// for the duration of the call it is passed to.
func cbytes(b []byte) *C.uint8_t {
	if len(b) == 0 {
		return nil
	}
	return (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(b)))
}

// takeBuf copies a library buffer into Go memory and frees it.
func takeBuf(buf *C.backlite_buf) []byte {
	out := make([]byte, int(buf.len))
	if buf.len > 0 {
		copy(out, unsafe.Slice((*byte)(unsafe.Pointer(buf.data)), int(buf.len)))
	}
	C.backlite_buf_free(buf)
	return out
}

// Get returns a copy of the value under key, or ErrNotFound when there is no live entry.
func (s *Storage) Get(key []byte) ([]byte, error) {
	v, _, err := s.get(key, false)
	return v, err
}

// GetWithTTL is Get that also returns the time the entry has left (ExpireNever if it
// never expires).
func (s *Storage) GetWithTTL(key []byte) ([]byte, time.Duration, error) {
	return s.get(key, true)
}

func (s *Storage) get(key []byte, wantTTL bool) ([]byte, time.Duration, error) {
	h, err := s.acquire()
	if err != nil {
		return nil, 0, err
	}
	defer s.release()
	var buf C.backlite_buf
	var left C.int64_t
	var leftPtr *C.int64_t
	if wantTTL {
		leftPtr = &left
	}
	var cerr *C.backlite_error
	rc := C.backlite_storage_get(h, cbytes(key), C.size_t(len(key)), &buf, leftPtr, &cerr)
	if rc != C.BACKLITE_RESULT_OK {
		return nil, 0, takeError(rc, cerr, "Get")
	}
	ttl := ExpireNever
	if left != C.BACKLITE_EXPIRATION_NEVER {
		ttl = durationMS(int64(left))
	}
	return takeBuf(&buf), ttl, nil
}

// Set stores value under key. expiration is a positive duration (rounded up to whole
// milliseconds), ExpireDefault (0) or ExpireNever. A value longer than the maximum size
// gives ErrTooLarge, and the older value under key is removed.
func (s *Storage) Set(key, value []byte, expiration time.Duration) error {
	ms, err := expirationMS(expiration)
	if err != nil {
		return err
	}
	return s.setMS(key, value, int64(ms))
}

// setMS is Set with the C API's expiration in milliseconds, any the library takes
// (the tests set what a C, Zig or CLI writer can: more than a Duration holds).
func (s *Storage) setMS(key, value []byte, ms int64) error {
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	rc := C.backlite_storage_set(h, cbytes(key), C.size_t(len(key)), cbytes(value), C.size_t(len(value)), C.int64_t(ms), &cerr)
	writes.Add(1)
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Set")
	}
	return nil
}

// Entry is one item for SetMany.
type Entry struct {
	Key, Value []byte
	Expiration time.Duration // as for Set: ExpireDefault (the zero value), ExpireNever or > 0
}

// SetMany stores every entry in one transaction, all or nothing, then evicts down to
// the maximum size (entries of the batch may go too).
func (s *Storage) SetMany(entries []Entry) error {
	if len(entries) == 0 {
		// Nothing to store, but a closed Storage says so, as every other call does.
		if _, err := s.acquire(); err != nil {
			return err
		}
		s.release()
		return nil
	}
	// The C entries point into the Go slices: pin them, since Go memory handed to C must
	// not hold unpinned Go pointers.
	var pinner runtime.Pinner
	defer pinner.Unpin()
	centries := make([]C.backlite_entry, len(entries))
	for i, e := range entries {
		ms, err := expirationMS(e.Expiration)
		if err != nil {
			return err
		}
		if len(e.Key) > 0 {
			pinner.Pin(unsafe.SliceData(e.Key))
		}
		if len(e.Value) > 0 {
			pinner.Pin(unsafe.SliceData(e.Value))
		}
		centries[i] = C.backlite_entry{
			key: cbytes(e.Key), key_len: C.size_t(len(e.Key)),
			value: cbytes(e.Value), value_len: C.size_t(len(e.Value)),
			expiration_ms: ms,
		}
	}
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	rc := C.backlite_storage_set_many(h, unsafe.SliceData(centries), C.size_t(len(centries)), &cerr)
	writes.Add(1)
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "SetMany")
	}
	return nil
}

// Delete removes the entry under key; ErrNotFound if there was no live entry.
func (s *Storage) Delete(key []byte) error {
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	rc := C.backlite_storage_delete(h, cbytes(key), C.size_t(len(key)), &cerr)
	writes.Add(1)
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Delete")
	}
	return nil
}

// Contains reports whether key has a live entry. It is not an access: it changes no
// eviction order and no hit or miss counter.
func (s *Storage) Contains(key []byte) (bool, error) {
	h, err := s.acquire()
	if err != nil {
		return false, err
	}
	defer s.release()
	var cerr *C.backlite_error
	switch rc := C.backlite_storage_contains(h, cbytes(key), C.size_t(len(key)), &cerr); rc {
	case C.BACKLITE_RESULT_OK:
		return true, nil
	case C.BACKLITE_RESULT_NOT_FOUND:
		C.backlite_error_free(cerr)
		return false, nil
	default:
		return false, takeError(rc, cerr, "Contains")
	}
}

// Keys calls visit with a copy of every live key, until visit returns false. visit runs
// on the calling goroutine, outside the C library, with no lock held: it may use the
// storage, panic (the walk stops and the panic goes on in the caller of Keys) or end
// the goroutine with runtime.Goexit (t.Fatal).
//
// The C walk runs on a goroutine of its own and hands its keys over keysBatch at a time
// (one at a time, two thread switches per key made a 20,000-key walk 100 times
// slower). Once anything has been written through this package meanwhile (the visitor
// deleted a key further on, say), a key handed over is shown only if still live when
// its turn comes, as the C walk looks again at the rest of its page after a write.
func (s *Storage) Keys(visit func(key []byte) bool) error {
	if visit == nil {
		return invalid("Keys: visit is nil")
	}
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	st := &keysState{h: h, visit: visit}
	var rc C.backlite_result
	var cerr *C.backlite_error
	st.run(st, func(handle C.uintptr_t) {
		rc = C.backlite_go_keys(h, handle, &cerr)
	}, func() { C.backlite_error_free(cerr) })
	if rc == C.BACKLITE_RESULT_OK && st.err == nil && !st.stopped {
		st.flush() // the last keys, after the walk
	}
	if st.err != nil {
		C.backlite_error_free(cerr)
		return st.err
	}
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Keys")
	}
	return nil
}

// GetTo writes the value under key to w in chunks of at most 256 KiB, so that a value
// of any size is copied in bounded memory. It returns ErrNotFound on a miss, and also
// when the value proved damaged after some chunks were written (discard them: the
// entry is removed). An error of w stops the copy and is returned as it is; a write
// that takes fewer bytes without an error is io.ErrShortWrite, as in io.Copy. w runs
// on the calling goroutine and may use the storage.
func (s *Storage) GetTo(key []byte, w io.Writer) error {
	if w == nil {
		return invalid("GetTo: the writer is nil")
	}
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	st := &chunksState{w: w}
	var rc C.backlite_result
	var cerr *C.backlite_error
	st.run(st, func(handle C.uintptr_t) {
		rc = C.backlite_go_get_chunks(h, cbytes(key), C.size_t(len(key)), handle, &cerr)
	}, func() { C.backlite_error_free(cerr) })
	if st.err != nil {
		C.backlite_error_free(cerr)
		return st.err
	}
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "GetTo")
	}
	return nil
}

// All iterates over the live keys, for range loops:
//
//	for key, err := range cache.All() { ... }
//
// An error ends the iteration as its last pair. The loop body runs on the caller's
// goroutine, outside the C library (it is Keys' visitor), so it may use the storage,
// panic, or end with t.Fatal (runtime.Goexit); the walk has ended when the loop has.
func (s *Storage) All() iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		stopped := false
		err := s.Keys(func(key []byte) bool {
			stopped = !yield(key, nil)
			return !stopped
		})
		if err != nil && !stopped {
			yield(nil, err)
		}
	}
}

// Clear removes every entry.
func (s *Storage) Clear() error {
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	rc := C.backlite_storage_clear(h, &cerr)
	writes.Add(1)
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Clear")
	}
	return nil
}

// Stats are the file's counters and this handle's activity.
type Stats struct {
	Count       uint64 // live entries in the file
	TotalSize   uint64 // sum of value lengths in the file (what the maximum size bounds)
	MaxSize     uint64
	Hits        uint64 // this handle's lookups that found a live entry
	Misses      uint64 // this handle's lookups that did not
	Evictions   uint64 // entries this handle evicted for size
	Expirations uint64 // expired entries this handle removed
}

// Stats returns the counters (expired entries are removed first, so not counted).
func (s *Storage) Stats() (Stats, error) {
	h, err := s.acquire()
	if err != nil {
		return Stats{}, err
	}
	defer s.release()
	var cs C.backlite_stats
	var cerr *C.backlite_error
	if rc := C.backlite_storage_stats(h, &cs, &cerr); rc != C.BACKLITE_RESULT_OK {
		return Stats{}, takeError(rc, cerr, "Stats")
	}
	return Stats{
		Count: uint64(cs.count), TotalSize: uint64(cs.total_size), MaxSize: uint64(cs.max_size),
		Hits: uint64(cs.hits), Misses: uint64(cs.misses),
		Evictions: uint64(cs.evictions), Expirations: uint64(cs.expirations),
	}, nil
}
