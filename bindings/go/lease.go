package backlite

// #include <backlite.h>
import "C"

import (
	"context"
	"errors"
	"time"
)

// CachedContext returns the value under key; on a miss, one caller at a time computes
// it, across the goroutines and processes sharing the file, while the others wait for
// its result. Waiting ends when ctx is done: the error is then ctx.Err(), joined with
// an ErrLeaseHeld *Error (whose LeaseTimeLeft is the holder's) if another owner held
// the key.
//
// The waiting and the lease are the C library's (backlite_lease_step): a waiter looks
// again after the pause the library gives (1 ms doubling to 50 ms), and the library
// renews the computing caller's lease while compute runs (WithLeaseLength sets its
// length), so a compute of any length is computed once. When compute fails (or panics)
// nothing is stored, its caller gets the error (or the panic), and one of the waiters
// takes over. compute gets ctx. A value that cannot be stored (too large, or the lease
// was taken over by another owner after this process stopped renewing it) is still
// returned. A wait counts one miss in Stats, however long it lasts.
//
// Options: WithExpiration.
func (s *Storage) CachedContext(ctx context.Context, key []byte, compute func(context.Context) ([]byte, error), opts ...CallOption) ([]byte, error) {
	if ctx == nil {
		return nil, invalid("CachedContext: ctx is nil (use context.Background())")
	}
	if compute == nil {
		return nil, invalid("CachedContext: compute is nil")
	}
	cfg := newCallConfig(opts)
	expMS, err := expirationMS(cfg.expiration)
	if err != nil {
		return nil, err
	}
	// The last ErrLeaseHeld seen: a context that ends between two waits still reports
	// whose lease it waited for (and its time left), whichever of the two fired first.
	var lastHeld error
	for attempt := C.uint32_t(0); ; attempt++ {
		if err := ctx.Err(); err != nil {
			if lastHeld != nil {
				return nil, errors.Join(err, lastHeld)
			}
			return nil, err
		}
		h, err := s.acquire()
		if err != nil {
			return nil, err
		}
		var buf C.backlite_buf
		var held *C.backlite_lease
		var cerr *C.backlite_error
		rc := C.backlite_lease_step(h, cbytes(key), C.size_t(len(key)), attempt, &buf, &held, &cerr)
		s.release()
		switch rc {
		case C.BACKLITE_RESULT_OK:
			return takeBuf(&buf), nil
		case C.BACKLITE_RESULT_NOT_FOUND:
			return computeUnderLease(ctx, held, compute, expMS)
		case C.BACKLITE_RESULT_LEASE_HELD:
			pause := time.Duration(C.backlite_error_retry_in_ms(cerr)) * time.Millisecond
			lastHeld = takeError(rc, cerr, "CachedContext")
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				// Both: errors.Is finds ctx.Err() and ErrLeaseHeld (with its time left).
				return nil, errors.Join(ctx.Err(), lastHeld)
			}
		default:
			return nil, takeError(rc, cerr, "CachedContext")
		}
	}
}

// computeUnderLease runs compute (the library renews the lease meanwhile), then stores
// the value (fulfill) or, on an error or a panic, gives the lease up (abandon).
func computeUnderLease(ctx context.Context, held *C.backlite_lease, compute func(context.Context) ([]byte, error), expMS C.int64_t) ([]byte, error) {
	released := false
	defer func() {
		if !released {
			C.backlite_lease_abandon(held)
		}
	}()
	value, err := compute(ctx)
	if err != nil {
		return nil, err
	}
	released = true
	var cerr *C.backlite_error
	switch rc := C.backlite_lease_fulfill(held, cbytes(value), C.size_t(len(value)), expMS, &cerr); rc {
	case C.BACKLITE_RESULT_OK:
	case C.BACKLITE_RESULT_LEASE_LOST, C.BACKLITE_RESULT_TOO_LARGE:
		// Not stored, but the caller's value is good (as Cached does for too large).
		C.backlite_error_free(cerr)
	default:
		return nil, takeError(rc, cerr, "CachedContext")
	}
	return value, nil
}
