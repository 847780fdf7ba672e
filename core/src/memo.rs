//! The memoiser: look up, and on a miss compute once and store, optionally behind a
//! caller-supplied barrier (the seed's `barrier=` lock).

use crate::error::{ErrorKind, Result};
use crate::expiration::Expiration;
use crate::storage::Storage;

/// A lock taken around the compute of a missing value, e.g. a process-wide or file
/// lock, so that concurrent callers compute it once.
pub trait Barrier {
    /// Acquires the lock; an error fails the call, and `unlock` is then not called.
    fn lock(&self) -> Result<()>;
    /// Called exactly once after every successful `lock`.
    fn unlock(&self);
}

/// Releases a barrier on every exit path, unwinding included.
struct Held<'a>(&'a dyn Barrier);

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.unlock();
    }
}

impl Storage {
    /// The value under `key`, computing and storing it on a miss. `compute` errors are
    /// returned as they are and nothing is stored. A computed value too large to store
    /// is still returned, whatever else the set met.
    pub fn cached_call(
        &self,
        key: &[u8],
        expiration: Expiration,
        barrier: Option<&dyn Barrier>,
        compute: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        self.cached_call_with(key, expiration, barrier, compute, <[u8]>::to_vec)
    }

    /// Like [`Storage::cached_call`], but hands the value to `on_value` (without a copy
    /// on a hit) and returns what it returns.
    pub fn cached_call_with<R>(
        &self,
        key: &[u8],
        expiration: Expiration,
        barrier: Option<&dyn Barrier>,
        compute: impl FnOnce() -> Result<Vec<u8>>,
        on_value: impl FnOnce(&[u8]) -> R,
    ) -> Result<R> {
        let mut on_value = Some(on_value);
        let mut take = |v: &[u8], _| (on_value.take().expect("called once"))(v);
        if let Some(r) = self.lookup(key, true, true, &mut take)? {
            return Ok(r);
        }
        let _held = match barrier {
            Some(b) => {
                b.lock()?;
                let held = Held(b);
                // Another caller may have filled the key while we waited.
                if let Some(r) = self.lookup(key, true, false, &mut take)? {
                    return Ok(r);
                }
                Some(held)
            }
            None => None,
        };
        let value = compute()?;
        match self.set_as(key, &value, expiration, true) {
            // A value too large to store is returned all the same, even when the set's
            // removal of an older value failed (another process's lock: BUSY): the
            // look-up above found no live one to remove.
            Err(e) if e.kind() != ErrorKind::TooLarge && !self.too_large_to_store(&value) => {
                return Err(e)
            }
            _ => {}
        }
        Ok((on_value.take().expect("called once"))(&value))
    }
}
