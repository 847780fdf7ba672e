package backlite

// The WithLock lockers that Cached calls hold, by the goroutine whose compute runs under
// each. A Cached made inside such a compute (a memoised recursion, or one function
// calling another that shares its lock) with the same locker would wait for a lock its
// own caller holds: a sync.Mutex is not reentrant, so it waited for ever. It fails
// instead, as a lock that cannot be taken does (CALLBACK_FAILED). Go has no
// goroutine-local state, so the goroutine is told by its id; a goroutine the compute
// starts is another one, and still waits.

import (
	"bytes"
	"reflect"
	"runtime"
	"strconv"
	"sync"
)

var lockHolds struct {
	sync.Mutex
	by map[uint64][]*callState // the goroutine's calls holding their lockers, outermost first
}

// goroutineID is the calling goroutine's id, from the first line of its stack trace
// ("goroutine 18 [running]:").
func goroutineID() uint64 {
	var buf [64]byte
	line := buf[:runtime.Stack(buf[:], false)]
	line = bytes.TrimPrefix(line, []byte("goroutine "))
	if i := bytes.IndexByte(line, ' '); i > 0 {
		line = line[:i]
	}
	id, _ := strconv.ParseUint(string(line), 10, 64)
	return id
}

// sameLocker reports whether a and b are one locker. Lockers of a type that cannot be
// compared (a struct value holding a slice) are never taken for one another.
func sameLocker(a, b sync.Locker) (same bool) {
	ta := reflect.TypeOf(a)
	if ta != reflect.TypeOf(b) || !ta.Comparable() {
		return false
	}
	defer func() {
		if recover() != nil { // a comparable type holding an interface of one that is not
			same = false
		}
	}()
	return a == b
}

// lockHeldAbove reports whether a compute that goroutine gid runs holds l.
func lockHeldAbove(gid uint64, l sync.Locker) bool {
	lockHolds.Lock()
	defer lockHolds.Unlock()
	for _, st := range lockHolds.by[gid] {
		if sameLocker(st.locker, l) {
			return true
		}
	}
	return false
}

// holdLock records that st, on goroutine gid, holds its locker.
func holdLock(gid uint64, st *callState) {
	lockHolds.Lock()
	defer lockHolds.Unlock()
	if lockHolds.by == nil {
		lockHolds.by = make(map[uint64][]*callState)
	}
	st.holder = gid
	lockHolds.by[gid] = append(lockHolds.by[gid], st)
}

// releaseLock records that st no longer holds its locker (called from any goroutine:
// an unlock after a panic runs on one of its own).
func releaseLock(st *callState) {
	lockHolds.Lock()
	defer lockHolds.Unlock()
	held := lockHolds.by[st.holder]
	for i := len(held) - 1; i >= 0; i-- {
		if held[i] == st {
			held = append(held[:i], held[i+1:]...)
			break
		}
	}
	if len(held) == 0 {
		delete(lockHolds.by, st.holder)
	} else {
		lockHolds.by[st.holder] = held
	}
}
