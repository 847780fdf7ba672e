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
// its result. Waiting ends when ctx is done, for the holder's result or for another
// process's write lock (a look-up waits for one up to the busy timeout; it then goes
// on by itself and lets go of what it gets): the error is then ctx.Err(), joined with
// an ErrLeaseHeld *Error (whose LeaseTimeLeft is the holder's) if another owner held
// the key. Storing a computed value is not cut short.
//
// The waiting and the lease are the C library's (backlite_lease_step): a waiter looks
// again after the pause the library gives (1 ms doubling to 50 ms), and the library
// renews the computing caller's lease while compute runs (WithLeaseLength sets its
// length), so a compute of any length is computed once. When compute fails (or panics)
// nothing is stored, its caller gets the error (or the panic), and one of the waiters
// takes over. compute gets ctx. A value that cannot be stored (too large, or the lease
// was taken over by another owner after this process stopped renewing it) is still
// returned. An empty value is []byte{}, never nil, computed or found. A wait counts
// one miss in Stats, however long it lasts.
//
// A CachedContext of the key being computed, made with the ctx compute was given (or
// one derived from it) on any Storage of the same cache (a recursion with the same
// arguments), runs its compute at once and stores nothing; the outer call stores its
// value. Waiting for the key's lease, its own caller's, would wait for ever.
//
// Options: WithExpiration (WithLock, Cached's, is ErrInvalidArgument).
func (s *Storage) CachedContext(ctx context.Context, key []byte, compute func(context.Context) ([]byte, error), opts ...CallOption) ([]byte, error) {
	if ctx == nil {
		return nil, invalid("CachedContext: ctx is nil (use context.Background())")
	}
	if compute == nil {
		return nil, invalid("CachedContext: compute is nil")
	}
	cfg := newCallConfig(opts)
	if cfg.locker != nil {
		// Ignored, it would leave the compute unguarded where its caller means it guarded.
		return nil, invalid("CachedContext: WithLock is for Cached; CachedContext computes a key once at a time without a lock")
	}
	expMS, err := expirationMS(cfg.expiration)
	if err != nil {
		return nil, err
	}
	if s != nil && isComputing(ctx, s.cache, key) {
		// Inside the compute of this very key: its lease is our own caller's.
		if _, err := s.acquire(); err != nil {
			return nil, err
		}
		s.release()
		value, err := compute(ctx)
		if err != nil {
			return nil, err
		}
		return asValue(value), nil
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
		step, err := s.stepWithin(ctx, key, attempt)
		if err != nil {
			if lastHeld != nil && ctx.Err() != nil {
				return nil, errors.Join(err, lastHeld)
			}
			return nil, err
		}
		switch rc, cerr := step.rc, step.cerr; rc {
		case C.BACKLITE_RESULT_OK:
			return takeBuf(&step.buf), nil
		case C.BACKLITE_RESULT_NOT_FOUND:
			return computeUnderLease(ctx, s.cache, key, step.held, compute, expMS)
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

// leaseStep is one backlite_lease_step and what it gave.
type leaseStep struct {
	rc   C.backlite_result
	buf  C.backlite_buf
	held *C.backlite_lease
	cerr *C.backlite_error
}

// discard lets go of what a step gave that nobody will use.
func (st *leaseStep) discard() {
	switch st.rc {
	case C.BACKLITE_RESULT_OK:
		C.backlite_buf_free(&st.buf)
	case C.BACKLITE_RESULT_NOT_FOUND:
		C.backlite_lease_abandon(st.held)
	default:
		C.backlite_error_free(st.cerr)
	}
}

// step makes one backlite_lease_step on the calling goroutine.
func (s *Storage) step(key []byte, attempt C.uint32_t) (*leaseStep, error) {
	h, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer s.release()
	var buf C.backlite_buf
	var held *C.backlite_lease
	var cerr *C.backlite_error
	rc := C.backlite_lease_step(h, cbytes(key), C.size_t(len(key)), attempt, &buf, &held, &cerr)
	return &leaseStep{rc: rc, buf: buf, held: held, cerr: cerr}, nil
}

// stepWithin is step, given up when ctx is done first: a step may wait for another
// process's write lock (up to the busy timeout), and the caller waits no longer than
// ctx for it. A step given up goes on by itself on a goroutine of its own and lets go
// of what it gets (a lease it took is abandoned, so a waiter takes over).
func (s *Storage) stepWithin(ctx context.Context, key []byte, attempt C.uint32_t) (*leaseStep, error) {
	if ctx.Done() == nil {
		return s.step(key, attempt) // a context that never ends: no goroutine
	}
	key = append([]byte(nil), key...) // the caller may reuse key once we return
	type outcome struct {
		step *leaseStep
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		st, err := s.step(key, attempt)
		done <- outcome{st, err}
	}()
	select {
	case o := <-done:
		return o.step, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.step != nil {
				o.step.discard()
			}
		}()
		return nil, ctx.Err()
	}
}

// computeUnderLease runs compute (the library renews the lease meanwhile) with a ctx
// that says it computes key in cache, then stores the value (fulfill) or, on an error
// or a panic, gives the lease up (abandon).
func computeUnderLease(ctx context.Context, cache cacheIdentity, key []byte, held *C.backlite_lease, compute func(context.Context) ([]byte, error), expMS C.int64_t) ([]byte, error) {
	released := false
	inside, mark := withComputing(ctx, cache, key)
	defer func() {
		mark.over.Store(true)
		if !released {
			C.backlite_lease_abandon(held)
		}
	}()
	value, err := compute(inside)
	mark.over.Store(true)
	if err != nil {
		return nil, err
	}
	released = true
	var cerr *C.backlite_error
	rc := C.backlite_lease_fulfill(held, cbytes(value), C.size_t(len(value)), expMS, &cerr)
	writes.Add(1)
	switch rc {
	case C.BACKLITE_RESULT_OK:
	case C.BACKLITE_RESULT_LEASE_LOST, C.BACKLITE_RESULT_TOO_LARGE:
		// Not stored, but the caller's value is good (as Cached does for too large).
		C.backlite_error_free(cerr)
	default:
		return nil, takeError(rc, cerr, "CachedContext")
	}
	return asValue(value), nil
}

// asValue is a value compute returned as a look-up gives it: an empty one is a
// non-nil empty slice (takeBuf's), whether it was computed or found.
func asValue(v []byte) []byte {
	if v == nil {
		return []byte{}
	}
	return v
}
