//! What the handles of one process on one file share: the buffer of hits (so the
//! eviction order is exact across them) and the signal that a lease was released (so
//! waiters in this process wake at once instead of polling).

use crate::access::AccessLog;
use once_cell::sync::Lazy;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

#[derive(Default)]
pub(crate) struct FileShared {
    pub accesses: Mutex<AccessLog>,
    /// Counts lease releases; waiters sleep until it changes.
    releases: Mutex<u64>,
    released: Condvar,
}

/// Takes a lock even if a panic poisoned it (the data stays consistent: every
/// critical section here is a few plain assignments).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl FileShared {
    /// The current release count, to pass to `wait_for_release`.
    pub fn release_epoch(&self) -> u64 {
        *lock(&self.releases)
    }

    /// Wakes every waiter of this process.
    pub fn notify_release(&self) {
        *lock(&self.releases) += 1;
        self.released.notify_all();
    }

    /// Sleeps until a release after `epoch` or until `timeout` passes.
    pub fn wait_for_release(&self, epoch: u64, timeout: Duration) {
        let guard = lock(&self.releases);
        if *guard != epoch {
            return;
        }
        let _ = self
            .released
            .wait_timeout_while(guard, timeout, |n| *n == epoch);
    }
}

/// Files are told apart by device and inode, so two paths to one file share.
type FileId = (u64, u64);

static FILES: Lazy<Mutex<HashMap<FileId, Weak<FileShared>>>> = Lazy::new(Default::default);

/// The state shared by this process's handles on the file at `path` (a private one for
/// an in-memory cache or a file that cannot be identified).
pub(crate) fn for_file(path: Option<&Path>) -> Arc<FileShared> {
    use std::os::unix::fs::MetadataExt;
    let Some(meta) = path.and_then(|p| std::fs::metadata(p).ok()) else {
        return Arc::default();
    };
    let id = (meta.dev(), meta.ino());
    let mut files = lock(&FILES);
    files.retain(|_, f| f.strong_count() > 0);
    if let Some(shared) = files.get(&id).and_then(Weak::upgrade) {
        return shared;
    }
    let shared = Arc::<FileShared>::default();
    files.insert(id, Arc::downgrade(&shared));
    shared
}
