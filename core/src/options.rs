//! Options for opening a storage: size limit, policy, default expiration, busy timeout
//! and version tag. Every setter validates, so an `Options` is always usable.

use crate::error::{Error, Result};
use crate::eviction::EvictionPolicy;
use crate::expiration::Expiration;
use crate::remote::options::{RemoteMode, RemoteOptions};
use crate::remote::url::RemoteUrl;
use std::sync::Arc;
use std::time::Duration;

/// The default size limit: 1 GiB of values, as in the seed.
pub const DEFAULT_MAX_SIZE: u64 = 1 << 30;
/// The longest value stored in the database file, in bytes, whatever `max_size` says:
/// SQLite refuses a string, blob or row longer than its `SQLITE_MAX_LENGTH`
/// (1,000,000,000 bytes in the bundled build), and a large value is a row of its own
/// with a few bytes of header. A longer value is kept in a file of its own whatever the
/// file threshold; with the threshold "never" it is refused as too large before it is
/// hashed or copied.
pub const MAX_VALUE_SIZE: u64 = 999_999_000;
/// The longest key, in bytes: a key is a column of its entry's row (and of its lease's),
/// so SQLite's `SQLITE_MAX_LENGTH` bounds it as it bounds a value. A longer key is
/// refused as an invalid argument by every call that takes one, before SQLite sees it
/// (SQLite's own refusal would read as an I/O error).
pub const MAX_KEY_SIZE: u64 = MAX_VALUE_SIZE;
/// The default busy timeout.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_millis(5000);
/// The longest busy timeout SQLite takes (`i32::MAX` ms); longer ones are cut to it.
pub const MAX_BUSY_TIMEOUT: Duration = Duration::from_millis(i32::MAX as u64);
/// The default lease length of [`crate::Storage::cached_call_exclusive`] and
/// [`crate::Storage::lease_step`] ([`Options::set_lease_duration`]): how long a holder
/// that stops renewing (a stopped process, one on another host or in another PID
/// namespace that died) blocks its key. Renewed every third of it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// The default file threshold: values of 64 KiB and more are kept in files. Chosen by
/// measurement (`bench/run.sh --large-values --near-threshold`, 16 to 256 KiB): below
/// 32 KiB a value read inline from its row beats opening a file; from 64 KiB a file
/// reads faster than SQLite's blob I/O (about 0.02 against 0.03 ms per get) and writes
/// no slower, while values of 32 to 64 KiB were about even.
pub const DEFAULT_FILE_THRESHOLD: Option<u64> = Some(64 * 1024);

/// A source of wall-clock time in milliseconds since the Unix epoch. Tests replace it
/// to check expiration without sleeping.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// How to open a [`crate::Storage`].
#[derive(Clone)]
pub struct Options {
    pub(crate) max_size: u64,
    pub(crate) eviction_policy: EvictionPolicy,
    pub(crate) default_expiration: Expiration,
    pub(crate) busy_timeout: Duration,
    pub(crate) lease_duration: Duration,
    pub(crate) version_tag: Option<String>,
    pub(crate) clock: Option<Clock>,
    /// The remote tier (remote/options.rs).
    pub(crate) remote: RemoteOptions,
    /// Values of at least this many bytes live in files beside the cache
    /// (value_files.rs); `None`: never.
    pub(crate) file_threshold: Option<u64>,
    /// Whether a cache of an older schema is upgraded as it opens (else refused).
    pub(crate) upgrade: bool,
    /// Whether opening sweeps the folder of values for orphan files.
    pub(crate) sweep: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_size: DEFAULT_MAX_SIZE,
            eviction_policy: EvictionPolicy::LeastRecentlyUsed,
            default_expiration: Expiration::Never,
            busy_timeout: DEFAULT_BUSY_TIMEOUT,
            lease_duration: DEFAULT_LEASE,
            version_tag: None,
            clock: None,
            remote: Default::default(),
            file_threshold: DEFAULT_FILE_THRESHOLD,
            upgrade: true,
            sweep: true,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("max_size", &self.max_size)
            .field("eviction_policy", &self.eviction_policy)
            .field("default_expiration", &self.default_expiration)
            .field("busy_timeout", &self.busy_timeout)
            .field("lease_duration", &self.lease_duration)
            .field("version_tag", &self.version_tag)
            .field("remote", &self.remote)
            .field("file_threshold", &self.file_threshold)
            .field("upgrade", &self.upgrade)
            .field("sweep", &self.sweep)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The defaults: 1 GiB, least-recently-used, never expire, a 5 s busy timeout, no version tag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the limit on the sum of value lengths. Must be between 1 and `i64::MAX`
    /// (SQLite integers are signed 64-bit).
    pub fn set_max_size(&mut self, bytes: u64) -> Result<&mut Self> {
        if bytes == 0 || bytes > i64::MAX as u64 {
            return Err(Error::invalid(format!(
                "max_size must be between 1 and {} bytes, got {bytes}",
                i64::MAX
            )));
        }
        self.max_size = bytes;
        Ok(self)
    }

    /// Sets the eviction policy (every value is valid).
    pub fn set_eviction_policy(&mut self, policy: EvictionPolicy) -> &mut Self {
        self.eviction_policy = policy;
        self
    }

    /// The expiration of entries set with [`Expiration::Default`]. It cannot itself be
    /// `Default`.
    pub fn set_default_expiration(&mut self, expiration: Expiration) -> Result<&mut Self> {
        if expiration == Expiration::Default {
            return Err(Error::invalid(
                "the default expiration must be a duration or never, not \"default\"",
            ));
        }
        self.default_expiration = expiration;
        Ok(self)
    }

    /// How long to wait for a lock held by another connection before giving up. SQLite
    /// counts it in an `int` of milliseconds, so a longer timeout waits
    /// [`MAX_BUSY_TIMEOUT`] (24.8 days): in effect, for as long as it takes.
    pub fn set_busy_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.busy_timeout = timeout.min(MAX_BUSY_TIMEOUT);
        self
    }

    /// How long a lease of [`crate::Storage::cached_call_exclusive`] (or
    /// [`crate::Storage::lease_step`]) lasts between two renewals: the time a holder
    /// that stops renewing (a stopped process, or a dead one whose death cannot be
    /// seen: another host, another PID namespace) blocks its key. At least 1 ms.
    pub fn set_lease_duration(&mut self, duration: Duration) -> Result<&mut Self> {
        if duration.is_zero() {
            return Err(Error::invalid("the lease duration must be at least 1 ms"));
        }
        self.lease_duration = duration;
        Ok(self)
    }

    /// When the file was last opened with a different tag, every entry is dropped on
    /// open. A file that never had a tag adopts this one and keeps its entries. Once
    /// another handle has opened the file with another tag, this handle's reads of a
    /// value and its writes fail with [`crate::ErrorKind::Incompatible`].
    pub fn set_version_tag(&mut self, tag: impl Into<String>) -> &mut Self {
        self.version_tag = Some(tag.into());
        self
    }

    /// With `false`, a cache of an older schema is refused ([`crate::ErrorKind::Incompatible`],
    /// the file untouched) instead of upgraded as it opens: a look at a file must not
    /// upgrade it under a program of an older BackLite that has it open, which would go
    /// on writing the old layout. Default `true`.
    pub fn set_upgrade(&mut self, upgrade: bool) -> &mut Self {
        self.upgrade = upgrade;
        self
    }

    /// With `false`, opening leaves the folder of values as it is: no file that no
    /// entry names is removed, however old (a look at a cache, which must change
    /// nothing, and whose `check` then counts them as orphans). Default `true`: an open
    /// removes a batch of orphans over an hour old.
    pub fn set_sweep(&mut self, sweep: bool) -> &mut Self {
        self.sweep = sweep;
        self
    }

    /// Replaces the wall clock used for expiration (milliseconds since the epoch).
    pub fn set_clock(&mut self, clock: Clock) -> &mut Self {
        self.clock = Some(clock);
        self
    }

    /// Values of at least `bytes` bytes are kept in files of their own beside the
    /// cache file (in `<cache>.values/`); `None` keeps every value in the database
    /// file. The default is [`DEFAULT_FILE_THRESHOLD`] (64 KiB). `Some(0)` is refused.
    pub fn set_file_threshold(&mut self, bytes: Option<u64>) -> Result<&mut Self> {
        if bytes == Some(0) || bytes.is_some_and(|b| b > i64::MAX as u64) {
            return Err(Error::invalid(format!(
                "the file threshold must be between 1 and {} bytes, or never, got {}",
                i64::MAX,
                bytes.unwrap_or(0)
            )));
        }
        self.file_threshold = bytes;
        Ok(self)
    }

    /// The size from which values are kept in files; `None`: never.
    pub fn file_threshold(&self) -> Option<u64> {
        self.file_threshold
    }

    /// The bound on the sum of value lengths, in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size
    }

    /// The eviction policy.
    pub fn eviction_policy(&self) -> EvictionPolicy {
        self.eviction_policy
    }

    /// The expiration of sets that ask for the default.
    pub fn default_expiration(&self) -> Expiration {
        self.default_expiration
    }

    /// How long a busy file is waited for before BUSY.
    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// The lease length of the memoisers (see `set_lease_duration`).
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// The version tag, if one was set.
    pub fn version_tag(&self) -> Option<&str> {
        self.version_tag.as_deref()
    }
}

impl Options {
    /// Adds a remote tier: `redis://[user[:password]@]host[:port][/db]`, `rediss://...`
    /// (TLS), `redis+unix:///path/to.sock`, `redis+cluster://host:port[,host:port...]`
    /// or `rediss+cluster://...`. `None` (or "") removes it. A malformed URL or an
    /// unknown scheme is INVALID_ARGUMENT and changes nothing. Nothing is sent here.
    pub fn set_remote(&mut self, url: Option<&str>) -> Result<&mut Self> {
        self.remote.url = match url {
            None | Some("") => None,
            Some(url) => Some(RemoteUrl::parse(url)?),
        };
        Ok(self)
    }

    /// The prefix of every remote key (default "backlite"): 1 to 64 ASCII letters,
    /// digits or `. _ - : /`.
    pub fn set_remote_namespace(&mut self, namespace: &str) -> Result<&mut Self> {
        let ok = !namespace.is_empty()
            && namespace.len() <= 64
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-:/".contains(&b));
        if !ok {
            return Err(Error::invalid(format!(
                "a remote namespace is 1 to 64 ASCII letters, digits or . _ - : /, got {:?}",
                namespace
            )));
        }
        self.remote.namespace = namespace.to_string();
        Ok(self)
    }

    /// The bound on every remote round trip, connect included (default 250 ms): 1 ms
    /// to `u32::MAX` ms (49.7 days), the C API's range; anything else is
    /// INVALID_ARGUMENT and changes nothing.
    pub fn set_remote_timeout(&mut self, timeout: Duration) -> Result<&mut Self> {
        // Longer, the deadlines the tier adds it to overflowed: `Duration::MAX` (a
        // Rust program's "no timeout") panicked in the open's first round trip.
        let range = Duration::from_millis(1)..=Duration::from_millis(u32::MAX.into());
        if !range.contains(&timeout) {
            return Err(Error::invalid(format!(
                "the remote timeout must be 1 ms to {} ms, got {timeout:?}",
                u32::MAX
            )));
        }
        self.remote.timeout = timeout;
        Ok(self)
    }

    /// How the remote tier is used (default [`RemoteMode::ReadWrite`]).
    pub fn set_remote_mode(&mut self, mode: RemoteMode) -> &mut Self {
        self.remote.mode = mode;
        self
    }

    /// The remote URL with its password masked, if one is set.
    pub fn remote(&self) -> Option<&str> {
        self.remote.url.as_ref().map(RemoteUrl::shown)
    }

    /// The prefix of every remote key.
    pub fn remote_namespace(&self) -> &str {
        &self.remote.namespace
    }

    /// The bound on every remote round trip.
    pub fn remote_timeout(&self) -> Duration {
        self.remote.timeout
    }

    /// How the remote tier is used.
    pub fn remote_mode(&self) -> RemoteMode {
        self.remote.mode
    }
}
