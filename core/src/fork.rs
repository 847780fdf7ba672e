//! What a child forked from a process with open handles does with what it inherited.
//! The child has copies of the parent's connections and the handles of its threads,
//! but they are the parent's: a connection closed here could checkpoint and delete the
//! WAL the parent is using (and its POSIX locks belong to the parent anyway), and the
//! threads do not exist here. So the child opens its own connections before first use
//! and sets the inherited ones aside, never closing or joining them.

use crate::sync::lock;
use rusqlite::Connection;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Connections a forked child inherited: never closed, and kept reachable so that leak
/// checkers do not report them. Process-wide: they outlive the handle that held them.
static INHERITED_CONNECTIONS: Mutex<Vec<ManuallyDrop<Connection>>> = Mutex::new(Vec::new());

/// The thread handles of a forked child's parent (hit writers): never joined (nor
/// detached), and kept reachable for leak checkers. Process-wide, as above.
static INHERITED_THREADS: Mutex<Vec<JoinHandle<()>>> = Mutex::new(Vec::new());

/// The process that opened something (a handle's connections): a forked child sees
/// another process id and must replace what it inherited.
pub(crate) struct OpenedBy(AtomicU32);

impl OpenedBy {
    /// Opened by this process.
    pub fn here() -> OpenedBy {
        OpenedBy(AtomicU32::new(std::process::id()))
    }

    /// Whether this process opened it (false in a forked child).
    pub fn is_this_process(&self) -> bool {
        self.is(std::process::id())
    }

    /// Whether process `pid` opened it.
    pub fn is(&self, pid: u32) -> bool {
        self.0.load(Relaxed) == pid
    }

    /// This process has replaced what it inherited (or may use it as its own).
    pub fn adopt(&self) {
        self.0.store(std::process::id(), Relaxed);
    }
}

/// Keeps inherited connections, unclosed, for the life of the process.
pub(crate) fn set_aside_connections(inherited: impl IntoIterator<Item = Connection>) {
    lock(&INHERITED_CONNECTIONS).extend(inherited.into_iter().map(ManuallyDrop::new));
}

/// Keeps, unjoined, the threads in `threads` that another process (the parent of this
/// forked child) started; the others (started by `pid`, this process) stay.
pub(crate) fn set_aside_threads(threads: &mut Vec<(u32, JoinHandle<()>)>, pid: u32) {
    if threads.iter().any(|(p, _)| *p != pid) {
        let (mine, theirs): (Vec<_>, Vec<_>) = threads.drain(..).partition(|(p, _)| *p == pid);
        *threads = mine;
        lock(&INHERITED_THREADS).extend(theirs.into_iter().map(|(_, w)| w));
    }
}
