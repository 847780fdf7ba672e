//! The remote tier's options, the part of [`crate::Options`] that says which remote
//! and how to use it (its setters are with the others, in options.rs).

use super::url::RemoteUrl;
use std::time::Duration;

/// The default bound on every remote round trip, connect included.
pub const DEFAULT_REMOTE_TIMEOUT: Duration = Duration::from_millis(250);
/// The default prefix of every remote key.
pub const DEFAULT_REMOTE_NAMESPACE: &str = "backlite";
/// How the remote tier is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RemoteMode {
    /// Reads through; writes reach the remote before the call returns.
    #[default]
    ReadWrite,
    /// Reads through; never writes (sets, deletes and clears stay local, and what they
    /// removed or replaced is not read back: remote/hidden.rs).
    ReadOnly,
    /// Reads through; writes are queued and sent by a background thread.
    WriteBehind,
}

impl RemoteMode {
    /// The C value: 0 read-write, 1 read-only, 2 write-behind.
    pub fn from_index(i: i32) -> Option<RemoteMode> {
        match i {
            0 => Some(RemoteMode::ReadWrite),
            1 => Some(RemoteMode::ReadOnly),
            2 => Some(RemoteMode::WriteBehind),
            _ => None,
        }
    }
}

/// The remote part of [`crate::Options`].
#[derive(Clone, Debug)]
pub struct RemoteOptions {
    pub(crate) url: Option<RemoteUrl>,
    pub(crate) namespace: String,
    pub(crate) timeout: Duration,
    pub(crate) mode: RemoteMode,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        RemoteOptions {
            url: None,
            namespace: DEFAULT_REMOTE_NAMESPACE.to_string(),
            timeout: DEFAULT_REMOTE_TIMEOUT,
            mode: RemoteMode::ReadWrite,
        }
    }
}
