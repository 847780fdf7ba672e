//! Group commit: when threads of one handle set at the same time, the first to wait
//! becomes the leader and writes every waiting set in one transaction. A commit is
//! mostly fixed cost (its WAL frames and system calls), so N concurrent sets cost
//! little more than one instead of queueing N transactions.

use crate::error::{Error, ErrorKind, Result};
use crate::expiration::Expiration;
use crate::pool::Writer;
use crate::sync::lock;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// The longest a set queued behind another thread's group commit goes without asking
/// its caller's interrupt check (interrupt.rs).
const INTERRUPT_CHECK_EVERY: Duration = Duration::from_millis(50);

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
    /// BUSY when the caller's interrupt check stopped the wait (interrupt.rs).
    fn lock_writer(&self) -> Result<MutexGuard<'_, Writer>>;
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
                // Woken at least every 50 ms to ask the caller's interrupt check
                // (interrupt.rs), without the lock: a set not yet taken by the leader
                // leaves the queue, BUSY, as a wait for the lock that was stopped.
                st = match self.done.wait_timeout(st, INTERRUPT_CHECK_EVERY) {
                    Ok((st, _)) => st,
                    Err(e) => e.into_inner().0,
                };
                if lock(&job.result).is_none() {
                    drop(st);
                    let stop = crate::interrupt::interrupted();
                    st = lock(&self.state);
                    if stop {
                        if let Some(at) = st.waiting.iter().position(|j| Arc::ptr_eq(j, &job)) {
                            st.waiting.remove(at);
                            return Err(Error::new(
                                ErrorKind::Busy,
                                "stopped while waiting for another thread's write of this handle",
                            ));
                        }
                    }
                }
                continue;
            }
            st.leader = true;
            drop(st);
            let resign = Resign(self);
            self.lead(storage, &job);
            drop(resign);
            st = lock(&self.state);
        }
    }

    /// Writes everything waiting once the writer is free (more may queue meanwhile).
    /// `own`: the leader's own set.
    fn lead(&self, storage: &impl WriteSets, own: &Arc<SetJob>) {
        let conn = storage.lock_writer();
        let jobs = std::mem::take(&mut lock(&self.state).waiting);
        let answer_all = AnswerAll(&jobs);
        if jobs.is_empty() {
            return;
        }
        let sets: Vec<&Set> = jobs.iter().map(|j| &j.set).collect();
        let first = match &conn {
            Ok(conn) => storage.write_together(conn, &sets),
            Err(e) => Err(e.clone()),
        };
        match &first {
            // The leader's wait for the lock was stopped by its caller's interrupt (a
            // Python Ctrl-C, interrupt.rs): BUSY for its own set only. The others'
            // waits were not stopped: they go back to the queue, for another thread to
            // lead, rather than fail BUSY before their busy timeout for another
            // thread's Ctrl-C.
            Err(e) if e.kind() == ErrorKind::Busy && crate::interrupt::interrupted() => {
                let mut st = lock(&self.state);
                for job in jobs.iter().rev().filter(|j| !Arc::ptr_eq(j, own)) {
                    st.waiting.insert(0, job.clone());
                }
                drop(st);
                *lock(&own.result) = Some(Err(e.clone()));
                // Queued again, not answered.
                std::mem::forget(answer_all);
                return;
            }
            _ => {}
        }
        match first {
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
            Err(e) => {
                for job in &jobs {
                    let alone = match &conn {
                        Ok(conn) => storage.write_alone(conn, &job.set),
                        Err(_) => Err(e.clone()),
                    };
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
