//! BackLite: a persistent, size-bounded cache in one SQLite file.
//!
//! The safe core ([`Storage`], [`Options`], [`EvictionPolicy`], [`Expiration`],
//! [`Error`] and the memoiser [`Storage::cached_call`]) is usable from Rust directly.
//! The C library (the `backlite` package at the repository's root) is a thin C ABI
//! over this crate, described in `include/backlite.h`.
//!
//! ```
//! use backlite_core::{EvictionPolicy, Expiration, Options, Storage};
//! use std::time::Duration;
//!
//! # fn main() -> backlite_core::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("cache.db");
//! let mut options = Options::new();
//! options.set_max_size(64 << 20)?; // 64 MiB of values
//! options.set_eviction_policy(EvictionPolicy::LeastRecentlyUsed);
//! let cache = Storage::open(&path, &options)?;
//!
//! cache.set(b"greeting", b"hello", Expiration::After(Duration::from_secs(60)))?;
//! let (value, time_left) = cache.get(b"greeting")?.expect("just stored");
//! assert_eq!(value, b"hello");
//! assert!(time_left.is_some());
//!
//! // Memoisation: compute on a miss, answer from the file afterwards.
//! let answer = cache.cached_call(b"answer", Expiration::Never, None, || Ok(b"42".to_vec()))?;
//! assert_eq!(answer, b"42");
//! # Ok(())
//! # }
//! ```
//!
//! # Process-wide state
//!
//! Almost everything belongs to a handle ([`Storage`]). The process is the unit only
//! where POSIX locks, `fork` or the process's identity make it so; these are the
//! crate's only statics, each beside the code that uses it (moving them to one module
//! would make it import the types they hold, and those modules import it back).
//! `tests/statics.rs` at the repository's root fails on a static not listed here.
//!
//! - `shared::FILES`: the cache files open in this process, by device and inode, so
//!   that all handles on one file share one hit buffer, one turn to write and one name
//!   to open it by. SQLite's POSIX locks belong to the process: a second name (a hard
//!   link) or a second set of `-wal`/`-shm` would split them.
//! - `shared::OPENING`, `shared::OPENED`: the files a thread of this process is
//!   recognising. Reading a file's header opens and closes a descriptor, and closing
//!   any descriptor drops every POSIX lock the process holds on that file, so openers of
//!   one file take turns across all handles.
//! - `owner::CURRENT`: this process as a lease holder (pid, start time, boot and PID
//!   namespace), read from `/proc` once per process; a forked child reads its own.
//! - `fork::INHERITED_CONNECTIONS`, `fork::INHERITED_THREADS`: what a forked child
//!   inherited from its parent's handles, kept unclosed and unjoined for the life of the
//!   process: they outlive the handle that held them (closing a connection could delete
//!   the WAL the parent uses; the threads do not exist in the child).
//! - `fork::INHERITED_PUMPS`: the same for the threads that pump a large blob to a pull
//!   reader (value_reader.rs): a forked child keeps their channel undropped, since the
//!   parent's thread may have held its lock at the fork.
//! - `fork::PID_WORD`, `fork::FORKS_REPORTED`, `fork::FORKS`, `fork::PID`: this
//!   process's id, asked of the kernel once per process instead of once per call when
//!   the program gives a word wiped on fork ([`keep_pid_in`]; the C library does on
//!   Linux) or reports its forks ([`report_forks`]); the id belongs to the process.
//! - `fork::STEPS`, `fork::FORKS_UNDER_WAY`: the library's own threads that write a
//!   file (hit and fill writers) and the forks of the process, which wait for each
//!   other ([`before_fork`]), so that no child inherits a lock such a thread held;
//!   forks belong to the process. `fork::IN_STEPS` (thread-local): the steps the
//!   current thread is inside, which it leaves while it waits for a remote's reply
//!   (`outside_step`), so that a fork never waits on the network.
//! - `remote::COUNTER` (in `random_u64`) and `value_files::COUNTER` (in `random_id`):
//!   make two random numbers drawn by this process in the same nanosecond differ (lease
//!   tokens and generations; value file names), whichever handle draws them.
//! - `interrupt::CHECK`, `interrupt::NO_WAIT` (thread-local): the interrupt check of
//!   the call a thread is in ([`interruptible`]), and whether it tries a lock without
//!   waiting, both asked by the busy handler, which SQLite calls with no state of the
//!   call's.
//! - `sync::NEXT_THREAD`, `sync::THREAD_INDEX` (thread-local): a number per thread, so
//!   that threads reading one handle take distinct shards of the hit buffer and
//!   distinct read connections instead of waiting on one lock.
//! - `table::SQL` (in `insert_new_entries`): the text of the multi-row INSERTs of a
//!   batch, built once per process: the same for every handle and file.
//! - `value_files::NO_OPENAT2`: set once the kernel answered that it has no `openat2`
//!   (Linux before 5.6); the kernel is the process's, so later reads of value files go
//!   straight to the fallback instead of failing that call each time.
//! - `remote::REMOTES`: the remote tier of every handle, so that the process's exit
//!   sends and pays what handles never freed still owe the remote (their write-behind
//!   queues, the unlinks of writes that never reached it); the exit belongs to the
//!   process, and an in-memory cache's handles share no file to hang the list on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
mod blob_read;
mod check;
mod counters;
mod entry;
mod error;
mod eviction;
mod expiration;
mod export;
mod fork;
mod group;
mod hot;
mod inspect;
mod interrupt;
mod lease;
mod lifetime;
mod memo;
mod options;
mod owner;
mod pool;
mod remote;
mod schema;
mod shared;
mod staging;
mod storage;
mod sync;
mod table;
mod take;
mod transact;
mod txn;
#[allow(dead_code)] // wired into Storage by the integration of issue 16
mod value_files;
mod value_reader;

#[cfg(test)]
mod tests;

pub use check::CheckReport;
pub use entry::Entry;
pub use error::{Error, ErrorKind, Result};
pub use eviction::EvictionPolicy;
pub use expiration::{Expiration, EXPIRATION_DEFAULT_MS, EXPIRATION_NEVER_MS};
pub use export::{ExportedEntry, Importer, TransferSummary};
pub use fork::{after_fork, after_fork_in_child, before_fork, forked, keep_pid_in, report_forks};
pub use inspect::{FileInfo, KeyInfo, PolicyIndex};
pub use interrupt::interruptible;
pub use lease::{held_error, poll_delay, Lease, LeaseOutcome};
pub use lifetime::LifetimeStats;
pub use memo::Barrier;
pub use options::{
    Clock, Options, DEFAULT_BUSY_TIMEOUT, DEFAULT_FILE_THRESHOLD, DEFAULT_LEASE, DEFAULT_MAX_SIZE,
    MAX_BUSY_TIMEOUT, MAX_KEY_SIZE, MAX_VALUE_SIZE,
};
pub use remote::{
    redact, RemoteMode, RemoteOptions, RemoteStats, RemoteUrl, DEFAULT_REMOTE_NAMESPACE,
    DEFAULT_REMOTE_TIMEOUT,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use storage::{Stats, Storage, MEMORY};
pub use take::Streamed;
pub use transact::write_waiting_at_exit;
pub use value_reader::{Part, ValueReader};

/// The library version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
