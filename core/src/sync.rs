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
