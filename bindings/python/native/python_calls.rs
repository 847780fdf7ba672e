//! Python code run from inside a core call: a memoised function's compute, a barrier's
//! enter and exit, a signal check while waiting, a chunk written to a file object.

use pyo3::Python;

/// `Python::attach` for code that runs Python from inside a core call: a thread that
/// Python ends meanwhile is parked, not unwound through the core.
///
/// Before 3.14, a thread that takes the GIL back once the interpreter is finalising (a
/// daemon thread inside a memoised call at exit) is ended with `pthread_exit`, a forced
/// unwind through every frame above it. It ran their destructors: the core's, and
/// PyO3's GIL guard, whose release then aborted the process ("PyGILState_Release:
/// thread state ... must be current when releasing", in builds without LTO such as
/// `maturin develop`'s). A guard dropped by that unwind parks the thread for good
/// instead, as Python 3.14 does and as PyO3 does where it takes the GIL itself; the
/// process then exits with it parked, as it would with the thread gone.
pub(crate) fn attach<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> R {
    Python::attach(|py| {
        let park = ParkIfEnded;
        let result = f(py);
        std::mem::forget(park);
        result
    })
}

/// Dropped only by an unwind out of the Python code it guards.
struct ParkIfEnded;

impl Drop for ParkIfEnded {
    fn drop(&mut self) {
        // A Rust panic goes on to the binding's catch (errors.rs); an unwind that is
        // no panic is the thread's end.
        if std::thread::panicking() {
            return;
        }
        loop {
            std::thread::park();
        }
    }
}
