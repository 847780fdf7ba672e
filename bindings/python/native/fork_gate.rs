//! `os.fork()` waits until no thread of the process is inside a call of the core.
//!
//! A child forked while another thread was inside a write inherited SQLite's in-process
//! record of the file's write lock, held by a connection it can never use: every write
//! of the child, by any handle on that file, was BUSY after the busy timeout, and a
//! child that inherited a mutex held at the fork hung at its first call. The core's
//! gate (`backlite_core::before_fork`) covers the library's own threads; this one covers
//! the calls Python's threads make: each runs its core call inside the gate, and the
//! fork handler waits until none is inside (the GIL is held then, so no Python code
//! starts a call). A call steps out of the gate while it runs Python code (the
//! function of a cached call, a barrier, a file's `write`): that code may fork, or wait
//! for what the forking thread holds. A call it makes meanwhile passes a fork that
//! waits, or the thread holding the lease of another call could never finish. The wait
//! is bounded ([`DRAIN_LIMIT`]): a call waiting for another process (its write lock, or
//! a value it computes) does not hold the fork longer; the fork then goes on as before.
//!
//! Counters and no lock, so that nothing a fork copies is held (as the core's gate).

use std::cell::Cell;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Threads inside a core call, not counting those stepped out to run Python code.
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// 0: no fork; [`DRAINING`]: a fork waits for the calls inside (a call begins only from
/// a thread already in one); [`FORKING`]: the fork is made (no call begins or goes on).
static FORK: AtomicU8 = AtomicU8::new(0);
const DRAINING: u8 = 1;
const FORKING: u8 = 2;

/// How long a call waits for a fork, or a fork for the calls, between two looks.
const PAUSE: Duration = Duration::from_micros(200);

/// The longest a fork waits for the calls inside.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

thread_local! {
    /// The core calls this thread is in (stepped out of them or not).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// A SIGINT taken by [`sigint_pending`] during the current call, to deliver again.
    static SIGINT_SEEN: Cell<bool> = const { Cell::new(false) };
}

/// Counts this thread inside once the fork state is below `blocked_at`.
fn come_in(blocked_at: u8) {
    loop {
        if FORK.load(SeqCst) < blocked_at {
            INSIDE.fetch_add(1, SeqCst);
            // Sequentially consistent: a fork that began meanwhile sees this count.
            if FORK.load(SeqCst) < blocked_at {
                return;
            }
            INSIDE.fetch_sub(1, SeqCst);
        }
        std::thread::sleep(PAUSE);
    }
}

/// A thread inside a core call; leaves when dropped.
struct Inside;

impl Drop for Inside {
    fn drop(&mut self) {
        INSIDE.fetch_sub(1, SeqCst);
        DEPTH.with(|d| d.set(d.get() - 1));
    }
}

/// Runs `f` (a core call) inside the gate, without the GIL. Its lock waits stop at a
/// Ctrl-C (see [`sigint_pending`]): the SIGINT is then delivered again once the GIL is
/// back, so that the call raises KeyboardInterrupt (errors.rs) or the next line does.
pub(crate) fn detach<R: Send>(py: pyo3::Python<'_>, f: impl FnOnce() -> R + Send) -> R {
    let result = py.detach(|| {
        let nested = DEPTH.with(|d| d.get()) > 0;
        come_in(if nested { FORKING } else { DRAINING });
        DEPTH.with(|d| d.set(d.get() + 1));
        let _inside = Inside;
        backlite_core::interruptible(sigint_pending, f)
    });
    if SIGINT_SEEN.with(|s| s.replace(false)) {
        // SAFETY: the GIL is held (`py`); it only marks SIGINT as arrived, as the
        // signal's own handler does.
        unsafe { pyo3::ffi::PyErr_SetInterrupt() };
    }
    result
}

/// The check the core asks between two sleeps of a lock wait (another process's write
/// lock, this process's turn to write), up to the busy timeout: whether Ctrl-C came.
/// A thread blocked there never ran Python's signal handlers, so KeyboardInterrupt came
/// only once the busy timeout ran out. No handler runs here, where the call holds the
/// library's locks (a handler that wrote to the cache would wait for itself): under
/// Python's own SIGINT handler, which raises KeyboardInterrupt and nothing else, the
/// SIGINT is taken and noted, the wait ends, and [`detach`] delivers it again once the
/// call is out. Another handler (one that does not raise, say) runs once the call
/// returns, as before: the SIGINT is left pending and the wait goes on.
fn sigint_pending() -> bool {
    if SIGINT_SEEN.with(Cell::get) {
        return true;
    }
    let stop = crate::python_calls::attach(|py| {
        // Only the main thread sees it: PyOS_InterruptOccurred answers 0 on any other.
        // SAFETY: the GIL is held.
        if unsafe { pyo3::ffi::PyOS_InterruptOccurred() } == 0 {
            return false;
        }
        let default = (|| -> pyo3::PyResult<bool> {
            use pyo3::prelude::*;
            let signal = py.import("_signal")?;
            let handler = signal
                .getattr("getsignal")?
                .call1((signal.getattr("SIGINT")?,))?;
            Ok(handler.is(&signal.getattr("default_int_handler")?))
        })()
        .unwrap_or(false);
        if !default {
            // SAFETY: the GIL is held; SIGINT stays pending for its handler.
            unsafe { pyo3::ffi::PyErr_SetInterrupt() };
        }
        default
    });
    if stop {
        SIGINT_SEEN.with(|s| s.set(true));
    }
    stop
}

/// Drops `value` (a handle, a lease, a reader that Python frees) as a core call: its
/// drop may write (a handle its buffered hits, a lease its release) and so wait for
/// another process's lock up to the busy timeout. Freed with the GIL held, as Python
/// frees it, every other thread of the process (an event loop) stopped meanwhile.
pub(crate) fn drop_detached<T: Send>(value: Option<T>) {
    // Freed by the forking thread itself between `before_fork` and `after_fork` (the
    // GIL held all along, no other thread runs Python): in place, as the gate would
    // wait for that fork, for ever.
    if value.is_some() && FORK.load(SeqCst) == 0 {
        // Not attached (the interpreter gone): the closure, and `value` with it, is
        // dropped as it is.
        let _ = pyo3::Python::try_attach(move |py| detach(py, move || drop(value)));
    }
}

/// What `slot` holds (a lease, a reader), dropped as by [`drop_detached`].
pub(crate) fn drop_slot_detached<T: Send>(slot: &mut std::sync::Mutex<Option<T>>) {
    drop_detached(slot.get_mut().unwrap_or_else(|p| p.into_inner()).take());
}

/// Stepped out of the gate; back in when dropped (even by a panic).
struct SteppedOut;

impl Drop for SteppedOut {
    fn drop(&mut self) {
        come_in(FORKING);
    }
}

/// Runs `f` (Python code called back from inside a core call) outside the gate.
pub(crate) fn outside<R>(f: impl FnOnce() -> R) -> R {
    if DEPTH.with(|d| d.get()) == 0 {
        return f();
    }
    INSIDE.fetch_sub(1, SeqCst);
    let _back = SteppedOut;
    f()
}

/// Before a fork: waits until no thread is inside a core call (at most
/// [`DRAIN_LIMIT`]), and lets none begin until [`after_fork`].
pub(crate) fn before_fork() {
    FORK.store(DRAINING, SeqCst);
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        while INSIDE.load(SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(PAUSE);
        }
        FORK.store(FORKING, SeqCst);
        // A call stepping back in may have counted itself before it saw FORKING.
        if INSIDE.load(SeqCst) == 0 || Instant::now() >= deadline {
            return;
        }
        FORK.store(DRAINING, SeqCst);
    }
}

/// After a fork, in the parent: calls go on.
pub(crate) fn after_fork() {
    FORK.store(0, SeqCst);
}

/// After a fork, in the child: none of the parent's other threads is here (the forking
/// thread, if in a call, had stepped out of it).
pub(crate) fn after_fork_in_child() {
    INSIDE.store(0, SeqCst);
    FORK.store(0, SeqCst);
}
