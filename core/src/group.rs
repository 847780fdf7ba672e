//! Group commit: when threads of one handle set at the same time, the first to wait
//! becomes the leader and writes every waiting set in one transaction. A commit is
//! mostly fixed cost (its WAL frames and system calls), so N concurrent sets cost
//! little more than one instead of queueing N transactions.

use crate::error::{Error, ErrorKind, Result};
use crate::expiration::Expiration;
use crate::shared::lock;
use crate::storage::Storage;
use std::sync::{Arc, Condvar, Mutex};

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
struct SetJob {
    key: Vec<u8>,
    value: Vec<u8>,
    crc: u32,
    expiration: Expiration,
    result: Mutex<Option<Result<bool>>>,
}

impl Group {
    #[cfg(test)]
    fn waiting(&self) -> usize {
        lock(&self.state).waiting.len()
    }

    pub fn has_waiting(&self) -> bool {
        let st = lock(&self.state);
        st.leader || !st.waiting.is_empty()
    }

    /// Queues a set and returns its result (as `Storage::store`'s), leading a group
    /// commit when no other thread does.
    pub fn set(
        &self,
        storage: &Storage,
        key: &[u8],
        value: &[u8],
        crc: u32,
        expiration: Expiration,
    ) -> Result<bool> {
        let job = Arc::new(SetJob {
            key: key.to_vec(),
            value: value.to_vec(),
            crc,
            expiration,
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
    fn lead(&self, storage: &Storage) {
        let conn = storage.lock_writer();
        let jobs = std::mem::take(&mut lock(&self.state).waiting);
        let _answer_all = AnswerAll(&jobs);
        if jobs.is_empty() {
            return;
        }
        let together = storage.write_locked(&conn, false, None, |t| {
            jobs.iter()
                .map(|j| storage.store(t, &j.key, &j.value, j.crc, j.expiration))
                .collect::<Result<Vec<bool>>>()
        });
        match together {
            Ok(stored) => {
                for (job, stored) in jobs.iter().zip(stored) {
                    *lock(&job.result) = Some(Ok(stored));
                }
            }
            // One failing set must not fail the others: each is written alone.
            Err(_) => {
                for job in &jobs {
                    let alone = storage.write_locked(&conn, false, Some(&job.key), |t| {
                        storage.store(t, &job.key, &job.value, job.crc, job.expiration)
                    });
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

#[cfg(test)]
pub(crate) mod tests {
    use crate::{ErrorKind, Expiration, Options, Storage};
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Duration;

    /// A set of this key panics inside its write transaction.
    pub(crate) const PANICS_IN_STORE: &[u8] = b"panics in store";

    #[test]
    fn a_panic_in_a_group_commit_answers_every_waiter_and_frees_the_handle() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        let writer = s.lock_writer(); // the four sets queue up behind it
        for i in 0..4u8 {
            let (s, tx) = (s.clone(), tx.clone());
            std::thread::spawn(move || {
                let key = if i == 0 {
                    PANICS_IN_STORE.to_vec()
                } else {
                    vec![i]
                };
                let set = || s.set(&key, &[i; 10], Expiration::Never);
                let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(set)));
            });
        }
        while s.group.waiting() < 4 {
            std::thread::yield_now();
        }
        drop(writer);
        // A hang is the failure this test is about: give up after a generous while.
        let limit = Duration::from_secs(20);
        let (mut panicked, mut internal) = (0, 0);
        for _ in 0..4 {
            match rx
                .recv_timeout(limit)
                .expect("a waiting set never returned")
            {
                Err(_) => panicked += 1,
                Ok(Err(e)) if e.kind() == ErrorKind::Internal => internal += 1,
                Ok(other) => panic!("unexpected result {other:?}"),
            }
        }
        assert_eq!(
            (panicked, internal),
            (1, 3),
            "the leader panics, its waiters fail"
        );
        // The handle works afterwards, through the group path too.
        let s2 = s.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(s2.set(b"after", b"v", Expiration::Never).and_then(|()| {
                assert!(!s2.group.has_waiting());
                s2.get(b"after")
            }));
        });
        let got = rx.recv_timeout(limit).expect("a later set never returned");
        assert_eq!(got.unwrap().unwrap().0, b"v");
        let st = s.stats().unwrap();
        assert_eq!(
            (st.count, st.total_size),
            (1, 1),
            "the panicked group stored nothing"
        );
        assert!(s.check(false).unwrap().healthy());
    }

    #[test]
    fn sets_that_wait_for_the_writer_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
        let before = s.commits.load(Relaxed);
        let writer = s.lock_writer(); // as if a long write were under way
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || s.set(&[i], &[i; 10], Expiration::Never).unwrap())
            })
            .collect();
        while s.group.waiting() < 8 {
            std::thread::yield_now();
        }
        drop(writer);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(
            s.commits.load(Relaxed) - before,
            1,
            "eight sets, one commit"
        );
        for i in 0..8u8 {
            assert_eq!(s.get(&[i]).unwrap().unwrap().0, vec![i; 10]);
        }
        let st = s.stats().unwrap();
        assert_eq!((st.count, st.total_size), (8, 80));
    }

    #[test]
    fn a_too_large_value_in_a_group_fails_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Options::new();
        o.set_max_size(100).unwrap();
        let s = Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap());
        let writer = s.lock_writer();
        let threads: Vec<_> = (0..4u8)
            .map(|i| {
                let s = s.clone();
                let len = if i == 2 { 500 } else { 10 };
                std::thread::spawn(move || s.set(&[i], &vec![i; len], Expiration::Never))
            })
            .collect();
        while s.group.waiting() < 4 {
            std::thread::yield_now();
        }
        drop(writer);
        let results: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        for (i, r) in results.iter().enumerate() {
            if i == 2 {
                assert_eq!(r.as_ref().unwrap_err().kind(), crate::ErrorKind::TooLarge);
            } else {
                assert!(r.is_ok());
            }
        }
        assert_eq!(s.stats().unwrap().count, 3);
    }
}
