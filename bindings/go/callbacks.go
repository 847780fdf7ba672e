package backlite

// The Go functions the C library calls back (through shim.c). Each finds its state
// through the runtime/cgo.Handle passed as user_data, and none lets a panic unwind into
// C: it is recovered here, the C call is told to stop, and the caller re-panics once
// the C call has returned.

// #include <backlite.h>
import "C"

import (
	"io"
	"runtime/cgo"
	"sync"
	"unsafe"
)

// panicSlot keeps the panic of a callback, to be panicked again by the Go caller once
// the C call has returned.
type panicSlot struct {
	panicked bool
	panicVal any
}

// run calls body, the work of one callback, and returns its result; when body panics,
// the panic is kept and run returns 1, which tells the C call to stop. Whether body
// returned is told by a flag, not by recover's value: a panic(nil) recovers as nil
// under GODEBUG=panicnil=1 (the default of a main module declaring go 1.20 or older),
// and was taken for a normal return (a compute that panicked so stored an empty
// value, and Cached returned it with no error).
func (p *panicSlot) run(body func() C.int32_t) (rc C.int32_t) {
	returned := false
	defer func() {
		if returned {
			return
		}
		v := recover()
		if !p.panicked {
			p.panicked, p.panicVal = true, v
		}
		rc = 1
	}()
	rc = body()
	returned = true
	return rc
}

// callState is what the compute and barrier callbacks of one Cached call reach.
type callState struct {
	panicSlot
	compute func() ([]byte, error)
	locker  sync.Locker
	err     error // the compute's error, or a failure to hand its value over
}

//export backliteGoVisitKey
func backliteGoVisitKey(userData unsafe.Pointer, key *C.uint8_t, keyLen C.size_t) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*keysState)
	return st.run(func() C.int32_t {
		k := make([]byte, int(keyLen))
		if keyLen > 0 {
			copy(k, unsafe.Slice((*byte)(unsafe.Pointer(key)), int(keyLen)))
		}
		if !st.visit(k) {
			return 1
		}
		return 0
	})
}

//export backliteGoVisitChunk
func backliteGoVisitChunk(userData unsafe.Pointer, chunk *C.uint8_t, chunkLen C.size_t) C.int32_t {
	st := cgo.Handle(uintptr(userData)).Value().(*chunksState)
	return st.run(func() C.int32_t {
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
	return st.run(func() C.int32_t {
		value, err := st.compute()
		if err != nil {
			st.err = err
			return 1
		}
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
	return st.run(func() C.int32_t {
		st.locker.Lock()
		return 0
	})
}

//export backliteGoUnlock
func backliteGoUnlock(userData unsafe.Pointer) {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	st.run(func() C.int32_t {
		st.locker.Unlock()
		return 0
	})
}
