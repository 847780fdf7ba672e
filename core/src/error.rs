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
}

/// An error of the BackLite core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// The result type of the BackLite core.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with a message for people.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// What kind of failure this is (each maps to one C result code).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// What went wrong, naming the file or value concerned.
    pub fn message(&self) -> &str {
        &self.message
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
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
