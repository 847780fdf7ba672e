package backlite

// #include <backlite.h>
import "C"

import "time"

// LifetimeStats counts since the file was created or last zeroed, by every handle of
// every process (Stats counts only this handle).
type LifetimeStats struct {
	Hits        uint64    // lookups that found a live entry
	Misses      uint64    // lookups that did not
	Evictions   uint64    // entries evicted for size
	Expirations uint64    // expired entries removed
	Since       time.Time // when counting began: the file's creation, its upgrade or the last zero
}

// LifetimeStats returns the file's lifetime counters. Hits and misses wait in memory
// and reach the file with a process's next write, so another process's are counted
// once it has written (at the latest when it closes its handle); this process's are
// always included.
func (s *Storage) LifetimeStats() (LifetimeStats, error) {
	h, err := s.acquire()
	if err != nil {
		return LifetimeStats{}, err
	}
	defer s.release()
	var cs C.backlite_lifetime_stats
	var cerr *C.backlite_error
	if rc := C.backlite_storage_lifetime_stats(h, &cs, &cerr); rc != C.BACKLITE_RESULT_OK {
		return LifetimeStats{}, takeError(rc, cerr, "LifetimeStats")
	}
	return LifetimeStats{
		Hits: uint64(cs.hits), Misses: uint64(cs.misses),
		Evictions: uint64(cs.evictions), Expirations: uint64(cs.expirations),
		Since: time.UnixMilli(int64(cs.since_ms)),
	}, nil
}

// ZeroStats sets the file's lifetime counters to zero and starts counting again from
// now. The handle's own Stats are kept.
func (s *Storage) ZeroStats() error {
	h, err := s.acquire()
	if err != nil {
		return err
	}
	defer s.release()
	var cerr *C.backlite_error
	if rc := C.backlite_storage_zero_stats(h, &cerr); rc != C.BACKLITE_RESULT_OK {
		return takeError(rc, cerr, "ZeroStats")
	}
	return nil
}
