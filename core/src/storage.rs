//! `Storage`: one cache file, shared by any number of threads. The public API, on
//! the connection pool (pool.rs), the transaction runner (transact.rs) and group
//! commit (group.rs).

use crate::access;
use crate::blob_read;
use crate::counters;
use crate::entry::{self, Entry, Located};
use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::eviction::EvictionPolicy;
use crate::expiration::{is_due, system_now_ms, Expiration};
use crate::fork::this_process;
use crate::group::{self, Group, Set};
use crate::hot::{self, HotCopy};
use crate::lifetime::{self, LifetimeStats};
use crate::options::{Clock, Options, MAX_KEY_SIZE, MAX_VALUE_SIZE};
use crate::pool::{self, Pool, Writer};
use crate::schema;
use crate::shared::{self, FileShared};
use crate::sync;
use crate::table::{self, Seen, INLINE_MAX};
use crate::take::{self, Borrow, Chunks, Dest, Fill, Own, Streamed, Take};
use crate::transact;
use crate::txn::{NewEntry, Tally, Txn};
use crate::value_files::{Read as FileRead, ValueName, Written};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension};
use std::fs::File;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, MutexGuard};
use std::time::Duration;

/// The path that opens a private in-memory cache.
pub const MEMORY: &str = ":memory:";

/// Keys listed per read transaction by [`Storage::keys`].
const KEYS_PAGE: i64 = 256;

/// How many files of a batch's large values are written before its write lock and held
/// open (their locks) until the commit. A batch of thousands would run the process out
/// of descriptors: the files of any further ones are written ahead too, each closed once
/// written, under one mark on the folder that keeps every sweep from them
/// (`ValueFiles::writing_inside`).
const FILES_HELD: usize = 64;

/// The file's counters and this handle's activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Live entries in the file.
    pub count: u64,
    /// Sum of the live entries' value lengths (what `max_size` bounds).
    pub total_size: u64,
    /// The storage's bound on `total_size`.
    pub max_size: u64,
    /// This handle's lookups that found a live entry.
    pub hits: u64,
    /// This handle's lookups that did not.
    pub misses: u64,
    /// Entries this handle evicted for size.
    pub evictions: u64,
    /// Expired entries this handle removed.
    pub expirations: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
}

/// A persistent cache in one SQLite file.
pub struct Storage {
    path: Option<PathBuf>,
    pub(crate) pool: Pool,
    max_size: i64,
    policy: EvictionPolicy,
    default_expiration: Expiration,
    /// How long a lease of `cached_call_exclusive` lasts between two renewals.
    lease_duration: Duration,
    clock: Option<Clock>,
    pub(crate) shared: Arc<FileShared>,
    counters: Counters,
    /// Sets waiting to share one commit.
    pub(crate) group: Group,
    /// Write transactions committed by this handle (to observe group commit).
    pub(crate) commits: AtomicU64,
    /// Whether the last set found an entry under its key: the next set then looks its
    /// key up first, else it tries to insert first (see `store_as`).
    replacing: AtomicBool,
    /// The eviction policy's index could not be written at open (another process held
    /// the write lock): the next write makes it (see `write_locked`).
    lacks_index: AtomicBool,
    /// The version tag this handle opened a cache file with: its values are of that
    /// format, so it reads and writes none of another tag's (`schema::check_tag`).
    version_tag: Option<String>,
    /// The shared remote tier, if configured (remote/).
    pub(crate) remote: Option<std::sync::Arc<crate::remote::Remote>>,
    /// Values of at least this many bytes are kept in files (value_files.rs); `None`:
    /// never (and always for an in-memory cache).
    file_threshold: Option<u64>,
    /// The files of values whose rows committed writes removed, removed once the
    /// writer is unlocked ([`Storage::remove_unlinked`]): unlinking one takes 8-47 µs
    /// that the other threads' writes would otherwise wait.
    unlinks: std::sync::Mutex<Vec<String>>,
    /// Whether the writer was free when files were last removed (tests).
    #[cfg(test)]
    pub(crate) writer_free_at_unlink: std::sync::atomic::AtomicBool,
    /// Run once by the next look-up that reads a value file, just before it opens the
    /// file its row named (tests: a set that replaces it meanwhile).
    #[cfg(test)]
    pub(crate) before_file_read: std::sync::Mutex<Option<Box<dyn FnOnce() + Send>>>,
}

/// The most looks a read takes at a key whose file was replaced and removed between
/// its look at the row and its open of the file (see [`Storage::lookup_by`]): each
/// look after the first follows another commit of that key. 16 were lost in a row
/// under AddressSanitizer while four processes overwrote one 300 KB key (a cached call
/// then computed a value the key always had: test_value_file_probes7.c churn); each
/// look is O(log n), and the bound only stops a reader that can never win.
const VANISHED_LOOKS: u32 = 256;

/// What a read found, decided while the read connection was held.
enum Lookup<R> {
    Hit(R),
    /// A hit on an in-memory cache, copied to be handed over once the lock is released.
    Copied(Vec<u8>, Option<Duration>),
    Miss,
    Expired,
    /// A damaged entry, and its row as the look-up saw it.
    Damaged(Option<Seen>),
}

impl Storage {
    /// Opens (or creates) the cache at `path`; [`MEMORY`] opens a private in-memory one.
    pub fn open(path: impl AsRef<Path>, options: &Options) -> Result<Storage> {
        let path = path.as_ref();
        let mut created = false;
        let (conn, file, shared) = if path.as_os_str() == MEMORY {
            let conn = Connection::open_in_memory().ctx("opening an in-memory cache")?;
            (conn, None, Arc::default())
        } else {
            if path.as_os_str().is_empty() {
                return Err(Error::invalid("the cache path is empty"));
            }
            // No file name holds one: a bad argument, not a failure of the file system.
            if path.as_os_str().as_encoded_bytes().contains(&0) {
                return Err(Error::invalid(format!(
                    "the cache path {:?} contains a NUL byte",
                    path
                )));
            }
            // Made absolute once, here: the connections opened later (a new thread's, a
            // forked child's, the hit writer's) and the values' folder reach this file
            // after the program changes its working directory too. Messages keep the
            // path as given.
            let absolute = std::path::absolute(path).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot resolve {}: {e}", path.display()),
                )
            })?;
            let (shared, placed) = claim_file(path, &absolute, options.busy_timeout)?;
            created = placed;
            let conn = pool::open(&shared.name, options.busy_timeout)?;
            (conn, Some(absolute), shared)
        };
        let mut conn = conn;
        if file.is_none() {
            schema::configure(&mut conn, options.busy_timeout)?;
        }
        let shown = file.as_deref().unwrap_or(Path::new(MEMORY));
        let prepared = schema::prepare(
            &mut conn,
            shown,
            options.eviction_policy,
            options.version_tag.as_deref(),
            options.upgrade,
        )?;
        created |= prepared.created;
        if file.is_some() {
            schema::enable_wal(&conn, options.busy_timeout)?;
        }
        let name = file.as_ref().map(|_| (shared.name.clone(), shared.id));
        // A cache whose name leaves no room for its folder's keeps every value in the
        // database, as with no threshold (value_files::folder_fits).
        let file_threshold = options
            .file_threshold
            .filter(|_| file.is_some() && crate::value_files::folder_fits(&shared.name));
        let remote =
            crate::remote::Remote::open(options, &shared.remote_owed).map(crate::remote::opened);
        // An in-memory cache is private: no other handle can change its tag.
        let version_tag = options.version_tag.clone().filter(|_| file.is_some());
        let storage = Storage {
            pool: Pool::new(conn, name, options.busy_timeout),
            path: file,
            max_size: options.max_size as i64,
            policy: options.eviction_policy,
            default_expiration: options.default_expiration,
            lease_duration: options.lease_duration,
            clock: options.clock.clone(),
            shared,
            counters: Counters::default(),
            group: Group::default(),
            commits: AtomicU64::new(0),
            replacing: AtomicBool::new(false),
            lacks_index: AtomicBool::new(prepared.lacks_index),
            version_tag,
            remote,
            file_threshold,
            unlinks: std::sync::Mutex::default(),
            #[cfg(test)]
            writer_free_at_unlink: std::sync::atomic::AtomicBool::new(false),
            #[cfg(test)]
            before_file_read: std::sync::Mutex::default(),
        };
        // The files of entries a new version tag dropped go as a clear's do: left to
        // the sweep, they would hold their disk space for an hour.
        storage.remove_files(&prepared.dropped);
        if storage.path.is_some() && options.sweep {
            if created {
                storage.sweep_left_folder();
            }
            storage.sweep_lazily();
        }
        Ok(storage)
    }

    /// The file's path, or `None` for an in-memory cache.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The lease length of [`Storage::cached_call_exclusive`] and [`Storage::lease_step`].
    pub fn lease_duration(&self) -> Duration {
        self.lease_duration
    }

    /// The policy this handle evicts by.
    pub fn eviction_policy(&self) -> EvictionPolicy {
        self.policy
    }

    /// This handle's bound on the sum of value lengths, in bytes.
    pub fn max_size(&self) -> u64 {
        self.max_size as u64
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.as_ref().map_or_else(system_now_ms, |c| c())
    }

    /// This handle's clock, for a thread that outlives the call (the fill writer).
    pub(crate) fn clock_fn(&self) -> impl Fn() -> i64 + Send + 'static {
        let clock = self.clock.clone();
        move || clock.as_ref().map_or_else(system_now_ms, |c| c())
    }

    /// Whether any value is kept in a file of its own (there is a file threshold).
    pub(crate) fn keeps_files(&self) -> bool {
        self.file_threshold.is_some()
    }

    /// Whether a value of `len` bytes is kept in a file of its own.
    pub(crate) fn goes_to_file(&self, len: usize) -> bool {
        self.file_threshold.is_some_and(|t| len as u64 >= t)
    }

    /// Runs `f` on a read connection.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.pool.read(this_process(), f)
    }

    /// Runs `f` on the writer connection outside any transaction (VACUUM).
    pub(crate) fn with_writer<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.pool.with_writer(f)
    }

    /// Runs `f` in an immediate write transaction, after ticking the buffered hits and
    /// purging expired entries, and commits if it succeeds.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        self.write_with(false, f)
    }

    /// Like `write`; with `write_hits`, the buffered hits are written to their rows.
    pub(crate) fn write_with<R>(
        &self,
        write_hits: bool,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
    ) -> Result<R> {
        let pid = this_process();
        self.pool.after_fork_in(pid)?;
        let conn = self.pool.lock_writer_or_stop()?;
        let done = self.write_locked(&conn, pid, write_hits, None, f);
        drop(conn);
        self.remove_unlinked();
        done
    }

    /// Like `write`, whatever version tag the file has now: for a write that reads and
    /// stores no value (the release of a lease), which a handle of another tag still
    /// owes the file (else the key stays blocked until the lease runs out).
    pub(crate) fn write_any_tag<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<R> {
        let pid = this_process();
        self.pool.after_fork_in(pid)?;
        let conn = self.pool.lock_writer();
        let done = self.write_locked_as(&conn, pid, false, None, true, f);
        drop(conn);
        self.remove_unlinked();
        done
    }

    /// `write_with` on a writer connection the caller has locked, in process `pid`
    /// (this one). `preload`: the key a set will replace, looked up with the counters.
    fn write_locked<R>(
        &self,
        conn: &Writer,
        pid: u32,
        write_hits: bool,
        preload: Option<&[u8]>,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
    ) -> Result<R> {
        self.write_locked_as(conn, pid, write_hits, preload, false, f)
    }

    /// `write_locked`; with `any_tag`, whatever version tag the file has now.
    fn write_locked_as<R>(
        &self,
        conn: &Writer,
        pid: u32,
        write_hits: bool,
        preload: Option<&[u8]>,
        any_tag: bool,
        f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
    ) -> Result<R> {
        let now = || self.now();
        // Without its policy's index, a handle finds each victim by a scan of every
        // entry, for as long as it lives: its first write that can makes the index.
        let index = match self.lacks_index.load(Relaxed) {
            true => table::policy_index(self.policy),
            false => None,
        };
        let made = std::cell::Cell::new(false);
        let done = transact::write_in_turn(
            &self.shared,
            conn,
            &conn.known,
            pid,
            self.pool.busy_timeout(),
            now,
            write_hits,
            preload,
            |t| {
                if !any_tag {
                    self.check_tag(t.conn())?;
                }
                if let Some((_, sql)) = index {
                    match t.conn().execute_batch(sql) {
                        Ok(()) => made.set(true),
                        // One that ended the transaction (a full disk, an I/O error)
                        // fails the write: what `f` wrote next would commit piecewise.
                        Err(e) if t.conn().is_autocommit() => {
                            return Err(e).ctx("adding the eviction policy's index")
                        }
                        // Else (the statement alone refused) the next write tries again.
                        Err(_) => {}
                    }
                }
                f(t)
            },
        );
        if made.get() && done.is_ok() {
            self.lacks_index.store(false, Relaxed);
        }
        self.committed(done)
    }

    /// Fails with INCOMPATIBLE when the file on `conn` is now another version tag's
    /// than this handle's (see [`schema::check_tag`]).
    fn check_tag(&self, conn: &Connection) -> Result<()> {
        match (&self.version_tag, &self.path) {
            (Some(tag), Some(path)) => schema::check_tag(conn, path, tag),
            _ => Ok(()),
        }
    }

    /// Runs `f` in a write transaction only if that needs no waiting (see
    /// [`transact::try_write`]); `None`: nothing was done.
    fn try_write<R>(&self, f: impl FnOnce(&mut Txn<'_>) -> Result<R>) -> Result<Option<R>> {
        let done = match transact::try_write(&self.pool, &self.shared, || self.now(), f)? {
            Some(done) => self.committed(Ok(done)).map(Some),
            None => Ok(None),
        };
        self.remove_unlinked();
        done
    }

    /// Counts a committed write, and keeps the files of the values it removed for
    /// [`Storage::remove_unlinked`], which the caller runs once the writer is unlocked.
    fn committed<R>(&self, done: Result<(R, Tally)>) -> Result<R> {
        let (out, mut tally) = done?;
        self.commits.fetch_add(1, Relaxed);
        if !tally.files.is_empty() {
            sync::lock(&self.unlinks).append(&mut tally.files);
        }
        self.count(&tally);
        Ok(out)
    }

    /// Removes the files of values whose rows committed writes removed, with the
    /// writer unlocked (the caller's guard is gone). A crash before this leaves them
    /// as orphans, which `check` and the sweep remove; a file no row names is never
    /// read, and its random name is never used again, so removing it late is safe.
    fn remove_unlinked(&self) {
        let names = std::mem::take(&mut *sync::lock(&self.unlinks));
        self.remove_files(&names);
    }

    /// Removes the files of values whose rows a committed write removed. Best effort:
    /// a file left behind is an orphan, which `check` and the sweep remove.
    /// (Those left for want of a file descriptor are tried again with the next call.)
    fn remove_files(&self, names: &[String]) {
        #[cfg(test)]
        if !names.is_empty() {
            self.writer_free_at_unlink
                .store(self.pool.try_lock_writer().is_some(), Relaxed);
        }
        self.shared.unlink(names);
    }

    /// Runs the hook a test set in `before_file_read`, once.
    #[cfg(test)]
    fn before_file_read(&self) {
        let hook = sync::lock(&self.before_file_read).take();
        if let Some(hook) = hook {
            hook();
        }
    }

    /// Whether a value of `len` bytes is kept in a file of its own: at least the file
    /// threshold, or longer than SQLite can hold as one value (whatever the threshold,
    /// unless values are never kept in files).
    pub(crate) fn in_file(&self, len: u64) -> bool {
        self.file_threshold
            .is_some_and(|t| len >= t || len > MAX_VALUE_SIZE)
    }

    /// Whether `value` is kept in a file of its own ([`Storage::in_file`]).
    fn kept_in_file(&self, value: &[u8]) -> bool {
        self.in_file(value.len() as u64)
    }

    /// Writes `value` to a new file of its own, locked until the result is dropped.
    pub(crate) fn write_value_file(&self, value: &[u8]) -> Result<Written> {
        let files = self
            .shared
            .value_files(true)?
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no folder for value files"))?;
        files.write(value)
    }

    /// The folder's mark of a write whose files, written before its transaction and
    /// let go, no row names until it commits ([`crate::value_files::ValueFiles::writing_inside`]): held
    /// until the write has committed or removed them. `None`: it cannot be had (then
    /// each file is written inside the transaction, or kept locked).
    pub(crate) fn writing_mark(&self) -> Option<File> {
        match self.shared.value_files(true) {
            Ok(Some(files)) => files.writing_inside(),
            _ => None,
        }
    }

    /// The file of `value` written ahead of the transaction that is to name it (a lease's
    /// fulfil), as [`Storage::set_in_file`] writes a set's: before the write lock, so
    /// other writers wait only for the row, and locked until dropped. `None`: the value
    /// is not kept in a file, or stores nothing (too large, or already expired).
    pub(crate) fn file_ahead(
        &self,
        value: &[u8],
        expiration: Expiration,
    ) -> Result<Option<Written>> {
        let len = value.len() as u64;
        if !self.in_file(len) || len > self.value_limit() || self.already_expired(expiration) {
            return Ok(None);
        }
        self.write_value_file(value).map(Some)
    }

    /// [`Storage::store`] of a value whose file [`Storage::file_ahead`] wrote; `named`
    /// becomes true once a row names it (if it does not by the commit, discard it).
    pub(crate) fn store_written(
        &self,
        t: &mut Txn<'_>,
        key: &[u8],
        written: &Written,
        expiration: Expiration,
        named: &mut bool,
    ) -> Result<bool> {
        self.store_as(t, key, written.len, expiration, |t, deadline| {
            t.insert_file(key, written, written.crc, deadline)?;
            *named = true;
            Ok(())
        })
    }

    /// Removes a value file written ahead of its transaction that no row came to name.
    pub(crate) fn discard_file(&self, written: Option<&Written>) {
        if let (Some(w), Ok(Some(files))) = (written, self.shared.value_files(false)) {
            let _ = files.remove(&w.name);
        }
    }

    fn count(&self, tally: &Tally) {
        self.counters.evictions.fetch_add(tally.evictions, Relaxed);
        self.counters
            .expirations
            .fetch_add(tally.expirations, Relaxed);
    }

    /// Looks `key` up and hands its value and time left to `f` without copying it.
    /// Returns `None` when there is no live entry. A hit is recorded as an access.
    pub fn get_with<R>(
        &self,
        key: &[u8],
        f: impl FnOnce(&[u8], Option<Duration>) -> R,
    ) -> Result<Option<R>> {
        self.lookup(key, true, true, f)
    }

    /// The value under `key` and its time left (`None`: never expires).
    pub fn get(&self, key: &[u8]) -> Result<Option<(Vec<u8>, Option<Duration>)>> {
        self.lookup_by(key, true, true, Own)
    }

    /// Whether `key` has a live entry. Not an access, not counted as a hit or miss.
    /// A value stored apart is checked (a damaged one is no entry, and is removed) a
    /// chunk at a time, as `get_chunks` reads it: never held whole, where a copy of it
    /// made `contains` of a 1 GiB value cost 1 GiB of memory.
    pub fn contains(&self, key: &[u8]) -> Result<bool> {
        let check = Chunks::<_, true> {
            visit: |_: &[u8]| true,
            spoiled: false,
            tells_damage: false,
        };
        Ok(self.lookup_by(key, false, false, check)?.is_some())
    }

    /// The shared read path of get, contains and cached calls.
    pub(crate) fn lookup<R>(
        &self,
        key: &[u8],
        is_access: bool,
        count_miss: bool,
        f: impl FnOnce(&[u8], Option<Duration>) -> R,
    ) -> Result<Option<R>> {
        self.lookup_by(key, is_access, count_miss, Borrow(f))
    }

    /// Like [`Storage::get`], into memory of the caller's: `alloc` is given the value's
    /// length and returns a buffer of exactly that many bytes, which comes back with
    /// every byte written. A large value is read straight from the file into it, once.
    pub fn get_into<B: AsMut<[MaybeUninit<u8>]>>(
        &self,
        key: &[u8],
        alloc: impl FnMut(usize) -> Result<B>,
    ) -> Result<Option<(B, Option<Duration>)>> {
        self.lookup_by(key, true, true, Fill(alloc))
    }

    /// Hands the value under `key` to `visit` in chunks of at most 256 KiB, without
    /// holding it whole in memory (but for an in-memory cache's, copied out once so that
    /// `visit` may use the storage); `visit` returns false to stop. A hit as for `get`.
    /// `None`: no live entry. [`Streamed::Damaged`]: the value proved damaged only after
    /// some of it was handed over; drop what was received (the entry is removed).
    /// `visit` runs while a read transaction is open on the file: writes go on, but
    /// the WAL cannot be checkpointed past it until the read ends.
    pub fn get_chunks(
        &self,
        key: &[u8],
        visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Streamed>> {
        let taker = Chunks::<_, true> {
            visit,
            spoiled: false,
            tells_damage: true,
        };
        self.lookup_by(key, true, true, taker)
    }

    /// [`Storage::get_chunks`] for a caller that delivers the value elsewhere (the
    /// `backlite get` command, to a file or a pipe): a read its visitor stopped, the
    /// value not delivered whole, counts no hit (nor a miss), and the entry keeps its
    /// hits and its place in the eviction order.
    pub fn deliver_chunks(
        &self,
        key: &[u8],
        visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<Option<Streamed>> {
        let taker = Chunks::<_, false> {
            visit,
            spoiled: false,
            tells_damage: true,
        };
        self.lookup_by(key, true, true, taker)
    }

    /// `lookup` for any [`Take`].
    pub(crate) fn lookup_by<T: Take>(
        &self,
        key: &[u8],
        is_access: bool,
        count_miss: bool,
        taker: T,
    ) -> Result<Option<T::Out>> {
        check_key(key)?;
        // An in-memory cache reads on its writer, held during the read: its value is
        // copied out so that the taker runs with no lock held and may use this storage.
        let in_memory = self.pool.in_memory();
        let mut taker = Some(taker);
        // Asked once: the pool, the hit buffer and the counters each check it (for a
        // forked child), and asking may be a system call (see fork::this_process).
        let pid = this_process();
        // Set when the file a row named was missing (see the retry below).
        let vanished = std::cell::Cell::new(false);
        // The `created` of the entry a hit found: its hit is on that entry only.
        let created = std::cell::Cell::new(access::UNKNOWN_ENTRY);
        let tagged = self.version_tag.as_deref().zip(self.path.as_deref());
        let lookup = match tagged {
            Some(_) => table::LOOKUP_TAGGED,
            None => table::LOOKUP,
        };
        // A read connection's copies of hot values (hot.rs) serve a value the file
        // still holds without the look-up; never a taker that keeps the read open.
        let mut look_up = |conn: &Connection, mut hot: Option<&mut HotCopy>| {
            if T::LENDS {
                hot = None;
            }
            // Held to the end: the look-up below reads the snapshot this began.
            let mut begin;
            let _snapshot;
            if let Some(hot) = hot.as_deref_mut().filter(|hot| hot.has(key)) {
                begin = conn
                    .prepare_cached(hot::BEGIN_READ)
                    .ctx("looking up a key")?;
                let mut rows = begin.query([]).ctx("looking up a key")?;
                rows.next().ctx("looking up a key")?;
                _snapshot = rows;
                if let Some(copy) = hot.current(hot::data_version(conn)?, key) {
                    let now = match copy.deadline {
                        Some(_) => self.now(),
                        None => i64::MIN,
                    };
                    if !is_due(copy.deadline, now) {
                        created.set(copy.created);
                        let left = copy
                            .deadline
                            .map(|t| Duration::from_millis((t - now) as u64));
                        let t = taker.take().expect("taken once");
                        return Ok(Lookup::Hit(t.take(&copy.value, left)?));
                    }
                    hot.drop_copy(key);
                }
            }
            let mut stmt = conn.prepare_cached(lookup).ctx("looking up a key")?;
            let mut rows = stmt.query([key]).ctx("looking up a key")?;
            let Some(row) = rows.next().ctx("looking up a key")? else {
                return Ok(Lookup::Miss);
            };
            // Read with the row: a value of another tag is never handed over as one
            // of this handle's.
            if let Some((tag, path)) = tagged {
                let stored = row.get_ref(5).ctx("reading the version tag")?;
                schema::check_tag_read(conn, path, tag, stored)?;
            }
            let col = |i| row.get_ref(i).ctx("reading an entry");
            // The clock is read only for a row with a deadline (most have none): a read
            // is a call into the vDSO, about 110 instructions of a get's 11,000.
            let expires_at = col(2)?;
            let now = match expires_at {
                ValueRef::Integer(_) => self.now(),
                _ => i64::MIN, // not used: no deadline to compare, or a damaged row
            };
            let left =
                |deadline: Option<i64>| deadline.map(|t| Duration::from_millis((t - now) as u64));
            // `value_id` and `file` matter only when the row holds no value
            // (`entry::locate`): read then, by a second statement in the same snapshot
            // (this one still holds the read), so that an inline value (most gets) is
            // read in four columns of five. A row that names no file of ours, where it
            // must, is damaged.
            let value = col(3)?;
            let (value_id, file) = match value {
                ValueRef::Blob(_) => (ValueRef::Null, None),
                _ => conn
                    .prepare_cached(table::STORED_APART)
                    .and_then(|mut s| {
                        s.query_row([key], |r| {
                            Ok((detached(r.get_ref(0)?), value_file_name(r.get_ref(1)?)))
                        })
                        .optional()
                    })
                    .ctx("looking up a key")?
                    .unwrap_or((ValueRef::Null, None)),
            };
            let found = match entry::locate(col(0)?, col(1)?, expires_at, value, value_id, now) {
                Located::Apart { id: None, .. } if file.is_none() => Lookup::Damaged(None),
                Located::Inline { value, deadline } if in_memory => {
                    Lookup::Copied(value.to_vec(), left(deadline))
                }
                Located::Inline { value, deadline } => {
                    if let (Some(hot), ValueRef::Integer(c)) = (hot.as_deref_mut(), col(4)?) {
                        hot.keep(hot::data_version(conn)?, key, value, deadline, c);
                    }
                    let t = taker.take().expect("taken once");
                    Lookup::Hit(t.take(value, left(deadline))?)
                }
                // Read while the row's statement still holds the read transaction:
                // the blob comes from the same snapshot as the row that names it.
                Located::Apart {
                    id,
                    size,
                    crc,
                    deadline,
                } => {
                    let file = if id.is_none() { file } else { None };
                    let read = |dest: Dest<'_>| match (id, file) {
                        (Some(id), _) => blob_read::read_into(conn, id, crc, dest),
                        (None, Some(name)) => match self.shared.value_files(false)? {
                            Some(files) => {
                                #[cfg(test)]
                                self.before_file_read();
                                let read = take::read_file(files, &name, crc, dest)?;
                                if read != FileRead::Value(()) {
                                    // Not there, or not what the row says: no damage
                                    // if the folder moved with the file (see
                                    // `still_here`), and nothing may be removed.
                                    self.shared.still_here()?;
                                }
                                Ok(match read {
                                    FileRead::Value(()) => true,
                                    FileRead::Missing => {
                                        vanished.set(true);
                                        false
                                    }
                                    FileRead::Damaged => false,
                                })
                            }
                            None => self.shared.still_here().map(|_| false),
                        },
                        (None, None) => Ok(false),
                    };
                    let len = usize::try_from(size).unwrap_or(usize::MAX);
                    if in_memory {
                        match Own.take_apart(len, left(deadline), read)? {
                            Ok((value, left)) => Lookup::Copied(value, left),
                            Err(_) => Lookup::Damaged(None),
                        }
                    } else {
                        let t = taker.take().expect("taken once");
                        match t.take_apart(len, left(deadline), read)? {
                            Ok(out) => Lookup::Hit(out),
                            Err(t) => {
                                taker = Some(t);
                                Lookup::Damaged(None)
                            }
                        }
                    }
                }
                Located::Expired => Lookup::Expired,
                Located::Damaged => Lookup::Damaged(None),
            };
            if matches!(found, Lookup::Hit(_) | Lookup::Copied(..)) {
                if let ValueRef::Integer(c) = col(4)? {
                    created.set(c);
                }
            }
            Ok(match found {
                // The row as this snapshot holds it (the look-up's statement still
                // holds the read): what the removal compares, instead of reading the
                // value again.
                Lookup::Damaged(_) => Lookup::Damaged(
                    conn.prepare_cached(table::SEEN_BY_KEY)
                        .and_then(|mut s| s.query_row([key], |r| Seen::read(r, 0)).optional())
                        .ctx("looking up a key")?,
                ),
                found => found,
            })
        };
        // A reader of a large blob keeps the read connection (`Take::LENDS`).
        let (mut found, mut lent) = self.pool.read_hot(pid, T::LENDS, &mut look_up)?;
        // The row this read's snapshot found may name a file that a set replaced and
        // removed since (it unlinks the old file once its row has committed): the row
        // read again names the new file. Never a wrong value: a row names only a
        // complete file, and a missing file handed no chunk to a visitor. Again as
        // long as each look finds another row than the last: a key overwritten twice
        // between a look and the open of its file missed after one retry (1 read in
        // about 20,000 of a key four processes overwrote, tests/c/test_churn_probes.c).
        // The same row again names a file lost behind BackLite's back: a miss.
        let mut looks = 1;
        while let Lookup::Damaged(before) = &found {
            if looks == VANISHED_LOOKS || !vanished.replace(false) {
                break;
            }
            let before = before.clone();
            (found, lent) = self.pool.read_hot(pid, T::LENDS, &mut look_up)?;
            looks += 1;
            if matches!(&found, Lookup::Damaged(now) if *now == before) {
                break;
            }
        }
        let hit = match found {
            Lookup::Hit(mut r) => {
                if let Some(lent) = lent.take() {
                    T::lend(&mut r, lent);
                }
                Some(r)
            }
            // Moved, not copied again, to a taker that keeps it (a reader's, a get's):
            // a second copy of a large in-memory value doubled what a read cost.
            Lookup::Copied(value, left) => {
                Some(taker.take().expect("taken once").take_owned(value, left)?)
            }
            // Both are removed lazily and only if that needs no waiting: a read never
            // waits for the write lock. Otherwise the next write purges an expired
            // entry, and the next look-up tries the damaged one again. A failure to
            // remove (a read-only file) must not turn a clean miss into an error.
            Lookup::Expired => {
                let _ = self.try_write(|_| Ok(()));
                None
            }
            Lookup::Damaged(seen) => {
                if let Some(seen) = seen {
                    self.remove_if_seen(key, &seen);
                }
                None
            }
            Lookup::Miss => None,
        };
        if let Some(lent) = lent {
            self.pool.give_back(lent); // never: only a hit begins a transaction
        }
        // A value read through is counted as a hit but buffers no access: it has no
        // row yet, and the row its fill inserts is new, ordered as an access would
        // order it (an access written before that insert found no row). Recording it
        // cost a remote hit a hash-table insert, often a page fault, and a hit writer.
        let mut read_through = false;
        // A miss to count, but for a taker handed part of a damaged value an answer
        // that says so (`Take::given_up`).
        let mut given_up = None;
        let hit = match (hit, taker) {
            (None, Some(t)) => match self.read_through(pid, key, is_access, count_miss) {
                Some((v, left)) => {
                    read_through = true;
                    Some(t.take(&v, left)?)
                }
                None => {
                    given_up = t.given_up();
                    None
                }
            },
            (hit, _) => hit,
        };
        if is_access {
            match hit {
                Some(ref out) if !T::counted(out) => {}
                Some(_) if read_through => {
                    self.counters.hits.fetch_add(1, Relaxed);
                    self.shared.lifetime.hit(pid);
                }
                Some(_) => self.record_hit_in(pid, key, created.get()),
                None if count_miss => {
                    self.counters.misses.fetch_add(1, Relaxed);
                    self.shared.lifetime.miss(pid);
                }
                None => {}
            }
        }
        Ok(hit.or(given_up))
    }

    /// Removes the entry under `key` if it is damaged (a look-up found its value
    /// damaged), only if that needs no waiting: a read never waits for the write lock,
    /// and the next look-up tries it again. A failure to remove (a read-only file) must
    /// not turn a clean miss into an error, so none is returned.
    pub(crate) fn remove_if_damaged(&self, key: &[u8]) {
        let _ = self.try_write(|t| t.remove_if_damaged(key));
    }

    /// Removes the entry under `key` if its row is still the one a look-up saw (`seen`)
    /// and found damaged; as `remove_if_damaged`, only if that needs no waiting, but
    /// without reading the value again.
    fn remove_if_seen(&self, key: &[u8], seen: &Seen) {
        let _ = self.try_write(|t| t.remove_if_seen(key, seen));
    }

    /// Removes the entry under `key` if its row still names the value file `name`,
    /// which a reader found damaged; as `remove_if_damaged`, only if that needs no
    /// waiting.
    pub(crate) fn remove_if_names(&self, key: &[u8], name: &ValueName) {
        let _ = self.try_write(|t| t.remove_if_names(key, &name.file_name()));
    }

    /// Turns a hit this handle counted into a miss: a reader opened on it (counted a
    /// hit then, as a get) found its value damaged at its end, which makes the look-up
    /// a miss (API.md: a damaged value is never returned, the lookup is a miss), as a
    /// get of the same value counts it.
    pub(crate) fn hit_proved_a_miss(&self) {
        let _ = self
            .counters
            .hits
            .fetch_update(Relaxed, Relaxed, |h| h.checked_sub(1));
        self.counters.misses.fetch_add(1, Relaxed);
        self.shared.lifetime.hit_proved_a_miss();
    }

    /// Counts a hit and buffers it as an access. Never writes: the get that fills the
    /// buffer starts a hit writer (see [`transact::start_hit_writer`]) and goes on.
    /// `created`: the entry it found (see [`access::Access::created`]).
    pub(crate) fn record_hit(&self, key: &[u8], created: i64) {
        self.record_hit_in(this_process(), key, created)
    }

    /// `record_hit` in process `pid` (this one).
    fn record_hit_in(&self, pid: u32, key: &[u8], created: i64) {
        self.counters.hits.fetch_add(1, Relaxed);
        self.shared.lifetime.hit(pid);
        // An in-memory cache has no other connection: its next write writes the hits.
        let start = self
            .shared
            .accesses_in(pid)
            .record(key, created, self.path.is_some());
        if start {
            transact::start_hit_writer(&self.shared, self.pool.busy_timeout());
        }
    }

    /// Stores `value` under `key`, evicting by the policy to make room. A value larger
    /// than `max_size` (or [`MAX_VALUE_SIZE`] when values are never kept in files) is
    /// refused with [`ErrorKind::TooLarge`] and the older value under `key` is removed.
    pub fn set(&self, key: &[u8], value: &[u8], expiration: Expiration) -> Result<()> {
        self.set_as(key, value, expiration, false)
    }

    /// `set`; `computed`: of a value computed after a look-up of `key` missed (a
    /// memoised call), which replaces no value of the remote tier's.
    pub(crate) fn set_as(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Expiration,
        computed: bool,
    ) -> Result<()> {
        check_key(key)?;
        // Marked as a delete is: a set that leaves no value (too large, already
        // expired) removes the remote's older one, which a read meanwhile may find.
        let (_, _writing) = self.removing(Some(key));
        let len = value.len() as u64;
        // Refused, or already expired, with no older value to remove: nothing to write,
        // so no write lock to wait for (another process holding it made this BUSY
        // after the busy timeout, where API.md says TOO_LARGE, or OK for a set that
        // stores nothing). A set of the key that commits after this look comes after
        // this call, as if made later.
        if (len > self.value_limit() || self.already_expired(expiration)) && !self.has_row(key)? {
            let now = self.now();
            let due = is_due(expiration.deadline(now, self.default_expiration), now);
            return self.set_done(key, value, expiration, Ok(due), computed);
        }
        // Too long for SQLite and not kept in a file: refused before a gigabyte is
        // hashed or copied (a group commit copies it).
        if len > MAX_VALUE_SIZE && !self.in_file(len) {
            let due = self.write(|t| {
                t.remove_key(key)?;
                Ok(is_due(
                    expiration.deadline(t.now, self.default_expiration),
                    t.now,
                ))
            })?;
            // The remote's older value goes too, as with any refused or expired set:
            // left there, the next get here read it back.
            return self.set_done(key, value, expiration, Ok(due), computed);
        }
        // Asked once: the pool, the turn to write, the hit buffer, the lifetime
        // counters and the fills each check it (for a forked child).
        let pid = this_process();
        self.pool.after_fork_in(pid)?;
        if self.in_file(len) {
            return self.set_in_file(pid, key, value, expiration, computed);
        }
        let crc = crc32fast::hash(value);
        // Uncontended: write at once. (The guard must be gone before the group path,
        // which locks the writer itself.)
        let writer = self
            .pool
            .writer_if_free()
            .filter(|_| !self.group.has_waiting());
        let preload = Some(key).filter(|_| self.replacing.load(Relaxed));
        let direct = writer.map(|conn| {
            self.write_locked(&conn, pid, false, preload, |t| {
                self.store(t, key, value, crc, expiration)
            })
        });
        let stored = match direct {
            Some(stored) => stored,
            // Another thread is writing: share its next commit.
            None => {
                let set = Set {
                    key: key.to_vec(),
                    value: value.to_vec(),
                    crc,
                    expiration,
                };
                self.group.set(self, set)
            }
        };
        self.remove_unlinked();
        self.set_done(key, value, expiration, stored, computed)
    }

    /// Whether a row (live, expired or damaged) is stored under `key`: a read, never
    /// waiting for a writer.
    fn has_row(&self, key: &[u8]) -> Result<bool> {
        self.read(|conn| any_row(conn, std::iter::once(key)))
    }

    /// A set of a value of `len` bytes that no memory can hold (a C caller's length past
    /// `isize::MAX`, longer than `max_size` can be), refused from its length alone,
    /// unread. As any refused set, it removes the older value under `key`, from the
    /// remote tier too (a later get must find it in neither), and is
    /// [`ErrorKind::TooLarge`]; a value already expired is stored as nothing, `Ok`.
    pub fn refuse_unread(&self, key: &[u8], len: usize, expiration: Expiration) -> Result<()> {
        check_key(key)?;
        self.delete(key)?;
        let now = self.now();
        if is_due(expiration.deadline(now, self.default_expiration), now) {
            Ok(())
        } else {
            Err(self.too_large(len))
        }
    }

    /// A store made by `store` (a lease's fulfil), then passed on to the remote tier as
    /// a set is: the value, or the removal of the remote's older one when it is too
    /// large. A lost lease stored nothing, and sends nothing.
    pub(crate) fn store_through(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Expiration,
        store: impl FnOnce() -> Result<()>,
    ) -> Result<()> {
        if self.remote.is_none() {
            return store();
        }
        let (_, _writing) = self.removing(Some(key));
        let outcome = store();
        if !matches!(&outcome, Err(e) if e.kind() == ErrorKind::LeaseLost) {
            self.write_through(key, value, expiration, &outcome, true);
            self.forget_fills(Some(key));
        }
        outcome
    }

    /// A set's outcome from what `store` said, passed on to the remote tier.
    fn set_done(
        &self,
        key: &[u8],
        value: &[u8],
        expiration: Expiration,
        stored: Result<bool>,
        computed: bool,
    ) -> Result<()> {
        let outcome = match stored {
            Ok(true) => Ok(()),
            Ok(false) => Err(self.too_large(value.len())),
            Err(e) => Err(e),
        };
        self.write_through(key, value, expiration, &outcome, computed);
        self.forget_fills(Some(key));
        outcome
    }

    /// `set` of a value kept in a file of its own. The file is written (and its CRC
    /// taken) before the write lock is taken, so other writers wait only for the row:
    /// the file stays locked against sweeps until its row has committed
    /// (value_files.rs). It is always written by this thread, never copied into a
    /// group commit: a value of gigabytes would be in memory twice.
    fn set_in_file(
        &self,
        pid: u32,
        key: &[u8],
        value: &[u8],
        expiration: Expiration,
        computed: bool,
    ) -> Result<()> {
        let len = value.len() as u64;
        if len > self.value_limit() || self.already_expired(expiration) {
            // Too large, or expired at once: nothing to write (a full disk or a folder
            // that cannot be made must not fail a set that stores nothing), the older
            // value goes all the same.
            let stored = self.write(|t| {
                self.store_as(t, key, len, expiration, |_, _| {
                    Err(Error::new(
                        ErrorKind::Internal,
                        "a value too large or already expired was stored",
                    ))
                })
            });
            return self.set_done(key, value, expiration, stored, computed);
        }
        let written = self.write_value_file(value)?;
        let mut named = false;
        let stored = {
            let conn = self.pool.lock_writer();
            self.write_locked(&conn, pid, false, Some(key), |t| {
                self.store_as(t, key, written.len, expiration, |t, deadline| {
                    t.insert_file(key, &written, written.crc, deadline)?;
                    named = true;
                    Ok(())
                })
            })
        };
        self.remove_unlinked();
        // Not named by a committed row (due, too large, or failed): nobody needs it.
        if !(named && stored.is_ok()) {
            self.discard_file(Some(&written));
        }
        drop(written);
        self.set_done(key, value, expiration, stored, computed)
    }

    /// Whether `expiration` stores nothing whenever it is set: 0 ms, or the default
    /// when that is 0 ms. A value set so is never too large: nothing of it is stored.
    pub fn already_expired(&self, expiration: Expiration) -> bool {
        let resolved = match expiration {
            Expiration::Default => self.default_expiration,
            e => e,
        };
        matches!(resolved, Expiration::After(d) if d.is_zero())
    }

    /// The body of a set inside a write transaction; false if the value is too large
    /// (the older value under `key` is removed all the same).
    pub(crate) fn store(
        &self,
        t: &mut Txn<'_>,
        key: &[u8],
        value: &[u8],
        crc: u32,
        expiration: Expiration,
    ) -> Result<bool> {
        #[cfg(test)]
        if key == PANICS_IN_STORE {
            panic!("a panic injected into a set");
        }
        let len = value.len() as u64;
        // A key that has no entry is inserted in one statement, where looking it up
        // first takes two: 5k of a new-key set's 36.5k instructions. When the last set
        // replaced an entry, the key is looked up first, so that a run of overwrites
        // does not pay a failed insert each (a wrong guess costs the other one 5k).
        if !self.replacing.load(Relaxed)
            && len as usize <= INLINE_MAX
            && !self.in_file(len)
            && len <= self.value_limit()
        {
            let deadline = expiration.deadline(t.now, self.default_expiration);
            // In a full file, the same for a set that evicts one entry.
            let stored = !is_due(deadline, t.now)
                && if t.total_size + len as i64 <= self.max_size {
                    t.insert_if_new(key, value, crc, deadline)?
                } else {
                    t.insert_if_new_evicting(self.policy, self.max_size, key, value, crc, deadline)?
                };
            if stored {
                return Ok(true);
            }
        }
        self.store_as(t, key, len, expiration, |t, deadline| {
            self.insert(t, key, value, crc, deadline)
        })
    }

    /// `store` of a value of `len` bytes that `insert` inserts with its deadline.
    fn store_as(
        &self,
        t: &mut Txn<'_>,
        key: &[u8],
        len: u64,
        expiration: Expiration,
        insert: impl FnOnce(&mut Txn<'_>, Option<i64>) -> Result<()>,
    ) -> Result<bool> {
        #[cfg(test)]
        if key == PANICS_IN_STORE {
            panic!("a panic injected into a set");
        }
        let replaced = t.remove_key(key)?;
        self.replacing.store(replaced, Relaxed);
        let deadline = expiration.deadline(t.now, self.default_expiration);
        if is_due(deadline, t.now) {
            return Ok(true);
        }
        if len > self.value_limit() {
            return Ok(false);
        }
        t.evict_to_fit(self.policy, self.max_size, len as i64)?;
        insert(t, deadline)?;
        Ok(true)
    }

    /// Inserts an entry, its value in a file of its own if it is that large: the file is
    /// complete before the row that names it is written (and it is removed if the row
    /// is not).
    pub(crate) fn insert(
        &self,
        t: &mut Txn<'_>,
        key: &[u8],
        value: &[u8],
        crc: u32,
        deadline: Option<i64>,
    ) -> Result<()> {
        if !self.kept_in_file(value) {
            return t.insert(key, value, crc, deadline);
        }
        let files = self
            .shared
            .value_files(true)?
            .ok_or_else(|| Error::new(ErrorKind::Internal, "no folder for value files"))?;
        // Marked first, so that a check that only counts leaves it alone.
        let written = t.tally.written.write(files, value)?;
        let inserted = t.insert_file(key, &written, crc, deadline);
        if inserted.is_err() {
            self.discard_file(Some(&written));
        } else if let Ok(Some(files)) = self.shared.value_files(false) {
            // Removed if the transaction fails.
            t.tally.written.push(files, written.name);
        }
        // Its lock goes now, before the commit: holding one open file per value until
        // then would run a batch of thousands out of file descriptors. Nothing can
        // take it meanwhile: check with repair and vacuum wait for this transaction's
        // write lock, the sweep on open runs only while no write is open, and a check
        // that only counts leaves the folder's files alone while the transaction
        // holds the marker's lock (`Uncommitted::write`; check.rs).
        inserted
    }

    /// Whether a set of `value` would be refused as too large (TOO_LARGE).
    pub(crate) fn too_large_to_store(&self, value: &[u8]) -> bool {
        value.len() as u64 > self.value_limit()
    }

    /// The longest value this storage stores: `max_size`, and no more than SQLite
    /// holds as one value unless values may be kept in files.
    pub(crate) fn value_limit(&self) -> u64 {
        match self.file_threshold {
            Some(_) => self.max_size as u64,
            None => (self.max_size as u64).min(MAX_VALUE_SIZE),
        }
    }

    pub(crate) fn too_large(&self, len: usize) -> Error {
        let limit = if len as u64 <= self.max_size as u64 {
            format!(
                "the {MAX_VALUE_SIZE} bytes SQLite can store as one value (with a file \
                 threshold, such a value is kept in a file of its own)"
            )
        } else {
            format!("max_size ({} bytes)", self.max_size)
        };
        Error::new(
            ErrorKind::TooLarge,
            format!("a value of {len} bytes is larger than {limit}: not stored"),
        )
    }

    /// Stores every entry in one transaction, then evicts by the policy down to
    /// `max_size` (entries of the batch may be evicted too). All or nothing: if one
    /// value is larger than `max_size` (or [`MAX_VALUE_SIZE`]), no value of the batch
    /// is stored, and the error names that entry (`entries[i]: ...`), as it does a key
    /// too long; the older values under the too-large entries' keys are removed (in one
    /// transaction), as a `set` of such a value removes its key's (API.md, "Too large":
    /// a later get must not return a stale value). An entry already expired is never
    /// too large: it stores nothing and removes the older value under its key, as a
    /// `set` of it does.
    pub fn set_many(&self, entries: &[Entry<'_>]) -> Result<()> {
        // A refusal names the entry, as the C ABI's checks of each entry do: which of
        // thousands was refused is not in its sizes.
        let in_entry = |i: usize| move |e: Error| e.within(&format!("entries[{i}]"));
        for (i, e) in entries.iter().enumerate() {
            check_key(e.key).map_err(in_entry(i))?;
        }
        if let Some((i, e)) = entries.iter().enumerate().find(|(_, e)| self.refuses(e)) {
            self.remove_refused(entries.iter().filter(|e| self.refuses(e)).map(|e| e.key))?;
            return Err(in_entry(i)(self.too_large(e.value.len())));
        }
        let mut crcs = Vec::new();
        crcs.try_reserve_exact(entries.len()).map_err(|_| {
            let n = entries.len();
            Error::new(ErrorKind::Internal, format!("no memory for {n} checksums"))
        })?;
        crcs.extend(entries.iter().map(|e| crc32fast::hash(e.value)));
        // As for `set`: an entry already expired removes the remote's older value.
        let _writing = self.removing_each(entries);
        // A batch that stores nothing (empty, or every entry already expired) of keys
        // with no row removes nothing either, and has nothing to evict while the file
        // is within this handle's max_size (another handle's may be larger): nothing
        // to write, so no write lock to wait for, as for such a set (a file that
        // cannot be written, or another process's lock, made an empty batch IO or BUSY).
        let writes_nothing = entries.iter().all(|e| self.already_expired(e.expiration))
            && self.read(|conn| {
                if counters::read(conn)?.total_size > self.max_size {
                    return Ok(false);
                }
                Ok(!any_row(conn, entries.iter().map(|e| e.key))?)
            })?;
        let outcome = if writes_nothing {
            Ok(())
        } else {
            self.write_batch(entries, &crcs)
        };
        self.write_through_many(entries, &outcome);
        for e in entries {
            self.forget_fills(Some(e.key));
        }
        outcome
    }

    /// Whether [`Storage::set_many`] refuses `e` as too large (an entry already expired
    /// stores nothing, so it is never too large).
    pub fn refuses(&self, e: &Entry<'_>) -> bool {
        e.value.len() as u64 > self.value_limit() && !self.already_expired(e.expiration)
    }

    /// Removes the older values under the keys of a batch's too-large entries, as a
    /// set of such a value does (`set_as`): in one transaction, evicting nothing else,
    /// and on the remote as an already-expired set removes them there. Nothing to
    /// write (no row under any of those keys) waits for no lock. For a caller that
    /// refuses a batch before [`Storage::set_many`] sees it (a length no memory holds).
    pub fn remove_refused<'k>(&self, keys: impl Iterator<Item = &'k [u8]>) -> Result<()> {
        let removals: Vec<Entry<'_>> = keys
            .map(|key| Entry {
                key,
                value: &[],
                expiration: Expiration::After(Duration::ZERO),
            })
            .collect();
        let _writing = self.removing_each(&removals);
        let outcome = if self.read(|conn| any_row(conn, removals.iter().map(|e| e.key)))? {
            self.write(|t| {
                for e in &removals {
                    t.remove_key(e.key)?;
                }
                Ok(())
            })
        } else {
            Ok(())
        };
        self.write_through_many(&removals, &outcome);
        for e in &removals {
            self.forget_fills(Some(e.key));
        }
        outcome
    }

    /// The write of `set_many`: every entry in one transaction, then the eviction. The
    /// files of its large values are written before the write lock, as a set's is, so
    /// that other writers wait only for the rows; none is taken by a check, vacuum or
    /// sweep before the commit (see [`Storage::files_ahead`]). When they cannot be
    /// written so, they are written inside, one descriptor at a time.
    fn write_batch(&self, entries: &[Entry<'_>], crcs: &[u32]) -> Result<()> {
        // Held until the batch has committed or removed its files.
        let (ahead, _marked) = self.files_ahead(entries);
        let wrote_ahead = !ahead.is_empty();
        match self.write_batch_with(entries, crcs, ahead) {
            // Each file written ahead held a descriptor until the commit, and one was
            // then short for a file written inside: the batch goes again with every
            // file written inside, one descriptor at a time, as it works with one
            // free (with 63 or 64 free, it failed where it works with one).
            Err(e) if e.is_out_of_descriptors() && wrote_ahead => {
                self.write_batch_with(entries, crcs, Vec::new())
            }
            done => done,
        }
    }

    /// [`Storage::write_batch`] with the files `ahead` written before it, which are
    /// removed unless a committed row names them, and closed when it returns.
    fn write_batch_with(
        &self,
        entries: &[Entry<'_>],
        crcs: &[u32],
        ahead: Vec<(&Entry<'_>, Written)>,
    ) -> Result<()> {
        let mut named = vec![false; ahead.len()];
        let done = self.write(|t| {
            let mut next = 0;
            // Inline values go in runs, several rows a statement; any other entry
            // writes the run before it first, to keep the batch's order.
            let mut run = Vec::new();
            for (e, &crc) in entries.iter().zip(crcs) {
                let deadline = e.expiration.deadline(t.now, self.default_expiration);
                let inline = e.value.len() <= INLINE_MAX && !self.kept_in_file(e.value);
                if inline && !is_due(deadline, t.now) {
                    run.push(NewEntry {
                        key: e.key,
                        value: e.value,
                        crc,
                        deadline,
                    });
                    continue;
                }
                t.insert_new_run(&run)?;
                run.clear();
                t.remove_key(e.key)?;
                // Entries are visited in order: the next file written ahead is this
                // entry's or a later one's.
                let written = match ahead.get(next) {
                    Some((at, w)) if std::ptr::eq(*at, e) => {
                        next += 1;
                        Some((next - 1, w))
                    }
                    _ => None,
                };
                if is_due(deadline, t.now) {
                    continue;
                }
                match written {
                    Some((n, w)) => {
                        t.insert_file(e.key, w, crc, deadline)?;
                        named[n] = true;
                    }
                    None => self.insert(t, e.key, e.value, crc, deadline)?,
                }
            }
            t.insert_new_run(&run)?;
            t.evict_to_fit(self.policy, self.max_size, 0)
        });
        // Files no committed row names (the batch failed, or the entry was due).
        for ((_, w), named) in ahead.iter().zip(named) {
            if !(named && done.is_ok()) {
                self.discard_file(Some(w));
            }
        }
        done
    }

    /// The files of a batch's values kept in files, written before its transaction, each
    /// with the entry it is of. The first [`FILES_HELD`] stay locked until dropped; the
    /// rest are closed once written, kept from every sweep by the folder's mark, which
    /// comes back with them and must be held until the batch has committed or removed
    /// them (a sweep that removes files holds the mark exclusively: when it does, those
    /// values are left to be written inside the transaction). None when one cannot be
    /// written (a full disk, no descriptor left, a folder that cannot be made): the
    /// batch then writes them inside its transaction one descriptor at a time, and
    /// fails there as it did, whole.
    fn files_ahead<'e, 'v>(
        &self,
        entries: &'e [Entry<'v>],
    ) -> (Vec<(&'e Entry<'v>, Written)>, Option<File>) {
        let mut ahead = Vec::new();
        let mut marked = None;
        for e in entries {
            if !self.kept_in_file(e.value) || self.already_expired(e.expiration) {
                continue;
            }
            if ahead.len() >= FILES_HELD && marked.is_none() {
                marked = self.writing_mark();
                if marked.is_none() {
                    break;
                }
            }
            match self.write_value_file(e.value) {
                Ok(mut w) => {
                    if marked.is_some() {
                        w.let_go();
                    }
                    ahead.push((e, w))
                }
                Err(_) => {
                    for (_, w) in &ahead {
                        self.discard_file(Some(w));
                    }
                    return (Vec::new(), None);
                }
            }
        }
        (ahead, marked)
    }

    /// Removes the entry under `key`; returns whether there was a live one.
    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        check_key(key)?;
        // Without a remote tier, a key with no row leaves nothing to write, so no
        // write lock to wait for (another process holding it made this BUSY after the
        // busy timeout, where the answer is NOT_FOUND). A set of the key that commits
        // after this look comes after this call, as if made later. With a remote tier
        // the delete still ticks the file's clock for other processes' fills. The look
        // goes through the writer connection when it is free: a read connection would
        // re-read the pages of every commit since its last read.
        if self.remote.is_none() {
            let look = |conn: &Connection| any_row(conn, std::iter::once(key));
            let has_row = match self.pool.read_on_writer_if_free(this_process(), look) {
                Some(has_row) => has_row?,
                None => self.read(look)?,
            };
            if !has_row {
                return Ok(false);
            }
        }
        let (had_fill, _removing) = self.removing(Some(key));
        let found = self.write(|t| {
            let found = t.remove_key(key)?;
            if !found && self.remote.is_some() {
                t.touch(); // for other processes' pending fills (remote/fill.rs)
            }
            Ok(found)
        })?;
        let remote_had = self.delete_through(key);
        Ok(remote_had || found || had_fill)
    }

    /// With a remote tier: a write of `key` (a set or delete; `None`: a clear) begins,
    /// and no value read through for it is kept until the guard returned drops, after
    /// the remote's write (remote/fill.rs, `begin_removal`). Whether a fill waiting for
    /// it went.
    fn removing<'a>(&'a self, key: Option<&'a [u8]>) -> (bool, Removing<'a>) {
        let fills = self.remote.as_ref().map(|_| &self.shared.fills);
        let had_fill = fills.is_some_and(|f| f.begin_removal(key));
        (had_fill, Removing { fills, key })
    }

    /// [`Storage::removing`] for each entry's key, with a remote tier (without one
    /// there is nothing to mark, and no guard to keep per item).
    fn removing_each<'a>(&'a self, entries: &'a [Entry<'a>]) -> Vec<Removing<'a>> {
        match self.remote {
            Some(_) => entries
                .iter()
                .map(|e| self.removing(Some(e.key)).1)
                .collect(),
            None => Vec::new(),
        }
    }

    /// After (and before) a write of `key` (`None`: a clear) with a remote tier: the
    /// values read through and not written yet go (remote/fill.rs). Whether one went.
    fn forget_fills(&self, key: Option<&[u8]>) -> bool {
        self.remote.is_some() && self.shared.fills.forget(key)
    }

    /// Calls `visit` with every live key, a page at a time with no lock held during the
    /// calls (so `visit` may use this storage). `visit` returns false to stop early.
    /// Keys set after the call began are left out: the pages go on in key order, and a
    /// visitor writing a key for each one it is shown (a copy under a prefix, which sorts
    /// after it) would otherwise be shown its own copies, and their copies, without end.
    pub fn keys(&self, mut visit: impl FnMut(&[u8]) -> bool) -> Result<()> {
        self.write_waiting_fills();
        let newest: Option<i64> = self.read(|conn| {
            conn.prepare_cached(table::NEWEST_SEQ)
                .and_then(|mut stmt| stmt.query_row([], |r| r.get(0)))
                .ctx("listing keys")
        })?;
        let Some(newest) = newest else {
            return Ok(()); // no entry
        };
        // Pages in key order; the empty key is the smallest blob, so `>= x''` starts.
        let mut after: Option<Vec<u8>> = None;
        loop {
            let now = self.now();
            let page: Vec<Vec<u8>> = self.read(|conn| {
                let sql = if after.is_some() {
                    table::KEYS_AFTER
                } else {
                    table::KEYS_FROM
                };
                let mut stmt = conn.prepare_cached(sql).ctx("listing keys")?;
                let from = after.as_deref().unwrap_or(&[]);
                let rows = stmt
                    .query_map(rusqlite::params![from, now, KEYS_PAGE, newest], |r| {
                        r.get(0)
                    })
                    .ctx("listing keys")?;
                rows.collect::<rusqlite::Result<_>>().ctx("listing keys")
            })?;
            // Once the visitor has written to the file through any handle of this
            // process (deleted a key further on, say), each key left of the page is
            // looked up again before it is shown: a key it deleted is no longer live
            // when reached. A visitor that writes nothing costs nothing more.
            let commits = self.shared.commits.load(Relaxed);
            let mut look_again = false;
            for key in &page {
                if look_again && !self.still_listed(key, newest)? {
                    continue;
                }
                if !visit(key) {
                    return Ok(());
                }
                look_again = look_again || self.shared.commits.load(Relaxed) != commits;
            }
            if (page.len() as i64) < KEYS_PAGE {
                return Ok(());
            }
            after = page.into_iter().last();
        }
    }

    /// Whether `key` is live now and was set by tick `newest` (`keys`).
    fn still_listed(&self, key: &[u8], newest: i64) -> Result<bool> {
        let now = self.now();
        self.read(|conn| {
            conn.prepare_cached(table::KEY_STILL_LISTED)
                .and_then(|mut s| s.exists(rusqlite::params![key, now, newest]))
                .ctx("listing keys")
        })
    }

    /// Removes every entry.
    pub fn clear(&self) -> Result<()> {
        let _removing = self.removing(None);
        self.write(|t| {
            t.clear()?;
            if self.remote.is_some() {
                t.touch(); // for other processes' pending fills (remote/fill.rs)
            }
            Ok(())
        })?;
        self.clear_through();
        Ok(())
    }

    /// The file's counters (not counting expired entries) and this handle's activity.
    /// Values read through from the remote tier and waiting in memory are written first
    /// (and counted); otherwise it only reads: it works on a file this process cannot write.
    pub fn stats(&self) -> Result<Stats> {
        self.write_waiting_fills();
        let now = self.now();
        let (count, total_size) = self.read(|conn| crate::txn::live_counters(conn, now))?;
        Ok(Stats {
            count: count as u64,
            total_size: total_size as u64,
            max_size: self.max_size as u64,
            hits: self.counters.hits.load(Relaxed),
            misses: self.counters.misses.load(Relaxed),
            evictions: self.counters.evictions.load(Relaxed),
            expirations: self.counters.expirations.load(Relaxed),
        })
    }

    /// The file's lifetime counters, with this process's hits and misses that are not
    /// written yet. Other processes' unwritten ones appear once they write.
    pub fn lifetime_stats(&self) -> Result<LifetimeStats> {
        self.shared
            .lifetime
            .with_unwritten(|| self.read(lifetime::read))
    }

    /// Sets the lifetime counters to zero and starts counting again from now. This
    /// process's unwritten hits and misses go too; other processes' unwritten ones
    /// are added when they write.
    pub fn zero_stats(&self) -> Result<()> {
        let pid = this_process();
        self.with_writer(|conn| {
            // In this process's turn to write, as every write: another handle's write
            // (or the hit writer) takes the waiting hits before it waits for the file,
            // and committed them into the zeroed counters when the zero got it first.
            let _turn = self
                .shared
                .writing_in(pid, self.pool.busy_timeout())
                .ok_or_else(transact::turn_not_had)?;
            lifetime::zero(conn, || self.now(), &self.shared.lifetime)
        })
    }

    /// Writes this handle's buffered accesses, and the values read through from the
    /// remote that wait in memory, to the file now.
    pub fn flush(&self) -> Result<()> {
        if self.shared.accesses().is_empty()
            && self.shared.lifetime.is_empty()
            && self.shared.fills.is_empty()
        {
            return Ok(());
        }
        self.write_with(true, |_| Ok(()))
    }
}

/// A set of this key panics inside its write transaction (tests/group_commit.rs).
#[cfg(test)]
pub(crate) const PANICS_IN_STORE: &[u8] = b"panics in store";

/// The storage's part of a group commit: each set as `store` writes it.
impl group::WriteSets for Storage {
    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>> {
        self.pool.lock_writer_or_stop()
    }

    fn write_together(&self, writer: &Writer, sets: &[&Set]) -> Result<Vec<bool>> {
        self.write_locked(writer, this_process(), false, None, |t| {
            sets.iter()
                .map(|j| self.store(t, &j.key, &j.value, j.crc, j.expiration))
                .collect()
        })
    }

    fn write_alone(&self, writer: &Writer, set: &Set) -> Result<bool> {
        self.write_locked(writer, this_process(), false, Some(&set.key), |t| {
            self.store(t, &set.key, &set.value, set.crc, set.expiration)
        })
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        // In a forked child, the inherited connections are set aside, never closed,
        // even when there is nothing to write.
        let _ = self.pool.after_fork();
        // No thread of this process outlives its last handle on the file.
        self.shared.join_hit_writers();
        // Best effort: the accesses are hints for eviction order, not data.
        let _ = self.flush();
        self.remove_unlinked();
        self.pool.keep_log_out_if_emptied();
    }
}

/// Whether a row (live, expired or damaged) is stored under any of `keys`.
fn any_row<'k>(conn: &Connection, keys: impl IntoIterator<Item = &'k [u8]>) -> Result<bool> {
    let mut stmt = conn
        .prepare_cached(table::ROW_REF_BY_KEY)
        .ctx("looking up a key")?;
    for key in keys {
        if stmt.exists([key]).ctx("looking up a key")? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A `value_id` column as [`entry::locate`] reads it, its type and integer only, apart
/// from its row (any text or blob is damage, whatever its bytes).
fn detached(v: ValueRef<'_>) -> ValueRef<'static> {
    match v {
        ValueRef::Null => ValueRef::Null,
        ValueRef::Integer(i) => ValueRef::Integer(i),
        ValueRef::Real(r) => ValueRef::Real(r),
        ValueRef::Text(_) | ValueRef::Blob(_) => ValueRef::Blob(&[]),
    }
}

/// The value file a `file` column names, if it is a name of ours.
fn value_file_name(v: ValueRef<'_>) -> Option<ValueName> {
    match v {
        ValueRef::Text(t) => std::str::from_utf8(t).ok().and_then(ValueName::parse),
        _ => None,
    }
}

/// Refuses a key longer than [`MAX_KEY_SIZE`]: no entry can have it, and SQLite would
/// refuse it with an error that reads as I/O.
fn check_key(key: &[u8]) -> Result<()> {
    if key.len() as u64 > MAX_KEY_SIZE {
        return Err(Error::invalid(format!(
            "a key of {} bytes is longer than the {MAX_KEY_SIZE} bytes a key may have",
            key.len()
        )));
    }
    Ok(())
}

/// The name of the file `id` at `absolute` with every link resolved: what its
/// connections open it by, and what its folder of value files is named after. SQLite
/// names the -wal and -shm after the file a link leads to, and so must the folder be:
/// named after the link, a cache opened by two names had two folders, and each name
/// missed (and removed) the large values set through the other. `None`: no longer
/// that file.
fn real_name(absolute: &Path, id: schema::FileId) -> Result<Option<PathBuf>> {
    match std::fs::canonicalize(absolute) {
        Ok(real) => {
            Ok(Some(real).filter(|r| matches!(schema::identify(r), Ok(Some(i)) if i == id)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::new(
            ErrorKind::Io,
            format!("cannot resolve {}: {e}", absolute.display()),
        )),
    }
}

/// Finds the cache at `path`, creating it if there is none, and returns what this
/// process's handles on it share. A file that is open here already is not read again
/// (see [`shared::opening`]) and is opened by the name its other handles use.
fn claim_file(
    path: &Path,
    absolute: &Path,
    busy_timeout: Duration,
) -> Result<(Arc<FileShared>, bool)> {
    // Whether this call put a new cache at `path`.
    let mut placed = false;
    // Each turn either finds the file or sees it appear or change meanwhile; a few
    // turns settle any race with other openers.
    for _ in 0..8 {
        let Some(id) = schema::identify(path)? else {
            placed |= schema::create(path, busy_timeout, crate::shared::named_here)?;
            continue;
        };
        let _opening = shared::opening(id);
        if let Some(shared) = shared::open_here(id) {
            return Ok((shared, placed));
        }
        match schema::sniff(path, id)? {
            schema::FileKind::Replaced => {}
            schema::FileKind::HardLinked => {
                // A new cache has two names for a moment: its creator links it into
                // place, then removes its build name. Only a second name that stays
                // is refused.
                if !schema::remove_build_name(path, id)
                    && schema::sniff(path, id)? == schema::FileKind::HardLinked
                {
                    return Err(schema::hard_link_error(path));
                }
            }
            schema::FileKind::Empty | schema::FileKind::Ours => {
                // Replaced since it was identified: another turn.
                let Some(real) = real_name(absolute, id)? else {
                    continue;
                };
                let name = schema::sqlite_name(&real);
                schema::refuse_anothers_log(&name, shared::named_here)?;
                return Ok((shared::register(id, name), placed));
            }
        }
    }
    Err(Error::new(
        ErrorKind::Io,
        format!("{} kept changing while it was opened", path.display()),
    ))
}

/// A set, delete or clear under way (`Storage::removing`), ended when dropped: after the
/// remote's write, and on an early return or a panic too (left begun, the key would
/// never be read through into the file again).
struct Removing<'a> {
    fills: Option<&'a crate::remote::fill::Fills>,
    key: Option<&'a [u8]>,
}

impl Drop for Removing<'_> {
    fn drop(&mut self) {
        if let Some(fills) = self.fills {
            fills.end_removal(self.key);
        }
    }
}
