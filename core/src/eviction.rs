//! The five eviction policies and their names. The query that finds each one's next
//! victim in O(log n), and the index it needs, are in table.rs.

use crate::error::{Error, Result};
use std::fmt;
use std::str::FromStr;

/// Which entry goes first when the cache is over its size limit.
///
/// The order of accesses and sets comes from a logical clock kept in the file, so two
/// operations in the same millisecond are still ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum EvictionPolicy {
    /// Evicts the entry whose last access is oldest.
    #[default]
    LeastRecentlyUsed,
    /// Evicts the entry with the fewest hits, the least recently used first among equals.
    LeastFrequentlyUsed,
    /// Evicts the entry whose last access is newest.
    MostRecentlyUsed,
    /// Evicts the entry set earliest.
    FirstInFirstOut,
    /// Evicts the entry set latest.
    LastInFirstOut,
}

impl EvictionPolicy {
    /// Every policy, in the seed's order (which is also the C enum's order).
    pub const ALL: [EvictionPolicy; 5] = [
        EvictionPolicy::LeastRecentlyUsed,
        EvictionPolicy::LeastFrequentlyUsed,
        EvictionPolicy::MostRecentlyUsed,
        EvictionPolicy::FirstInFirstOut,
        EvictionPolicy::LastInFirstOut,
    ];

    /// The seed's name, e.g. `"least-recently-used"`.
    pub fn name(self) -> &'static str {
        match self {
            EvictionPolicy::LeastRecentlyUsed => "least-recently-used",
            EvictionPolicy::LeastFrequentlyUsed => "least-frequently-used",
            EvictionPolicy::MostRecentlyUsed => "most-recently-used",
            EvictionPolicy::FirstInFirstOut => "first-in-first-out",
            EvictionPolicy::LastInFirstOut => "last-in-first-out",
        }
    }

    /// The policy with the C enum value `value`, if there is one.
    pub fn from_index(value: i32) -> Option<Self> {
        usize::try_from(value)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
    }

    /// Whether the policy's order depends on hits (not only on sets).
    pub(crate) fn uses_accesses(self) -> bool {
        !matches!(
            self,
            EvictionPolicy::FirstInFirstOut | EvictionPolicy::LastInFirstOut
        )
    }
}

impl fmt::Display for EvictionPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EvictionPolicy {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "unknown eviction policy {s:?}; expected one of \"least-recently-used\", \
                     \"least-frequently-used\", \"most-recently-used\", \"first-in-first-out\", \
                     \"last-in-first-out\""
                ))
            })
    }
}
