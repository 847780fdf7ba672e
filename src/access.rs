//! Buffered access tracking. A hit must not cost a write transaction of its own, so a
//! handle remembers its hits in memory, in order, and writes them with its next write
//! transaction (or when the buffer fills). Every write transaction applies the buffer
//! before anything else, so eviction decisions always see the hits in their exact
//! order. The log is shared by all handles of a process on one file; other processes
//! see the hits once they are written.

use std::collections::HashMap;

/// How many distinct keys may wait before a hit forces a write.
pub(crate) const FLUSH_THRESHOLD: usize = 1024;

#[derive(Default)]
pub(crate) struct AccessLog {
    next_seq: u64,
    pending: HashMap<Vec<u8>, PendingAccess>,
}

#[derive(Clone, Copy)]
struct PendingAccess {
    hits: u64,
    last_seq: u64,
}

/// One key's accesses since the last write, in the order they must be applied.
pub(crate) struct Access {
    pub key: Vec<u8>,
    pub hits: u64,
    last_seq: u64,
}

impl AccessLog {
    /// Records a hit; returns true when the buffer should be written now.
    pub fn record(&mut self, key: &[u8]) -> bool {
        self.next_seq += 1;
        let seq = self.next_seq;
        match self.pending.get_mut(key) {
            Some(p) => {
                p.hits += 1;
                p.last_seq = seq;
            }
            None => {
                self.pending.insert(
                    key.to_vec(),
                    PendingAccess {
                        hits: 1,
                        last_seq: seq,
                    },
                );
            }
        }
        self.pending.len() >= FLUSH_THRESHOLD
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Takes every pending access, oldest last access first.
    pub fn take(&mut self) -> Vec<Access> {
        let mut all: Vec<(Vec<u8>, PendingAccess)> = self.pending.drain().collect();
        all.sort_unstable_by_key(|(_, p)| p.last_seq);
        all.into_iter()
            .map(|(key, p)| Access {
                key,
                hits: p.hits,
                last_seq: p.last_seq,
            })
            .collect()
    }

    /// Puts back accesses taken for a write that failed, merged with any recorded since.
    pub fn restore(&mut self, accesses: Vec<Access>) {
        for a in accesses {
            let p = self.pending.entry(a.key).or_insert(PendingAccess {
                hits: 0,
                last_seq: a.last_seq,
            });
            p.hits += a.hits;
            p.last_seq = p.last_seq.max(a.last_seq);
        }
    }
}
