//! Hooks for the Python suite only, built with the cargo feature `test-hooks`
//! (`run_tests.sh` builds a second, debug wheel with it; the release wheel has none).

use crate::errors::guard;
use crate::storage::Storage;
use backlite_core::Expiration;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::time::Duration;

/// Panics on purpose, as a bug would, so the suite can check that a panic reaches
/// Python as `backlite.PanicError`: `"gil"` in the binding with the GIL held,
/// `"detached"` while the GIL is released (where the core runs), `"core"` inside the
/// core's single-flight call on `key`, from its compute callback (with the key's lease
/// held and a transaction's worth of state to unwind).
#[pyfunction]
pub(crate) fn _panic_for_tests(
    py: Python<'_>,
    storage: &Bound<'_, Storage>,
    place: &str,
    key: &[u8],
) -> PyResult<()> {
    guard(|| match place {
        "gil" => panic!("test panic with the GIL held"),
        "detached" => py.detach(|| panic!("test panic without the GIL")),
        "core" => {
            let handle = storage.borrow().handle(py)?;
            py.detach(|| {
                handle.cached_call_exclusive(key, Expiration::Default, Duration::ZERO, || {
                    panic!("test panic inside the core's call")
                })
            })
            .map(drop)
            .map_err(|e| crate::errors::to_py(py, &e))
        }
        _ => Err(PyValueError::new_err(format!("no such place: {place}"))),
    })
}
