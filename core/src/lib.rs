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

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod access;
#[allow(dead_code)] // wired into Storage::lookup once the storage layout of issue 11 lands
mod blob_read;
mod check;
mod entry;
mod error;
mod eviction;
mod expiration;
mod export;
mod fork;
mod group;
mod inspect;
mod lease;
mod lifetime;
mod memo;
mod options;
mod owner;
mod pool;
mod remote;
mod schema;
mod shared;
mod storage;
mod sync;
mod table;
mod transact;
mod txn;
#[allow(dead_code)] // wired into Storage by the integration of issue 16
mod value_files;

#[cfg(test)]
mod tests;

pub use check::CheckReport;
pub use entry::Entry;
pub use error::{Error, ErrorKind, Result};
pub use eviction::EvictionPolicy;
pub use expiration::{Expiration, EXPIRATION_DEFAULT_MS, EXPIRATION_NEVER_MS};
pub use export::{ExportedEntry, Importer, TransferSummary};
pub use inspect::{FileInfo, KeyInfo, PolicyIndex};
pub use lease::{held_error, poll_delay, Lease, LeaseOutcome};
pub use lifetime::LifetimeStats;
pub use memo::Barrier;
pub use options::{
    Clock, Options, DEFAULT_BUSY_TIMEOUT, DEFAULT_LEASE, DEFAULT_MAX_SIZE, MAX_VALUE_SIZE,
};
pub use remote::{
    redact, RemoteMode, RemoteOptions, RemoteStats, RemoteUrl, DEFAULT_REMOTE_NAMESPACE,
    DEFAULT_REMOTE_TIMEOUT,
};
pub use schema::{APPLICATION_ID, SCHEMA_VERSION};
pub use storage::{Stats, Storage, MEMORY};

/// The library version, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
