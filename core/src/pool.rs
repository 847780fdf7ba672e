//! The connections of one handle: one writer behind a mutex, and a small pool of read
//! connections, so that in WAL mode reads run in parallel with each other and with the
//! writer. A private in-memory cache has a single connection that serves both.
//!
//! The read connections wait in slots, each behind a lock of its own: a reader tries
//! the slot of its thread number first, then the next ones, and takes the first free
//! one, so that readers never wait for each other (nor for one lock on the whole pool).

use crate::counters::Known;
use crate::error::{Error, ErrorKind, Result};
use crate::fork::{self, OpenedBy};
use crate::hot::HotCopy;
use crate::schema::{self, FileId};
use crate::sync::{lock, thread_index, try_lock, Padded};
use rusqlite::{Connection, OpenFlags};
use std::cell::Cell;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Read connections kept per handle; more are opened under load and closed after.
const READER_SLOTS: usize = 8;

/// The writer connection, and what it knows of the file since its own last commit
/// (transact.rs): dropped with the connection, so a connection opened in its place
/// (after a fork) starts knowing nothing.
pub(crate) struct Writer {
    conn: Connection,
    pub known: Cell<Option<Known>>,
}

impl Writer {
    fn new(conn: Connection) -> Writer {
        Writer {
            conn,
            known: Cell::new(None),
        }
    }
}

impl Deref for Writer {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// For tests that configure the connection (tracing); the code that writes never
/// replaces it (see `known`).
#[cfg(test)]
impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }
}

/// A read connection, with its copies of hot values (hot.rs), which go where it goes.
pub(crate) struct Reader {
    conn: Connection,
    hot: Box<HotCopy>,
}

impl Deref for Reader {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

/// A read connection lent out of the pool in an open read transaction (a reader's
/// snapshot), by process `pid`; returned with [`Pool::give_back`].
pub(crate) struct Lent {
    pub conn: Reader,
    pid: u32,
}

/// A slot of the pool: a read connection once one was needed, used in place.
type Slot = Padded<Mutex<Option<Reader>>>;

pub(crate) struct Pool {
    /// The name connections open the file by (see [`schema::sqlite_name`]) and the
    /// file's identity; `None` for an in-memory cache.
    file: Option<(PathBuf, FileId)>,
    busy_timeout: Duration,
    writer: Mutex<Writer>,
    /// `None` for an in-memory cache, whose only connection is the writer.
    readers: Option<Box<[Slot]>>,
    /// The process that opened the connections; a forked child replaces them.
    opened_by: OpenedBy,
    /// The bytes of hot copies the read connections hold (see `hot::BUDGET`).
    hot_held: Arc<AtomicUsize>,
}

impl Pool {
    /// The pool of file `id` opened by `name`, whose writer is `writer` (configured);
    /// `file` `None`: an in-memory cache whose only connection is `writer`.
    pub fn new(
        writer: Connection,
        file: Option<(PathBuf, FileId)>,
        busy_timeout: Duration,
    ) -> Pool {
        Pool {
            readers: file.as_ref().map(|_| {
                (0..READER_SLOTS)
                    .map(|_| Padded(Mutex::new(None)))
                    .collect()
            }),
            file,
            busy_timeout,
            writer: Mutex::new(Writer::new(writer)),
            opened_by: OpenedBy::here(),
            hot_held: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Whether this is an in-memory cache's single connection.
    pub fn in_memory(&self) -> bool {
        self.readers.is_none()
    }

    pub fn busy_timeout(&self) -> Duration {
        self.busy_timeout
    }

    /// In a child forked from the process that opened this pool, replaces the
    /// inherited connections with new ones before first use (see fork.rs).
    pub fn after_fork(&self) -> Result<()> {
        self.after_fork_in(fork::this_process())
    }

    /// `after_fork` in process `pid` (this one: asking the kernel once per get is
    /// enough).
    pub fn after_fork_in(&self, pid: u32) -> Result<()> {
        if self.opened_by.is(pid) {
            return Ok(());
        }
        let Some((name, id)) = &self.file else {
            // An in-memory cache was copied whole into the child: it is the child's own.
            self.opened_by.adopt();
            return Ok(());
        };
        let mut writer = lock(&self.writer);
        if self.opened_by.is_this_process() {
            return Ok(()); // another thread of the child got here first
        }
        let fresh = Writer::new(reopen(name, *id, self.busy_timeout)?);
        let inherited = std::mem::replace(&mut *writer, fresh).conn;
        // A slot held by a thread of the parent (which does not exist here) stays
        // locked for good, with its connection: readers pass it by.
        let readers: Vec<Connection> = self
            .readers
            .iter()
            .flat_map(|slots| slots.iter())
            .filter_map(|slot| try_lock(&slot.0).and_then(|mut c| c.take()))
            .map(|reader| reader.conn)
            .collect();
        fork::set_aside_connections(std::iter::once(inherited).chain(readers));
        self.opened_by.adopt();
        Ok(())
    }

    /// Runs `f` on a read connection, in process `pid` (this one).
    pub fn read<R>(&self, pid: u32, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.read_lending(pid, false, f).map(|(out, _)| out)
    }

    /// Runs the read `f` on the writer connection if no thread of this process holds
    /// it (`None`: one does). Its pages are the ones this process's commits wrote, so
    /// a read right after them finds them cached, where a read connection re-reads every
    /// page a commit changed.
    pub fn read_on_writer_if_free<R>(
        &self,
        pid: u32,
        f: impl FnOnce(&Connection) -> Result<R>,
    ) -> Option<Result<R>> {
        if let Err(e) = self.after_fork_in(pid) {
            return Some(Err(e));
        }
        let conn = try_lock(&self.writer)?;
        if !conn.is_autocommit() {
            // A panic in an earlier holder left a transaction open.
            let _ = conn.execute_batch("ROLLBACK");
        }
        Some(match &self.file {
            Some((name, id)) => emptied_as_such(f(&conn), name, *id),
            None => f(&conn),
        })
    }

    /// `read`; with `lend`, a connection that `f` leaves inside a transaction (a
    /// reader's snapshot of a large value, blob_read.rs) is not put back but lent to
    /// the caller, until [`Pool::give_back`]. Its slot stays empty meanwhile (the next
    /// reader there opens another connection). Never on an in-memory cache, whose
    /// only connection is the writer.
    pub fn read_lending<R>(
        &self,
        pid: u32,
        lend: bool,
        f: impl FnOnce(&Connection) -> Result<R>,
    ) -> Result<(R, Option<Lent>)> {
        self.read_in(pid, lend, |conn, _| f(conn))
    }

    /// `read_lending` that also hands `f` the read connection's hot copies (hot.rs):
    /// `None` on an in-memory cache, and for a connection opened for one read alone.
    pub fn read_hot<R>(
        &self,
        pid: u32,
        lend: bool,
        f: impl FnOnce(&Connection, Option<&mut HotCopy>) -> Result<R>,
    ) -> Result<(R, Option<Lent>)> {
        self.read_in(pid, lend, f)
    }

    fn read_in<R>(
        &self,
        pid: u32,
        lend: bool,
        f: impl FnOnce(&Connection, Option<&mut HotCopy>) -> Result<R>,
    ) -> Result<(R, Option<Lent>)> {
        self.after_fork_in(pid)?;
        let (Some(slots), Some((name, id))) = (&self.readers, &self.file) else {
            return Ok((f(&lock(&self.writer), None)?, None));
        };
        // Lent: the connection, if `f` left it in a transaction (and succeeded).
        let lent = |out: &Result<R>, conn: Reader| {
            if !lend || conn.is_autocommit() {
                return Err(conn);
            }
            if out.is_err() {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(conn);
            }
            Ok(Lent { conn, pid })
        };
        let first = thread_index();
        for i in 0..slots.len() {
            // A slot in use (by another thread, or by this one in a nested read) is
            // passed by, never waited for.
            let Some(mut slot) = try_lock(&slots[(first + i) % slots.len()].0) else {
                continue;
            };
            let mut reader = match slot.take() {
                Some(reader) => reader,
                None => self.reader(name, *id)?,
            };
            let out = emptied_as_such(f(&reader.conn, Some(&mut reader.hot)), name, *id);
            let lent = lent(&out, reader).map_err(|r| *slot = Some(r)).ok();
            return out.map(|out| (out, lent));
        }
        // More readers than slots: this one gets a connection for its read alone.
        let reader = self.reader(name, *id)?;
        let out = emptied_as_such(f(&reader.conn, None), name, *id);
        let lent = lent(&out, reader).ok();
        out.map(|out| (out, lent))
    }

    /// A new read connection to the file `id` at `name`, with no copies yet.
    fn reader(&self, name: &Path, id: FileId) -> Result<Reader> {
        Ok(Reader {
            conn: reopen(name, id, self.busy_timeout)?,
            hot: Box::new(HotCopy::new(self.hot_held.clone())),
        })
    }

    /// Before the handle's connections close: if the file was emptied while open (see
    /// [`schema::emptied`]), the last of them must not fold the log into it (SQLite's
    /// checkpoint on close). The log stays beside the empty file, and the file's next
    /// opener finds an empty file, which SQLite pairs with no log: a new cache.
    pub fn keep_log_out_if_emptied(&self) {
        let Some((name, id)) = &self.file else {
            return;
        };
        if !self.opened_by.is_this_process() || !schema::emptied(name, *id) {
            return;
        }
        let no_checkpoint = |conn: &Connection| {
            let _ = conn.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            );
        };
        no_checkpoint(&lock(&self.writer));
        for slot in self.readers.iter().flat_map(|slots| slots.iter()) {
            if let Some(conn) = lock(&slot.0).as_ref() {
                no_checkpoint(conn);
            }
        }
    }

    /// Takes back a connection lent by [`Pool::read_lending`]: its transaction ends,
    /// and it goes into a free slot (or is closed if none is). In a forked child, one
    /// that the parent lent is set aside unclosed (see fork.rs).
    pub fn give_back(&self, lent: Lent) {
        let Lent { conn, pid } = lent;
        if pid != fork::this_process() {
            fork::set_aside_connections([conn.conn]);
            return;
        }
        if !conn.is_autocommit() && conn.execute_batch("ROLLBACK").is_err() {
            return; // closed: a connection in an unknown state never goes back
        }
        let Some(slots) = &self.readers else {
            return;
        };
        let mut conn = Some(conn);
        for slot in slots.iter() {
            if let Some(mut slot) = try_lock(&slot.0) {
                if slot.is_none() {
                    *slot = conn.take();
                    return;
                }
            }
        }
    }

    /// The writer connection, locked (the caller has called `after_fork`).
    pub fn lock_writer(&self) -> MutexGuard<'_, Writer> {
        lock(&self.writer)
    }

    /// `lock_writer`, for a caller with an interrupt check (interrupt.rs): while another
    /// thread of this handle writes (up to its busy timeout, waiting for another
    /// process's lock), the check is asked at least every 50 ms, and BUSY once it says
    /// stop. Without a check, the plain lock.
    pub fn lock_writer_or_stop(&self) -> Result<MutexGuard<'_, Writer>> {
        if !crate::interrupt::active() {
            return Ok(self.lock_writer());
        }
        let mut pause = Duration::from_micros(50);
        let mut asked = std::time::Instant::now();
        loop {
            if let Some(writer) = self.try_lock_writer() {
                return Ok(writer);
            }
            if asked.elapsed() >= Duration::from_millis(50) {
                if crate::interrupt::interrupted() {
                    return Err(Error::new(
                        ErrorKind::Busy,
                        "stopped while waiting for another thread's write of this handle",
                    ));
                }
                asked = std::time::Instant::now();
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// The writer connection if it is free and its lock not poisoned.
    pub fn writer_if_free(&self) -> Option<MutexGuard<'_, Writer>> {
        self.writer.try_lock().ok()
    }

    /// The writer connection if it is free (poisoned or not).
    pub fn try_lock_writer(&self) -> Option<MutexGuard<'_, Writer>> {
        try_lock(&self.writer)
    }

    /// Runs `f` on the writer connection outside any transaction (VACUUM).
    pub fn with_writer<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.after_fork()?;
        // A VACUUM of a file emptied while open would write a database into it again.
        if let Some((name, id)) = &self.file {
            if schema::emptied(name, *id) {
                return Err(Error::file_emptied(name));
            }
        }
        let conn = lock(&self.writer);
        if !conn.is_autocommit() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        f(&conn)
    }
}

/// A new connection to the file `name` (which went through [`schema::sqlite_name`]),
/// with the pragmas every connection of ours needs.
pub(crate) fn open(name: &Path, busy_timeout: Duration) -> Result<Connection> {
    let mut conn = open_file(name, OpenFlags::SQLITE_OPEN_CREATE)?;
    schema::configure(&mut conn, busy_timeout)?;
    Ok(conn)
}

/// Another connection to the open file `id`, by its `name`. If the name no longer leads
/// to that file (it was deleted, or replaced by another cache, while open), an error:
/// such a connection would read another file than the handle writes, and write this
/// process's hits onto another file's rows. Nothing is created at `name`.
pub(crate) fn reopen(name: &Path, id: FileId, busy_timeout: Duration) -> Result<Connection> {
    if schema::identify(name)? != Some(id) {
        return Err(Error::file_gone(name));
    }
    let mut conn = open_file(name, OpenFlags::empty())?;
    schema::configure(&mut conn, busy_timeout)?;
    // The name may have changed files between the look and the open.
    if schema::identify(name)? != Some(id) {
        return Err(Error::file_gone(name));
    }
    Ok(conn)
}

/// A read that failed on a file emptied while open fails saying so (IO), not with
/// what SQLite made of the missing pages ("no such table", "not a database").
fn emptied_as_such<R>(out: Result<R>, name: &Path, id: FileId) -> Result<R> {
    match out {
        Err(_) if schema::emptied(name, id) => Err(Error::file_emptied(name)),
        out => out,
    }
}

/// `path` must have gone through [`schema::sqlite_name`]; `create`: `SQLITE_OPEN_CREATE`
/// or nothing.
fn open_file(path: &Path, create: OpenFlags) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | create | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open or create {}: {e}", path.display()),
        )
    })
}
