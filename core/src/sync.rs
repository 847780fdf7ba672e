//! Locks that outlive a panic. A panic in one caller must not make the handle unusable
//! for the others, and the data behind every lock of the core stays consistent through
//! one: each critical section is a few plain assignments, or a connection whose open
//! transaction the next holder rolls back.

use std::sync::{Mutex, MutexGuard, TryLockError};

/// Takes a lock even if a panic poisoned it.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `lock` if it needs no waiting.
pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(g) => Some(g),
        Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// Keeps what it holds on a cache line of its own, so that threads taking
/// neighbouring shards of a lock do not slow each other down (false sharing).
#[repr(align(128))]
#[derive(Default)]
pub(crate) struct Padded<T>(pub T);

/// The CPU the calling thread runs on (a vDSO call on Linux, no system call): which of
/// a set of things (the shards of a sharded lock, the slots of a pool) a thread tries
/// first, so that threads on one CPU share what stays in that CPU's cache, and threads
/// on distinct CPUs meet on none. Elsewhere, a number of the thread's own.
pub(crate) fn cpu_index() -> usize {
    #[cfg(target_os = "linux")]
    {
        rustix::thread::sched_getcpu()
    }
    #[cfg(not(target_os = "linux"))]
    {
        thread_index()
    }
}

/// Numbers the threads of the process as they first ask for [`thread_index`].
#[cfg(not(target_os = "linux"))]
static NEXT_THREAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[cfg(not(target_os = "linux"))]
thread_local! {
    /// This thread's number, from [`NEXT_THREAD`].
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A small number of this thread's own, the same on every call.
#[cfg(not(target_os = "linux"))]
fn thread_index() -> usize {
    THREAD_INDEX.with(|i| *i)
}
