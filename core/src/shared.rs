//! What the handles of one process on one file share: the buffer of hits (so the
//! eviction order is exact across them) and the signal that a lease was released (so
//! waiters in this process wake at once instead of polling).

use crate::access::AccessLog;
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

/// A plain list: a process has few cache files open, and a hash table's interior
/// pointer would make leak checkers report this global as "possibly lost".
type OpenFiles = Vec<(FileId, Weak<FileShared>)>;
static FILES: Mutex<OpenFiles> = Mutex::new(Vec::new());

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a handle of this process has the file at `path` open.
pub(crate) fn is_open_here(path: &Path) -> bool {
    let Some(id) = file_id(path) else {
        return false;
    };
    lock(&FILES)
        .iter()
        .any(|(i, f)| *i == id && f.strong_count() > 0)
}

/// The state shared by this process's handles on the file at `path` (a private one for
/// an in-memory cache or a file that cannot be identified).
pub(crate) fn for_file(path: Option<&Path>) -> Arc<FileShared> {
    let Some(id) = path.and_then(file_id) else {
        return Arc::default();
    };
    let mut files = lock(&FILES);
    files.retain(|(_, f)| f.strong_count() > 0);
    if let Some(shared) = files
        .iter()
        .find(|(i, _)| *i == id)
        .and_then(|(_, f)| f.upgrade())
    {
        return shared;
    }
    let shared = Arc::<FileShared>::default();
    files.push((id, Arc::downgrade(&shared)));
    shared
}
