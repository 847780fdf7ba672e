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

// callState is what the compute and barrier callbacks of one Cached call reach.
type callState struct {
	compute  func() ([]byte, error)
	locker   sync.Locker
	err      error // the compute's error, or a failure to hand its value over
	panicked bool
	panicVal any
}

func (st *callState) recoverPanic(rc *C.int32_t) {
	if p := recover(); p != nil {
		if !st.panicked {
			st.panicked, st.panicVal = true, p
		}
		*rc = 1
	}
}

//export backliteGoVisitKey
func backliteGoVisitKey(userData unsafe.Pointer, key *C.uint8_t, keyLen C.size_t) (rc C.int32_t) {
	st := cgo.Handle(uintptr(userData)).Value().(*keysState)
	defer func() {
		if p := recover(); p != nil {
			st.panicked, st.panicVal = true, p
			rc = 1
		}
	}()
	k := make([]byte, int(keyLen))
	if keyLen > 0 {
		copy(k, unsafe.Slice((*byte)(unsafe.Pointer(key)), int(keyLen)))
	}
	if !st.visit(k) {
		return 1
	}
	return 0
}

//export backliteGoVisitChunk
func backliteGoVisitChunk(userData unsafe.Pointer, chunk *C.uint8_t, chunkLen C.size_t) (rc C.int32_t) {
	st := cgo.Handle(uintptr(userData)).Value().(*chunksState)
	defer func() {
		if p := recover(); p != nil {
			st.panicked, st.panicVal = true, p
			rc = 1
		}
	}()
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
}

//export backliteGoCompute
func backliteGoCompute(userData unsafe.Pointer, sink *C.backlite_sink) (rc C.int32_t) {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	defer st.recoverPanic(&rc)
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
}

//export backliteGoLock
func backliteGoLock(userData unsafe.Pointer) (rc C.int32_t) {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	defer st.recoverPanic(&rc)
	st.locker.Lock()
	return 0
}

//export backliteGoUnlock
func backliteGoUnlock(userData unsafe.Pointer) {
	st := cgo.Handle(uintptr(userData)).Value().(*callState)
	var rc C.int32_t
	defer st.recoverPanic(&rc)
	st.locker.Unlock()
}
