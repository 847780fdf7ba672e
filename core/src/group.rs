//! Group commit: when threads of one handle set at the same time, the first to wait
//! becomes the leader and writes every waiting set in one transaction. A commit is
//! mostly fixed cost (its WAL frames and system calls), so N concurrent sets cost
//! little more than one instead of queueing N transactions.

use crate::error::{Error, ErrorKind, Result};
use crate::expiration::Expiration;
use crate::pool::Writer;
use crate::sync::lock;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

#[derive(Default)]
pub(crate) struct Group {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Default)]
struct State {
    waiting: Vec<Arc<SetJob>>,
    leader: bool,
}

/// One set, copied so that the leader's thread can write it.
pub(crate) struct Set {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub crc: u32,
    pub expiration: Expiration,
}

struct SetJob {
    set: Set,
    result: Mutex<Option<Result<bool>>>,
}

/// How a leader writes: the storage's part of a group commit (storage.rs), so that
/// this module needs nothing else of the storage.
pub(crate) trait WriteSets {
    /// The writer connection, locked: the group is taken from the queue once it is
    /// held (more sets queue meanwhile), and written while it is.
    fn lock_writer(&self) -> MutexGuard<'_, Writer>;
    /// Writes `sets` in one transaction; each one's result, in order (`Ok(false)`:
    /// too large, as `Storage::store`).
    fn write_together(&self, writer: &Writer, sets: &[&Set]) -> Result<Vec<bool>>;
    /// Writes one set in a transaction of its own.
    fn write_alone(&self, writer: &Writer, set: &Set) -> Result<bool>;
}

impl Group {
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        lock(&self.state).waiting.len()
    }

    pub fn has_waiting(&self) -> bool {
        let st = lock(&self.state);
        st.leader || !st.waiting.is_empty()
    }

    /// Queues a set and returns its result (as `Storage::store`'s), leading a group
    /// commit through `storage` when no other thread does.
    pub fn set(&self, storage: &impl WriteSets, set: Set) -> Result<bool> {
        let job = Arc::new(SetJob {
            set,
            result: Mutex::new(None),
        });
        let mut st = lock(&self.state);
        st.waiting.push(job.clone());
        loop {
            if let Some(result) = lock(&job.result).take() {
                return result;
            }
            if st.leader {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leader = true;
            drop(st);
            let resign = Resign(self);
            self.lead(storage);
            drop(resign);
            st = lock(&self.state);
        }
    }

    /// Writes everything waiting once the writer is free (more may queue meanwhile).
    fn lead(&self, storage: &impl WriteSets) {
        let conn = storage.lock_writer();
        let jobs = std::mem::take(&mut lock(&self.state).waiting);
        let _answer_all = AnswerAll(&jobs);
        if jobs.is_empty() {
            return;
        }
        let sets: Vec<&Set> = jobs.iter().map(|j| &j.set).collect();
        match storage.write_together(&conn, &sets) {
            Ok(stored) => {
                for (job, stored) in jobs.iter().zip(stored) {
                    *lock(&job.result) = Some(Ok(stored));
                }
            }
            // The file's write lock was not obtained within the busy timeout: no set of
            // the group could be written, and each written alone waited the busy
            // timeout again, so the last of a group of n answered BUSY after n + 1 of
            // them (or was stored once the lock came free, long after its own ran out).
            Err(e) if e.kind() == ErrorKind::Busy => {
                for job in &jobs {
                    *lock(&job.result) = Some(Err(e.clone()));
                }
            }
            // One failing set must not fail the others: each is written alone.
            Err(_) => {
                for job in &jobs {
                    let alone = storage.write_alone(&conn, &job.set);
                    *lock(&job.result) = Some(alone);
                }
            }
        }
    }
}

/// Ends a leader's turn, even if it panics: another thread may lead, and every waiter
/// wakes to find its answer.
struct Resign<'a>(&'a Group);

impl Drop for Resign<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).leader = false;
        self.0.done.notify_all();
    }
}

/// Gives every job an answer even if the leader panics, so that no waiter hangs.
struct AnswerAll<'a>(&'a [Arc<SetJob>]);

impl Drop for AnswerAll<'_> {
    fn drop(&mut self) {
        for job in self.0 {
            let mut result = lock(&job.result);
            if result.is_none() {
                *result = Some(Err(Error::new(
                    ErrorKind::Internal,
                    "the thread writing this set's group commit panicked; nothing is known to be stored",
                )));
            }
        }
    }
}
