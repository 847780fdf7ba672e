package backlite

// #include <backlite.h>
import "C"

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// CachedContext returns the value under key; on a miss, one caller at a time computes
// it, across the goroutines of this process and every process sharing the file, while
// the others wait for its result. Waiting ends when ctx is done (with ctx.Err()).
//
// Goroutines of this Storage wait for each other in memory and are woken at once;
// other processes are polled through the file's per-key lease with backoff (1 ms up to
// 50 ms). When compute fails (or panics) nothing is stored, its caller gets the error
// (or the panic), and one of the waiters takes over. compute gets ctx. A value that
// cannot be stored (too large, or the lease was lost to another process after
// WithLease without renewal) is still returned.
//
// Options: WithExpiration, WithLease.
func (s *Storage) CachedContext(ctx context.Context, key []byte, compute func(context.Context) ([]byte, error), opts ...CallOption) ([]byte, error) {
	cfg := newCallConfig(opts)
	expMS, err := expirationMS(cfg.expiration)
	if err != nil {
		return nil, err
	}
	if cfg.lease <= 0 {
		return nil, invalid(fmt.Sprintf("WithLease(%v): must be positive", cfg.lease))
	}
	for {
		f, leader := s.flights.join(string(key))
		if leader {
			return s.leadFlight(ctx, key, f, compute, expMS, cfg.lease)
		}
		select {
		case <-f.done:
			if f.ok {
				return bytes.Clone(f.value), nil
			}
			// The computing goroutine failed or gave up: try again, one of us leads.
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (s *Storage) leadFlight(ctx context.Context, key []byte, f *flight, compute func(context.Context) ([]byte, error), expMS C.int64_t, lease time.Duration) (value []byte, err error) {
	ok := false
	defer func() { s.flights.finish(string(key), f, value, ok) }() // a panic too
	value, err = s.acquireLeaseOrValue(ctx, key, compute, expMS, lease)
	ok = err == nil
	return value, err
}

func (s *Storage) acquireLeaseOrValue(ctx context.Context, key []byte, compute func(context.Context) ([]byte, error), expMS C.int64_t, lease time.Duration) ([]byte, error) {
	leaseMS := C.int64_t((lease + time.Millisecond - 1) / time.Millisecond)
	backoff := time.Millisecond
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := s.acquire()
		if err != nil {
			return nil, err
		}
		var buf C.backlite_buf
		var held *C.backlite_lease
		var cerr *C.backlite_error
		rc := C.backlite_lease_try_acquire(h, cbytes(key), C.size_t(len(key)), leaseMS, &buf, &held, &cerr)
		s.release()
		switch rc {
		case C.BACKLITE_RESULT_OK:
			return takeBuf(&buf), nil
		case C.BACKLITE_RESULT_NOT_FOUND:
			C.backlite_error_free(cerr)
			return computeUnderLease(ctx, held, compute, expMS, lease, leaseMS)
		case C.BACKLITE_RESULT_BUSY:
			// Another process (or handle) is computing it, or the file was locked
			// beyond the busy timeout: either way, look again shortly.
			C.backlite_error_free(cerr)
			wait := backoff/2 + rand.N(backoff/2+1)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			}
			backoff = min(2*backoff, 50*time.Millisecond)
		default:
			return nil, takeError(rc, cerr, "CachedContext")
		}
	}
}

// computeUnderLease runs compute while a heartbeat renews the lease, then stores the
// value (fulfill) or, on an error or a panic, gives the lease up (abandon).
func computeUnderLease(ctx context.Context, held *C.backlite_lease, compute func(context.Context) ([]byte, error), expMS C.int64_t, lease time.Duration, leaseMS C.int64_t) ([]byte, error) {
	hb := startHeartbeat(held, lease, leaseMS)
	released := false
	defer func() {
		hb.stop()
		if !released {
			C.backlite_lease_abandon(held)
		}
	}()
	value, err := compute(ctx)
	if err != nil {
		return nil, err
	}
	hb.stop() // no extend may run alongside fulfill: a lease has one owner
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

// heartbeat renews a lease every third of its length until stopped.
type heartbeat struct {
	once sync.Once
	quit chan struct{}
	done chan struct{}
}

func startHeartbeat(held *C.backlite_lease, lease time.Duration, leaseMS C.int64_t) *heartbeat {
	hb := &heartbeat{quit: make(chan struct{}), done: make(chan struct{})}
	period := max(lease/3, time.Millisecond)
	go func() {
		defer close(hb.done)
		t := time.NewTicker(period)
		defer t.Stop()
		for {
			select {
			case <-hb.quit:
				return
			case <-t.C:
				if C.backlite_lease_extend(held, leaseMS, nil) != C.BACKLITE_RESULT_OK {
					return // lost: fulfill will say so; nothing to renew
				}
			}
		}
	}()
	return hb
}

// stop ends the heartbeat and waits for it, so the lease is ours alone afterwards.
func (hb *heartbeat) stop() {
	hb.once.Do(func() { close(hb.quit) })
	<-hb.done
}

// flightGroup lets the goroutines of one Storage wait for the one computing a key.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done  chan struct{}
	value []byte
	ok    bool
}

func (g *flightGroup) join(key string) (f *flight, leader bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f, ok := g.m[key]; ok {
		return f, false
	}
	if g.m == nil {
		g.m = make(map[string]*flight)
	}
	f = &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

func (g *flightGroup) finish(key string, f *flight, value []byte, ok bool) {
	g.mu.Lock()
	delete(g.m, key)
	g.mu.Unlock()
	if ok {
		f.value = bytes.Clone(value) // the leader's caller owns value
	}
	f.ok = ok
	close(f.done)
}
