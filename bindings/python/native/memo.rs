//! The memoiser under `@cached`: the look-up, and on a miss the Python function run
//! from inside the core's call (the GIL taken back for it), its result pickled and
//! stored. An exception raised by the function or the barrier is kept and raised as
//! it was once the core's call has returned; nothing is stored then.

use crate::errors::to_py;
use backlite_core::{Barrier, Error, ErrorKind, Expiration};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The decorated function and the call's arguments.
pub(crate) struct Call<'a, 'py> {
    pub func: &'a Bound<'py, PyAny>,
    pub args: &'a Bound<'py, PyTuple>,
    pub kwargs: Option<&'a Bound<'py, PyDict>>,
}

/// What the callbacks leave for after the core's call.
#[derive(Default)]
struct Outcome {
    /// The function's result, when this call computed it (returned as it is, not
    /// unpickled).
    computed: Option<Py<PyAny>>,
    /// The first exception a callback raised.
    raised: Option<PyErr>,
}

impl Outcome {
    fn raise(&mut self, e: PyErr) {
        self.raised.get_or_insert(e);
    }
}

fn lock(outcome: &Mutex<Outcome>) -> std::sync::MutexGuard<'_, Outcome> {
    outcome.lock().unwrap_or_else(|p| p.into_inner())
}

fn failed(what: &str) -> Error {
    Error::new(ErrorKind::CallbackFailed, format!("the {what} raised"))
}

/// `pickle.dumps` with the highest protocol, and `pickle.loads`.
fn pickle(py: Python<'_>) -> PyResult<&(Py<PyAny>, Py<PyAny>, Py<PyAny>)> {
    static PICKLE: PyOnceLock<(Py<PyAny>, Py<PyAny>, Py<PyAny>)> = PyOnceLock::new();
    PICKLE.get_or_try_init(py, || {
        let m = py.import("pickle")?;
        Ok((
            m.getattr("dumps")?.unbind(),
            m.getattr("loads")?.unbind(),
            m.getattr("HIGHEST_PROTOCOL")?.unbind(),
        ))
    })
}

/// Pickle's error names the object it could not pickle ("cannot pickle
/// '_thread.lock' object"), not that it was a memoised function's result: a note
/// (PEP 678, shown under the traceback) says whose, and that nothing was stored. The
/// exception is the one pickle raised, its type unchanged.
fn unpicklable(py: Python<'_>, e: &PyErr, func: &Py<PyAny>, result: &Py<PyAny>) {
    let func = func.bind(py);
    let func = func.getattr("__func__").unwrap_or_else(|_| func.clone());
    let name = |attr: &str| {
        func.getattr(attr)
            .and_then(|n| n.str().map(|s| s.to_string()))
            .ok()
    };
    let name = match (name("__module__"), name("__qualname__")) {
        (Some(m), Some(q)) => format!("{m}.{q}"),
        (None, Some(q)) => q,
        _ => func
            .repr()
            .map_or_else(|_| "?".to_string(), |r| r.to_string()),
    };
    let kind = result
        .bind(py)
        .get_type()
        .name()
        .map_or_else(|_| "?".to_string(), |n| n.to_string());
    // A failure to add the note leaves pickle's error as it was.
    let _ = e.add_note(
        py,
        format!(
            "cached(): the result of {name} (a {kind}) cannot be pickled, so it was not \
             stored; memoise a function that returns a picklable value"
        ),
    );
}

/// A barrier made of the Python callables that take and release it.
struct PyBarrier<'a> {
    enter: Py<PyAny>,
    exit: Py<PyAny>,
    outcome: &'a Mutex<Outcome>,
}

impl Barrier for PyBarrier<'_> {
    fn lock(&self) -> backlite_core::Result<()> {
        crate::fork_gate::outside(|| {
            crate::python_calls::attach(|py| match self.enter.call0(py) {
                Ok(_) => Ok(()),
                Err(e) => {
                    lock(self.outcome).raise(e);
                    Err(failed("barrier"))
                }
            })
        })
    }

    fn unlock(&self) {
        crate::fork_gate::outside(|| {
            crate::python_calls::attach(|py| {
                if let Err(e) = self.exit.call0(py) {
                    lock(self.outcome).raise(e);
                }
            })
        })
    }
}

/// The value under `key`: unpickled from the file, or computed by the function (then
/// pickled and stored). Without a barrier, through the core's single flight
/// (`cached_call_exclusive`: one caller computes across threads and processes, the
/// others wait up to `wait`); with one, through `cached_call` behind it.
pub(crate) fn cached_call(
    py: Python<'_>,
    storage: &Arc<backlite_core::Storage>,
    key: &[u8],
    call: &Call<'_, '_>,
    expiration: Expiration,
    barrier: Option<(Py<PyAny>, Py<PyAny>)>,
    wait: Duration,
) -> PyResult<Py<PyAny>> {
    let (dumps, loads, protocol) = pickle(py)?;
    let func = call.func.clone().unbind();
    let args = call.args.clone().unbind();
    let kwargs = call.kwargs.map(|k| k.clone().unbind());
    loop {
        let outcome = Mutex::new(Outcome::default());
        let compute = || {
            crate::fork_gate::outside(|| {
                crate::python_calls::attach(|py| {
                    let computed = func
                        .call(py, args.bind(py), kwargs.as_ref().map(|k| k.bind(py)))
                        .and_then(|result| {
                            let data = dumps
                                .call1(py, (&result, protocol))
                                .inspect_err(|e| unpicklable(py, e, &func, &result))?;
                            let data = data.cast_bound::<PyBytes>(py)?.as_bytes().to_vec();
                            Ok((result, data))
                        });
                    let mut outcome = lock(&outcome);
                    match computed {
                        Ok((result, data)) => {
                            outcome.computed = Some(result);
                            Ok(data)
                        }
                        Err(e) => {
                            outcome.raise(e);
                            Err(failed("function"))
                        }
                    }
                })
            })
        };
        let barrier = barrier.as_ref().map(|(enter, exit)| PyBarrier {
            enter: enter.clone_ref(py),
            exit: exit.clone_ref(py),
            outcome: &outcome,
        });
        // While it waits for another caller's result, Python's signal handlers run
        // (Ctrl-C's KeyboardInterrupt ends the wait): a thread blocked in the core's
        // call saw none of them until the other caller was done, up to `wait`.
        let interrupted = || {
            crate::fork_gate::outside(|| {
                crate::python_calls::attach(|py| match py.check_signals() {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        lock(&outcome).raise(e);
                        Err(failed("signal handler"))
                    }
                })
            })
        };
        let found = crate::fork_gate::detach(py, || match &barrier {
            Some(b) => storage.cached_call(key, expiration, Some(b), compute),
            None => storage.cached_call_exclusive_interruptible(
                key,
                expiration,
                wait,
                compute,
                interrupted,
            ),
        });
        drop(barrier);
        let Outcome { computed, raised } = outcome.into_inner().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = raised {
            return Err(e);
        }
        let data = found.map_err(|e| to_py(py, &e))?;
        if let Some(result) = computed {
            return Ok(result);
        }
        match loads.call1(py, (PyBytes::new(py, &data),)) {
            Ok(value) => return Ok(value),
            // An unreadable pickle is a miss: removed, and looked up again.
            Err(e) if e.is_instance_of::<PyException>(py) => {
                crate::fork_gate::detach(py, || storage.delete(key)).map_err(|e| to_py(py, &e))?;
            }
            Err(e) => return Err(e),
        }
    }
}
