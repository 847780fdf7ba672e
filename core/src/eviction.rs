//! The five eviction policies: their names, and the index and query that find each
//! one's next victim in O(log n).

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

    /// The index this policy needs. Created on first open with the policy, so a file
    /// only pays on every write for the orders that are actually used.
    /// The name of the index `index_sql` creates.
    pub(crate) fn index_name(self) -> Option<&'static str> {
        match self {
            EvictionPolicy::LeastRecentlyUsed | EvictionPolicy::MostRecentlyUsed => None,
            EvictionPolicy::LeastFrequentlyUsed => Some("entries_by_hits"),
            EvictionPolicy::FirstInFirstOut | EvictionPolicy::LastInFirstOut => {
                Some("entries_by_creation")
            }
        }
    }

    /// The table itself is in access order (`seq`), which serves LRU and MRU.
    pub(crate) fn index_sql(self) -> Option<&'static str> {
        match self {
            EvictionPolicy::LeastRecentlyUsed | EvictionPolicy::MostRecentlyUsed => None,
            EvictionPolicy::LeastFrequentlyUsed => {
                Some("CREATE INDEX IF NOT EXISTS entries_by_hits ON entries(hits, seq)")
            }
            EvictionPolicy::FirstInFirstOut | EvictionPolicy::LastInFirstOut => {
                Some("CREATE INDEX IF NOT EXISTS entries_by_creation ON entries(created)")
            }
        }
    }

    /// Selects `(seq, value_id, size, length of the value)` of the next victim (the
    /// join reads no large value), found through the table's
    /// order or `index_sql`'s index.
    pub(crate) fn victim_sql(self) -> &'static str {
        match self {
            EvictionPolicy::LeastRecentlyUsed => {
                "SELECT seq, value_id, size, coalesce(length(entries.value), length(blobs.value)) \
                 FROM entries LEFT JOIN blobs ON blobs.id = value_id ORDER BY seq ASC LIMIT 1"
            }
            EvictionPolicy::MostRecentlyUsed => {
                "SELECT seq, value_id, size, coalesce(length(entries.value), length(blobs.value)) \
                 FROM entries LEFT JOIN blobs ON blobs.id = value_id ORDER BY seq DESC LIMIT 1"
            }
            EvictionPolicy::LeastFrequentlyUsed => {
                "SELECT seq, value_id, size, coalesce(length(entries.value), length(blobs.value)) \
                 FROM entries LEFT JOIN blobs ON blobs.id = value_id ORDER BY hits ASC, seq ASC LIMIT 1"
            }
            EvictionPolicy::FirstInFirstOut => {
                "SELECT seq, value_id, size, coalesce(length(entries.value), length(blobs.value)) \
                 FROM entries LEFT JOIN blobs ON blobs.id = value_id ORDER BY created ASC LIMIT 1"
            }
            EvictionPolicy::LastInFirstOut => {
                "SELECT seq, value_id, size, coalesce(length(entries.value), length(blobs.value)) \
                 FROM entries LEFT JOIN blobs ON blobs.id = value_id ORDER BY created DESC LIMIT 1"
            }
        }
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
