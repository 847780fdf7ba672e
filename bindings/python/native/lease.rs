//! `async_cached`'s steps: the core's non-blocking wait for a key, and the lease of
//! the caller that computes it.

use crate::errors::{guard, to_py, OrRaise, LEASE_HELD, NOT_FOUND, OK};
use backlite_core::{poll_delay, ErrorKind, LeaseOutcome};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::{Arc, Mutex};

/// The right to compute one key; the library renews it until `fulfill` or `abandon`
/// (the first of them releases it; later calls do nothing).
#[pyclass(module = "backlite._native")]
pub struct Lease {
    inner: Mutex<Option<backlite_core::Lease>>,
}

impl Lease {
    fn take(&self) -> Option<backlite_core::Lease> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

impl Drop for Lease {
    /// Freed neither fulfilled nor abandoned: released, without the GIL.
    fn drop(&mut self) {
        crate::fork_gate::drop_slot_detached(&mut self.inner);
    }
}

#[pymethods]
impl Lease {
    /// Stores `data` under the key and releases the lease. A lost lease (another
    /// owner took over and stores its own result) or a value too large to store is
    /// not an error: the caller has its value either way.
    fn fulfill(&self, py: Python<'_>, data: &[u8], expiration_ms: i64) -> PyResult<()> {
        guard(|| {
            let expiration = crate::convert::expiration(py, expiration_ms)?;
            let Some(lease) = self.take() else {
                return Ok(());
            };
            match crate::fork_gate::detach(py, || lease.fulfill(data, expiration)) {
                Err(e) if matches!(e.kind(), ErrorKind::LeaseLost | ErrorKind::TooLarge) => Ok(()),
                other => other.or_raise(py),
            }
        })
    }

    /// Releases the lease without storing anything; another caller may take it.
    fn abandon(&self, py: Python<'_>) -> PyResult<()> {
        guard(|| {
            if let Some(lease) = self.take() {
                crate::fork_gate::detach(py, || lease.abandon());
            }
            Ok(())
        })
    }
}

/// One step of waiting for `key`: (OK, value bytes, None, 0) a hit; (NOT_FOUND, None,
/// lease, 0) a miss that is ours to compute; (LEASE_HELD, None, None, pause) another
/// owner computes it: step again (attempt + 1) after `pause` seconds.
pub(crate) fn step(
    py: Python<'_>,
    storage: &Arc<backlite_core::Storage>,
    key: &[u8],
    attempt: u32,
) -> PyResult<Py<PyAny>> {
    let held = |pause: std::time::Duration| (LEASE_HELD, py.None(), py.None(), pause.as_secs_f64());
    let answer = match crate::fork_gate::detach(py, || storage.lease_step(key, attempt)) {
        Ok(LeaseOutcome::Hit(value, _)) => (
            OK,
            PyBytes::new(py, &value).into_any().unbind(),
            py.None(),
            0.0,
        ),
        Ok(LeaseOutcome::Acquired(lease)) => {
            let lease = Lease {
                inner: Mutex::new(Some(lease)),
            };
            (NOT_FOUND, py.None(), Py::new(py, lease)?.into_any(), 0.0)
        }
        Ok(LeaseOutcome::Held(left)) => held(poll_delay(attempt, left)),
        Err(e) if e.kind() == ErrorKind::LeaseHeld => held(e.retry_in().unwrap_or_default()),
        Err(e) => return Err(to_py(py, &e)),
    };
    Ok(answer.into_pyobject(py)?.into_any().unbind())
}
