//! The file format: how a BackLite file is recognised, created and migrated.
//!
//! A BackLite file is a SQLite database in WAL mode whose header carries our
//! `application_id` and whose `user_version` is the schema version. A file is
//! recognised from its first 100 bytes before SQLite opens it, so that a file that is
//! not ours is never modified and gets no `-wal`/`-shm` beside it.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::eviction::EvictionPolicy;
use crate::table;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};
use std::io::Read;
use std::path::{Path, PathBuf};

/// "BKLT" in the SQLite header's application_id field (offset 68).
pub const APPLICATION_ID: i32 = 0x424B_4C54;
/// The schema this build writes. Files with a higher version are refused.
pub const SCHEMA_VERSION: i32 = 6;

/// `MIGRATIONS[v]` brings a file from schema `v` to `v + 1`. Version 0 is a new file.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema. Entries are stored in the order of their last access:
    // `seq` is the logical-clock tick of the entry's last set or written hit, so a set
    // appends to the table's last page and least/most recently used is its first or
    // last row, with no index of its own. A small value lives in its entry's row; a
    // large one in `blobs`, so that moving a row for a hit never copies a large value
    // and reading the bookkeeping never walks a large value's overflow pages. Exactly
    // one of `value` and `value_id` is set.
    "CREATE TABLE entries (
        seq        INTEGER PRIMARY KEY,
        key        BLOB    NOT NULL UNIQUE,
        value_id   INTEGER,
        size       INTEGER NOT NULL,
        crc        INTEGER NOT NULL,
        created    INTEGER NOT NULL,
        hits       INTEGER NOT NULL,
        expires_at INTEGER,
        value      BLOB
    );
    CREATE TABLE blobs (
        id    INTEGER PRIMARY KEY,
        value BLOB    NOT NULL
    );
    CREATE INDEX entries_by_expiry ON entries(expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE leases (
        key         BLOB    NOT NULL PRIMARY KEY,
        token       INTEGER NOT NULL,
        owner_pid   INTEGER NOT NULL,
        owner_start INTEGER NOT NULL,
        owner_boot  TEXT    NOT NULL,
        deadline    INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE state (
        id          INTEGER PRIMARY KEY CHECK (id = 0),
        clock       INTEGER NOT NULL,
        count       INTEGER NOT NULL,
        total_size  INTEGER NOT NULL,
        version_tag TEXT
    );
    INSERT INTO state (id, clock, count, total_size) VALUES (0, 0, 0, 0);",
    // 1 -> 2: lifetime counters (lifetime.rs), counting from the upgrade, and each
    // entry's wall-clock time of set (its age; NULL for entries set before).
    "ALTER TABLE state ADD COLUMN hits        INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE state ADD COLUMN misses      INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE state ADD COLUMN evictions   INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE state ADD COLUMN expirations INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE state ADD COLUMN stats_since INTEGER;
    ALTER TABLE entries ADD COLUMN set_at    INTEGER;
    UPDATE state SET stats_since = CAST(unixepoch('subsec') * 1000 AS INTEGER);",
    // 2 -> 3: values kept in files beside the cache (value_files.rs). Such a value's
    // `blobs` row holds an empty `value` and the file's name in `file`; the entry's
    // `size` and `crc` are the value's, as for any other. An older library refuses a
    // file of this version, which would read the empty blob as a damaged value.
    "ALTER TABLE blobs ADD COLUMN file TEXT;
    CREATE INDEX blobs_by_file ON blobs(file) WHERE file IS NOT NULL;",
    // 3 -> 4: the file's counters (counters.rs) are kept in the newest entry row, the
    // row every insert writes anyway, instead of costing every write the `state` page.
    // `state` keeps them while the table is empty, and until the first write after the
    // upgrade (the newest row's `state_clock` is NULL till then).
    "ALTER TABLE entries ADD COLUMN state_clock       INTEGER;
    ALTER TABLE entries ADD COLUMN state_count       INTEGER;
    ALTER TABLE entries ADD COLUMN state_total_size  INTEGER;
    ALTER TABLE entries ADD COLUMN state_hits        INTEGER;
    ALTER TABLE entries ADD COLUMN state_misses      INTEGER;
    ALTER TABLE entries ADD COLUMN state_evictions   INTEGER;
    ALTER TABLE entries ADD COLUMN state_expirations INTEGER;",
    // 4 -> 5: a value kept in a file is named by its entry's own `file` column, with no
    // `blobs` row: a set of such a value writes the entry row and one index entry, not
    // also a `blobs` row and its index entry. `value_id` and the inline `value` are
    // NULL in such a row. `blobs.file` stays (dropping a column rewrites every value
    // stored apart) and is NULL from now on.
    "ALTER TABLE entries ADD COLUMN file TEXT;
    CREATE INDEX entries_by_file ON entries(file) WHERE file IS NOT NULL;
    UPDATE entries SET file = (SELECT blobs.file FROM blobs WHERE blobs.id = entries.value_id),
        value_id = NULL
        WHERE value_id IN (SELECT id FROM blobs WHERE file IS NOT NULL);
    DELETE FROM blobs WHERE file IS NOT NULL;
    DROP INDEX blobs_by_file;",
    // 5 -> 6: value files are written in format 2 (`v2-*.blv`: the value first, its
    // record after it; value_files.rs), which an older library would not recognise as
    // its own: it would count such a value as a miss and never sweep its file. The
    // rows are unchanged, and the files of format 1 their rows name stay readable, so
    // nothing is rewritten.
    "",
];

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// A file told apart from every other by device and inode.
pub(crate) type FileId = (u64, u64);

/// Whether the file `id` at `name` was emptied behind its handles' back (`: > cache.db`,
/// `truncate -s 0`): cut shorter than a SQLite header, which a cache, once made, never
/// is. SQLite does not notice: a connection that holds the file's pages in its cache
/// goes on committing to the log, and the log folded into the emptied file (at a
/// checkpoint, or when the last connection closes) made it a file of zeros and stray
/// pages, refused for good as not a cache. Costs a `stat`.
pub(crate) fn emptied(name: &Path, id: FileId) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(name).is_ok_and(|m| (m.dev(), m.ino()) == id && m.len() < 100)
}

/// What `sniff` found at a path.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum FileKind {
    /// An empty file: we may make it a cache.
    Empty,
    /// A BackLite file of a schema we can read.
    Ours,
    /// The path names another file than the one identified before: look again.
    Replaced,
    /// A cache or empty file with more than one name (hard links).
    HardLinked,
}

/// The path SQLite is given for `path`: the bundled SQLite reads a name that starts
/// with `file:` as a URI (it is built with URI names on, which no open flag turns
/// off), so such a relative name gets a `./` that SQLite takes literally.
pub(crate) fn sqlite_name(path: &Path) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    if path.as_os_str().as_bytes().starts_with(b"file:") {
        Path::new(".").join(path)
    } else {
        path.to_path_buf()
    }
}

/// The file at `path`, or `None` if there is none (to be created).
pub(crate) fn identify(path: &Path) -> Result<Option<FileId>> {
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.dev(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // A dangling symbolic link, planted in a shared folder, would make the new
            // file wherever it points.
            match std::fs::symlink_metadata(path) {
                Ok(m) if m.file_type().is_symlink() => Err(Error::new(
                    ErrorKind::NotACache,
                    format!(
                        "{shown} is a symbolic link to a missing file; BackLite never creates a file through a link (it was left untouched)"
                    ),
                )),
                _ => Ok(None),
            }
        }
        Err(e) => Err(Error::new(
            ErrorKind::Io,
            format!("cannot stat {shown}: {e}"),
        )),
    }
}

/// Recognises the file `id` at `path` without modifying it, and without blocking on
/// or opening anything but a regular file.
pub(crate) fn sniff(path: &Path, id: FileId) -> Result<FileKind> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot stat {shown}: {e}")))?;
    if (meta.dev(), meta.ino()) != id {
        return Ok(FileKind::Replaced);
    }
    let kind = meta.file_type();
    if kind.is_dir() {
        return Err(Error::new(
            ErrorKind::Io,
            format!("{shown} is a directory, not a cache file"),
        ));
    }
    if !kind.is_file() {
        let what = if kind.is_char_device() {
            "a character device"
        } else if kind.is_block_device() {
            "a block device"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a regular file"
        };
        return Err(Error::new(
            ErrorKind::NotACache,
            format!("{shown} is {what}, not a BackLite cache; it was left untouched"),
        ));
    }
    let found = if meta.len() == 0 {
        let planted = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if planted {
            return Err(Error::new(
                ErrorKind::NotACache,
                format!(
                    "{shown} is a symbolic link to an empty file; BackLite makes an empty file a cache only under its own name (it was left untouched)"
                ),
            ));
        }
        FileKind::Empty
    } else {
        read_header(path, id)?
    };
    if found != FileKind::Replaced && meta.nlink() > 1 {
        return Ok(FileKind::HardLinked);
    }
    Ok(found)
}

/// Recognises a non-empty regular file from its first 100 bytes.
fn read_header(path: &Path, id: FileId) -> Result<FileKind> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let shown = path.display();
    // Non-blocking: the path may have become a FIFO since it was checked.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot open {shown}: {e}")))?;
    let opened = file
        .metadata()
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot stat {shown}: {e}")))?;
    if (opened.dev(), opened.ino()) != id {
        return Ok(FileKind::Replaced);
    }
    let mut header = [0u8; 100];
    let mut filled = 0;
    while filled < header.len() {
        match file.read(&mut header[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!("cannot read {shown}: {e}"),
                ))
            }
        }
    }
    let not_ours = |why: &str| {
        Error::new(
            ErrorKind::NotACache,
            format!("{shown} is not a BackLite cache ({why}); it was left untouched"),
        )
    };
    if filled < header.len() || &header[..16] != SQLITE_MAGIC {
        return Err(not_ours("not a SQLite database"));
    }
    let be = |at: usize| i32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    if be(68) != APPLICATION_ID {
        return Err(not_ours("a SQLite database of another program"));
    }
    check_version(be(60), path)?;
    Ok(FileKind::Ours)
}

/// The refusal of a file with more than one name: each name would get its own
/// `-wal` and `-shm`, so processes using different names would not see each other's
/// writes or locks, and the file would be corrupted.
pub(crate) fn hard_link_error(path: &Path) -> Error {
    Error::new(
        ErrorKind::Io,
        format!(
            "{} has more than one name (hard links): processes opening it under different names would corrupt it, so BackLite refuses it; remove the other names or copy the file",
            path.display()
        ),
    )
}

fn check_version(version: i32, path: &Path) -> Result<()> {
    if version < 0 {
        // No BackLite ever wrote one: migrating "from" it would run no migration and
        // stamp whatever tables the file has as this schema.
        return Err(Error::new(
            ErrorKind::NotACache,
            format!(
                "{} is not a BackLite cache (schema version {version}); it was left untouched",
                path.display()
            ),
        ));
    }
    if version > SCHEMA_VERSION {
        return Err(Error::new(
            ErrorKind::Incompatible,
            format!(
                "{} was written by a newer BackLite (schema {version}; this build reads up to {SCHEMA_VERSION})",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// The prefix of the private folders new caches are built in.
const BUILD_DIR_PREFIX: &str = ".backlite-new-";
/// The new cache's name inside its build folder.
const BUILD_NAME: &str = "cache.db";

/// Creates a complete, empty cache at `path`, which did not exist: it is built in a
/// private folder (mode 0700, a random name made by `mkdir`, which never follows a
/// link) beside it and then hard-linked into place, so that nobody, in this process or
/// another, ever sees a half-written file at `path` (and mistakes it for a file that
/// is not a cache), and nothing planted in a shared folder is ever opened or written.
/// If anything is at `path` by then (another opener's file, or something planted), the
/// link fails and that is left as it is, for the caller to recognise. Where hard links
/// are not supported, an empty file is created exclusively at `path` instead, and
/// SQLite makes it a cache in place. `named_here` tells whether a file open in this
/// process is opened by a name (passed in: the process's open files live above this
/// module, in `shared`). Returns whether this call put the file at `path`.
pub(crate) fn create(
    path: &Path,
    busy_timeout: std::time::Duration,
    named_here: impl Fn(&Path) -> bool,
) -> Result<bool> {
    let shown = path.display();
    remove_stale_log(path, named_here)?;
    remove_dead_builds(path);
    // The lock is held until the folder is gone: a folder of ours that nobody holds is
    // a dead builder's (see `remove_dead_builds`).
    let (folder, _held) = make_locked_build_dir(path)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot create {shown}: {e}")))?;
    let temp = folder.join(BUILD_NAME);
    let built = (|| {
        let mut conn = Connection::open(sqlite_name(&temp))
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot create {shown}: {e}")))?;
        configure(&mut conn, busy_timeout)?;
        prepare(
            &mut conn,
            path,
            EvictionPolicy::LeastRecentlyUsed,
            None,
            true,
        )?;
        try_enable_wal(&conn)?;
        // Closing the only connection folds the WAL into the file and removes it.
        conn.close()
            .map_err(|(_, e)| Error::sqlite("closing a new cache", e))
    })();
    let placed = built.and_then(|()| match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
        {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::new(
                ErrorKind::Io,
                format!("cannot create {shown}: {e}"),
            )),
        },
    });
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", temp.display()));
    }
    let _ = std::fs::remove_dir(&folder);
    placed
}

/// Before a cache is created at `path`, where there is no file: removes the `-wal` and
/// `-shm` that a file of that name left beside it (its writer killed, then the file
/// deleted). SQLite pairs them with a database by name only, so the new cache took the
/// old file's log as its own: the old entries came back, or, once the old file had
/// been checkpointed, pages of another file made the new one corrupt. A log still in
/// use (the file was deleted while a handle, here or in another process, has it open)
/// cannot be removed: the creation fails with IO until those handles are closed (the
/// last one removes them).
fn remove_stale_log(path: &Path, named_here: impl Fn(&Path) -> bool) -> Result<()> {
    let (wal, shm) = log_of(&sqlite_name(path));
    let plain = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
    if !plain(&wal) && !plain(&shm) {
        return Ok(());
    }
    let in_use = || {
        Error::new(
            ErrorKind::Io,
            format!(
                "cannot create {}: the file of that name was deleted while a handle still has it open (its {} is in use); close it, then open again",
                path.display(),
                wal.display()
            ),
        )
    };
    // A handle of this process: its connections hold their locks on the -shm, which
    // closing a descriptor of it here would drop (POSIX locks are the process's).
    let real = match (path.parent(), path.file_name()) {
        (Some(dir), Some(file)) => std::fs::canonicalize(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
        .map(|d| sqlite_name(&d.join(file))),
        _ => Ok(sqlite_name(path)),
    };
    if real.is_ok_and(|r| named_here(&r)) {
        return Err(in_use());
    }
    // Every connection using the log holds a lock on the -shm: a write lock on all of
    // it is had only when none does. Held while both are removed. Another opener
    // removing the same stale log holds it for a moment only, but a moment of a process
    // descheduled on a loaded machine (six openers at once under valgrind failed at
    // ~0.1 s): tried for ~1 s.
    for _ in 0..500 {
        if plain(path) || (!plain(&wal) && !plain(&shm)) {
            return Ok(()); // a cache made meanwhile (its log now), or removed by another
        }
        let held = match open_to_lock(&shm) {
            Ok(file) => {
                let op = rustix::fs::FlockOperation::NonBlockingLockExclusive;
                let locked = rustix::fs::fcntl_lock(&file, op).is_ok() && same_file(&file, &shm);
                if !locked {
                    std::thread::sleep(std::time::Duration::from_millis(2));
                    continue;
                }
                Some(file)
            }
            // No -shm: no connection can use the -wal (SQLite makes the -shm first).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) => return Err(in_use()),
        };
        if plain(path) {
            return Ok(());
        }
        for name in [&wal, &shm] {
            if plain(name) {
                std::fs::remove_file(name).map_err(|e| {
                    Error::new(
                        ErrorKind::Io,
                        format!(
                            "cannot create {}: cannot remove the stale {}: {e}",
                            path.display(),
                            name.display()
                        ),
                    )
                })?;
            }
        }
        drop(held);
        return Ok(());
    }
    Err(in_use())
}

/// Before the first connection of this process opens the cache at `name` (its SQLite
/// name; the file is not open here): an error if the `-wal` and `-shm` beside it are
/// another file's. SQLite pairs them with a database by name only, so a cache moved
/// over the path of one that a handle, here or in another process, still has open
/// (`mv new.db cache.db`) took that handle's log for its own: its opener read the old
/// file's entries, not its own, and the old file's pages were folded into it at the
/// next checkpoint (its own entries lost). The log is another file's when it is in use
/// (locked) while nothing has this file open: every connection locks its database file
/// for as long as it is open in WAL mode, before it maps the log and until after it
/// lets go of it. A file this process cannot write is not looked at (nor written).
/// `named_here`: whether a file open in this process is opened by a name.
pub(crate) fn refuse_anothers_log(name: &Path, named_here: impl Fn(&Path) -> bool) -> Result<()> {
    let (_, shm) = log_of(name);
    if !std::fs::symlink_metadata(&shm).is_ok_and(|m| m.file_type().is_file()) {
        return Ok(());
    }
    let in_use = || {
        Error::new(
            ErrorKind::Io,
            format!(
                "cannot open {}: it took the place of a cache file that a handle still has open, whose log ({}) SQLite would take for this file's; close that handle, then open again",
                name.display(),
                shm.display()
            ),
        )
    };
    // A file of this process by that name is another file (this one is not open here),
    // and its connections' locks on the -shm would go with a descriptor of it closed here.
    if named_here(name) {
        return Err(in_use());
    }
    let lock = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    // A connection of another file that is opening or closing holds the log a moment,
    // but a moment of a process descheduled on a loaded machine can pass 0.1 s (as in
    // `remove_stale_log`, where six openers under valgrind failed so): looked at for ~1 s.
    for _ in 0..500 {
        let Ok(file) = open_to_lock(name) else {
            return Ok(());
        };
        if rustix::fs::fcntl_lock(&file, lock).is_err() {
            return Ok(()); // open somewhere: the log is this file's
        }
        let Ok(log) = open_to_lock(&shm) else {
            return Ok(());
        };
        if rustix::fs::fcntl_lock(&log, lock).is_ok() {
            return Ok(()); // nobody's: SQLite reads it as this file's (a crash's log)
        }
        drop((log, file));
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Err(in_use())
}

/// Once the last connection of this process to the file `id` has closed: if another
/// file has taken its name (`name`, its SQLite name) meanwhile, removes the `-wal` and
/// `-shm` left beside it, unless they are in use. SQLite does not checkpoint or remove
/// the log of a file that has moved (it is another file's name now), and the file at
/// that name took it for its own at its next open: the old file's entries came back in
/// it, and its own were lost (see `refuse_anothers_log`). Best effort: a process still
/// using the log leaves it to that process's last close.
pub(crate) fn remove_log_of_replaced(name: &Path, id: FileId) {
    if !matches!(identify(name), Ok(Some(now)) if now != id) {
        return;
    }
    let (wal, shm) = log_of(name);
    let Ok(log) = open_to_lock(&shm) else {
        return;
    };
    let lock = rustix::fs::FlockOperation::NonBlockingLockExclusive;
    if rustix::fs::fcntl_lock(&log, lock).is_ok() && same_file(&log, &shm) {
        let _ = std::fs::remove_file(&wal);
        let _ = std::fs::remove_file(&shm);
    }
}

/// The `-wal` and `-shm` SQLite pairs with the database it opens by `name` (its SQLite
/// name): by name only.
fn log_of(name: &Path) -> (PathBuf, PathBuf) {
    let side = |suffix: &str| {
        let mut s = name.as_os_str().to_owned();
        s.push(suffix);
        PathBuf::from(s)
    };
    (side("-wal"), side("-shm"))
}

/// Opens `path` to take a POSIX lock on it, never through a link nor blocking on a
/// FIFO. Closing it drops every lock this process holds on that file.
fn open_to_lock(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
}

/// Whether the open `file` is the one at `path` (not removed or replaced since).
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// The names a build folder holds: the new cache and SQLite's files beside it.
const BUILD_FILES: [&str; 4] = [
    "cache.db",
    "cache.db-journal",
    "cache.db-wal",
    "cache.db-shm",
];

/// A build folder's `flock`, asked for without waiting.
enum BuildLock {
    /// Taken: the open folder, holding it.
    Held(std::fs::File),
    /// Another holds it (a live builder, or a sweep looking at it).
    Busy,
    /// The folder could not be opened (gone), or takes no `flock`.
    Unavailable,
}

/// Opens the build folder `folder` (never through a link) and takes its `flock`.
fn lock_build_dir(folder: &Path) -> BuildLock {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(dir) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(folder)
    else {
        return BuildLock::Unavailable;
    };
    match rustix::fs::flock(&dir, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => BuildLock::Held(dir),
        Err(rustix::io::Errno::WOULDBLOCK) => BuildLock::Busy,
        Err(_) => BuildLock::Unavailable,
    }
}

/// Makes a build folder beside `path` and takes its lock before anything is made in
/// it. A sweep of another creator may lock and remove the empty folder between its
/// `mkdir` and this lock (see `remove_dead_builds`): then another folder is made. On a
/// file system without `flock`, the folder is used unlocked (no sweep can lock it).
fn make_locked_build_dir(path: &Path) -> std::io::Result<(PathBuf, Option<std::fs::File>)> {
    use std::os::unix::fs::MetadataExt;
    let mut tries = 0;
    loop {
        let folder = make_build_dir(path)?;
        match lock_build_dir(&folder) {
            BuildLock::Held(dir) => {
                // Still the folder at that name: not removed by a sweep meanwhile.
                let ours = match (dir.metadata(), std::fs::symlink_metadata(&folder)) {
                    (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
                    _ => false,
                };
                if ours {
                    return Ok((folder, Some(dir)));
                }
            }
            BuildLock::Unavailable if folder.is_dir() => return Ok((folder, None)),
            BuildLock::Busy | BuildLock::Unavailable => {}
        }
        tries += 1;
        if tries >= 100 {
            return Err(std::io::Error::other(
                "no private folder beside it stayed for its build",
            ));
        }
    }
}

/// Removes the build folders beside `path` that a process killed while it created a
/// cache there left behind (a half-built `cache.db` and its journal, never removed
/// otherwise): each one of ours (a real folder of this user holding only
/// [`BUILD_FILES`], or nothing) whose `flock` nobody holds. A builder locks
/// its folder before it makes `cache.db` in it and holds the lock until the folder is
/// gone, and a killed one's lock goes with it; an empty folder that a live builder has
/// made but not locked yet goes too, and that builder makes another (see
/// `make_locked_build_dir`). Called when a cache is created, so the folder is read only
/// then.
fn remove_dead_builds(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    let uid = rustix::process::geteuid().as_raw();
    for entry in build_folders(path) {
        let folder = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&folder) else {
            continue;
        };
        if !meta.file_type().is_dir() || meta.uid() != uid {
            continue;
        }
        let BuildLock::Held(_lock) = lock_build_dir(&folder) else {
            continue; // a live builder's
        };
        let Ok(inside) = std::fs::read_dir(&folder) else {
            continue;
        };
        let mut names = Vec::new();
        let mut ours = true;
        for e in inside.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let plain = e.file_type().is_ok_and(|t| t.is_file());
            if !plain || !BUILD_FILES.contains(&name.as_str()) {
                ours = false;
                break;
            }
            names.push(name);
        }
        if !ours {
            continue;
        }
        for name in &names {
            let _ = std::fs::remove_file(folder.join(name));
        }
        let _ = std::fs::remove_dir(&folder);
    }
}

/// What is beside `path` under a build folder's name (whatever it is: the caller
/// looks); nothing if its folder cannot be read.
fn build_folders(path: &Path) -> impl Iterator<Item = std::fs::DirEntry> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::read_dir(parent)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with(BUILD_DIR_PREFIX)
        })
}

/// Makes a private folder with a name nobody can guess beside `path`.
fn make_build_dir(path: &Path) -> std::io::Result<PathBuf> {
    use std::hash::{BuildHasher, Hasher};
    use std::os::unix::fs::DirBuilderExt;
    let mut tries = 0;
    loop {
        // `RandomState` is seeded from the operating system's randomness.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let folder = path.with_file_name(format!("{BUILD_DIR_PREFIX}{:016x}", h.finish()));
        match std::fs::DirBuilder::new().mode(0o700).create(&folder) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            done => return done.map(|()| folder),
        }
    }
}

/// Removes the name a creation (in this process or another) gave file `id` in its
/// build folder beside `path`: between linking the new cache into place and removing
/// its first name, or for good if that process died there, the file has two names.
/// Returns whether one was removed.
pub(crate) fn remove_build_name(path: &Path, id: FileId) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mut removed = false;
    for entry in build_folders(path) {
        let name = entry.path().join(BUILD_NAME);
        let same = std::fs::symlink_metadata(&name)
            .is_ok_and(|m| m.file_type().is_file() && (m.dev(), m.ino()) == id);
        if same && std::fs::remove_file(&name).is_ok() {
            let _ = std::fs::remove_dir(entry.path());
            removed = true;
        }
    }
    removed
}

/// Sets the per-connection pragmas every connection of ours needs.
pub(crate) fn configure(conn: &mut Connection, busy_timeout: std::time::Duration) -> Result<()> {
    // SQLite's own wait, which a caller's interrupt check can stop (interrupt.rs).
    crate::interrupt::set_busy_timeout(conn, busy_timeout).ctx("setting the busy timeout")?;
    // The first statement that reads the file, and makes its -wal and -shm beside it.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(|e| match conn.path() {
            Some(file) if !file.is_empty() => Error::sqlite(
                &format!("opening {file} (with {file}-wal and -shm, made in its folder)"),
                e,
            ),
            _ => Error::sqlite("setting synchronous=NORMAL", e),
        })?;
    // Without the planner stability guarantee, SQLite marks statements whose plan could
    // depend on a bound value (any query the partial expiry index might serve) to be
    // re-prepared on every rebind: a full parse per lookup.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )
    .ctx("enabling the query planner stability guarantee")?;
    conn.execute_batch(crate::table::LOOKUP_VIEW)
        .ctx("creating the lookup view")?;
    Ok(())
}

/// Creates or migrates the schema, adds the policy's index and applies the version
/// tag, in one immediate transaction so that concurrent openers take turns. A file
/// that needs none of it is opened with a read only, so opening never waits for
/// another process's write.
pub(crate) fn prepare(
    conn: &mut Connection,
    path: &Path,
    policy: EvictionPolicy,
    version_tag: Option<&str>,
    upgrade: bool,
) -> Result<Prepared> {
    let mut prepared = Prepared::default();
    match readiness(conn, policy, version_tag)? {
        Readiness::Ready => return Ok(prepared),
        Readiness::LacksIndex(sql) => {
            // The index only speeds up eviction: a file that cannot take it now (one
            // this process cannot write, or busy past the timeout) opens without it,
            // and the handle's first write that can adds it (Storage::write_locked):
            // until then its victims are found by a scan.
            prepared.lacks_index = conn.execute_batch(sql).is_err();
            return Ok(prepared);
        }
        Readiness::NotReady => {}
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .ctx("locking the file to open it")?;
    let app_id: i32 = tx
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .ctx("reading the file header")?;
    let version: i32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ctx("reading the schema version")?;
    if app_id != 0 && app_id != APPLICATION_ID {
        return Err(Error::new(
            ErrorKind::NotACache,
            format!("{} is a SQLite database of another program", path.display()),
        ));
    }
    if version == 0 {
        // A new file: BackLite stamps its id and version with the tables it makes, so
        // a file of version 0 that holds anything is not one it made (under its id
        // too: that would be migrated around another program's tables).
        let objects: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))
            .ctx("reading the schema")?;
        if objects != 0 {
            return Err(match app_id {
                0 => Error::new(
                    ErrorKind::NotACache,
                    format!("{} is a SQLite database of another program", path.display()),
                ),
                _ => mismatch(path, version, "it holds tables already"),
            });
        }
    }
    check_version(version, path)?;
    if !upgrade && (1..SCHEMA_VERSION).contains(&version) {
        // Read in this transaction, so through the log: a file a newer program has
        // upgraded but not yet checkpointed is not refused.
        return Err(Error::new(
            ErrorKind::Incompatible,
            format!(
                "{} is a cache of schema {version}, which this BackLite reads only by \
                 upgrading it to schema {SCHEMA_VERSION}, and a program of an older \
                 BackLite that uses it would go on writing the old layout: it was left \
                 untouched",
                path.display()
            ),
        ));
    }
    prepared.created = version == 0;
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql)
            .map_err(|e| tables_do_not_match(e, path, version, from))?;
    }
    if !has_our_tables(&tx)? {
        return Err(mismatch(path, version, "it lacks tables of a cache"));
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "application_id", APPLICATION_ID)
            .ctx("writing the file header")?;
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)
            .ctx("writing the schema version")?;
    }
    if let Some((_, sql)) = table::policy_index(policy) {
        tx.execute_batch(sql).ctx("creating the eviction index")?;
    }
    if let Some(tag) = version_tag {
        let stored = stored_tag(&tx)?;
        if stored != StoredTag::Tag(tag.to_string()) {
            if stored != StoredTag::None {
                prepared.dropped = tx
                    .prepare(table::FILES)
                    .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                    .ctx("listing the value files of another version tag")?;
                tx.execute_batch(table::CLEAR_WITH_COUNTERS)
                    .ctx("dropping entries of another version tag")?;
            }
            tx.execute("UPDATE state SET version_tag = ?1", [tag])
                .ctx("writing the version tag")?;
        }
    }
    tx.commit().ctx("committing the schema")?;
    Ok(prepared)
}

/// The version tag a file records.
#[derive(Debug, PartialEq, Eq)]
enum StoredTag {
    /// None: the file never had one (or has no `state` row).
    None,
    Tag(String),
    /// A value that is not UTF-8 text (damaged, or written by another program): no
    /// tag a caller can give, so an open with a tag drops the entries and writes its
    /// own, as for another tag. Read as an error, it made every open with a tag fail
    /// (INTERNAL) for good.
    Damaged,
}

/// Reads the version tag a file records.
const TAG: &str = "SELECT version_tag FROM state";

/// The version tag `conn`'s file records.
fn stored_tag(conn: &Connection) -> Result<StoredTag> {
    conn.prepare_cached(TAG)
        .and_then(|mut s| {
            s.query_row([], |r| {
                Ok(match r.get_ref(0)? {
                    ValueRef::Null => StoredTag::None,
                    ValueRef::Text(t) => match std::str::from_utf8(t) {
                        Ok(t) => StoredTag::Tag(t.to_string()),
                        Err(_) => StoredTag::Damaged,
                    },
                    _ => StoredTag::Damaged,
                })
            })
            .optional()
        })
        .map(|tag| tag.unwrap_or(StoredTag::None))
        .ctx("reading the version tag")
}

/// Fails with INCOMPATIBLE when `conn`'s file records another version tag than `tag`,
/// the one its handle was opened with: another handle opened the file with its own
/// tag since, which dropped every entry of `tag`, and its values are of another
/// format. A file without a tag is no other format (an open with a tag adopts it).
/// Read on every hit of a handle with a tag: compared where it lies, not copied.
pub(crate) fn check_tag(conn: &Connection, shown: &Path, tag: &str) -> Result<()> {
    let same = conn
        .prepare_cached(TAG)
        .and_then(|mut s| {
            s.query_row([], |r| Ok(is_tag(r.get_ref(0)?, tag)))
                .optional()
        })
        .ctx("reading the version tag")?;
    match same {
        Some(false) => Err(other_tag(conn, shown, tag)),
        _ => Ok(()),
    }
}

/// `check_tag` of the file's tag as a look-up read it (`table::LOOKUP_TAGGED`), in the
/// same statement as the row: a hit of a handle with a tag costs no second statement.
pub(crate) fn check_tag_read(
    conn: &Connection,
    shown: &Path,
    tag: &str,
    stored: ValueRef<'_>,
) -> Result<()> {
    match is_tag(stored, tag) {
        true => Ok(()),
        false => Err(other_tag(conn, shown, tag)),
    }
}

/// Whether the stored tag `stored` is `tag`'s, or none (a file any tag adopts).
fn is_tag(stored: ValueRef<'_>, tag: &str) -> bool {
    match stored {
        ValueRef::Null => true,
        ValueRef::Text(t) => t == tag.as_bytes(),
        _ => false,
    }
}

fn other_tag(conn: &Connection, shown: &Path, tag: &str) -> Error {
    let other = match stored_tag(conn) {
        Ok(StoredTag::Tag(t)) => format!("{t:?}"),
        _ => "a damaged one".to_string(),
    };
    Error::new(
        ErrorKind::Incompatible,
        format!(
            "{}: the cache was opened since with version tag {other}, and this handle's is \
             {tag:?}: its entries are another format; open the cache again to use it with \
             {tag:?} (which drops the entries of the other tag)",
            shown.display()
        ),
    )
}

/// The tables of every schema: a file stamped as a cache that lacks one is not a cache.
const OUR_TABLES: &str = "SELECT count(*) FROM sqlite_master WHERE type = 'table' \
    AND name IN ('entries', 'blobs', 'leases', 'state')";

/// Whether the file (migrated) holds the tables of a cache.
fn has_our_tables(conn: &Connection) -> Result<bool> {
    conn.query_row(OUR_TABLES, [], |r| r.get::<_, i64>(0))
        .map(|n| n == 4)
        .ctx("reading the schema")
}

/// A file whose header says BackLite schema `version` but whose tables are not that
/// schema's (an older version stamped on a newer file, another program's tables under
/// our header): refused as not a cache, and left untouched (the migration's transaction
/// is rolled back), instead of an internal error quoting the migration's SQL.
fn mismatch(path: &Path, version: i32, why: &str) -> Error {
    Error::new(
        ErrorKind::NotACache,
        format!(
            "{} is not a BackLite cache: its header says schema {version}, but {why}; it was left untouched",
            path.display()
        ),
    )
}

/// The error of migration `from` of a file of schema `version`: a statement the file's
/// tables refuse (SQLite's generic SQL error: a table already there, a column missing
/// or already added) is a file that is not that schema; anything else (busy, I/O,
/// damage) keeps its own kind.
fn tables_do_not_match(e: rusqlite::Error, path: &Path, version: i32, from: usize) -> Error {
    let refused = match &e {
        rusqlite::Error::SqliteFailure(f, msg) if f.code == rusqlite::ErrorCode::Unknown => {
            Some(msg.clone().unwrap_or_else(|| f.to_string()))
        }
        rusqlite::Error::SqlInputError { error, msg, .. }
            if error.code == rusqlite::ErrorCode::Unknown =>
        {
            Some(msg.clone())
        }
        _ => None,
    };
    match refused {
        Some(msg) => mismatch(
            path,
            version,
            &format!("its tables do not match it ({msg})"),
        ),
        None => Error::sqlite(&format!("migrating the schema from version {from}"), e),
    }
}

/// What [`prepare`] did that its caller finishes once it has committed.
#[derive(Default)]
pub(crate) struct Prepared {
    /// The names of the value files of the entries a new version tag dropped, to be
    /// removed (as a clear does).
    pub(crate) dropped: Vec<String>,
    /// An empty file was made a cache: the folder of values at its name, if any, is
    /// one a cache deleted (or emptied) there left behind, whose files no row names.
    pub(crate) created: bool,
    /// The eviction policy's index is missing: it could not be written at open.
    pub(crate) lacks_index: bool,
}

/// What `prepare` has to write.
enum Readiness {
    Ready,
    /// Only the policy's index, created by this statement.
    LacksIndex(&'static str),
    NotReady,
}

/// Whether the file is a BackLite file of this schema with, if given, this version tag,
/// and the policy's index: everything `prepare` would otherwise write.
fn readiness(
    conn: &Connection,
    policy: EvictionPolicy,
    version_tag: Option<&str>,
) -> Result<Readiness> {
    let tx = conn
        .unchecked_transaction()
        .ctx("reading the file header")?;
    let app_id: i32 = tx
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .ctx("reading the file header")?;
    let version: i32 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .ctx("reading the schema version")?;
    // Without the tables (another program's under our header), `prepare` says why.
    if app_id != APPLICATION_ID || version != SCHEMA_VERSION || !has_our_tables(&tx)? {
        return Ok(Readiness::NotReady);
    }
    if let Some(tag) = version_tag {
        if stored_tag(&tx)? != StoredTag::Tag(tag.to_string()) {
            return Ok(Readiness::NotReady);
        }
    }
    if let Some((index, sql)) = table::policy_index(policy) {
        let present: i64 = tx
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
                [index],
                |r| r.get(0),
            )
            .ctx("reading the schema")?;
        if present == 0 {
            return Ok(Readiness::LacksIndex(sql));
        }
    }
    Ok(Readiness::Ready)
}

/// Switches a file to WAL mode once; afterwards it stays in WAL for every connection.
/// SQLite does not run the busy handler for the lock this needs, so a file that other
/// connections are opening at the same moment is retried here, up to `busy_timeout`.
pub(crate) fn enable_wal(conn: &Connection, busy_timeout: std::time::Duration) -> Result<()> {
    let give_up = std::time::Instant::now() + busy_timeout;
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        match try_enable_wal(conn) {
            Err(e) if e.kind() == ErrorKind::Busy && std::time::Instant::now() < give_up => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(std::time::Duration::from_millis(20));
            }
            done => return done,
        }
    }
}

fn try_enable_wal(conn: &Connection) -> Result<()> {
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .ctx("reading the journal mode")?;
    if !mode.eq_ignore_ascii_case("wal") {
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .ctx("switching to WAL mode")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::new(
                ErrorKind::Io,
                format!("the file system does not support WAL mode (got {mode})"),
            ));
        }
    }
    // Keeps the -wal file from staying large after a burst of writes.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)
        .ctx("setting journal_size_limit")?;
    Ok(())
}
