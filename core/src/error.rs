//! The error type of the core: a kind that maps one-to-one onto a C result code,
//! and a message written for the person reading the log.

use std::fmt;

/// What went wrong, in the categories of the C API's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A bad enum value, path, duration or other argument.
    InvalidArgument,
    /// The file cannot be opened, created, read or written.
    Io,
    /// The file exists but is not a BackLite cache; it was left untouched.
    NotACache,
    /// SQLite reports the database file damaged.
    Corrupt,
    /// A lock was not obtained within the busy timeout.
    Busy,
    /// The value is larger than the storage's maximum size.
    TooLarge,
    /// A compute, lock or visitor callback reported failure.
    CallbackFailed,
    /// The file was written by a newer BackLite schema.
    Incompatible,
    /// Any other SQLite or system error.
    Internal,
    /// A lease expired and another owner took it over; nothing was stored.
    LeaseLost,
    /// Another live owner holds the key's lease (it is computing the value);
    /// [`Error::lease_time_left`] says for how long at most, unless it renews.
    LeaseHeld,
}

/// An error of the BackLite core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    /// For [`ErrorKind::LeaseHeld`]: the holder's time left, and when to ask again.
    lease_held: Option<LeaseHeld>,
    /// A value file could not be opened or made for want of a file descriptor (EMFILE,
    /// ENFILE): a write that held others open may work holding fewer.
    out_of_descriptors: bool,
}

/// The numbers of a [`ErrorKind::LeaseHeld`] error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LeaseHeld {
    time_left: std::time::Duration,
    retry_in: std::time::Duration,
}

/// The result type of the BackLite core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with a message for people.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            lease_held: None,
            out_of_descriptors: false,
        }
    }

    /// An [`ErrorKind::Io`] error of a value file that could not be opened or made for
    /// want of a file descriptor.
    pub(crate) fn out_of_descriptors(message: impl Into<String>) -> Self {
        Error {
            out_of_descriptors: true,
            ..Error::new(ErrorKind::Io, message)
        }
    }

    /// Whether this is an error of [`Error::out_of_descriptors`].
    pub(crate) fn is_out_of_descriptors(&self) -> bool {
        self.out_of_descriptors
    }

    /// A [`ErrorKind::LeaseHeld`] error: the holder's lease ends in `time_left` unless
    /// it is renewed, and the caller should ask again after `retry_in`.
    pub(crate) fn lease_held(
        message: impl Into<String>,
        time_left: std::time::Duration,
        retry_in: std::time::Duration,
    ) -> Self {
        Error {
            lease_held: Some(LeaseHeld {
                time_left,
                retry_in,
            }),
            ..Error::new(ErrorKind::LeaseHeld, message)
        }
    }

    /// For [`ErrorKind::LeaseHeld`]: how long the holder's lease has left unless it
    /// renews it (it does while its compute runs). `None` for other errors.
    pub fn lease_time_left(&self) -> Option<std::time::Duration> {
        self.lease_held.map(|h| h.time_left)
    }

    /// For [`ErrorKind::LeaseHeld`]: how long to wait before asking again (the
    /// library's back-off for callers that wait without blocking). `None` otherwise.
    pub fn retry_in(&self) -> Option<std::time::Duration> {
        self.lease_held.map(|h| h.retry_in)
    }

    /// What kind of failure this is (each maps to one C result code).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, naming the file or value concerned.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error, its message prefixed with the operation that met it: an
    /// operation made of several steps names itself, not only its failing step.
    pub(crate) fn within(mut self, operation: &str) -> Self {
        self.message = format!("{operation}: {}", self.message);
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// The error of a handle whose cache file `name` was deleted or replaced while open.
    pub(crate) fn file_gone(name: &std::path::Path) -> Self {
        Error::new(
            ErrorKind::Io,
            format!(
                "{} was deleted or replaced while open: open it again",
                name.display()
            ),
        )
    }

    /// The error of a handle whose cache file `name` was emptied (cut shorter than a
    /// SQLite header) while open.
    pub(crate) fn file_emptied(name: &std::path::Path) -> Self {
        Error::new(
            ErrorKind::Io,
            format!(
                "{} was emptied while open: close its handles, then open it again (a new, empty cache)",
                name.display()
            ),
        )
    }

    /// Wraps a SQLite error with what we were doing when it happened.
    pub(crate) fn sqlite(context: &str, err: rusqlite::Error) -> Self {
        use rusqlite::ffi::ErrorCode as C;
        let kind = match err.sqlite_error_code() {
            Some(C::DatabaseBusy | C::DatabaseLocked) => ErrorKind::Busy,
            Some(C::DatabaseCorrupt | C::NotADatabase) => ErrorKind::Corrupt,
            Some(
                C::CannotOpen
                | C::SystemIoFailure
                | C::DiskFull
                | C::ReadOnly
                | C::PermissionDenied
                | C::FileLockingProtocolFailed
                | C::TooBig,
            ) => ErrorKind::Io,
            _ => ErrorKind::Internal,
        };
        Error::new(kind, format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

/// Adds context to SQLite errors: `stmt.execute(..).ctx("deleting an entry")?`.
pub(crate) trait SqliteContext<T> {
    fn ctx(self, context: &str) -> Result<T>;
}

impl<T> SqliteContext<T> for std::result::Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T> {
        self.map_err(|e| Error::sqlite(context, e))
    }
}
