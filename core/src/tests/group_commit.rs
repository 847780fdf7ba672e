//! Group commit, through `Storage::set`: sets that wait for the writer share one
//! commit, a too-large one fails alone, and a panic in the leader answers every waiter.

use crate::storage::PANICS_IN_STORE;
use crate::{ErrorKind, Expiration, Options, Storage};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_panic_in_a_group_commit_answers_every_waiter_and_frees_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = s.pool.lock_writer(); // the four sets queue up behind it
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
    let writer = s.pool.lock_writer(); // as if a long write were under way
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
    // An older value for the refused set to remove: without one it writes nothing, and
    // returns without waiting for the writer.
    s.set(&[2], b"older", Expiration::Never).unwrap();
    let writer = s.pool.lock_writer();
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
    assert!(s.get(&[2]).unwrap().is_none(), "the older value went");
}
