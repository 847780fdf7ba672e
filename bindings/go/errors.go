package backlite

// #include <backlite.h>
import "C"

import (
	"errors"
	"strconv"
	"time"
)

// Code is a result code of the C library (BACKLITE_RESULT_*).
type Code int32

// The result codes, with the C library's values.
const (
	CodeOK              Code = 0
	CodeNotFound        Code = 1  // no live entry: absent, expired, or damaged
	CodeNullParameter   Code = 2  // a required pointer was NULL (a closed handle, say)
	CodeInvalidArgument Code = 3  // a bad enum value, path or duration
	CodeIO              Code = 4  // the file cannot be opened, created, read or written
	CodeNotACache       Code = 5  // the file is not a BackLite cache; it was left untouched
	CodeCorrupt         Code = 6  // SQLite reports the file damaged
	CodeBusy            Code = 7  // a lock was not obtained within the busy timeout
	CodeTooLarge        Code = 8  // the value is larger than the maximum size: not stored
	CodeCallbackFailed  Code = 9  // a compute, lock or visitor callback failed
	CodeIncompatible    Code = 10 // written by a newer BackLite schema
	CodePanic           Code = 11 // an internal bug caught at the boundary
	CodeInternal        Code = 12 // any other SQLite or system error
	CodeLeaseLost       Code = 13 // a lease expired and another owner took it over
	CodeLeaseHeld       Code = 14 // another live owner holds the key's lease (it is computing it)
)

// The Go values must be the header's: each line fails to compile if one drifts.
var (
	_ = [1]struct{}{}[CodeNotFound-C.BACKLITE_RESULT_NOT_FOUND]
	_ = [1]struct{}{}[CodeNullParameter-C.BACKLITE_RESULT_NULL_PARAMETER]
	_ = [1]struct{}{}[CodeInvalidArgument-C.BACKLITE_RESULT_INVALID_ARGUMENT]
	_ = [1]struct{}{}[CodeIO-C.BACKLITE_RESULT_IO]
	_ = [1]struct{}{}[CodeNotACache-C.BACKLITE_RESULT_NOT_A_CACHE]
	_ = [1]struct{}{}[CodeCorrupt-C.BACKLITE_RESULT_CORRUPT]
	_ = [1]struct{}{}[CodeBusy-C.BACKLITE_RESULT_BUSY]
	_ = [1]struct{}{}[CodeTooLarge-C.BACKLITE_RESULT_TOO_LARGE]
	_ = [1]struct{}{}[CodeCallbackFailed-C.BACKLITE_RESULT_CALLBACK_FAILED]
	_ = [1]struct{}{}[CodeIncompatible-C.BACKLITE_RESULT_INCOMPATIBLE]
	_ = [1]struct{}{}[CodePanic-C.BACKLITE_RESULT_PANIC]
	_ = [1]struct{}{}[CodeInternal-C.BACKLITE_RESULT_INTERNAL]
	_ = [1]struct{}{}[CodeLeaseLost-C.BACKLITE_RESULT_LEASE_LOST]
	_ = [1]struct{}{}[CodeLeaseHeld-C.BACKLITE_RESULT_LEASE_HELD]
)

// String is the C library's description of the code ("not found", ...).
func (c Code) String() string {
	if s := C.GoString(C.backlite_result_str(C.backlite_result(c))); s != "" {
		return s
	}
	return "result " + strconv.Itoa(int(c))
}

// Error is every failure the C library reports: its result code and message.
//
// Use errors.Is with the Err* values to test for a code, and errors.As to read it.
type Error struct {
	Code    Code
	Message string
	// LeaseTimeLeft is, for CodeLeaseHeld, how long the holder's lease has left unless
	// the holder renews it (it does while it computes); 0 otherwise.
	LeaseTimeLeft time.Duration
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "backlite: " + e.Code.String()
	}
	return "backlite: " + e.Message
}

// Is reports whether target is the sentinel of e's code (ErrNotFound, ...): an *Error
// with the same Code and no Message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Code == e.Code
}

// Sentinels to compare errors with, by code: errors.Is(err, backlite.ErrNotFound).
var (
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrNullParameter   = &Error{Code: CodeNullParameter}
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	ErrIO              = &Error{Code: CodeIO}
	ErrNotACache       = &Error{Code: CodeNotACache}
	ErrCorrupt         = &Error{Code: CodeCorrupt}
	ErrBusy            = &Error{Code: CodeBusy}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
	ErrCallbackFailed  = &Error{Code: CodeCallbackFailed}
	ErrIncompatible    = &Error{Code: CodeIncompatible}
	ErrPanic           = &Error{Code: CodePanic}
	ErrInternal        = &Error{Code: CodeInternal}
	ErrLeaseLost       = &Error{Code: CodeLeaseLost}
	ErrLeaseHeld       = &Error{Code: CodeLeaseHeld}
)

// ErrClosed is returned by every call on a Storage after Close.
var ErrClosed = errors.New("backlite: the storage is closed")

// takeError turns a failed call's result and error object into an *Error, and frees
// the object.
func takeError(rc C.backlite_result, cerr *C.backlite_error, what string) error {
	msg := ""
	var left time.Duration
	if cerr != nil {
		msg = C.GoString(C.backlite_error_message(cerr))
		if ms := C.backlite_error_lease_time_left_ms(cerr); ms >= 0 {
			left = durationMS(int64(ms))
		}
		C.backlite_error_free(cerr)
	}
	if msg == "" {
		msg = what + ": " + Code(rc).String()
	}
	return &Error{Code: Code(rc), Message: msg, LeaseTimeLeft: left}
}

func invalid(msg string) error {
	return &Error{Code: CodeInvalidArgument, Message: msg}
}
