package backlite

// #include <stdlib.h>
// #include <backlite.h>
import "C"

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unsafe"
)

// Expirations for Set, SetMany, Cached and WithDefaultExpiration, besides positive
// durations (rounded up to whole milliseconds).
const (
	// ExpireDefault (the zero value) uses the storage's default expiration
	// (WithDefaultExpiration; never, unless set).
	ExpireDefault time.Duration = 0
	// ExpireNever keeps the entry until it is evicted, deleted or cleared.
	ExpireNever time.Duration = -1
)

// expirationMS converts an expiration for the C API: > 0 rounds up to milliseconds,
// ExpireDefault and ExpireNever map to the C constants, any other negative is invalid.
func expirationMS(d time.Duration) (C.int64_t, error) {
	switch {
	case d == ExpireDefault:
		return C.BACKLITE_EXPIRATION_DEFAULT, nil
	case d == ExpireNever:
		return C.BACKLITE_EXPIRATION_NEVER, nil
	case d < 0:
		return 0, invalid(fmt.Sprintf("expiration %v: use a positive duration, ExpireDefault or ExpireNever", d))
	case d > math.MaxInt64-time.Millisecond:
		return C.int64_t(d / time.Millisecond), nil
	default:
		return C.int64_t((d + time.Millisecond - 1) / time.Millisecond), nil
	}
}

// durationMS converts a time left in milliseconds from the C API. One beyond the
// largest Duration (about 292 years: an entry set from C, Zig or the CLI may have
// 1,000) is the largest Duration, not the negative one the multiplication wraps to.
func durationMS(ms int64) time.Duration {
	if ms > math.MaxInt64/int64(time.Millisecond) {
		return math.MaxInt64
	}
	return time.Duration(ms) * time.Millisecond
}

// EvictionPolicy chooses the entries removed when the cache is full.
type EvictionPolicy int32

// The policies, with the C library's values.
const (
	LeastRecentlyUsed   EvictionPolicy = 0 // evicts the entry whose last access is oldest (the default)
	LeastFrequentlyUsed EvictionPolicy = 1 // the fewest hits, the least recently used first among equals
	MostRecentlyUsed    EvictionPolicy = 2 // evicts the entry whose last access is newest
	FirstInFirstOut     EvictionPolicy = 3 // evicts the entry set earliest
	LastInFirstOut      EvictionPolicy = 4 // evicts the entry set latest
)

var (
	_ = [1]struct{}{}[LeastRecentlyUsed-C.BACKLITE_EVICTION_POLICY_LEAST_RECENTLY_USED]
	_ = [1]struct{}{}[LeastFrequentlyUsed-C.BACKLITE_EVICTION_POLICY_LEAST_FREQUENTLY_USED]
	_ = [1]struct{}{}[MostRecentlyUsed-C.BACKLITE_EVICTION_POLICY_MOST_RECENTLY_USED]
	_ = [1]struct{}{}[FirstInFirstOut-C.BACKLITE_EVICTION_POLICY_FIRST_IN_FIRST_OUT]
	_ = [1]struct{}{}[LastInFirstOut-C.BACKLITE_EVICTION_POLICY_LAST_IN_FIRST_OUT]
)

var policyNames = [...]string{
	"least-recently-used", "least-frequently-used", "most-recently-used",
	"first-in-first-out", "last-in-first-out",
}

// String is the policy's name, as in the other bindings: "least-recently-used", ...
func (p EvictionPolicy) String() string {
	if p >= 0 && int(p) < len(policyNames) {
		return policyNames[p]
	}
	return fmt.Sprintf("EvictionPolicy(%d)", int32(p))
}

// ParseEvictionPolicy returns the policy with the given name ("least-recently-used", ...).
func ParseEvictionPolicy(name string) (EvictionPolicy, error) {
	for i, n := range policyNames {
		if n == name {
			return EvictionPolicy(i), nil
		}
	}
	return 0, invalid(fmt.Sprintf("unknown eviction policy %q", name))
}

// An Option configures Open. Each is checked by Open, which fails with an *Error of code
// CodeInvalidArgument on a bad value.
type Option struct {
	apply func(o *C.backlite_options) error
}

func setter(name string, set func(o *C.backlite_options) C.backlite_result) Option {
	return Option{func(o *C.backlite_options) error {
		if rc := set(o); rc != C.BACKLITE_RESULT_OK {
			return &Error{Code: Code(rc), Message: name + ": " + Code(rc).String()}
		}
		return nil
	}}
}

func failing(err error) Option {
	return Option{func(*C.backlite_options) error { return err }}
}

// WithMaxSize bounds the sum of value lengths, 1 to math.MaxInt64 bytes (default 1 GiB).
func WithMaxSize(bytes uint64) Option {
	return setter(fmt.Sprintf("WithMaxSize(%d)", bytes), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_max_size(o, C.uint64_t(bytes))
	})
}

// WithEvictionPolicy sets the eviction policy (default LeastRecentlyUsed).
func WithEvictionPolicy(p EvictionPolicy) Option {
	return setter(fmt.Sprintf("WithEvictionPolicy(%v)", p), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_eviction_policy(o, C.backlite_eviction_policy(p))
	})
}

// WithDefaultExpiration sets the expiration of entries stored with ExpireDefault: a
// positive duration, or ExpireNever (the default).
func WithDefaultExpiration(d time.Duration) Option {
	if d == ExpireDefault {
		return failing(invalid("WithDefaultExpiration(0): use a positive duration or ExpireNever"))
	}
	ms, err := expirationMS(d)
	if err != nil {
		return failing(err)
	}
	return setter(fmt.Sprintf("WithDefaultExpiration(%v)", d), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_default_expiration_ms(o, ms)
	})
}

// WithBusyTimeout sets how long to wait for a lock held by another connection or
// process before failing with ErrBusy (default 5 s; 0 does not wait; a positive
// duration is rounded up to whole milliseconds, at most about 49 days).
func WithBusyTimeout(d time.Duration) Option {
	ms, err := busyTimeoutMS(d)
	if err != nil {
		return failing(err)
	}
	return setter(fmt.Sprintf("WithBusyTimeout(%v)", d), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_busy_timeout_ms(o, C.uint32_t(ms))
	})
}

// busyTimeoutMS converts a busy timeout for the C API, rounding up: truncated, any
// timeout under a millisecond became 0, which the library takes as "do not wait".
func busyTimeoutMS(d time.Duration) (uint32, error) {
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	if d < 0 || ms > math.MaxUint32 {
		return 0, invalid(fmt.Sprintf("WithBusyTimeout(%v): out of range (0 to %d ms)", d, uint32(math.MaxUint32)))
	}
	return uint32(ms), nil
}

// WithLeaseLength sets how long CachedContext's claim on a key lasts between two
// renewals (default 30 s; a positive duration, rounded up to whole milliseconds). The
// library renews it while compute runs, so it bounds only how long a holder that stops
// (a stopped process, or a dead one on another host or in another PID namespace)
// blocks its key.
func WithLeaseLength(d time.Duration) Option {
	ms, err := leaseMS(d)
	if err != nil {
		return failing(err)
	}
	return setter(fmt.Sprintf("WithLeaseLength(%v)", d), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_lease_ms(o, C.int64_t(ms))
	})
}

// leaseMS converts a lease length for the C API, rounding up as busyTimeoutMS does:
// truncated, 1.9 ms was a lease of 1 ms, shorter than asked, and anything under a
// millisecond was refused.
func leaseMS(d time.Duration) (int64, error) {
	return positiveMS("WithLeaseLength", d)
}

// positiveMS converts a positive duration (a lease's length) for the C API, rounded up
// to whole milliseconds; zero and negative ones are refused, naming what.
func positiveMS(what string, d time.Duration) (int64, error) {
	if d <= 0 {
		return 0, invalid(fmt.Sprintf("%s(%v): must be positive", what, d))
	}
	ms := int64(d / time.Millisecond)
	if d%time.Millisecond != 0 {
		ms++
	}
	return ms, nil
}

// FileThresholdNever, given to WithFileThreshold, keeps every value in the database file.
const FileThresholdNever int64 = C.BACKLITE_FILE_THRESHOLD_NEVER

// WithFileThreshold keeps values of at least bytes bytes (> 0) in files of their own in
// the folder "<cache>.values" beside the cache file, where large values read and write
// at the speed of files; FileThresholdNever keeps every value in the database file.
// The default is the C library's (backlite_options_set_file_threshold in backlite.h).
func WithFileThreshold(bytes int64) Option {
	if bytes <= 0 && bytes != FileThresholdNever {
		return failing(invalid(fmt.Sprintf("WithFileThreshold(%d): must be > 0 bytes or FileThresholdNever", bytes)))
	}
	return setter(fmt.Sprintf("WithFileThreshold(%d)", bytes), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_file_threshold(o, C.int64_t(bytes))
	})
}

// WithVersionTag tags the file with, say, a serialisation format version: when the
// file was last opened with another tag, every entry is dropped on open.
func WithVersionTag(tag string) Option {
	if strings.IndexByte(tag, 0) >= 0 {
		return failing(invalid("WithVersionTag: the tag contains a NUL byte"))
	}
	return setter(fmt.Sprintf("WithVersionTag(%q)", tag), func(o *C.backlite_options) C.backlite_result {
		ctag := C.CString(tag)
		defer C.free(unsafe.Pointer(ctag))
		return C.backlite_options_set_version_tag(o, ctag)
	})
}
