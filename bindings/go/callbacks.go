package backlite

// The Go functions the C library calls back (through shim.c), and the bridge that
// runs the user's code they carry on the calling goroutine, outside the C call.
//
// Why a bridge: a compute, a lock, a writer or a key visitor may panic or end its goroutine with
// runtime.Goexit (t.Fatal, t.FailNow and t.SkipNow do, and tests call them there as
// anywhere else). Neither may leave a Go callback for C's frames: Goexit and an
// unrecovered panic skip C frames without running them down, which left the library's
// read snapshot or connection held by frames that no longer existed. So Cached, GetTo
// and Keys run the C call on a goroutine of their own, and each callback hands its work
// back to the calling goroutine and waits for the answer. A panic or Goexit there
// happens outside any C frame: the bridge tells the C call to stop, waits for it to
// return, and lets the panic (with its own stack) or the Goexit go on. testing also
// requires FailNow and SkipNow on the test's own goroutine, which this keeps. A key
// walk hands its keys over in batches (see Storage.Keys).

// #include <backlite.h>
import "C"

import (
	"io"
	"runtime/cgo"
	"sync"
	"sync/atomic"
	"unsafe"
)

// bridge runs one C call that calls back into Go. Each state below embeds one; its
// cgo.Handle is the C call's user_data.
type bridge struct {
	calls   chan callback  // from the C call's callbacks to the calling goroutine
	results chan C.int32_t // each callback's result, back to it
	done    chan struct{}  // closed once the C call has returned
}

// callback is one callback's work, for the calling goroutine.
type callback struct {
	body func() C.int32_t
	// always: run even after the caller's code panicked or exited (an unlock, which
	// releases what a lock the caller took holds).
	always bool
}

// run calls call(handle) on a goroutine of its own, with state's cgo.Handle, and runs
// the callbacks it makes on the calling goroutine until it returns. When a callback's
// code panics or calls runtime.Goexit, the callback returns 1 (stop) to C, every later
// callback returns 1 without running (an `always` one still runs, on a goroutine of
// its own), the C call returns, discard frees what it gave, and the panic or Goexit
// goes on.
func (b *bridge) run(state any, call func(handle C.uintptr_t), discard func()) {
	b.calls = make(chan callback)
	b.results = make(chan C.int32_t)
	b.done = make(chan struct{})
	handle := cgo.NewHandle(state)
	go func() {
		defer close(b.done)
		call(C.uintptr_t(handle))
	}()
	returned := false
	defer func() {
		if !returned {
			// A callback's body did not return: the C call waits for its result.
			b.results <- 1
			b.abandon()
			discard()
		}
		handle.Delete()
	}()
	for {
		select {
		case cb := <-b.calls:
			b.results <- cb.body()
		case <-b.done:
			returned = true
			return
		}
	}
}

// abandon answers the C call's remaining callbacks until it returns, the caller's
// code having panicked or exited.
func (b *bridge) abandon() {
	for {
		select {
		case cb := <-b.calls:
			if cb.always {
				aside(cb.body)
			}
			b.results <- 1
		case <-b.done:
			return
		}
	}
}

// aside runs body on a goroutine of its own and waits until it has ended, however it
// ends: a panic or Goexit in it must not cut short the unwinding it runs within.
func aside(body func() C.int32_t) {
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		defer func() { _ = recover() }() // the caller's own panic or Goexit comes first
		body()
	}()
	<-ended
}

// handBack hands body to the calling goroutine and returns its result: called from
// the exported functions, inside the C call.
func (b *bridge) handBack(always bool, body func() C.int32_t) C.int32_t {
	b.calls <- callback{body: body, always: always}
	return <-b.results
}

// chunksState is what the chunk visitor callback reaches through its cgo.Handle.
type chunksState struct {
	bridge
	w   io.Writer
	err error // the writer's error
}

// callState is what the compute and barrier callbacks of one Cached call reach.
type callState struct {
	bridge
	compute func() ([]byte, error)
	locker  sync.Locker
	holder  uint64 // the goroutine whose compute runs under locker, once locked
	err     error  // the compute's error, a failure to hand its value over, or a lock held above
}

// keysBatch is how many keys the C key walk hands to the calling goroutine at once.
const keysBatch = 256

// writes counts the calls of this package that may write to a cache, in any Storage,
// so that a key walk knows when a key it was handed may have gone meanwhile.
var writes atomic.Uint64

// keysState is what the key visitor callback reaches through its cgo.Handle.
type keysState struct {
	bridge
	h       *C.backlite_storage
	visit   func(key []byte) bool
	batch   [][]byte // keys handed over, not visited yet
	writes  uint64   // writes when the batch's first key was handed over
	stopped bool     // the visitor returned false
	err     error    // a key could not be looked up again
}

// flush visits the batch on the calling goroutine; false once the walk is to stop.
func (st *keysState) flush() bool {
	batch := st.batch
	st.batch = nil
	for _, k := range batch {
		if writes.Load() != st.writes {
			var cerr *C.backlite_error
			switch rc := C.backlite_storage_contains(st.h, cbytes(k), C.size_t(len(k)), &cerr); rc {
			case C.BACKLITE_RESULT_OK:
			case C.BACKLITE_RESULT_NOT_FOUND:
				continue // gone since it was handed over
			default:
				st.err = takeError(rc, cerr, "Keys")
				return false
			}
		}
		if !st.visit(k) {
			st.stopped = true
			return false
		}
	}
	return true
}

//export backliteGoVisitKey
func backliteGoVisitKey(userData unsafe.Pointer, key *C.uint8_t, keyLen C.size_t) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*keysState)
	if len(st.batch) == 0 {
		st.writes = writes.Load()
	}
	k := make([]byte, int(keyLen))
	if keyLen > 0 {
		copy(k, unsafe.Slice((*byte)(unsafe.Pointer(key)), int(keyLen)))
	}
	st.batch = append(st.batch, k)
	if len(st.batch) < keysBatch {
		return 0
	}
	return st.handBack(false, func() C.int32_t {
		if st.flush() {
			return 0
		}
		return 1
	})
}

//export backliteGoVisitChunk
func backliteGoVisitChunk(userData unsafe.Pointer, chunk *C.uint8_t, chunkLen C.size_t) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*chunksState)
	return st.handBack(false, func() C.int32_t {
		// The chunk is the library's only during the call: the writer must not keep it
		// (io.Writer's contract), so no copy is made.
		n, err := st.w.Write(unsafe.Slice((*byte)(unsafe.Pointer(chunk)), int(chunkLen)))
		if err == nil && n != int(chunkLen) {
			err = io.ErrShortWrite // as io.Copy: a writer that took less must say why
		}
		if err != nil {
			st.err = err
			return 1
		}
		return 0
	})
}

//export backliteGoCompute
func backliteGoCompute(userData unsafe.Pointer, sink *C.backlite_sink) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	return st.handBack(false, func() C.int32_t {
		value, err := st.compute()
		if err != nil {
			st.err = err
			return 1
		}
		// The sink stays valid while the C call waits in this callback.
		if r := C.backlite_sink_write(sink, cbytes(value), C.size_t(len(value))); r != C.BACKLITE_RESULT_OK {
			st.err = &Error{Code: Code(r), Message: "Cached: handing the computed value over: " + Code(r).String()}
			return 1
		}
		return 0
	})
}

//export backliteGoLock
func backliteGoLock(userData unsafe.Pointer) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	return st.handBack(false, func() C.int32_t {
		gid := goroutineID()
		if lockHeldAbove(gid, st.locker) {
			st.err = &Error{Code: CodeCallbackFailed, Message: "Cached: the WithLock locker is held by a " +
				"Cached whose compute this call runs inside; taking it again would wait for ever " +
				"(use a locker per key, or CachedContext)"}
			return 1
		}
		st.locker.Lock()
		holdLock(gid, st)
		return 0
	})
}

//export backliteGoUnlock
func backliteGoUnlock(userData unsafe.Pointer) {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	st.handBack(true, func() C.int32_t {
		releaseLock(st)
		st.locker.Unlock()
		return 0
	})
}
