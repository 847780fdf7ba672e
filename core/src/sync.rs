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

/// Numbers the threads of the process as they first ask for [`thread_index`].
static NEXT_THREAD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

thread_local! {
    /// This thread's number, from [`NEXT_THREAD`].
    static THREAD_INDEX: usize = NEXT_THREAD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A small number of this thread's own, the same on every call: which shard of a
/// sharded lock it starts with. Threads numbered in turn take distinct shards, so
/// up to that many threads never meet on one.
pub(crate) fn thread_index() -> usize {
    THREAD_INDEX.with(|i| *i)
}
