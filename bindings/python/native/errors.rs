//! Core errors as the package's exceptions (`backlite.errors`), by C result code.

use backlite_core::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

pub(crate) const OK: i32 = 0;
pub(crate) const NOT_FOUND: i32 = 1;
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
    ("PANIC", 11),
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
    static ERROR_FROM_CODE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let time_left_ms = e
        .lease_time_left()
        .map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let made = ERROR_FROM_CODE
        .get_or_try_init(py, || {
            py.import("backlite.errors")?
                .getattr("error_from_code")
                .map(Bound::unbind)
        })
        .and_then(|f| f.call1(py, (code_of(e.kind()), e.message(), time_left_ms)));
    match made {
        Ok(exc) => PyErr::from_value(exc.into_bound(py)),
        Err(failed) => failed,
    }
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
