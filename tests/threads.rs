//! One handle shared by many threads, and many handles on one file: no errors, and
//! counters equal a recount at the end.

mod common;
use backlite::{ErrorKind, EvictionPolicy, Options, Storage};
use std::sync::Arc;

fn recount(s: &Storage) -> (u64, u64) {
    let mut keys = Vec::new();
    s.keys(|k| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    let total = keys
        .iter()
        .map(|k| s.get(k).unwrap().map_or(0, |(v, _)| v.len() as u64))
        .sum();
    (keys.len() as u64, total)
}

fn hammer(handles: Vec<Arc<Storage>>, threads: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let s = handles[t % handles.len()].clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let key = format!("k{}", (i * 7 + t as u64) % 50);
                    match i % 4 {
                        0 => {
                            s.delete(key.as_bytes()).unwrap();
                        }
                        1 => {
                            s.get(key.as_bytes()).unwrap();
                        }
                        2 => {
                            let v = s
                                .cached_call(
                                    key.as_bytes(),
                                    backlite::Expiration::Never,
                                    None,
                                    || Ok(vec![1; 30]),
                                )
                                .unwrap();
                            assert!(!v.is_empty());
                        }
                        _ => s
                            .set(
                                key.as_bytes(),
                                &vec![t as u8; (i % 90) as usize],
                                backlite::Expiration::Never,
                            )
                            .unwrap(),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn eight_threads_on_one_handle_keep_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_max_size(1000).unwrap();
    o.set_eviction_policy(EvictionPolicy::LeastFrequentlyUsed);
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap());
    hammer(vec![s.clone()], 8);
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size), recount(&s));
    assert!(st.total_size <= 1000);
}

#[test]
fn four_handles_on_one_file_keep_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_max_size(1000).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap()))
        .collect();
    hammer(handles.clone(), 8);
    let st = handles[0].stats().unwrap();
    assert_eq!((st.count, st.total_size), recount(&handles[0]));
}

/// Handle A hits k1; then A sets a large value and, while A's transaction writes it, B
/// sets a small one. Whichever commits first, the other's eviction must see that hit:
/// k2, the oldest, goes and k1 stays.
#[test]
fn a_hit_through_one_handle_orders_another_handles_eviction() {
    const BIG: usize = 8 << 20;
    let big = vec![7u8; BIG];
    for run in 0..16 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let o = common::options(3 + BIG as u64, EvictionPolicy::LeastRecentlyUsed);
        let a = Arc::new(Storage::open(&path, &o).unwrap());
        let b = Storage::open(&path, &o).unwrap();
        for k in ["k1", "k2", "k3"] {
            common::set(&b, k, 1);
        }
        assert!(common::get(&a, "k1").is_some());
        let writer = {
            let (a, big) = (a.clone(), big.clone());
            std::thread::spawn(move || a.set(b"big", &big, common::NEVER).unwrap())
        };
        // B starts once A's transaction is under way: the value spills into the WAL
        // long before A commits (or, if it never spills, once A is done).
        let wal = dir.path().join("c.db-wal");
        while !writer.is_finished()
            && std::fs::metadata(&wal).map_or(0, |m| m.len()) < (BIG / 4) as u64
        {
            std::thread::yield_now();
        }
        common::set(&b, "k4", 1);
        writer.join().unwrap();
        assert_eq!(
            common::present(&b, &["k1", "k2", "k3", "k4", "big"]),
            ["k1", "k3", "k4", "big"],
            "run {run}"
        );
    }
}

/// A read closure may call back into the storage it reads from, in memory too (whose
/// one connection serves reads and writes).
#[test]
fn a_read_closure_may_use_its_own_in_memory_storage() {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = Storage::open(backlite::MEMORY, &Options::new()).unwrap();
        common::set(&s, "k", 3);
        let inner = s
            .get_with(b"k", |v, _| {
                common::set(&s, "copy", v.len());
                common::get(&s, "copy")
            })
            .unwrap();
        let memo = s
            .cached_call_with(
                b"k",
                common::NEVER,
                None,
                || unreachable!(),
                |v| s.contains(b"copy").unwrap() && v.len() == 3,
            )
            .unwrap();
        let _ = tx.send((inner, memo));
    });
    let (inner, memo) = rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the read closure deadlocked");
    assert_eq!(inner, Some(Some(b"vvv".to_vec())));
    assert!(memo);
}

/// API.md: lock contention is waited out up to the busy timeout, then BUSY. So too when
/// the lock is held by another handle of this process, which waits there for a lock
/// another connection holds: the second handle waited for the whole of the first's wait.
#[test]
fn a_handle_behind_another_handle_of_this_process_is_busy_after_its_own_timeout() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut patient = Options::new();
    patient.set_busy_timeout(Duration::from_secs(60));
    let mut hasty = Options::new();
    hasty.set_busy_timeout(Duration::from_millis(100));
    let first = Storage::open(&path, &patient).unwrap();
    let second = Storage::open(&path, &hasty).unwrap();
    let other = rusqlite::Connection::open(&path).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    std::thread::scope(|scope| {
        let waiting = scope.spawn(|| first.set(b"first", b"1", backlite::Expiration::Never));
        // Time for the first handle to be waiting for `other`; had it not started yet,
        // the second would wait for `other` itself: BUSY after its timeout all the same.
        std::thread::sleep(Duration::from_millis(300));
        // `other` ends a while later: a second handle still waiting for the first then
        // gets the lock and succeeds, where the contract wants BUSY.
        let release = scope.spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            other.execute_batch("COMMIT").unwrap();
        });
        let second_set = second.set(b"second", b"2", backlite::Expiration::Never);
        assert_eq!(
            second_set.map_err(|e| e.kind()),
            Err(ErrorKind::Busy),
            "the second handle's set"
        );
        release.join().unwrap();
        waiting.join().unwrap().unwrap();
    });
    assert!(first.contains(b"first").unwrap());
    assert!(!first.contains(b"second").unwrap());
}
