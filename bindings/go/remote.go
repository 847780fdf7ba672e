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

// RemoteMode says how the remote tier (WithRemote) is used.
type RemoteMode int32

// The modes, with the C library's values.
const (
	RemoteReadWrite   RemoteMode = 0 // reads through; writes reach the remote before the call returns (default)
	RemoteReadOnly    RemoteMode = 1 // reads through; never writes to the remote
	RemoteWriteBehind RemoteMode = 2 // reads through; writes are queued and sent in the background
)

var (
	_ = [1]struct{}{}[RemoteReadWrite-C.BACKLITE_REMOTE_MODE_READ_WRITE]
	_ = [1]struct{}{}[RemoteReadOnly-C.BACKLITE_REMOTE_MODE_READ_ONLY]
	_ = [1]struct{}{}[RemoteWriteBehind-C.BACKLITE_REMOTE_MODE_WRITE_BEHIND]
)

func cString(what, s string, set func(*C.char) C.backlite_result) Option {
	if strings.IndexByte(s, 0) >= 0 {
		return failing(invalid(what + ": contains a NUL byte"))
	}
	return setter(what, func(*C.backlite_options) C.backlite_result {
		cs := C.CString(s)
		defer C.free(unsafe.Pointer(cs))
		return set(cs)
	})
}

// WithRemote adds a shared remote tier on Redis or Valkey:
// "redis://[user[:password]@]host[:port][/db]", "rediss://..." (TLS),
// "redis+unix:///path/to.sock", "redis+cluster://host:port[,host:port...]" or
// "rediss+cluster://...". A malformed URL fails Open with CodeInvalidArgument (the
// message never shows the password); an unreachable remote does not.
func WithRemote(url string) Option {
	return Option{func(o *C.backlite_options) error {
		return cString("WithRemote", url, func(cs *C.char) C.backlite_result {
			return C.backlite_options_set_remote(o, cs)
		}).apply(o)
	}}
}

// WithRemoteNamespace sets the prefix of every remote key (default "backlite").
func WithRemoteNamespace(ns string) Option {
	return Option{func(o *C.backlite_options) error {
		return cString(fmt.Sprintf("WithRemoteNamespace(%q)", ns), ns, func(cs *C.char) C.backlite_result {
			return C.backlite_options_set_remote_namespace(o, cs)
		}).apply(o)
	}}
}

// WithRemoteTimeout bounds every remote round trip, connect included (default
// 250 ms; at least 1 ms, rounded up to whole milliseconds).
func WithRemoteTimeout(d time.Duration) Option {
	ms, err := remoteTimeoutMS(d)
	if err != nil {
		return failing(err)
	}
	return setter(fmt.Sprintf("WithRemoteTimeout(%v)", d), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_remote_timeout_ms(o, C.uint32_t(ms))
	})
}

// WithRemoteMode sets how the remote tier is used (default RemoteReadWrite).
func WithRemoteMode(m RemoteMode) Option {
	return setter(fmt.Sprintf("WithRemoteMode(%d)", m), func(o *C.backlite_options) C.backlite_result {
		return C.backlite_options_set_remote_mode(o, C.backlite_remote_mode(m))
	})
}

// RemoteStats is a handle's remote tier activity (all zero without a remote).
type RemoteStats struct {
	Hits, Misses, Writes uint64
	Errors               uint64 // failed round trips (refused, timed out, garbage)
	Skipped              uint64 // calls not sent while the remote was backed off
	Connected            bool   // the last round trip succeeded
}

// RemoteStats returns this handle's remote tier activity.
func (s *Storage) RemoteStats() (RemoteStats, error) {
	h, err := s.acquire()
	if err != nil {
		return RemoteStats{}, err
	}
	defer s.release()
	var cs C.backlite_remote_stats
	var cerr *C.backlite_error
	if rc := C.backlite_storage_remote_stats(h, &cs, &cerr); rc != C.BACKLITE_RESULT_OK {
		return RemoteStats{}, takeError(rc, cerr, "RemoteStats")
	}
	return RemoteStats{
		Hits: uint64(cs.hits), Misses: uint64(cs.misses), Writes: uint64(cs.writes),
		Errors: uint64(cs.errors), Skipped: uint64(cs.skipped), Connected: cs.connected != 0,
	}, nil
}

// remoteTimeoutMS converts a remote timeout for the C API, rounding up as
// busyTimeoutMS does (truncated, 1.9 ms was a bound of 1 ms, shorter than asked). One
// under a millisecond is refused, with the reason.
func remoteTimeoutMS(d time.Duration) (uint32, error) {
	ms := d / time.Millisecond
	if d%time.Millisecond != 0 {
		ms++
	}
	if d < time.Millisecond || ms > math.MaxUint32 {
		return 0, invalid(fmt.Sprintf("WithRemoteTimeout(%v): must be 1 ms or more, at most %d ms", d, uint32(math.MaxUint32)))
	}
	return uint32(ms), nil
}
