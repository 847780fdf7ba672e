package backlite

// SetMS, for the external tests only: Set with the C API's expiration in milliseconds,
// for what a C, Zig or CLI writer can set and a time.Duration cannot hold.
func (s *Storage) SetMS(key, value []byte, ms int64) error { return s.setMS(key, value, ms) }
