//! Remote keys whose last write never reached the remote (it failed, timed out, was
//! dropped from a full write-behind queue, or was skipped while the remote was backed
//! off). The remote may still hold an older value for such a key, which other machines
//! would read; so each is unlinked before this handle's next remote call, and until
//! that succeeds no call of this handle reads from the remote.

use super::client::Client;
use crate::sync::lock;
use redis::Cmd;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Keys remembered at most; past that, only a clear of the remote can promise that no
/// older value is left, and one is asked for (memory stays bounded).
const MAX_UNSYNCED: usize = 65_536;

#[derive(Default)]
pub(crate) struct Unsynced {
    keys: Mutex<HashSet<Vec<u8>>>,
    /// Whether `keys` may be non-empty: the common case costs one load, no lock.
    any: AtomicBool,
    /// More keys than `MAX_UNSYNCED` were lost: the remote must be cleared.
    overflowed: AtomicBool,
}

impl Unsynced {
    /// Remembers that the writes of `redis_keys` did not reach the remote.
    pub(crate) fn add(&self, redis_keys: impl IntoIterator<Item = Vec<u8>>) {
        let mut keys = lock(&self.keys);
        keys.extend(redis_keys);
        if keys.len() > MAX_UNSYNCED {
            keys.clear();
            self.overflowed.store(true, Relaxed);
        }
        self.any.store(!keys.is_empty(), Relaxed);
    }

    /// Whether more keys were lost than can be remembered (and forgets it: the caller
    /// clears the remote).
    pub(crate) fn take_overflow(&self) -> bool {
        self.overflowed.swap(false, Relaxed)
    }

    /// Unlinks every remembered key in one round trip; false (keys kept) if that failed.
    pub(crate) fn flush(&self, client: &Client) -> bool {
        if !self.any.load(Relaxed) {
            return true;
        }
        let keys: Vec<Vec<u8>> = {
            let mut k = lock(&self.keys);
            self.any.store(false, Relaxed);
            k.drain().collect()
        };
        if keys.is_empty() {
            return true;
        }
        // One UNLINK per key: on a cluster the keys lie in many slots.
        let cmds: Vec<Cmd> = keys
            .iter()
            .map(|k| redis::cmd("UNLINK").arg(k).clone())
            .collect();
        if client.run(|c| c.pipe::<redis::Value>(cmds)).is_some() {
            return true;
        }
        self.add(keys);
        false
    }
}
