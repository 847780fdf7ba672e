//! `_native.ValueReader`: the core's pull reader of a value, under
//! `backlite.ValueReader` (an `io.RawIOBase` in Python). A read releases the GIL while
//! it reads the file or database, straight into the new `bytes` object.

use crate::errors::{from_code, guard, OrRaise, NOT_FOUND};
use backlite_core::Part;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Mutex, MutexGuard, TryLockError};

/// A reader of one value, from `Storage._open_reader`; one thread at a time.
#[pyclass(module = "backlite._native")]
pub struct ValueReader {
    /// `None` once closed.
    inner: Mutex<Option<backlite_core::ValueReader>>,
    size: u64,
    /// The time left when it was opened (`timedelta`), or `None`: never expires.
    expires_in: Option<Py<PyAny>>,
}

impl ValueReader {
    pub(crate) fn new(py: Python<'_>, reader: backlite_core::ValueReader) -> PyResult<Self> {
        let expires_in = match reader.expires_in() {
            Some(left) => Some(crate::convert::time_left(py, left)?.unbind()),
            None => None,
        };
        Ok(ValueReader {
            size: reader.len(),
            expires_in,
            inner: Mutex::new(Some(reader)),
        })
    }

    /// The reader, which one thread uses at a time: a second one is refused rather than
    /// made to wait with the GIL held (while the first waits for the GIL to return).
    fn lock(&self) -> PyResult<MutexGuard<'_, Option<backlite_core::ValueReader>>> {
        match self.inner.try_lock() {
            Ok(g) => Ok(g),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(PyRuntimeError::new_err(
                "a backlite ValueReader is read by one thread at a time",
            )),
        }
    }
}

impl Drop for ValueReader {
    /// Freed unclosed: what it holds (a connection, perhaps the last reference to a
    /// closed handle, which then writes its hits) goes without the GIL, as by close().
    fn drop(&mut self) {
        crate::fork_gate::drop_slot_detached(&mut self.inner);
    }
}

/// Fills `buf` from `r` (no further than the value's end): whether the value is sound.
/// At least one read, so that a read at the end checks the value's CRC.
fn fill(r: &mut backlite_core::ValueReader, buf: &mut [u8]) -> backlite_core::Result<bool> {
    let mut at = 0;
    loop {
        match r.read_part(&mut buf[at..])? {
            Part::Damaged => return Ok(false),
            Part::Bytes(n) => at += n,
        }
        if at == buf.len() {
            return Ok(true);
        }
    }
}

#[pymethods]
impl ValueReader {
    /// Up to `n` (>= 0) next bytes of the value; `b""` only at its end. A value that
    /// proves damaged at its end raises `NotFoundError` (its entry is removed): drop
    /// what was read.
    fn read<'py>(&self, py: Python<'py>, n: u64) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let mut inner = self.lock()?;
            let r = inner
                .as_mut()
                .ok_or_else(|| PyValueError::new_err("read of a closed ValueReader"))?;
            let want = usize::try_from(n.min(r.remaining())).unwrap_or(usize::MAX);
            // The bytes object is new and no Python code sees it yet: it is filled with
            // the GIL released.
            PyBytes::new_with(py, want, |buf| {
                match crate::fork_gate::detach(py, || fill(r, buf)) {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(from_code(
                        py,
                        NOT_FOUND,
                        "the value proved damaged at its end (its CRC-32 does not match): drop \
                     what was read; its entry is removed",
                        -1,
                    )),
                    Err(e) => Err(e).or_raise(py),
                }
            })
        })
    }

    /// Closes the reader: gives back what it holds (a file, or a connection and its
    /// read snapshot). Reading afterwards raises ValueError; closing again does nothing.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            let reader = self.lock()?.take();
            crate::fork_gate::detach(py, || drop(reader));
            Ok(())
        })
    }

    /// The bytes of the value not read yet (0 once closed).
    #[getter]
    fn remaining(&self) -> PyResult<u64> {
        Ok(self.lock()?.as_ref().map_or(0, |r| r.remaining()))
    }

    /// The value's length in bytes.
    #[getter]
    fn size(&self) -> u64 {
        self.size
    }

    /// The value's time left when the reader was opened, or None: it never expires.
    #[getter]
    fn expires_in(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.expires_in.as_ref().map(|t| t.clone_ref(py))
    }
}
