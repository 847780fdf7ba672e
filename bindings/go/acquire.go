package backlite

// #include <backlite.h>
import "C"

import (
	"runtime"
	"sync"
	"time"
)

// Lease is the right to compute one key, from TryAcquire. Release it with Fulfill
// (store the value) or Abandon; after either, Abandon does nothing, so `defer
// lease.Abandon()` is always right. A finalizer abandons a forgotten one, as a safety
// net. It stays valid whatever happens to its Storage (Close included). Safe for
// concurrent use.
type Lease struct {
	mu  sync.Mutex
	ptr *C.backlite_lease // nil once fulfilled or abandoned
}

// errLeaseReleased is what Extend and Fulfill give on a Lease already fulfilled or
// abandoned (CodeNullParameter, as C++ and Zig say of an empty lease).
func errLeaseReleased(what string) error {
	return &Error{Code: CodeNullParameter, Message: what + ": the lease was already fulfilled or abandoned"}
}

// TryAcquire looks key up without ever waiting for another owner, for code that waits
// its own way (an event loop, a job queue):
//   - a hit: the value (non-nil, empty for an empty value), a nil Lease, a nil error;
//   - a miss: a nil value and a Lease held for lease (a positive duration, rounded up
//     to whole milliseconds), renewed only by Extend: compute the value, then Fulfill
//     it (or Abandon);
//   - another live owner is computing the key: an *Error of CodeLeaseHeld
//     (errors.Is(err, ErrLeaseHeld)) whose LeaseTimeLeft is the holder's.
//
// A lease is taken over once its deadline passes (at once on the same host when its
// holder process is found dead). CachedContext waits for a key with the library's
// timing and renews the lease itself.
func (s *Storage) TryAcquire(key []byte, lease time.Duration) ([]byte, *Lease, error) {
	ms, err := positiveMS("TryAcquire", lease)
	if err != nil {
		return nil, nil, err
	}
	h, err := s.acquire()
	if err != nil {
		return nil, nil, err
	}
	defer s.release()
	var buf C.backlite_buf
	var held *C.backlite_lease
	var cerr *C.backlite_error
	switch rc := C.backlite_lease_try_acquire(h, cbytes(key), C.size_t(len(key)), C.int64_t(ms), &buf, &held, &cerr); rc {
	case C.BACKLITE_RESULT_OK:
		return takeBuf(&buf), nil, nil
	case C.BACKLITE_RESULT_NOT_FOUND:
		l := &Lease{ptr: held}
		runtime.SetFinalizer(l, (*Lease).Abandon)
		return nil, l, nil
	default:
		return nil, nil, takeError(rc, cerr, "TryAcquire")
	}
}

// Extend moves the lease's deadline to d (a positive duration, rounded up to whole
// milliseconds) from now. ErrLeaseLost when another owner has taken the key over (the
// lease is then useless: Abandon it).
func (l *Lease) Extend(d time.Duration) error {
	ms, err := positiveMS("Extend", d)
	if err != nil {
		return err
	}
	if l == nil {
		return errLeaseReleased("Extend")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr == nil {
		return errLeaseReleased("Extend")
	}
	var cerr *C.backlite_error
	if rc := C.backlite_lease_extend(l.ptr, C.int64_t(ms), &cerr); rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Extend")
	}
	return nil
}

// Fulfill stores value under the lease's key (as Set would, with expiration) and
// releases the lease, whatever the outcome: ErrLeaseLost when another owner took the
// key over (nothing was stored), ErrTooLarge for a value longer than the maximum size.
// A bad expiration is refused before anything is done: the lease is still held.
func (l *Lease) Fulfill(value []byte, expiration time.Duration) error {
	ms, err := expirationMS(expiration)
	if err != nil {
		return err
	}
	if l == nil {
		return errLeaseReleased("Fulfill")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr == nil {
		return errLeaseReleased("Fulfill")
	}
	ptr := l.ptr
	l.ptr = nil
	runtime.SetFinalizer(l, nil)
	var cerr *C.backlite_error
	rc := C.backlite_lease_fulfill(ptr, cbytes(value), C.size_t(len(value)), ms, &cerr)
	writes.Add(1)
	if rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "Fulfill")
	}
	return nil
}

// Abandon releases the lease without storing anything, so that another caller may take
// the key. It does nothing on a lease already fulfilled or abandoned.
func (l *Lease) Abandon() {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.ptr != nil {
		C.backlite_lease_abandon(l.ptr)
		l.ptr = nil
	}
	runtime.SetFinalizer(l, nil)
}
