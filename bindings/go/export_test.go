package backlite

import "time"

// SetMS, for the external tests only: Set with the C API's expiration in milliseconds,
// for what a C, Zig or CLI writer can set and a time.Duration cannot hold.
func (s *Storage) SetMS(key, value []byte, ms int64) error { return s.setMS(key, value, ms) }

// BusyTimeoutMS, for the external tests only: the milliseconds WithBusyTimeout gives
// the C API (which has no getter for them).
func BusyTimeoutMS(d time.Duration) (uint32, error) { return busyTimeoutMS(d) }

// LeaseMS, for the external tests only: the milliseconds WithLeaseLength gives the C API.
func LeaseMS(d time.Duration) (int64, error) { return leaseMS(d) }

// RemoteTimeoutMS, for the external tests only: the milliseconds WithRemoteTimeout
// gives the C API.
func RemoteTimeoutMS(d time.Duration) (uint32, error) { return remoteTimeoutMS(d) }
