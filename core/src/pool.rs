//! The connections of one handle: one writer behind a mutex, and a small pool of read
//! connections, so that in WAL mode reads run in parallel with each other and with the
//! writer. A private in-memory cache has a single connection that serves both.

use crate::error::{Error, ErrorKind, Result};
use crate::fork::{self, OpenedBy};
use crate::schema;
use crate::sync::{lock, try_lock};
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Idle read connections kept per handle; more are opened under load and closed after.
const MAX_IDLE_READERS: usize = 8;

pub(crate) struct Pool {
    /// The name connections open the file by (see [`schema::sqlite_name`]); `None` for
    /// an in-memory cache.
    name: Option<PathBuf>,
    busy_timeout: Duration,
    writer: Mutex<Connection>,
    /// `None` for an in-memory cache, whose only connection is the writer.
    readers: Option<Mutex<Vec<Connection>>>,
    /// The process that opened the connections; a forked child replaces them.
    opened_by: OpenedBy,
}

impl Pool {
    /// The pool of a file opened by `name`, whose writer is `writer` (configured);
    /// `name` `None`: an in-memory cache whose only connection is `writer`.
    pub fn new(writer: Connection, name: Option<PathBuf>, busy_timeout: Duration) -> Pool {
        Pool {
            readers: name.as_ref().map(|_| Mutex::new(Vec::new())),
            name,
            busy_timeout,
            writer: Mutex::new(writer),
            opened_by: OpenedBy::here(),
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
        if self.opened_by.is_this_process() {
            return Ok(());
        }
        let Some(name) = &self.name else {
            // An in-memory cache was copied whole into the child: it is the child's own.
            self.opened_by.adopt();
            return Ok(());
        };
        let mut writer = lock(&self.writer);
        if self.opened_by.is_this_process() {
            return Ok(()); // another thread of the child got here first
        }
        let fresh = open(name, self.busy_timeout)?;
        let inherited = std::mem::replace(&mut *writer, fresh);
        let readers: Option<Vec<Connection>> = self
            .readers
            .as_ref()
            .map(|pool| lock(pool).drain(..).collect());
        fork::set_aside_connections(std::iter::once(inherited).chain(readers.unwrap_or_default()));
        self.opened_by.adopt();
        Ok(())
    }

    /// Runs `f` on a read connection.
    pub fn read<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.after_fork()?;
        let (Some(pool), Some(name)) = (&self.readers, &self.name) else {
            return f(&lock(&self.writer));
        };
        let idle = lock(pool).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(name, self.busy_timeout)?,
        };
        let out = f(&conn);
        let mut idle = lock(pool);
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
        out
    }

    /// The writer connection, locked (the caller has called `after_fork`).
    pub fn lock_writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.writer)
    }

    /// The writer connection if it is free and its lock not poisoned.
    pub fn writer_if_free(&self) -> Option<MutexGuard<'_, Connection>> {
        self.writer.try_lock().ok()
    }

    /// The writer connection if it is free (poisoned or not).
    pub fn try_lock_writer(&self) -> Option<MutexGuard<'_, Connection>> {
        try_lock(&self.writer)
    }

    /// Runs `f` on the writer connection outside any transaction (VACUUM).
    pub fn with_writer<R>(&self, f: impl FnOnce(&Connection) -> Result<R>) -> Result<R> {
        self.after_fork()?;
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
    let conn = open_file(name)?;
    schema::configure(&conn, busy_timeout)?;
    Ok(conn)
}

/// `path` must have gone through [`schema::sqlite_name`].
fn open_file(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    Connection::open_with_flags(path, flags).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot open or create {}: {e}", path.display()),
        )
    })
}
