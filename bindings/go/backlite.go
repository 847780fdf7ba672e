// Package backlite is the Go binding of BackLite, a persistent cache in one SQLite file:
// values bounded in size with five eviction policies, per-item expiration and
// memoisation, shared safely by goroutines and processes.
//
//	cache, err := backlite.Open("cache.db", backlite.WithMaxSize(64<<20))
//	if err != nil { ... }
//	defer cache.Close()
//	err = cache.Set([]byte("greeting"), []byte("hello"), time.Minute)
//	v, err := cache.Get([]byte("greeting"))                   // ErrNotFound on a miss
//	v, err = cache.CachedContext(ctx, []byte("answer"), compute) // computed once, everywhere
//
// Errors are *Error values carrying the C library's result code; compare them with
// errors.Is (errors.Is(err, backlite.ErrNotFound)) or read the code with errors.As.
//
// The package wraps the C library (libbacklite) with cgo; see README.md for how it is
// found and linked.
package backlite

// #include <backlite.h>
import "C"

// HeaderVersion is the version of the backlite.h this package was compiled against.
const HeaderVersion = C.BACKLITE_VERSION_STRING

// Version is the version of the C library loaded at run time; it should equal
// HeaderVersion.
func Version() string {
	return C.GoString(C.backlite_version())
}
