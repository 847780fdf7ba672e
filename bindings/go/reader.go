package backlite

// #include <backlite.h>
import "C"

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// ErrReaderClosed is returned by Read and WriteTo on a Reader after Close.
var ErrReaderClosed = errors.New("backlite: the reader is closed")

// readerChunk is the buffer WriteTo reads into: the library's own chunk size.
const readerChunk = 256 * 1024

// Reader reads one value in bounded memory: each Read copies the next bytes of the
// value into the caller's slice (backlite_value_reader_read). It is an io.ReadCloser
// and an io.WriterTo, so io.Copy moves a value of any size 256 KiB at a time.
//
// The value's checksum is checked at its end: a value found damaged gives ErrNotFound
// from Read (or WriteTo) instead of io.EOF. A set or delete of the key while it is
// read is not seen: the Reader reads the value as it was when opened.
// Drop what was read then; the entry has been removed, as Get would remove it. A
// value read to io.EOF is whole and intact.
//
// Close it when done: until its end, an error or Close, a Reader holds the library's
// reader (an open value file, or a read snapshot of the database for a large value
// kept there). A finalizer closes a forgotten one, as a safety net. The Reader does
// not need its Storage to stay open.
//
// A Reader is for one goroutine at a time, as an os.File is: calls from several are
// serialised (none can corrupt memory), but which of them gets which bytes is the
// caller's business.
type Reader struct {
	mu   sync.Mutex
	ptr  *C.backlite_value_reader // nil once done (at the end, on an error, or closed)
	err  error                    // once ptr is nil: io.EOF, ErrNotFound, a failure, or ErrReaderClosed
	size int64
	ttl  time.Duration
}

// OpenReader opens a Reader of the value under key, a lookup like Get (a hit counts
// as an access, expired and damaged entries are misses): ErrNotFound on a miss.
// Size and TTL are known at once; the bytes come with Read.
func (s *Storage) OpenReader(key []byte) (*Reader, error) {
	h, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.release()
	var ptr *C.backlite_value_reader
	var size C.uint64_t
	var left C.int64_t
	var cerr *C.backlite_error
	rc := C.backlite_storage_open_reader(h, cbytes(key), C.size_t(len(key)), &ptr, &size, &left, &cerr)
	if rc != C.BACKLITE_RESULT_OK {
		return nil, takeError(rc, cerr, "OpenReader")
	}
	ttl := ExpireNever
	if left != C.BACKLITE_EXPIRATION_NEVER {
		ttl = durationMS(int64(left))
	}
	r := &Reader{ptr: ptr, size: int64(size), ttl: ttl}
	runtime.SetFinalizer(r, (*Reader).Close)
	return r, nil
}

// NewReader returns an io.ReadCloser of the value under key (a *Reader): as
// OpenReader, but a miss, or any failure to open, is the error of the first Read
// (ErrNotFound for a miss), for callers that only want to copy a value somewhere.
// Close it when done.
func (s *Storage) NewReader(key []byte) io.ReadCloser {
	r, err := s.OpenReader(key)
	if err != nil {
		return &Reader{err: err}
	}
	return r
}

// Size is the value's length in bytes (0 for a Reader of a miss from NewReader, and
// for a nil *Reader, which is a closed one as for Read and Close).
func (r *Reader) Size() int64 {
	if r == nil {
		return 0
	}
	return r.size
}

// TTL is the time the entry had left when the Reader was opened (ExpireNever if it
// never expires; 0 for a Reader of a miss from NewReader, and for a nil *Reader). A
// Reader opened before its entry expires reads it to the end.
func (r *Reader) TTL() time.Duration {
	if r == nil {
		return 0
	}
	return r.ttl
}

// Read copies the next bytes of the value into p. It returns io.EOF after the last
// byte once the value's checksum matched, and ErrNotFound (with nothing more) when the
// value proved damaged.
func (r *Reader) Read(p []byte) (int, error) {
	if r == nil {
		return 0, ErrReaderClosed
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ptr == nil {
		if r.err == nil { // a zero Reader
			return 0, ErrReaderClosed
		}
		return 0, r.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n C.size_t
	var cerr *C.backlite_error
	rc := C.backlite_value_reader_read(r.ptr, (*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(p))), C.size_t(len(p)), &n, &cerr)
	runtime.KeepAlive(r)
	switch {
	case rc != C.BACKLITE_RESULT_OK:
		r.finish(takeError(rc, cerr, "Read"))
		return 0, r.err
	case n == 0:
		r.finish(io.EOF)
		return 0, io.EOF
	}
	return int(n), nil
}

// WriteTo writes the rest of the value to w, 256 KiB at a time (io.Copy calls it). It
// returns nil at the value's end, ErrNotFound when the value proved damaged (what w
// got must be dropped), or w's error as it is.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	if r == nil {
		return 0, ErrReaderClosed
	}
	if w == nil {
		return 0, invalid("WriteTo: the writer is nil")
	}
	buf := make([]byte, min(max(r.size, 1), readerChunk))
	var total int64
	for {
		n, err := r.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr == nil && m < n {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// Close frees the library's reader. Reads after Close return ErrReaderClosed; closing
// twice is harmless.
func (r *Reader) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	runtime.SetFinalizer(r, nil)
	r.finish(ErrReaderClosed)
	return nil
}

// finish frees the library's reader (if still held) and makes err what every later
// Read returns. Called with r.mu held.
func (r *Reader) finish(err error) {
	if r.ptr != nil {
		C.backlite_value_reader_free(r.ptr)
		r.ptr = nil
	}
	r.err = err
}
