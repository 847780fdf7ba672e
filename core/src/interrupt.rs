//! Lock waits a language runtime can stop: SQLite's busy handler (another process's
//! write lock) and the wait for this process's turn to write. A Python caller blocked
//! in either never saw Ctrl-C until the busy timeout ran out (a `set` under
//! `busy_timeout=30 s` while another process held the file: KeyboardInterrupt after
//! 30 s). A caller that runs its call under [`interruptible`] has its check asked
//! between two sleeps of such a wait; a check that says stop ends the wait as the
//! timeout would (BUSY), and the caller raises its own interrupt instead.

use rusqlite::Connection;
use std::cell::Cell;
use std::time::Duration;

thread_local! {
    /// The check of the call this thread is in (see [`interruptible`]).
    static CHECK: Cell<Option<fn() -> bool>> = const { Cell::new(None) };
    /// Set while this thread tries a lock without waiting ([`without_waiting`]).
    static NO_WAIT: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` with `check` asked between two sleeps of every lock wait `f` makes on this
/// thread; `check` returning true ends the wait at once, with BUSY. `check` must not
/// call the library (it runs while the call holds its locks): it notes the interrupt,
/// and the caller acts on it once `f` has returned.
pub fn interruptible<R>(check: fn() -> bool, f: impl FnOnce() -> R) -> R {
    let before = CHECK.with(|c| c.replace(Some(check)));
    let _restore = Restore(&CHECK, before);
    f()
}

/// Whether the call this thread is in has an interrupt check.
pub(crate) fn active() -> bool {
    CHECK.with(|c| c.get()).is_some()
}

/// Whether the call this thread is in asks its lock waits to stop.
pub(crate) fn interrupted() -> bool {
    CHECK.with(|c| c.get()).is_some_and(|check| check())
}

/// Runs `f` with every busy handler of ours answering BUSY at once, on this thread.
pub(crate) fn without_waiting<R>(f: impl FnOnce() -> R) -> R {
    let before = NO_WAIT.with(|n| n.replace(true));
    let _restore = Restore(&NO_WAIT, before);
    f()
}

/// Puts a thread-local back as it was, however the scope ends.
struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<Cell<T>>, T);

impl<T: Copy + 'static> Drop for Restore<T> {
    fn drop(&mut self) {
        self.0.with(|c| c.set(self.1));
    }
}

/// Gives `conn` a busy handler that waits up to `timeout` for a lock, as SQLite's own
/// `busy_timeout` does (the same sleeps), but stops when the call's check says so
/// ([`interruptible`]), and at once under [`without_waiting`].
pub(crate) fn set_busy_timeout(conn: &mut Connection, timeout: Duration) -> rusqlite::Result<()> {
    let ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return conn.busy_timeout(Duration::ZERO);
    }
    conn.busy_handler(Some(move |count: i32| busy_step(ms, count)))
}

/// One call of the busy handler: SQLite's `sqliteDefaultBusyCallback` (1, 2, 5, 10, 15,
/// 20, 25, 25, 25, 50, 50 ms, then 100 ms each, up to the timeout), asking the check
/// before each sleep.
fn busy_step(timeout_ms: u64, count: i32) -> bool {
    const DELAYS: [u64; 12] = [1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100];
    const TOTALS: [u64; 12] = [0, 1, 3, 8, 18, 33, 53, 78, 103, 128, 178, 228];
    if NO_WAIT.with(|n| n.get()) || interrupted() {
        return false;
    }
    let count = usize::try_from(count).unwrap_or(0);
    let (mut delay, prior) = match DELAYS.get(count) {
        Some(&d) => (d, TOTALS[count]),
        None => (100, TOTALS[11] + 100 * (count as u64 - 11)),
    };
    if prior + delay > timeout_ms {
        delay = timeout_ms.saturating_sub(prior);
        if delay == 0 {
            return false;
        }
    }
    std::thread::sleep(Duration::from_millis(delay));
    true
}
