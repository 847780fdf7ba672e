package backlite

// #include <backlite.h>
// #include "shim.h"
import "C"

import (
	"sync"
	"time"
)

// A CallOption configures Cached and CachedContext.
type CallOption func(*callConfig)

type callConfig struct {
	expiration time.Duration
	locker     sync.Locker
}

// WithExpiration stores a computed value with this expiration (default ExpireDefault:
// the storage's default).
func WithExpiration(d time.Duration) CallOption {
	return func(c *callConfig) { c.expiration = d }
}

// WithLock makes Cached hold l (a *sync.Mutex, say) around its second look-up and the
// compute, so that goroutines missing the same key at once compute it once. Cached
// only: CachedContext needs no lock, and refuses one (ErrInvalidArgument).
//
// A Cached with l called from inside a compute that a Cached holding l runs, on the same
// goroutine (a memoised recursion sharing one lock), returns ErrCallbackFailed without
// computing: l is not reentrant, and waiting for it would wait for ever. Give each key
// its own locker, or use CachedContext, whose nested calls need no lock. A goroutine
// the compute starts is another goroutine, and waits for l as any other.
func WithLock(l sync.Locker) CallOption {
	return func(c *callConfig) { c.locker = l }
}

func newCallConfig(opts []CallOption) callConfig {
	c := callConfig{expiration: ExpireDefault}
	for _, o := range opts {
		if o != nil {
			o(&c)
		}
	}
	return c
}

// Cached returns the value under key; on a miss it calls compute and stores what it
// returns (with WithExpiration's expiration). An error from compute is returned as it
// is, and nothing is stored. A computed value too large to store is still returned.
//
// Cached runs compute (and the WithLock locker) on the calling goroutine, outside the
// C library: a panic in it stores nothing and goes on in the caller of Cached, and
// runtime.Goexit (t.Fatal) ends the caller as it would anywhere. It never waits for
// other callers except through WithLock. CachedContext waits for them, across
// processes too.
func (s *Storage) Cached(key []byte, compute func() ([]byte, error), opts ...CallOption) ([]byte, error) {
	if compute == nil {
		return nil, invalid("Cached: compute is nil")
	}
	cfg := newCallConfig(opts)
	ms, err := expirationMS(cfg.expiration)
	if err != nil {
		return nil, err
	}
	h, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.release()
	st := &callState{compute: compute, locker: cfg.locker}
	withBarrier := C.int(0)
	if cfg.locker != nil {
		withBarrier = 1
	}
	var rc C.backlite_result
	var buf C.backlite_buf
	var cerr *C.backlite_error
	st.run(st, func(handle C.uintptr_t) {
		rc = C.backlite_go_cached_call(h, cbytes(key), C.size_t(len(key)), handle, withBarrier, ms, &buf, &cerr)
		writes.Add(1)
	}, func() {
		C.backlite_buf_free(&buf)
		C.backlite_error_free(cerr)
	})
	if st.err != nil {
		C.backlite_buf_free(&buf)
		C.backlite_error_free(cerr)
		return nil, st.err
	}
	if rc != C.BACKLITE_RESULT_OK {
		return nil, takeError(rc, cerr, "Cached")
	}
	return takeBuf(&buf), nil
}
