package backlite

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
)

// The keys being computed, carried by the ctx CachedContext gives its compute. A
// CachedContext of one of them from inside its own compute (a recursion with the same
// arguments) would wait for the key's lease, which is its own caller's and which the
// library renews: for ever under context.Background(). Such a call computes at once and
// stores nothing; the outer call stores its value. Go has no goroutine-local state, so
// the ctx is what says "inside": a nested call made with another ctx still waits.

// cacheIdentity is which cache a Storage has open. The lease is the file's, so a second
// Storage of the same file (another path to it, a link) meets it as its own.
type cacheIdentity struct {
	dev, ino uint64 // a cache file
	handle   uint64 // else one handle alone (":memory:", or a file gone before its stat)
}

var handles atomic.Uint64

// identityOf is the identity of the cache just opened at path.
func identityOf(path string) cacheIdentity {
	if path != ":memory:" {
		if info, err := os.Stat(path); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				return cacheIdentity{dev: uint64(st.Dev), ino: st.Ino}
			}
		}
	}
	return cacheIdentity{handle: handles.Add(1)}
}

type computingKey struct{}

// computing is one compute of a key, linked to the computes it runs inside.
type computing struct {
	outer *computing
	cache cacheIdentity
	key   string
	// over once the compute has returned: a goroutine it started may keep its ctx, and
	// its later calls are memoised as any other.
	over atomic.Bool
}

// withComputing is ctx for the compute of key in cache, and the mark to end it with.
func withComputing(ctx context.Context, cache cacheIdentity, key []byte) (context.Context, *computing) {
	outer, _ := ctx.Value(computingKey{}).(*computing)
	c := &computing{outer: outer, cache: cache, key: string(key)}
	return context.WithValue(ctx, computingKey{}, c), c
}

// isComputing reports whether ctx is inside a compute of key in cache still running.
func isComputing(ctx context.Context, cache cacheIdentity, key []byte) bool {
	c, _ := ctx.Value(computingKey{}).(*computing)
	for ; c != nil; c = c.outer {
		if !c.over.Load() && c.cache == cache && c.key == string(key) {
			return true
		}
	}
	return false
}
