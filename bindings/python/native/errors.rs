//! Core errors as the package's exceptions (`backlite.errors`), by C result code.

use backlite_core::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

pub(crate) const OK: i32 = 0;
pub(crate) const NOT_FOUND: i32 = 1;
pub(crate) const PANIC: i32 = 11;
pub(crate) const LEASE_HELD: i32 = 14;

/// Every result code of the C API, by its header name less `BACKLITE_RESULT_`.
pub(crate) const RESULT_CODES: &[(&str, i32)] = &[
    ("OK", OK),
    ("NOT_FOUND", NOT_FOUND),
    ("NULL_PARAMETER", 2),
    ("INVALID_ARGUMENT", 3),
    ("IO", 4),
    ("NOT_A_CACHE", 5),
    ("CORRUPT", 6),
    ("BUSY", 7),
    ("TOO_LARGE", 8),
    ("CALLBACK_FAILED", 9),
    ("INCOMPATIBLE", 10),
    ("PANIC", PANIC),
    ("INTERNAL", 12),
    ("LEASE_LOST", 13),
    ("LEASE_HELD", LEASE_HELD),
];

fn code(name: &str) -> i32 {
    RESULT_CODES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .expect("a result code of RESULT_CODES")
}

/// The C result code of a core error (as `src/ffi/result.rs` maps it).
pub(crate) fn code_of(kind: ErrorKind) -> i32 {
    code(match kind {
        ErrorKind::InvalidArgument => "INVALID_ARGUMENT",
        ErrorKind::Io => "IO",
        ErrorKind::NotACache => "NOT_A_CACHE",
        ErrorKind::Corrupt => "CORRUPT",
        ErrorKind::Busy => "BUSY",
        ErrorKind::TooLarge => "TOO_LARGE",
        ErrorKind::CallbackFailed => "CALLBACK_FAILED",
        ErrorKind::Incompatible => "INCOMPATIBLE",
        ErrorKind::Internal => "INTERNAL",
        ErrorKind::LeaseLost => "LEASE_LOST",
        ErrorKind::LeaseHeld => "LEASE_HELD",
    })
}

/// The `BackLiteError` subclass for `e`, with its code, message and, for LEASE_HELD,
/// the holder's time left.
pub(crate) fn to_py(py: Python<'_>, e: &Error) -> PyErr {
    // A lock wait that Ctrl-C stopped ends BUSY: the KeyboardInterrupt (or whatever
    // the SIGINT handler raises; fork_gate::detach delivered it again) is the error.
    if e.kind() == ErrorKind::Busy {
        if let Err(interrupt) = py.check_signals() {
            return interrupt;
        }
    }
    let time_left_ms = e
        .lease_time_left()
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    from_code(py, code_of(e.kind()), e.message(), time_left_ms)
}

/// `backlite.errors.error_from_code(code, message, time_left_ms)` as a `PyErr`.
pub(crate) fn from_code(py: Python<'_>, code: i32, message: &str, time_left_ms: i64) -> PyErr {
    static ERROR_FROM_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let made = ERROR_FROM_CODE
        .get_or_try_init(py, || {
            py.import("backlite.errors")?
                .getattr("error_from_code")
                .map(Bound::unbind)
        })
        .and_then(|f| f.call1(py, (code, message, time_left_ms)));
    match made {
        Ok(exc) => PyErr::from_value(exc.into_bound(py)),
        Err(failed) => failed,
    }
}

/// Runs the body of a native function or method. A Rust panic in it (a bug of BackLite,
/// in the core or here) becomes `backlite.PanicError`, as a C caller gets
/// BACKLITE_RESULT_PANIC: PyO3 alone would raise its `PanicException`, a
/// BaseException that `except BackLiteError` (or `except Exception`) lets through.
/// Unwinding is what leaves the core consistent (its transactions roll back and its
/// leases are released on drop), so the handle stays usable afterwards.
pub(crate) fn guard<T>(body: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(out) => out,
        Err(payload) => Err(Python::attach(|py| panic_error(py, payload.as_ref()))),
    }
}

fn panic_error(py: Python<'_>, payload: &(dyn Any + Send)) -> PyErr {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".to_string());
    from_code(py, PANIC, &format!("panic in BackLite: {what}"), -1)
}

/// `Result<T, core Error>` into `PyResult<T>`.
pub(crate) trait OrRaise<T> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> OrRaise<T> for Result<T, Error> {
    fn or_raise(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_py(py, &e))
    }
}
