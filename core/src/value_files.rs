//! Values kept in files of their own, in a folder beside the cache file (issue 16):
//! large values read and write at the speed of files, and need not fit SQLite's
//! one-value limit. This module owns the folder and its files; the entry's row (which
//! holds the file's name, the value's length and its CRC-32) is the only reference.
//!
//! - **The folder** `<cache>.values/` is made by BackLite, 0700, and carries a marker
//!   file. It appears whole (built under a temporary name, then renamed into place), so
//!   a folder without the marker is not ours and is never used.
//! - **Names never collide** between processes or threads: a file is written under a
//!   fresh random `v-<32 hex>.blv`, created exclusively. Only a row makes a file
//!   readable, and a row names a file only once it is complete, so no reader ever sees
//!   a half-written one, and two writers of one key write two files. (`t-<32 hex>.tmp`
//!   is a file being written that no row will ever name: the sweep's place, and the
//!   value files of earlier builds, which renamed theirs into place.)
//! - **The file** holds the value and a record of it (magic, length, CRC-32): after
//!   the value in format 2 (`v2-<32 hex>.blv`, which every file is now written in),
//!   before it in format 1 (`v-<32 hex>.blv`, written by schema 3 to 5 and still read).
//!   Format 2 keeps the value at offset 0, where the kernel copies it between the page
//!   cache and the caller's memory at the speed of a plain file: at offset 24 every
//!   copy straddles cache lines, and a set of 1 MiB or more took twice as long
//!   (bench/README.md, "Value file layout"). The name says the format, so no file is
//!   ever read in the wrong one. A read checks the file against what the row says; a
//!   missing, truncated, foreign or damaged file is a miss ([`Read::Missing`],
//!   [`Read::Damaged`]), never an error.
//! - **Only our own names are ever removed**: a file whose name does not parse as ours
//!   is left alone, whatever it is; and only in the folder itself, opened with no link
//!   followed, with its marker ([`ValueFiles::remove_all`]), never at the end of a link
//!   put in its place.
//! - **A file being written is locked**: its writer holds an exclusive `flock` on it
//!   from before its first byte until the row that names it commits (or the set
//!   fails), so a set may write its file before it takes the database's write lock.
//!   (A file that a batch writes past the ones it holds open, ahead of its
//!   transaction, or that an import writes inside its transaction, is unlocked once
//!   written: the write holds a shared lock on the folder's marker instead, one for
//!   all its files, [`ValueFiles::writing_inside`], and a sweep that removes files
//!   holds that lock exclusively, [`ValueFiles::alone`].)
//!   A sweep removes only a file whose lock it can take: a live writer's file stays,
//!   and a dead writer's lock went with its process, so its orphan goes. A write that
//!   removes rows holds a shared lock on their files from just before its commit
//!   until it has unlinked them ([`ValueFiles::hold`]): no row names them meanwhile,
//!   and no other process's sweep takes them for orphans.
//! - **A transaction that fails removes the files it wrote** ([`Uncommitted`]).
//! - **A child forked during a set inherits the locked descriptor**: `O_CLOEXEC` only
//!   closes it on exec. The lock is a `flock` (not an OFD lock), which belongs to the
//!   open file the two processes share: if the parent dies mid-set, its orphan stays
//!   locked, so no sweep removes it, until the child exits (or execs).
//! - **No fsync**, like the rest of the library (WAL with `synchronous=NORMAL`): after a
//!   power loss a row may name a file whose content did not reach the disk, and the CRC
//!   makes that a miss.

use crate::error::{Error, ErrorKind, Result};
use std::fs::{self, File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Write as _};
use std::mem::MaybeUninit;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// What the folder's name adds to the cache file's name.
pub(crate) const FOLDER_SUFFIX: &str = ".values";
/// The marker that makes a folder ours.
const MARKER: &str = "BACKLITE-VALUES";
const MARKER_TEXT: &str = "This folder holds the large values of a BackLite cache file.\n\
BackLite creates and removes the files named v2-*.blv, v-*.blv and t-*.tmp in it, and keeps its\n\
place in its sweep for orphans in BACKLITE-SWEEP. It never reads or removes anything\n\
else. Removing one of its files loses that value only.\n";
/// Where the last bounded sweep for orphans stopped ([`ValueFiles::sweep_some`]).
const SWEEP_CURSOR: &str = "BACKLITE-SWEEP";
/// The record's first bytes in a value file of format 1 (where it is the header).
const MAGIC_1: &[u8; 8] = b"BKLTVAL1";
/// The record's first bytes in a value file of format 2 (where it is the trailer).
const MAGIC_2: &[u8; 8] = b"BKLTVAL2";
/// The record's length: magic, length (u64 LE), CRC-32 (u32 LE), 4 bytes reserved (zero).
pub(crate) const RECORD_LEN: u64 = 24;
/// Bytes copied at a time: bounds the memory of streaming reads and writes.
pub(crate) const CHUNK: usize = 256 * 1024;
/// Values up to this many bytes are hashed whole, then written with their record in
/// one system call; longer ones a chunk at a time, each hashed while in the CPU's cache.
const ONE_WRITE: usize = 4 * CHUNK;
/// Bytes a get reads into its caller's memory at a time: it needs no buffer of its own,
/// so only the system calls count (bench/README.md, "Reads of a mebibyte at a time").
const READ_INTO_CHUNK: usize = 4 * CHUNK;

/// How a value file is laid out; its name says which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Format {
    /// `v-<32 hex>.blv`: the record, then the value (schema 3 to 5). Read, never written.
    One,
    /// `v2-<32 hex>.blv`: the value at offset 0, then the record.
    Two,
}

/// The name of a complete value file: what an entry's row stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ValueName {
    id: u128,
    format: Format,
}

impl ValueName {
    /// The name of a new file: the format every file is written in.
    fn new(id: u128) -> ValueName {
        ValueName {
            id,
            format: Format::Two,
        }
    }

    /// The name as stored in a row and on disk: `v2-<32 lower-case hex digits>.blv`
    /// (`v-…` for format 1). Spelled out digit by digit: with `format!` (and
    /// `Path::join`), spelling the names of its new and its replaced file cost such a
    /// set about 5,000 instructions (bench/README.md).
    pub(crate) fn file_name(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let prefix: &[u8] = match self.format {
            Format::One => b"v-",
            Format::Two => b"v2-",
        };
        let mut name = Vec::with_capacity(prefix.len() + 36);
        name.extend_from_slice(prefix);
        name.extend((0..32).map(|i| DIGITS[(self.id >> (4 * (31 - i))) as usize & 15]));
        name.extend_from_slice(b".blv");
        String::from_utf8(name).expect("ASCII")
    }

    /// Parses a name written by [`ValueName::file_name`]; `None` for anything else.
    pub(crate) fn parse(name: &str) -> Option<ValueName> {
        let (format, rest) = match name.strip_prefix("v2-") {
            Some(rest) => (Format::Two, rest),
            None => (Format::One, name.strip_prefix("v-")?),
        };
        let id = parse_hex(rest.strip_suffix(".blv")?)?;
        Some(ValueName { id, format })
    }

    /// Where the value starts in the file.
    pub(crate) fn value_offset(&self) -> u64 {
        match self.format {
            Format::One => RECORD_LEN,
            Format::Two => 0,
        }
    }

    /// Where the record is in the file of a value of `len` bytes.
    fn record_offset(&self, len: u64) -> u64 {
        match self.format {
            Format::One => 0,
            Format::Two => len,
        }
    }

    /// The record of a value of `len` bytes and CRC `crc` in this file's format.
    fn record(&self, len: u64, crc: u32) -> [u8; RECORD_LEN as usize] {
        let magic = match self.format {
            Format::One => MAGIC_1,
            Format::Two => MAGIC_2,
        };
        let mut r = [0u8; RECORD_LEN as usize];
        r[..8].copy_from_slice(magic);
        r[8..16].copy_from_slice(&len.to_le_bytes());
        r[16..20].copy_from_slice(&crc.to_le_bytes());
        r
    }
}

/// The name of a file being written: never named by a row.
fn temp_name(id: u128) -> String {
    format!("t-{id:032x}.tmp")
}

fn is_temp_name(name: &str) -> bool {
    name.strip_prefix("t-")
        .and_then(|n| n.strip_suffix(".tmp"))
        .and_then(parse_hex)
        .is_some()
}

/// Exactly 32 lower-case hex digits (so that a name has one spelling).
fn parse_hex(s: &str) -> Option<u128> {
    let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
    if s.len() != 32 || !s.bytes().all(lower_hex) {
        return None;
    }
    u128::from_str_radix(s, 16).ok()
}

/// 128 random bits: std's per-process random hash keys over the pid, the time and a
/// counter. Unique names need no secret randomness: the folder is 0700, and a file is
/// created exclusively.
fn random_id() -> u128 {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let word = |salt: u64| {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.write_u64(COUNTER.fetch_add(1, Relaxed));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        h.write_u128(now.as_nanos());
        h.finish()
    };
    (u128::from(word(1)) << 64) | u128::from(word(2))
}

/// What a read found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read<T> {
    /// The whole value, checked.
    Value(T),
    /// No such file: a miss.
    Missing,
    /// A file that does not hold what the row says (truncated, foreign, damaged): a miss.
    Damaged,
}

/// What a streaming read did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Streamed {
    /// Every chunk was handed over, and the CRC matched.
    Done,
    /// The visitor stopped it.
    Stopped,
    /// No such file; nothing was handed over.
    Missing,
    /// The file does not hold what the row says. Chunks may have been handed over
    /// before the CRC showed it: the caller must discard them.
    Damaged,
}

/// What an orphan sweep found.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Swept {
    /// Our files removed: unreferenced values and abandoned temporary files.
    pub removed: u64,
    /// Our empty files removed (or, counting, found): no value, so no orphan (see
    /// `ValueFiles::consider`).
    pub empty: u64,
    /// Entries whose names are not ours, left alone.
    pub foreign: u64,
    /// Our orphans that could not be removed (a folder its user may not write), and
    /// why the first could not.
    pub left: u64,
    pub why_left: Option<String>,
}

/// A complete value file, written and not yet named by any row. It stays locked
/// against sweeps while this lives (unless let go): drop it once the row that names it
/// has committed, or once the file is removed.
#[derive(Debug)]
pub(crate) struct Written {
    pub name: ValueName,
    pub len: u64,
    pub crc: u32,
    /// The open file, holding its `flock`; `None` once let go.
    held: Option<File>,
}

impl Written {
    /// Closes the file, and so lets its lock go: for a file that the folder's mark
    /// keeps from sweeps instead ([`ValueFiles::writing_inside`]), so that a batch of
    /// thousands written ahead of its transaction holds no descriptor per file.
    pub(crate) fn let_go(&mut self) {
        self.held = None;
    }
}

/// The value files a write transaction wrote, under the write lock: removed unless
/// the transaction commits (this is dropped without [`Uncommitted::committed`], by an
/// error, a failed commit or a panic). Only names, not open files: a batch may write
/// more files than the process may hold open.
#[derive(Debug, Default)]
pub(crate) struct Uncommitted {
    files: Option<ValueFiles>,
    names: Vec<ValueName>,
    /// The folder's marker, under a shared `flock` from before the transaction's first
    /// file until it ends ([`ValueFiles::writing_inside`]); let go after the files of a
    /// failed one are removed (fields drop after `drop`).
    _writing: Option<File>,
}

impl Uncommitted {
    /// Writes `value` to a new file of `files` inside the transaction, having marked
    /// a transaction writing unlocked files there, until it ends
    /// ([`ValueFiles::writing_inside`]). The mark costs a descriptor: when none is left
    /// for the file, the mark goes and the file is made without it (a batch that
    /// writes its files one descriptor at a time works with one free).
    pub(crate) fn write(&mut self, files: &ValueFiles, value: &[u8]) -> Result<Written> {
        if self._writing.is_none() {
            self._writing = files.writing_inside();
        }
        match files.write(value) {
            Err(e) if e.is_out_of_descriptors() && self._writing.is_some() => {
                self._writing = None;
                files.write(value)
            }
            written => written,
        }
    }

    /// Adds a file of the folder `files` that the transaction wrote.
    pub(crate) fn push(&mut self, files: &ValueFiles, name: ValueName) {
        self.files.get_or_insert_with(|| files.clone());
        self.names.push(name);
    }

    /// The transaction committed: its rows name the files, which stay.
    pub(crate) fn committed(&mut self) {
        self.names.clear();
    }
}

impl Drop for Uncommitted {
    fn drop(&mut self) {
        if let Some(files) = &self.files {
            // Best effort: a file left behind is an orphan, which a sweep removes.
            let _ = files.remove_all(&self.names);
        }
    }
}

/// The folder of one cache file's value files.
#[derive(Debug, Clone)]
pub(crate) struct ValueFiles {
    dir: PathBuf,
    /// The folder's path with every link on the way resolved, when it was found ours:
    /// what a value file is opened for reading by, with no link followed anywhere
    /// ([`open_for_read`]).
    real: PathBuf,
    /// The folder's [`identity`] when it was found ours: while the path still leads to
    /// that folder, it needs no other check ([`ValueFiles::check_ours`]).
    ident: [u64; 3],
    /// Files to remove that could not be for want of a file descriptor (the process at
    /// its limit of open files, so that the folder could not be opened): removed with
    /// the next removal, of this handle or of another in the process. Left alone, each
    /// was an orphan until a `check`, or an open's sweep an hour later: a process near
    /// its limit filled the disk with values the size limit no longer counted.
    later: std::sync::Arc<std::sync::Mutex<Vec<ValueName>>>,
}

/// A folder's device, inode and birth time in ns (0 where the file system keeps none,
/// and then [`ValueFiles::check_ours`] always checks in full). The birth time tells
/// apart a folder made later in its place that was given the same inode number: ext4
/// reuses a freed one at once (a test's folder removed, then one made by its user, had
/// the number of the folder adopted).
fn identity(meta: &fs::Metadata) -> [u64; 3] {
    let born = meta
        .created()
        .ok()
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    [meta.dev(), meta.ino(), born]
}

/// The folder of the cache at `cache`.
pub(crate) fn folder_of(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_os_string();
    name.push(FOLDER_SUFFIX);
    PathBuf::from(name)
}

/// The longest name a folder entry may have (`NAME_MAX` of Linux's file systems).
const NAME_MAX: usize = 255;

/// How the name of a folder being built as `dir` starts (then 32 hex digits and
/// `.new`): a dot and the folder's name, but never longer than a name may be (255
/// bytes): the whole name made the folder of a cache named 217 to 248 bytes long
/// impossible to build ("File name too long"), and every large set of it failed.
fn building_prefix(dir: &Path) -> String {
    let base = dir.file_name().unwrap_or_default().to_string_lossy();
    let short: String = base
        .char_indices()
        .take_while(|(at, c)| at + c.len_utf8() <= 64)
        .map(|(_, c)| c)
        .collect();
    format!(".{short}.")
}

/// Removes the folders that a process killed while it built the folder of the cache at
/// `cache` left beside it (`.<name>.values.<32 hex>.new`, see `ValueFiles::create`),
/// last modified at least `grace` before `now`; how many. Only a real folder of that
/// name holding nothing but BackLite's marker (or a part of it, as a kill midway
/// leaves it) goes: anything else at such a name is left alone.
pub(crate) fn sweep_unfinished_folders(cache: &Path, grace: Duration, now: SystemTime) -> u64 {
    let dir = folder_of(cache);
    let parent = dir.parent().unwrap_or(Path::new("."));
    let prefix = building_prefix(&dir);
    let Ok(listing) = fs::read_dir(parent) else {
        return 0;
    };
    let mut removed = 0;
    for item in listing.flatten() {
        let file_name = item.file_name();
        let Some(hex) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix.as_str()))
            .and_then(|n| n.strip_suffix(".new"))
        else {
            continue;
        };
        if parse_hex(hex).is_none() {
            continue;
        }
        let building = parent.join(&file_name);
        if unfinished_folder(&building, grace, now)
            && fs::remove_file(building.join(MARKER)).is_ok()
            && fs::remove_dir(&building).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// Whether `building` is a folder left by a kill while it was built: a real folder,
/// old enough, holding only a plain file named as the marker, of its owner, whose
/// bytes begin the marker's text.
fn unfinished_folder(building: &Path, grace: Duration, now: SystemTime) -> bool {
    let Ok(meta) = fs::symlink_metadata(building) else {
        return false;
    };
    let old = meta
        .modified()
        .ok()
        .and_then(|m| now.duration_since(m).ok())
        .is_some_and(|age| age >= grace);
    if !meta.file_type().is_dir() || !old {
        return false;
    }
    let Ok(mut items) = fs::read_dir(building) else {
        return false;
    };
    let only_marker = matches!(
        (items.next(), items.next()),
        (Some(Ok(item)), None) if item.file_name() == MARKER
    );
    if !only_marker {
        return false;
    }
    let Ok(marker) = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(building.join(MARKER))
    else {
        return false;
    };
    let mut text = [0u8; MARKER_TEXT.len() + 1];
    let read = marker.read_at(&mut text, 0).unwrap_or(usize::MAX);
    marker
        .metadata()
        .is_ok_and(|m| m.is_file() && m.uid() == meta.uid())
        && MARKER_TEXT.as_bytes().get(..read) == Some(&text[..read])
}

/// Whether a folder of values owned by `owner` at `dir` may be used: its owner is this
/// process's user, root, or the cache file's owner. Another user who made it (marker and
/// all, in a folder both may write, as /tmp) may put any file under the names the
/// cache's rows give, with the length and CRC-32 they say (a CRC is easily matched),
/// and such a folder's files were read as the cache's values, and removed as its own.
fn trusted_owner(dir: &Path, owner: u32) -> bool {
    use std::os::unix::ffi::OsStrExt;
    if owner == 0 || owner == rustix::process::geteuid().as_raw() {
        return true;
    }
    let name = dir.as_os_str().as_bytes();
    let cache = &name[..name.len().saturating_sub(FOLDER_SUFFIX.len())]; // see `folder_of`
    fs::metadata(std::ffi::OsStr::from_bytes(cache)).is_ok_and(|m| m.uid() == owner)
}

/// Whether the cache at `cache` can have a folder of values: its name leaves room for
/// the folder's (`<name>.values`, at most [`NAME_MAX`] bytes). SQLite opens a cache
/// named up to 251 bytes (its `-wal` needs 4 more), so one named 249 to 251 bytes has
/// no place for the folder, and keeps every value in the database.
pub(crate) fn folder_fits(cache: &Path) -> bool {
    folder_of(cache)
        .file_name()
        .is_some_and(|name| name.len() <= NAME_MAX)
}

pub(crate) fn io_error(what: impl std::fmt::Display, e: io::Error) -> Error {
    // ENOSPC and EDQUOT are worth naming: the caller can act on them.
    let full = matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
    let hint = if full { " (the disk is full)" } else { "" };
    let message = format!("{what}: {e}{hint}");
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE) => Error::out_of_descriptors(message),
        _ => Error::new(ErrorKind::Io, message),
    }
}

impl ValueFiles {
    /// The folder of the cache at `cache`, if it exists and is ours. With `create`, a
    /// missing folder is made (0700, with its marker). A folder (or anything else) at
    /// that name that BackLite did not make is an error, and is left untouched.
    pub(crate) fn open(cache: &Path, create: bool) -> Result<Option<ValueFiles>> {
        let dir = folder_of(cache);
        if !folder_fits(cache) {
            // No such folder can exist (see `folder_fits`): nothing to read or sweep.
            return Ok(None);
        }
        for _ in 0..4 {
            match fs::symlink_metadata(&dir) {
                Ok(_) => return Self::adopt(dir).map(Some),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_error(format_args!("cannot stat {}", dir.display()), e)),
            }
            if !create {
                return Ok(None);
            }
            Self::create(&dir)?;
        }
        Err(Error::new(
            ErrorKind::Io,
            format!("{} kept changing while it was opened", dir.display()),
        ))
    }

    /// Checks that `dir` is a real folder (not a link), carrying our marker.
    fn adopt(dir: PathBuf) -> Result<ValueFiles> {
        let not_ours = |why: &str| {
            Error::new(
                ErrorKind::Io,
                format!(
                    "{} {why}: BackLite keeps large values there and uses only a folder it made (it was left untouched)",
                    dir.display()
                ),
            )
        };
        let meta = fs::symlink_metadata(&dir)
            .map_err(|e| io_error(format_args!("cannot stat {}", dir.display()), e))?;
        if !meta.file_type().is_dir() {
            return Err(not_ours("is not a folder"));
        }
        match fs::symlink_metadata(dir.join(MARKER)) {
            Ok(m) if m.file_type().is_file() && m.uid() == meta.uid() => {
                if !trusted_owner(&dir, meta.uid()) {
                    return Err(not_ours(
                        "belongs to another user than this process or the cache file",
                    ));
                }
                Ok(ValueFiles {
                    real: fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone()),
                    dir,
                    ident: identity(&meta),
                    later: Default::default(),
                })
            }
            // Not "without the marker": this user may not look into the folder.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => Err(io_error(
                format_args!("cannot look into {}", dir.display()),
                e,
            )),
            _ => Err(not_ours("exists without BackLite's marker")),
        }
    }

    /// Builds the folder under a temporary name and renames it into place, so that it
    /// never exists without its marker. Losing the race to another process is fine.
    fn create(dir: &Path) -> Result<()> {
        let parent = dir.parent().unwrap_or(Path::new("."));
        let building = parent.join(format!("{}{:032x}.new", building_prefix(dir), random_id()));
        let failed = |e| io_error(format_args!("cannot create {}", dir.display()), e);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&building)
            .map_err(failed)?;
        let made = File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(building.join(MARKER))
            .and_then(|mut f| f.write_all(MARKER_TEXT.as_bytes()))
            .and_then(|_| fs::rename(&building, dir));
        if let Err(e) = made {
            let _ = fs::remove_file(building.join(MARKER));
            let _ = fs::remove_dir(&building);
            // Another process made it first (a folder in place: ENOTEMPTY or EEXIST).
            if fs::symlink_metadata(dir).is_err() {
                return Err(failed(e));
            }
        }
        Ok(())
    }

    /// The path of the cache file whose folder this is.
    fn cache_file(&self) -> PathBuf {
        use std::os::unix::ffi::OsStrExt;
        let name = self.dir.as_os_str().as_bytes();
        let base = &name[..name.len() - FOLDER_SUFFIX.len()]; // see `folder_of`
        PathBuf::from(std::ffi::OsStr::from_bytes(base))
    }

    /// The folder.
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_of(&self, name: &ValueName) -> PathBuf {
        self.path_named(&name.file_name())
    }

    /// The path of `name` in the folder, built in one allocation (`Path::join` grows
    /// its buffer as it goes).
    fn path_named(&self, name: &str) -> PathBuf {
        let mut path = PathBuf::with_capacity(self.dir.as_os_str().len() + 1 + name.len());
        path.push(&self.dir);
        path.push(name);
        path
    }

    /// Writes `value` to a new file. On failure (a full disk included) nothing is left.
    pub(crate) fn write(&self, value: &[u8]) -> Result<Written> {
        let len = value.len() as u64;
        if value.len() <= ONE_WRITE {
            // Hashed first (it stays in the CPU's cache), then value and record in one
            // system call: a record written apart costs another.
            let crc = crc32fast::hash(value);
            return self.write_with(len, |file, name| {
                write_both(file, value, &name.record(len, crc))?;
                Ok(crc)
            });
        }
        self.write_with(len, |file, name| {
            let mut hasher = crc32fast::Hasher::new();
            for chunk in value.chunks(CHUNK) {
                hasher.update(chunk);
                file.write_all(chunk)?;
            }
            let crc = hasher.finalize();
            file.write_all(&name.record(len, crc))?;
            Ok(crc)
        })
    }

    /// Writes the `len` bytes that `source` yields to a new file, in bounded memory.
    /// A source that ends early or fails leaves nothing behind.
    pub(crate) fn write_from(&self, len: u64, source: &mut dyn io::Read) -> Result<Written> {
        self.write_with(len, |file, name| {
            let mut hasher = crc32fast::Hasher::new();
            let mut buf = vec![0u8; CHUNK.min(len as usize)];
            let mut left = len;
            while left > 0 {
                let n = (left as usize).min(buf.len());
                source.read_exact(&mut buf[..n])?;
                hasher.update(&buf[..n]);
                file.write_all(&buf[..n])?;
                left -= n as u64;
            }
            let crc = hasher.finalize();
            file.write_all(&name.record(len, crc))?;
            Ok(crc)
        })
    }

    /// Creates a new value file, locked, and fills it through `fill` (value and record;
    /// it returns the value's CRC). The file has its final name from the start: no row
    /// names it before it is complete, and its lock keeps sweeps away meanwhile.
    fn write_with(
        &self,
        len: u64,
        fill: impl FnOnce(&mut File, &ValueName) -> io::Result<u32>,
    ) -> Result<Written> {
        let (id, path, mut file) = self.create_locked(|id| ValueName::new(id).file_name())?;
        let name = ValueName::new(id);
        match fill(&mut file, &name) {
            Ok(crc) => Ok(Written {
                name,
                len,
                crc,
                held: Some(file),
            }),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(io_error(
                    format_args!("cannot write a value file in {}", self.dir.display()),
                    e,
                ))
            }
        }
    }

    /// Creates a new temporary file and locks it (see the module's notes).
    fn create_temp(&self) -> Result<(PathBuf, File)> {
        self.create_locked(temp_name)
            .map(|(_, path, file)| (path, file))
    }

    /// Creates a new file, named by `name` from a fresh random id, and locks it (see
    /// the module's notes).
    fn create_locked(&self, name: impl Fn(u128) -> String) -> Result<(u128, PathBuf, File)> {
        let failed = |e| {
            io_error(
                format_args!("cannot create a value file in {}", self.dir.display()),
                e,
            )
        };
        // Replaced since this handle opened it (by a link to another folder, say): a
        // file created at a path through it would land in a folder not ours.
        self.check_ours()?;
        let mut remade = false;
        loop {
            let id = random_id();
            let path = self.path_named(&name(id));
            let file = match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                // The folder was removed since this handle opened it: made again (or
                // adopted, if another process made it meanwhile), as an open would,
                // but only beside a cache file still there: nothing is made at the
                // path of one deleted while open (README).
                Err(e)
                    if e.kind() == io::ErrorKind::NotFound
                        && !remade
                        && fs::symlink_metadata(self.cache_file()).is_ok() =>
                {
                    remade = true;
                    Self::create(&self.dir)?;
                    Self::adopt(self.dir.clone())?;
                    continue;
                }
                Err(e) => return Err(failed(e)),
            };
            // Waits at most for a sweep that locked it first to let it go.
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| failed(e.into()))?;
            // A sweep may have locked and removed it between its creation and our
            // lock: then it is not in the folder any more, and a new one is made.
            // Nothing links or renames a file of ours under another name, so a
            // link count above zero means it is still at `path`: one `fstat`, where
            // `same_file` also looks the path up.
            if still_linked(&file) {
                return Ok((id, path, file));
            }
        }
    }

    /// Opens the file `name` and checks its length and record against `len` and `crc`.
    /// Its value starts at [`ValueName::value_offset`] (a reader keeps the file open: a
    /// file is never written once a row names it, and removing it leaves the open one
    /// whole).
    pub(crate) fn open_value(&self, name: &ValueName, len: u64, crc: u32) -> Result<Read<File>> {
        // No link followed, and no wait for a writer if a FIFO was put in its place:
        // neither is a file of ours, which the `is_file` below then finds.
        let mut real = PathBuf::with_capacity(self.real.as_os_str().len() + 48);
        real.push(&self.real);
        real.push(name.file_name());
        let file = match open_for_read(&real) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Read::Missing),
            // A link in its place, or the folder replaced by a file: no value to be had
            // from it, a miss like a damaged file.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR)) => {
                return Ok(Read::Damaged)
            }
            // A file its reader may not read is one too; but a folder its reader may not
            // enter (closed since this handle opened it, or one on its way) says nothing
            // of the value, whose entry must stay: IO, as for a handle opened then. It
            // was a miss that removed the entry, so a folder closed for a moment lost
            // every large value read meanwhile. Only a reader that can look the name up
            // in the folder sees the file itself refused.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EACCES | libc::EPERM)) => {
                if fs::symlink_metadata(&real).is_ok() {
                    return Ok(Read::Damaged);
                }
                let path = self.path_of(name);
                return Err(io_error(format_args!("cannot open {}", path.display()), e));
            }
            // Something that is not a file in its place which no open reaches (a
            // socket, a device without a driver: ENXIO, ENODEV) is no file of ours
            // either, as a FIFO or a folder there is not. Failing with IO instead made
            // every read of its key, and `check` with repair, fail until it was removed
            // by hand.
            Err(_) if fs::symlink_metadata(&real).is_ok_and(|m| !m.file_type().is_file()) => {
                return Ok(Read::Damaged)
            }
            Err(e) => {
                let path = self.path_of(name);
                return Err(io_error(format_args!("cannot open {}", path.display()), e));
            }
        };
        let meta = file.metadata().map_err(|e| {
            io_error(
                format_args!("cannot stat {}", self.path_of(name).display()),
                e,
            )
        })?;
        let mut record = [0u8; RECORD_LEN as usize];
        if !meta.is_file()
            || meta.len() != RECORD_LEN + len
            || file
                .read_exact_at(&mut record, name.record_offset(len))
                .is_err()
            || record != name.record(len, crc)
        {
            return Ok(Read::Damaged);
        }
        Ok(Read::Value(file))
    }

    /// Reads the value of file `name` into `dest` (exactly its length) and checks it.
    /// `dest` may be memory not initialised (the C library's `malloc`): the file is read
    /// straight into it, with no copy in between.
    pub(crate) fn read_into<T>(
        &self,
        name: &ValueName,
        crc: u32,
        dest: &mut [T],
    ) -> Result<Read<()>>
    where
        [T]: Memory,
    {
        let len = dest.len() as u64;
        match self.open_value(name, len, crc)? {
            Read::Value(file) => Ok(fill(&file, name, crc, dest)),
            Read::Missing => Ok(Read::Missing),
            Read::Damaged => Ok(Read::Damaged),
        }
    }

    /// Reads the value of file `name` (of `len` bytes) into a new vector. The file is
    /// opened and its length checked first: a row whose size was damaged past any
    /// memory (2^62) made an export fail "no memory for a value of ..." where it leaves
    /// out any other damaged entry.
    pub(crate) fn read(&self, name: &ValueName, len: u64, crc: u32) -> Result<Read<Vec<u8>>> {
        let file = match self.open_value(name, len, crc)? {
            Read::Value(file) => file,
            Read::Missing => return Ok(Read::Missing),
            Read::Damaged => return Ok(Read::Damaged),
        };
        let mut value = Vec::new();
        let size = usize::try_from(len).map_err(|_| no_memory(len))?;
        value.try_reserve_exact(size).map_err(|_| no_memory(len))?;
        value.resize(size, 0);
        Ok(match fill(&file, name, crc, &mut value) {
            Read::Value(()) => Read::Value(value),
            Read::Missing => Read::Missing,
            Read::Damaged => Read::Damaged,
        })
    }

    /// Hands the value of file `name` to `visit` in chunks of at most [`CHUNK`] bytes,
    /// in one buffer of that size (never zeroed: each chunk is what a read filled, so a
    /// short read hands over a shorter chunk). `visit` returns false to stop.
    pub(crate) fn read_chunks(
        &self,
        name: &ValueName,
        len: u64,
        crc: u32,
        mut visit: impl FnMut(&[u8]) -> bool,
    ) -> Result<Streamed> {
        let file = match self.open_value(name, len, crc)? {
            Read::Value(f) => f,
            Read::Missing => return Ok(Streamed::Missing),
            Read::Damaged => return Ok(Streamed::Damaged),
        };
        let mut buf = uninit_buffer(CHUNK.min(len as usize));
        let mut hasher = crc32fast::Hasher::new();
        // Positional reads of the value only: `open_value` has read the record.
        let (mut at, end) = (name.value_offset(), name.value_offset() + len);
        while at < end {
            let want = ((end - at) as usize).min(buf.len());
            let chunk = match buf[..want].read_at(&file, at) {
                Ok(read) if !read.is_empty() => read,
                Err(rustix::io::Errno::INTR) => continue,
                // Shortened since it was opened, or unreadable.
                _ => return Ok(Streamed::Damaged),
            };
            hasher.update(chunk);
            at += chunk.len() as u64;
            if at == end && hasher.clone().finalize() != crc {
                // The last chunk is withheld: a caller that ignores the outcome still
                // never sees the whole of a damaged value.
                return Ok(Streamed::Damaged);
            }
            if !visit(chunk) {
                return Ok(Streamed::Stopped);
            }
        }
        Ok(if len == 0 && hasher.finalize() != crc {
            Streamed::Damaged
        } else {
            Streamed::Done
        })
    }

    /// Takes a shared `flock` on the file `name` without waiting, for as long as the
    /// returned file is open: no sweep of any process can take it (a sweep takes only
    /// a file whose exclusive lock it can get). What a write holds on the files of the
    /// rows it removes, from just before its commit until it has unlinked them: no row
    /// names them meanwhile, and another process's check with repair took them for
    /// orphans (shared.rs, `unlinking`). `None`: not ours to open, or locked by a
    /// sweep this instant (then only this process's own record protects it).
    pub(crate) fn hold(&self, name: &str) -> Option<File> {
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.path_named(name))
            .ok()?;
        let op = rustix::fs::FlockOperation::NonBlockingLockShared;
        rustix::fs::flock(&file, op).ok().map(|_| file)
    }

    /// Marks a write writing files into the folder, unlocked once written (a batch
    /// past the files it holds open, ahead of its transaction; an import, inside its
    /// own), until the returned file is closed: a shared `flock` on the folder's
    /// marker, one descriptor however many files. Until its commit no row names them:
    /// a check that only counts took them for orphans once they looked old
    /// ([`ValueFiles::inside_writes`]), and a sweep that removes ([`ValueFiles::alone`])
    /// took those written ahead of the write lock. `None`: the marker cannot be opened,
    /// or a check or sweep kept it locked (a write then writes its files inside its
    /// transaction, where no sweep that removes runs, and a count may count what it
    /// sees). A child forked while it is held keeps it until it exits or execs, as a
    /// set's own file lock: checks and sweeps leave orphans meanwhile, for a later one.
    pub(crate) fn writing_inside(&self) -> Option<File> {
        let marker = self.open_marker().ok()?;
        // A count holds the exclusive lock only for the instant it looks, a sweep for
        // its sweep: tried a few times, never waited for (a child forked in that
        // instant would keep it).
        let op = rustix::fs::FlockOperation::NonBlockingLockShared;
        for _ in 0..100 {
            if rustix::fs::flock(&marker, op).is_ok() {
                return Some(marker);
            }
            std::thread::yield_now();
        }
        None
    }

    /// Whether a write transaction of any process is writing files into the folder
    /// that no row names until it commits ([`ValueFiles::writing_inside`]): the
    /// marker's exclusive lock cannot be taken at once (taken, it is let go at once).
    /// A marker that cannot be opened says none is.
    pub(crate) fn inside_writes(&self) -> bool {
        match self.open_marker() {
            Ok(marker) => lock_alone(marker).is_none(),
            Err(_) => false,
        }
    }

    /// The folder's marker under an exclusive `flock`, taken without waiting, for as
    /// long as the returned file is open: meanwhile no write marks itself writing files
    /// that no row names and no lock of their own keeps ([`ValueFiles::writing_inside`]
    /// gives it none, and it writes them inside its transaction), so a sweep that holds
    /// it may take an unlocked file that no row names for an orphan. `Ok(None)`: a
    /// write holds the mark (such a file may be one of its own, about to be named).
    /// An error: the marker cannot be opened (a folder not ours, or gone), which the
    /// sweep itself tells apart.
    pub(crate) fn alone(&self) -> io::Result<Option<File>> {
        Ok(lock_alone(self.open_marker()?))
    }

    /// The folder's marker, opened to be locked: no link followed, no wait.
    fn open_marker(&self) -> io::Result<File> {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(self.path_named(MARKER))
    }

    /// Removes the file `name`; a file already gone is fine.
    pub(crate) fn remove(&self, name: &ValueName) -> Result<()> {
        self.remove_all(std::slice::from_ref(name))
    }

    /// Removes the files `names` (one already gone is fine) in the folder, opened
    /// once, and only while it is still ours ([`ValueFiles::open_ours`]): a handle
    /// open while its user moved the folder elsewhere and left a link in its place
    /// removed the files at the link's end on a delete, an overwrite, an eviction or
    /// a clear. A folder removed meanwhile has nothing to remove. Those left for want
    /// of a file descriptor to open the folder with are removed by the next call,
    /// which may name none ([`ValueFiles::remove_left`]).
    pub(crate) fn remove_all(&self, names: &[ValueName]) -> Result<()> {
        let mut all = std::mem::take(&mut *crate::sync::lock(&self.later));
        if names.is_empty() && all.is_empty() {
            return Ok(());
        }
        all.extend_from_slice(names);
        self.remove_in_folder(&all).map_err(|(e, later)| {
            if later {
                crate::sync::lock(&self.later).extend(all);
            }
            e
        })
    }

    /// Removes the files earlier removals left for want of a file descriptor, if any.
    pub(crate) fn remove_left(&self) {
        let _ = self.remove_all(&[]);
    }

    /// [`ValueFiles::remove_all`] of `names` alone, saying on failure whether a later
    /// try may remove them: true when the folder could not be opened for want of a file
    /// descriptor (EMFILE, ENFILE), so that nothing was removed.
    fn remove_in_folder(&self, names: &[ValueName]) -> std::result::Result<(), (Error, bool)> {
        let Some(dir) = self.open_ours()? else {
            return Ok(());
        };
        let mut failed = None;
        for name in names {
            let file_name = name.file_name();
            match rustix::fs::unlinkat(&dir, file_name.as_str(), rustix::fs::AtFlags::empty()) {
                Ok(()) | Err(rustix::io::Errno::NOENT) => {}
                Err(e) => {
                    let path = self.path_named(&file_name);
                    failed.get_or_insert_with(|| {
                        io_error(format_args!("cannot remove {}", path.display()), e.into())
                    });
                }
            }
        }
        failed.map_or(Ok(()), |e| Err((e, false)))
    }

    /// The folder, opened for removals in it, if it is still the one BackLite made: a
    /// real folder (a link in its place is not followed), holding our marker, as
    /// [`ValueFiles::adopt`] asks. What is removed is then removed there, whatever
    /// happens to the path meanwhile. `None`: nothing at that path. The error says
    /// whether the folder could not be opened for want of a file descriptor.
    fn open_ours(&self) -> std::result::Result<Option<File>, (Error, bool)> {
        use rustix::fs::{AtFlags, FileType, Mode, OFlags};
        let not_ours = || {
            Error::new(
                ErrorKind::Io,
                format!(
                    "{} is not the folder BackLite made: nothing was removed in it",
                    self.dir.display()
                ),
            )
        };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir = match rustix::fs::open(&self.dir, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            // A link (ELOOP) or a file (ENOTDIR) in its place.
            Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
                return Err((not_ours(), false))
            }
            Err(e) => {
                let later = matches!(e, rustix::io::Errno::MFILE | rustix::io::Errno::NFILE);
                let what = format_args!("cannot open {}", self.dir.display());
                return Err((io_error(what, e.into()), later));
            }
        };
        let owner = dir
            .metadata()
            .map_err(|e| {
                let what = format_args!("cannot stat {}", self.dir.display());
                (io_error(what, e), false)
            })?
            .uid();
        match rustix::fs::statat(&dir, MARKER, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(m)
                if FileType::from_raw_mode(m.st_mode) == FileType::RegularFile
                    && m.st_uid == owner =>
            {
                Ok(Some(dir))
            }
            _ => Err((not_ours(), false)),
        }
    }

    /// Bytes of our files in the folder (values, and files being written or
    /// abandoned): what the cache keeps on disk beside its database file. Anything
    /// whose name is not ours is not counted.
    pub(crate) fn bytes(&self) -> Result<u64> {
        let failed = |e| io_error(format_args!("cannot list {}", self.dir.display()), e);
        let mut total = 0;
        let Some(listing) = self.listing()? else {
            return Ok(0);
        };
        for item in listing {
            let item = item.map_err(failed)?;
            let file_name = item.file_name();
            let name = file_name.to_str().unwrap_or("");
            if ValueName::parse(name).is_none() && !is_temp_name(name) {
                continue;
            }
            // Not followed if a link; gone meanwhile: not there any more.
            match item.metadata() {
                Ok(meta) if meta.is_file() => total += meta.len(),
                _ => {}
            }
        }
        Ok(total)
    }

    /// Whether the folder is still there (false: removed since this handle opened it,
    /// which leaves none of our files to count or sweep; a large set makes it again).
    /// One put in its place that BackLite did not make is an error, so that no sweep
    /// ever removes what it holds.
    fn still_there(&self) -> Result<bool> {
        match fs::symlink_metadata(&self.dir) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            _ => Self::adopt(self.dir.clone()).map(|_| true),
        }
    }

    /// [`ValueFiles::still_there`], in two `lstat` while the path leads to the folder
    /// this was made from (a set's check: three took 5 µs of a 64 KiB set's 150): the
    /// folder's, and its marker's. A folder whose marker was taken out since is no
    /// longer one BackLite made as far as any other process can tell (its next open,
    /// `check` and `vacuum` refuse it): no new file goes into it either.
    fn check_ours(&self) -> Result<()> {
        match fs::symlink_metadata(&self.dir) {
            Ok(m)
                if m.file_type().is_dir()
                    && self.ident[2] != 0
                    && identity(&m) == self.ident
                    && fs::symlink_metadata(self.path_named(MARKER))
                        .is_ok_and(|m| m.file_type().is_file()) =>
            {
                Ok(())
            }
            _ => self.still_there().map(|_| ()),
        }
    }

    /// The folder's entries ([`ValueFiles::still_there`]; `None`: removed).
    fn listing(&self) -> Result<Option<fs::ReadDir>> {
        if !self.still_there()? {
            return Ok(None);
        }
        let failed = |e| io_error(format_args!("cannot list {}", self.dir.display()), e);
        fs::read_dir(&self.dir).map(Some).map_err(failed)
    }

    /// Removes our files that no row names (`referenced` says) and abandoned temporary
    /// files, if last modified more than `grace` before `now`: a writer writes its file
    /// before its row commits, so a young unreferenced file may be about to be named.
    /// Anything whose name is not ours is counted and left alone.
    pub(crate) fn sweep(
        &self,
        referenced: impl FnMut(&ValueName) -> bool,
        grace: Duration,
        now: SystemTime,
    ) -> Result<Swept> {
        self.sweep_or_count(referenced, grace, now, true)
    }

    /// How many files [`ValueFiles::sweep`] would remove; removes nothing.
    pub(crate) fn count_orphans(
        &self,
        referenced: impl FnMut(&ValueName) -> bool,
        grace: Duration,
        now: SystemTime,
    ) -> Result<u64> {
        Ok(self.sweep_or_count(referenced, grace, now, false)?.removed)
    }

    fn sweep_or_count(
        &self,
        mut referenced: impl FnMut(&ValueName) -> bool,
        grace: Duration,
        now: SystemTime,
        remove: bool,
    ) -> Result<Swept> {
        let failed = |e| io_error(format_args!("cannot list {}", self.dir.display()), e);
        let mut swept = Swept::default();
        let Some(listing) = self.listing()? else {
            return Ok(swept);
        };
        for item in listing {
            let item = item.map_err(failed)?;
            let file_name = item.file_name();
            let name = file_name.to_str().unwrap_or("");
            self.consider(name, &mut referenced, grace, now, remove, &mut swept);
        }
        Ok(swept)
    }

    /// One step of a sweep: counts the folder entry `name` as foreign, or removes it
    /// (with `remove`; counts it otherwise) if it is ours, unreferenced, and last
    /// modified at least `grace` before `now`.
    fn consider(
        &self,
        name: &str,
        referenced: &mut impl FnMut(&ValueName) -> bool,
        grace: Duration,
        now: SystemTime,
        remove: bool,
        swept: &mut Swept,
    ) {
        let ours = match ValueName::parse(name) {
            Some(value) => Some(!referenced(&value)),
            None if is_temp_name(name) => Some(true),
            None => None,
        };
        let Some(unreferenced) = ours else {
            if name != MARKER && name != SWEEP_CURSOR && name != "." && name != ".." {
                swept.foreign += 1;
            }
            return;
        };
        let path = self.dir.join(name);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            return; // removed meanwhile
        };
        if !meta.file_type().is_file() {
            swept.foreign += 1; // our name on something we never make
            return;
        }
        let age = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if !unreferenced || age < grace {
            return;
        }
        match self.take_orphan(&path, name, referenced, remove) {
            // An empty one holds no value: made an instant ago, its maker about to lock
            // it (and to make another, finding it gone), or left by a maker killed then.
            Ok(true) => match meta.len() {
                0 => swept.empty += 1,
                _ => swept.removed += 1,
            },
            Ok(false) => {}
            Err(e) => {
                swept.left += 1;
                swept
                    .why_left
                    .get_or_insert_with(|| format!("cannot remove {}: {e}", path.display()));
            }
        }
    }

    /// Whether our unreferenced file `name` at `path` is an orphan, and with `remove`,
    /// removes it: only if its lock can be taken (no writer holds it, see the module's
    /// notes), and only if, with the lock held, it is still the file at `path` and no
    /// row names it (a writer may have committed it since `referenced` last said).
    /// An error: an orphan that could not be removed.
    fn take_orphan(
        &self,
        path: &Path,
        name: &str,
        referenced: &mut impl FnMut(&ValueName) -> bool,
        remove: bool,
    ) -> io::Result<bool> {
        // Non-blocking, and no link followed: never stalls on a FIFO put in its place.
        let Ok(file) = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(path)
        else {
            return Ok(false);
        };
        let op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
        if rustix::fs::flock(&file, op).is_err() || !same_file(&file, path) {
            return Ok(false); // a write in flight, or gone meanwhile
        }
        if ValueName::parse(name).is_some_and(|v| referenced(&v)) {
            return Ok(false);
        }
        // Removed while locked; the lock goes when `file` is closed.
        match remove {
            true => match fs::remove_file(path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(e),
            },
            false => Ok(true),
        }
    }

    /// A bounded [`ValueFiles::sweep`]: looks at no more than `batch` entries of the
    /// folder, from where the last bounded sweep (of any process) stopped, so that
    /// a folder of any size is covered over successive calls at a bounded cost each.
    ///
    /// The place is the directory offset of the next entry (`d_off`: a hash on
    /// ext4, an index on btrfs, xfs and tmpfs), kept in the folder's
    /// `BACKLITE-SWEEP`. Entries made meanwhile are met on a later round; an offset
    /// that no longer fits the folder only starts the round over.
    pub(crate) fn sweep_some(
        &self,
        mut referenced: impl FnMut(&ValueName) -> bool,
        grace: Duration,
        now: SystemTime,
        batch: usize,
    ) -> Result<Swept> {
        let failed = |e: io::Error| io_error(format_args!("cannot list {}", self.dir.display()), e);
        if !self.still_there()? {
            return Ok(Swept::default());
        }
        let cursor_path = self.dir.join(SWEEP_CURSOR);
        // `None`: something not ours at that name, never read nor replaced.
        let Some(start) = read_cursor(&cursor_path) else {
            return Ok(Swept::default());
        };
        let fd = rustix::fs::open(
            &self.dir,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| failed(e.into()))?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| failed(e.into()))?;
        let mut swept = Swept::default();
        // Where the next sweep starts: 0 once this one reached the end.
        let mut next = 0;
        if start != 0 && dir.seek(start).is_err() {
            return self.save_cursor(&cursor_path, start, 0).map(|_| swept);
        }
        for _ in 0..batch {
            let entry = match dir.read() {
                Some(Ok(entry)) => entry,
                Some(Err(_)) | None => {
                    next = 0;
                    break;
                }
            };
            next = entry.offset();
            let name = entry.file_name().to_str().unwrap_or("");
            self.consider(name, &mut referenced, grace, now, true, &mut swept);
        }
        self.save_cursor(&cursor_path, start, next)?;
        Ok(swept)
    }

    /// Writes the place where the next bounded sweep starts, if it moved: under a
    /// temporary name, then renamed, so that no sweep reads half of it.
    fn save_cursor(&self, path: &Path, was: i64, next: i64) -> Result<()> {
        if next == was {
            return Ok(());
        }
        let (temp, mut file) = self.create_temp()?;
        let saved = file
            .write_all(next.to_string().as_bytes())
            .and_then(|_| fs::rename(&temp, path));
        saved.map_err(|e| {
            let _ = fs::remove_file(&temp);
            io_error(format_args!("cannot write {}", path.display()), e)
        })
    }
}

/// `marker` under an exclusive `flock`, taken without waiting; `None`: a write holds
/// it shared ([`ValueFiles::writing_inside`]).
fn lock_alone(marker: File) -> Option<File> {
    let op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    rustix::fs::flock(&marker, op).ok().map(|_| marker)
}

/// Where the last bounded sweep stopped, from the file at `path` (0: none yet, or not a
/// number). `None` when something other than a plain file is at that name: a FIFO put
/// there would make every open wait for a writer, and a link to an endless file read
/// forever; neither is ours, so it is neither read nor replaced (the sweep on open
/// then does nothing; `check` and `vacuum` still sweep the whole folder).
fn read_cursor(path: &Path) -> Option<i64> {
    let file = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Some(0),
        Err(_) => return None,
    };
    if !file.metadata().is_ok_and(|m| m.is_file()) {
        return None;
    }
    // A number's digits: a longer file is not one.
    let mut digits = [0u8; 24];
    let n = file.read_at(&mut digits, 0).unwrap_or(0);
    let number = std::str::from_utf8(&digits[..n])
        .ok()
        .and_then(|t| t.trim().parse().ok());
    Some(number.unwrap_or(0))
}

/// Reads the value of `file`, the open file `name` ([`ValueFiles::open_value`] checked
/// its length and record), into `dest` (exactly the value's length) and checks its CRC.
fn fill<T>(file: &File, name: &ValueName, crc: u32, dest: &mut [T]) -> Read<()>
where
    [T]: Memory,
{
    let mut hasher = crc32fast::Hasher::new();
    let mut at = name.value_offset();
    for chunk in dest.chunks_mut(READ_INTO_CHUNK) {
        let mut filled = 0;
        while filled < chunk.len() {
            match chunk[filled..].read_at(file, at) {
                // Hashed as it arrives, while it is still in the CPU's cache.
                Ok(read) if !read.is_empty() => {
                    hasher.update(read);
                    filled += read.len();
                    at += read.len() as u64;
                }
                Err(rustix::io::Errno::INTR) => {}
                // Shortened since it was opened, or unreadable.
                _ => return Read::Damaged,
            }
        }
    }
    if hasher.finalize() == crc {
        Read::Value(())
    } else {
        Read::Damaged
    }
}

/// A buffer of `len` bytes that is never zeroed, to be read into (`Box::new_uninit_slice`
/// needs Rust 1.82; copies of an uninitialised byte compile to nothing).
pub(crate) fn uninit_buffer(len: usize) -> Vec<MaybeUninit<u8>> {
    vec![MaybeUninit::uninit(); len]
}

/// Memory a value is read into: initialised (a vector's) or not (the C library's).
pub(crate) trait Memory {
    /// Reads from `file` at `at` into the start of this memory: what was read, now
    /// initialised.
    fn read_at(&mut self, file: &File, at: u64) -> rustix::io::Result<&[u8]>;
}

impl Memory for [u8] {
    fn read_at(&mut self, file: &File, at: u64) -> rustix::io::Result<&[u8]> {
        let n = rustix::io::pread(file, &mut *self, at)?;
        Ok(&self[..n])
    }
}

impl Memory for [MaybeUninit<u8>] {
    fn read_at(&mut self, file: &File, at: u64) -> rustix::io::Result<&[u8]> {
        rustix::io::pread(file, self, at).map(|(read, _)| &*read)
    }
}

/// Opens the value file at `path` (under the folder's real path) to read it, with no
/// link followed: neither one in place of the file (`O_NOFOLLOW`) nor one in place of
/// the folder, put there while a handle is open (a handle opened since refuses such a
/// folder): a get through it read the files at its end. A link on the way to the
/// folder is followed, as by every other file operation (the cache's own folder
/// moved to another disk and linked back, while a handle is open). Usually one system
/// call: `openat2` with `RESOLVE_NO_SYMLINKS` (Linux 5.6), and only when it meets a link
/// (or has no `openat2`: an older kernel, valgrind, a sandbox refusing the call) the
/// folder's own name is looked at, one `lstat` more. No wait for a writer if a FIFO was
/// put in its place (`O_NONBLOCK`).
fn open_for_read(path: &Path) -> io::Result<File> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
        use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
        // Set once the kernel said it has no `openat2` (before Linux 5.6).
        static NO_OPENAT2: AtomicBool = AtomicBool::new(false);
        if !NO_OPENAT2.load(Relaxed) {
            let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
            match rustix::fs::openat2(CWD, path, flags, Mode::empty(), ResolveFlags::NO_SYMLINKS) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(rustix::io::Errno::NOSYS) => NO_OPENAT2.store(true, Relaxed),
                // A sandbox (seccomp) may refuse the call itself; a link anywhere on
                // the path is refused too, and only one in place of the folder or the
                // file must be: looked at below.
                Err(rustix::io::Errno::PERM | rustix::io::Errno::LOOP) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    let folder = path.parent().unwrap_or(Path::new("."));
    if fs::symlink_metadata(folder).is_ok_and(|m| m.file_type().is_symlink()) {
        // A link in place of the folder: never read through.
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

/// Whether the open file `file` still has a name (was not removed since opened).
fn still_linked(file: &File) -> bool {
    file.metadata().is_ok_and(|m| m.nlink() > 0)
}

/// Whether `path` names the open file `file` (not removed or replaced since opened).
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Writes `head` then `body` at the file's position, in one system call when the
/// kernel takes both at once (it nearly always does).
fn write_both(file: &mut File, head: &[u8], body: &[u8]) -> io::Result<()> {
    let written = loop {
        match file.write_vectored(&[io::IoSlice::new(head), io::IoSlice::new(body)]) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => break done?,
        }
    };
    if written < head.len() {
        file.write_all(&head[written..])?;
        file.write_all(body)
    } else {
        file.write_all(&body[written - head.len()..])
    }
}

fn no_memory(len: u64) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("no memory for a value of {len} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn setup() -> (tempfile::TempDir, PathBuf, ValueFiles) {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache.db");
        let files = ValueFiles::open(&cache, true).unwrap().unwrap();
        (dir, cache, files)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    fn value(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + 7) as u8).collect()
    }

    #[test]
    fn the_folder_is_made_private_with_its_marker_and_adopted_afterwards() {
        let (dir, cache, files) = setup();
        assert_eq!(files.dir(), dir.path().join("cache.db.values"));
        let mode = fs::metadata(files.dir()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        assert_eq!(listing(files.dir()), [MARKER]);
        assert_eq!(
            listing(dir.path()),
            ["cache.db.values"],
            "no building folder left"
        );
        assert!(ValueFiles::open(&cache, false).unwrap().is_some());
        let other = dir.path().join("other.db");
        assert!(ValueFiles::open(&other, false).unwrap().is_none());
        assert!(
            !folder_of(&other).exists(),
            "a read-only open creates nothing"
        );
    }

    #[test]
    fn a_folder_without_the_marker_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache.db");
        fs::create_dir(folder_of(&cache)).unwrap();
        fs::write(
            folder_of(&cache).join("v-00000000000000000000000000000001.blv"),
            b"x",
        )
        .unwrap();
        let err = ValueFiles::open(&cache, true).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains("without BackLite's marker"), "{err}");
        assert_eq!(
            listing(&folder_of(&cache)),
            ["v-00000000000000000000000000000001.blv"]
        );
        // A regular file at that name, and a link to a folder, are refused too.
        let file_cache = dir.path().join("f.db");
        fs::write(folder_of(&file_cache), b"mine").unwrap();
        assert!(ValueFiles::open(&file_cache, true).is_err());
        assert_eq!(fs::read(folder_of(&file_cache)).unwrap(), b"mine");
        let linked = dir.path().join("l.db");
        let target = dir.path().join("elsewhere");
        fs::create_dir(&target).unwrap();
        std::os::unix::fs::symlink(&target, folder_of(&linked)).unwrap();
        assert!(ValueFiles::open(&linked, true).is_err());
        assert!(listing(&target).is_empty(), "nothing made through a link");
    }

    #[test]
    fn a_folder_whose_marker_is_taken_out_gets_no_new_file() {
        let (_dir, _cache, files) = setup();
        files.write(b"before").unwrap();
        fs::remove_file(files.dir().join(MARKER)).unwrap();
        let err = files.write(b"after").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains("without BackLite's marker"), "{err}");
        assert_eq!(
            listing(files.dir()).len(),
            1,
            "only the value written before"
        );
    }

    #[test]
    fn values_of_every_shape_read_back_as_written() {
        let (_dir, _cache, files) = setup();
        for len in [
            0,
            1,
            CHUNK - 1,
            CHUNK,
            3 * CHUNK + 5,
            ONE_WRITE,
            ONE_WRITE + 1,
        ] {
            let v = value(len);
            let w = files.write(&v).unwrap();
            assert_eq!((w.len, w.crc), (len as u64, crc32fast::hash(&v)));
            assert_eq!(
                files.read(&w.name, w.len, w.crc).unwrap(),
                Read::Value(v.clone())
            );
            let mut streamed = Vec::new();
            let mut largest = 0;
            let done = files
                .read_chunks(&w.name, w.len, w.crc, |c| {
                    largest = largest.max(c.len());
                    streamed.extend_from_slice(c);
                    true
                })
                .unwrap();
            assert_eq!((done, streamed), (Streamed::Done, v.clone()));
            assert!(largest <= CHUNK);
            let from = files.write_from(len as u64, &mut &v[..]).unwrap();
            assert_eq!(from.crc, w.crc);
            assert_ne!(from.name, w.name, "every write has a file of its own");
            assert_eq!(
                files.read(&from.name, from.len, from.crc).unwrap(),
                Read::Value(v)
            );
        }
    }

    #[test]
    fn a_file_holds_its_value_at_offset_0_and_its_record_last() {
        let (_dir, _cache, files) = setup();
        for len in [0, 5, CHUNK + 10, ONE_WRITE + 1] {
            let v = value(len);
            for w in [
                files.write(&v).unwrap(),
                files.write_from(len as u64, &mut &v[..]).unwrap(),
            ] {
                assert!(w.name.file_name().starts_with("v2-"));
                let bytes = fs::read(files.path_of(&w.name)).unwrap();
                assert_eq!(bytes.len(), len + RECORD_LEN as usize);
                assert!(bytes[..len] == v[..], "the value first, at offset 0");
                assert_eq!(&bytes[len..][..8], b"BKLTVAL2");
                assert_eq!(bytes[len..], w.name.record(w.len, w.crc));
            }
        }
    }

    #[test]
    fn a_file_of_format_1_still_reads_and_a_format_is_never_mistaken_for_the_other() {
        let (_dir, _cache, files) = setup();
        let v = value(CHUNK + 10);
        let crc = crc32fast::hash(&v);
        let len = v.len() as u64;
        // As schema 3 to 5 wrote it: the record first.
        let one = ValueName::parse("v-000000000000000000000000000000aa.blv").unwrap();
        let mut bytes = one.record(len, crc).to_vec();
        assert_eq!(&bytes[..8], b"BKLTVAL1");
        bytes.extend_from_slice(&v);
        fs::write(files.path_of(&one), &bytes).unwrap();
        assert_eq!(files.read(&one, len, crc).unwrap(), Read::Value(v.clone()));
        let mut raw = vec![MaybeUninit::uninit(); v.len()];
        assert_eq!(
            files.read_into(&one, crc, &mut raw).unwrap(),
            Read::Value(())
        );
        let mut streamed = Vec::new();
        let done = files.read_chunks(&one, len, crc, |c| {
            streamed.extend_from_slice(c);
            true
        });
        assert_eq!((done.unwrap(), streamed), (Streamed::Done, v.clone()));
        // Each file under the other format's name: a damaged value, never misread.
        let two = files.write(&v).unwrap();
        let as_two = ValueName::parse("v2-000000000000000000000000000000bb.blv").unwrap();
        let as_one = ValueName::parse("v-000000000000000000000000000000bb.blv").unwrap();
        fs::rename(files.path_of(&one), files.path_of(&as_two)).unwrap();
        assert_eq!(files.read(&as_two, len, crc).unwrap(), Read::Damaged);
        fs::rename(files.path_of(&two.name), files.path_of(&as_one)).unwrap();
        assert_eq!(files.read(&as_one, len, crc).unwrap(), Read::Damaged);
    }

    #[test]
    fn a_missing_truncated_damaged_or_foreign_file_is_a_miss() {
        let (_dir, _cache, files) = setup();
        let v = value(CHUNK + 10);
        let w = files.write(&v).unwrap();
        let path = files.dir().join(w.name.file_name());
        let damaged = |files: &ValueFiles| {
            assert_eq!(files.read(&w.name, w.len, w.crc).unwrap(), Read::Damaged);
            let mut raw = vec![MaybeUninit::uninit(); v.len()];
            let read = files.read_into(&w.name, w.crc, &mut raw);
            assert_eq!(read.unwrap(), Read::Damaged);
            let mut seen = 0;
            let streamed = files.read_chunks(&w.name, w.len, w.crc, |c| {
                seen += c.len();
                true
            });
            assert_eq!(streamed.unwrap(), Streamed::Damaged);
            assert!(seen < v.len(), "never the whole of a damaged value");
        };
        // A row that disagrees with the file.
        assert_eq!(
            files.read(&w.name, w.len, w.crc ^ 1).unwrap(),
            Read::Damaged
        );
        assert_eq!(
            files.read(&w.name, w.len - 1, w.crc).unwrap(),
            Read::Damaged
        );
        // One flipped bit in the value.
        let mut bytes = fs::read(&path).unwrap();
        bytes[CHUNK + 3] ^= 1;
        fs::write(&path, &bytes).unwrap();
        damaged(&files);
        // Truncated.
        bytes[CHUNK + 3] ^= 1;
        fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        damaged(&files);
        // A foreign file of the right length under our name.
        fs::write(&path, vec![0u8; bytes.len()]).unwrap();
        damaged(&files);
        // Gone.
        fs::remove_file(&path).unwrap();
        assert_eq!(files.read(&w.name, w.len, w.crc).unwrap(), Read::Missing);
        let mut raw = vec![MaybeUninit::uninit(); v.len()];
        let read = files.read_into(&w.name, w.crc, &mut raw);
        assert_eq!(read.unwrap(), Read::Missing);
        let streamed = files.read_chunks(&w.name, w.len, w.crc, |_| panic!("no chunk"));
        assert_eq!(streamed.unwrap(), Streamed::Missing);
    }

    #[test]
    fn a_visitor_can_stop_a_streaming_read() {
        let (_dir, _cache, files) = setup();
        let w = files.write(&value(3 * CHUNK)).unwrap();
        let mut calls = 0;
        let outcome = files.read_chunks(&w.name, w.len, w.crc, |_| {
            calls += 1;
            false
        });
        assert_eq!((outcome.unwrap(), calls), (Streamed::Stopped, 1));
    }

    #[test]
    fn only_names_of_backlite_s_own_pattern_parse() {
        let name = ValueName::new(0xabc);
        assert_eq!(name.file_name(), "v2-00000000000000000000000000000abc.blv");
        assert_eq!(ValueName::parse(&name.file_name()), Some(name));
        let one = ValueName::parse("v-00000000000000000000000000000abc.blv").unwrap();
        assert_eq!((one.id, one.format), (0xabc, Format::One));
        assert_eq!(one.file_name(), "v-00000000000000000000000000000abc.blv");
        for foreign in [
            "v-00000000000000000000000000000ABC.blv",
            "v3-00000000000000000000000000000abc.blv",
            "v2-0000000000000000000000000000abc.blv",
            "v2-00000000000000000000000000000abc.blv2",
            "v2v-00000000000000000000000000000abc.blv",
            "v-0000000000000000000000000000abc.blv",
            "v-00000000000000000000000000000abc.blv~",
            "x-00000000000000000000000000000abc.blv",
            "v-+0000000000000000000000000000abc.blv",
            "t-00000000000000000000000000000abc.tmp",
            MARKER,
            "",
        ] {
            assert_eq!(ValueName::parse(foreign), None, "{foreign}");
        }
        assert!(is_temp_name("t-00000000000000000000000000000abc.tmp"));
        assert!(!is_temp_name("t-abc.tmp"));
    }

    #[test]
    fn remove_takes_only_the_named_file() {
        let (_dir, _cache, files) = setup();
        let a = files.write(b"a").unwrap();
        let b = files.write(b"b").unwrap();
        files.remove(&a.name).unwrap();
        files.remove(&a.name).unwrap(); // already gone: fine
        assert_eq!(files.read(&a.name, 1, a.crc).unwrap(), Read::Missing);
        assert_eq!(
            files.read(&b.name, 1, b.crc).unwrap(),
            Read::Value(b"b".to_vec())
        );
    }

    #[test]
    fn the_sweep_removes_old_orphans_only_and_never_a_foreign_file() {
        let (_dir, _cache, files) = setup();
        let kept = files.write(b"referenced").unwrap().name;
        // Its writer gone, its lock went with it.
        let orphan = {
            let written = files.write(b"orphan").unwrap();
            (written.name, written.crc)
        };
        // A write in flight, however old its file looks: its lock keeps it.
        let in_flight = files.write(b"in flight").unwrap();
        let in_flight_name = in_flight.name;
        let temp = files.dir().join(temp_name(7));
        fs::write(&temp, b"abandoned half").unwrap();
        // Made and never written (its maker killed before it locked it): no value,
        // so no orphan value, but it goes.
        let empty = files.path_of(&ValueName::new(10));
        fs::write(&empty, b"").unwrap();
        let foreign = ["notes.txt", "v-1.blv", "t-x.tmp", ".hidden"];
        for name in foreign {
            fs::write(files.dir().join(name), b"someone else's").unwrap();
        }
        fs::create_dir(files.dir().join(ValueName::new(9).file_name())).unwrap();
        let referenced = |n: &ValueName| *n == kept;
        let now = SystemTime::now();
        // Young files may be about to be named by a row: kept.
        let swept = files
            .sweep(referenced, Duration::from_secs(60), now)
            .unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 0,
                empty: 0,
                foreign: 5,
                ..Swept::default()
            }
        );
        let later = now + Duration::from_secs(120);
        let swept = files
            .sweep(referenced, Duration::from_secs(60), later)
            .unwrap();
        assert_eq!(
            swept,
            Swept {
                removed: 2,
                empty: 1,
                foreign: 5,
                ..Swept::default()
            }
        );
        assert_eq!(files.read(&orphan.0, 6, orphan.1).unwrap(), Read::Missing);
        assert!(!temp.exists());
        assert!(!empty.exists());
        let mut expected: Vec<String> = foreign.iter().map(|s| s.to_string()).collect();
        expected.extend([
            MARKER.into(),
            kept.file_name(),
            ValueName::new(9).file_name(),
            in_flight_name.file_name(),
        ]);
        expected.sort();
        assert_eq!(listing(files.dir()), expected);
        // Its writer gone (failed, or killed: the kernel releases the lock), it goes.
        drop(in_flight);
        let swept = files
            .sweep(referenced, Duration::from_secs(60), later)
            .unwrap();
        assert_eq!(swept.removed, 1);
        assert!(!files.path_of(&in_flight_name).exists());
    }

    #[test]
    fn a_value_file_name_is_spelled_as_format_spells_it() {
        for id in [
            0,
            1,
            0xabc,
            u128::MAX,
            u128::MAX / 3,
            random_id(),
            random_id(),
        ] {
            let name = ValueName::new(id).file_name();
            assert_eq!(name, format!("v2-{id:032x}.blv"));
            assert_eq!(ValueName::parse(&name), Some(ValueName::new(id)));
            let one = ValueName {
                id,
                format: Format::One,
            };
            assert_eq!(one.file_name(), format!("v-{id:032x}.blv"));
            assert_eq!(ValueName::parse(&one.file_name()), Some(one));
        }
    }

    #[test]
    fn a_temporary_file_removed_before_its_writer_locked_it_is_made_again() {
        let (_dir, _cache, files) = setup();
        // What a sweep between create and lock leaves: the writer's file unlinked.
        let (temp, file) = files.create_temp().unwrap();
        assert!(still_linked(&file));
        fs::remove_file(&temp).unwrap();
        assert!(!still_linked(&file), "a writer would take a new name");
        // And a locked temporary file is never taken by a sweep.
        let (temp, _locked) = files.create_temp().unwrap();
        let later = SystemTime::now() + Duration::from_secs(120);
        let swept = files.sweep(|_| false, Duration::ZERO, later).unwrap();
        assert_eq!(swept.removed, 0);
        assert!(temp.exists());
    }

    #[test]
    fn the_bounded_sweep_covers_a_large_folder_a_batch_at_a_time() {
        let (_dir, _cache, files) = setup();
        // Mostly referenced files: a sweep that always began at the start would find
        // the few orphans only by luck.
        let kept: Vec<ValueName> = (0..150)
            .map(|i| files.write(&[i as u8]).unwrap().name)
            .collect();
        let orphans: Vec<ValueName> = (0..10)
            .map(|i| files.write(&[i as u8, 1]).unwrap().name)
            .collect();
        fs::write(files.dir().join(temp_name(3)), b"abandoned").unwrap();
        for name in ["notes.txt", "v-2.blv"] {
            fs::write(files.dir().join(name), b"someone else's").unwrap();
        }
        let referenced = |n: &ValueName| kept.contains(n);
        let now = SystemTime::now();
        let grace = Duration::from_secs(60);
        // Young: nothing goes, however many rounds.
        for _ in 0..20 {
            let swept = files.sweep_some(referenced, grace, now, 16).unwrap();
            assert_eq!(swept.removed, 0);
        }
        let later = now + Duration::from_secs(120);
        let (mut rounds, mut removed) = (0, 0);
        while removed < 11 {
            let swept = files.sweep_some(referenced, grace, later, 16).unwrap();
            assert!(swept.removed + swept.foreign <= 16, "at most a batch");
            removed += swept.removed;
            rounds += 1;
            assert!(rounds <= 25, "two rounds of the folder reach every entry");
        }
        for o in &orphans {
            assert!(!files.path_of(o).exists());
        }
        for k in &kept {
            assert!(files.path_of(k).exists());
        }
        let mut expected: Vec<String> = kept.iter().map(|k| k.file_name()).collect();
        expected.extend(["notes.txt", "v-2.blv", MARKER, SWEEP_CURSOR].map(String::from));
        expected.sort();
        assert_eq!(listing(files.dir()), expected);
        // A place that fits no entry only starts the round over.
        fs::write(files.dir().join(SWEEP_CURSOR), b"123456789012").unwrap();
        files.sweep_some(referenced, grace, later, 16).unwrap();
        fs::write(files.dir().join(SWEEP_CURSOR), b"not a number").unwrap();
        files.sweep_some(referenced, grace, later, 16).unwrap();
        assert_eq!(listing(files.dir()), expected);
    }

    #[test]
    fn a_file_being_written_has_its_final_name_and_no_sweep_takes_it() {
        let (_dir, _cache, files) = setup();
        // A source that looks into the folder once the writer is midway.
        struct Midway<'a>(&'a ValueFiles, Vec<String>);
        impl io::Read for Midway<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1.is_empty() {
                    let later = SystemTime::now() + Duration::from_secs(7200);
                    let swept = self.0.sweep(|_| false, Duration::ZERO, later).unwrap();
                    assert_eq!(swept.removed, 0, "a file being written is locked");
                    self.1 = listing(self.0.dir());
                }
                buf.fill(7);
                Ok(buf.len())
            }
        }
        let mut source = Midway(&files, Vec::new());
        let w = files.write_from(3 * CHUNK as u64, &mut source).unwrap();
        assert_eq!(source.1, [MARKER.to_string(), w.name.file_name()]);
        assert_eq!(
            listing(files.dir()),
            source.1,
            "nothing renamed, nothing left"
        );
    }

    #[test]
    fn a_failed_write_leaves_nothing_behind() {
        let (_dir, _cache, files) = setup();
        // The source ends 10 bytes early.
        let err = files.write_from(100, &mut &value(90)[..]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert_eq!(listing(files.dir()), [MARKER]);
    }

    #[test]
    fn concurrent_writers_never_share_a_file() {
        let (_dir, _cache, files) = setup();
        let names: Vec<ValueName> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..4)
                .map(|t| {
                    let files = &files;
                    s.spawn(move || {
                        (0..50)
                            .map(|i| files.write(&[t as u8, i as u8]).unwrap().name)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        let distinct: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(distinct.len(), 200);
        assert_eq!(listing(files.dir()).len(), 201);
    }

    /// A full disk: a 1 MiB tmpfs (needs root, as CI runs; skipped loudly otherwise).
    #[test]
    fn a_full_disk_gives_a_clear_error_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED a_full_disk_gives_a_clear_error_and_leaves_nothing: cannot mount a tmpfs (not root?)");
            return;
        }
        struct Unmount<'a>(&'a Path);
        impl Drop for Unmount<'_> {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg(self.0).status();
            }
        }
        let _unmount = Unmount(dir.path());
        let cache = dir.path().join("cache.db");
        let files = ValueFiles::open(&cache, true).unwrap().unwrap();
        let err = files.write(&value(2 << 20)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Io);
        assert!(err.message().contains("disk is full"), "{err}");
        assert_eq!(listing(files.dir()), [MARKER]);
        let small = files.write(b"still works").unwrap();
        assert!(matches!(
            files.read(&small.name, 11, small.crc).unwrap(),
            Read::Value(_)
        ));
    }
}
