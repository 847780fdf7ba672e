//! Per-entry expiration: what a caller asks for, and the wall-clock deadline stored in
//! the file. Expired entries are purged through a partial index on the deadline, so the
//! purge touches only entries that are due, never the live ones.

use crate::error::{Error, Result};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// When an entry expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Expiration {
    /// Use the storage's default expiration.
    Default,
    /// Never expires.
    Never,
    /// Expires this long after it is set. Zero means "already expired".
    After(Duration),
}

/// The C value of [`Expiration::Default`].
pub const EXPIRATION_DEFAULT_MS: i64 = -1;
/// The C value of [`Expiration::Never`].
pub const EXPIRATION_NEVER_MS: i64 = -2;

impl Expiration {
    /// Reads the C form: milliseconds >= 0, `-1` (default) or `-2` (never).
    pub fn from_ms(ms: i64) -> Result<Self> {
        match ms {
            EXPIRATION_DEFAULT_MS => Ok(Expiration::Default),
            EXPIRATION_NEVER_MS => Ok(Expiration::Never),
            ms if ms >= 0 => Ok(Expiration::After(Duration::from_millis(ms as u64))),
            ms => Err(Error::invalid(format!(
                "expiration must be >= 0 ms, -1 (default) or -2 (never), got {ms}"
            ))),
        }
    }

    /// The deadline in epoch milliseconds (`None`: never), given the storage default.
    pub(crate) fn deadline(self, now_ms: i64, default: Expiration) -> Option<i64> {
        match self {
            Expiration::Default => default.deadline(now_ms, Expiration::Never),
            Expiration::Never => None,
            Expiration::After(d) => {
                let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
                Some(now_ms.saturating_add(ms))
            }
        }
    }
}

/// Whether an entry with this deadline is due at `now_ms`.
pub(crate) fn is_due(deadline: Option<i64>, now_ms: i64) -> bool {
    deadline.is_some_and(|t| t <= now_ms)
}

/// The system wall clock in milliseconds since the Unix epoch.
pub(crate) fn system_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
