//! `backlite._native`: the native module of BackLite's Python package, a thin layer
//! over `backlite-core` (the safe core every binding shares, so one file works from
//! every language). What each call crosses lives here: the handle, the conversions of
//! keys, values and durations, and the memoiser's look-up. What is Python by nature
//! (argument checks of the seed's API, pickling of a Storage, the decorators, asyncio)
//! stays in `src/backlite/`.
//!
//! # Process-wide state
//!
//! The module's only statics (`tests/statics.rs` fails on a static not listed here),
//! each a Python object looked up once per interpreter, as an `import` at the top of a
//! Python module would be:
//!
//! - `errors::ERROR_FROM_CODE`: `backlite.errors.error_from_code`, which makes the
//!   exception for a result code (the classes are Python's, so users can catch them).
//! - `convert::TIMEDELTA`: `datetime.timedelta`, for expirations in and time left out.
//! - `memo::PICKLE`: `pickle.dumps`, `pickle.loads` and `pickle.HIGHEST_PROTOCOL`, for
//!   memoised results.
//! - `fork_gate::INSIDE`, `fork_gate::FORK`, `fork_gate::DEPTH` (per thread): the threads
//!   inside a core call and the state of a fork, so that `os.fork()` waits until no
//!   thread holds what the child would inherit held (the file's write lock); the
//!   process's own, as fork is.
//! - `fork_gate::SIGINT_SEEN` (per thread): a Ctrl-C that stopped a lock wait of the
//!   thread's current call, delivered again to Python once the call is out.

mod convert;
mod errors;
mod fork_gate;
mod lease;
mod memo;
mod python_calls;
mod reader;
mod storage;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use backlite_core::{
    EvictionPolicy, DEFAULT_FILE_THRESHOLD, EXPIRATION_DEFAULT_MS, EXPIRATION_NEVER_MS,
    MAX_KEY_SIZE, MAX_VALUE_SIZE,
};
use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The library's version: the package checks it equals its own at import.
    m.add("__version__", backlite_core::VERSION)?;
    // The C API's numbers, under the header's names less their prefix; the Python
    // suite checks each against include/backlite.h (tests/test_header_drift.py).
    for (name, code) in errors::RESULT_CODES {
        m.add(*name, *code)?;
    }
    m.add("EXPIRATION_DEFAULT", EXPIRATION_DEFAULT_MS)?;
    m.add("EXPIRATION_NEVER", EXPIRATION_NEVER_MS)?;
    m.add("MAX_KEY_SIZE", MAX_KEY_SIZE)?;
    m.add("MAX_VALUE_SIZE", MAX_VALUE_SIZE)?;
    // The default of `Storage(file_threshold=...)` (BACKLITE_FILE_THRESHOLD_DEFAULT).
    m.add("FILE_THRESHOLD_DEFAULT", DEFAULT_FILE_THRESHOLD)?;
    let policies: Vec<&str> = EvictionPolicy::ALL.iter().map(|p| p.name()).collect();
    m.add("eviction_policies", policies)?;
    m.add_function(wrap_pyfunction!(convert::expiration_ms, m)?)?;
    m.add_function(wrap_pyfunction!(_before_fork, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_parent, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(_write_waiting_at_exit, m)?)?;
    m.add_class::<storage::Storage>()?;
    m.add_class::<lease::Lease>()?;
    m.add_class::<reader::ValueReader>()?;
    #[cfg(feature = "test-hooks")]
    m.add_function(wrap_pyfunction!(test_hooks::_panic_for_tests, m)?)?;
    Ok(())
}

/// Before `os.fork()` (registered by `backlite.storage`): waits until no other thread
/// is inside a call of the core (fork_gate.rs), then until no thread of the library (a
/// hit writer) is inside a write, so that the child inherits no lock such a thread
/// held (SQLite's record of the file's write lock: every write of the child was BUSY).
/// Neither needs the GIL to finish its write.
#[pyfunction]
fn _before_fork() {
    fork_gate::before_fork();
    backlite_core::before_fork();
}

/// After `os.fork()`, in the parent: the library's threads and the calls go on.
#[pyfunction]
fn _after_fork_in_parent() {
    backlite_core::after_fork();
    fork_gate::after_fork();
}

/// After `os.fork()`, in the child: it has none of the parent's threads.
#[pyfunction]
fn _after_fork_in_child() {
    backlite_core::after_fork_in_child();
    fork_gate::after_fork_in_child();
}

/// At the interpreter's exit (an `atexit` handler of `backlite.storage`): writes the
/// hits that storages never closed nor freed still buffer (one a daemon thread holds,
/// say: CPython frees neither), so that other processes' evictions see them, as the C
/// library's own `atexit` handler does. Without the GIL: it may wait for another
/// process's write lock, up to a second.
#[pyfunction]
fn _write_waiting_at_exit(py: Python<'_>) -> PyResult<()> {
    errors::guard(|| {
        crate::fork_gate::detach(py, backlite_core::write_waiting_at_exit);
        Ok(())
    })
}
