//! The hit buffer, through `Storage::get`: no get writes other gets' hits (a hit
//! writer does), and hits wait in bounded memory when it falls behind.

use crate::access::{FLUSH_THRESHOLD, MAX_RESERVATIONS, MAX_WAITING};
use crate::{Entry, Expiration, Options, Storage};
use std::sync::atomic::Ordering::Relaxed;

fn filled(n: usize) -> (tempfile::TempDir, Storage, Vec<Vec<u8>>) {
    filled_with(n, &Options::new())
}

/// `n` keys set, on a file opened with `options`.
fn filled_with(n: usize, options: &Options) -> (tempfile::TempDir, Storage, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("c.db"), options).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i:08}").into_bytes()).collect();
    let entries: Vec<Entry> = keys
        .iter()
        .map(|k| Entry {
            key: k,
            value: b"v",
            expiration: Expiration::Never,
        })
        .collect();
    s.set_many(&entries).unwrap();
    (dir, s, keys)
}

/// Rows whose hits reached the file, read on a connection of the test's own.
fn rows_with_hits(dir: &tempfile::TempDir) -> i64 {
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    raw.query_row("SELECT count(*) FROM entries WHERE hits > 0", [], |r| {
        r.get(0)
    })
    .unwrap()
}

/// The keys of the rows `condition` selects, in the access order (`seq`), read on a
/// connection of the test's own.
fn keys_in_order(dir: &tempfile::TempDir, condition: &str) -> Vec<Vec<u8>> {
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let sql = format!("SELECT key FROM entries WHERE {condition} ORDER BY seq");
    let keys = raw
        .prepare(&sql)
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    keys
}

#[test]
fn no_get_writes_the_hits_of_other_gets() {
    let (dir, s, keys) = filled(FLUSH_THRESHOLD + 1000);
    let commits = s.commits.load(Relaxed);
    for (i, k) in keys.iter().enumerate() {
        assert!(s.get(k).unwrap().is_some());
        assert_eq!(
            s.commits.load(Relaxed),
            commits,
            "get {i} wrote: the get that fills the hit buffer must leave it to the hit writer"
        );
    }
    // The hit writer wrote the first full buffer, with no write of the handle.
    s.shared.join_hit_writers();
    assert!(rows_with_hits(&dir) >= FLUSH_THRESHOLD as i64);
    assert_eq!(s.commits.load(Relaxed), commits);
}

#[test]
fn gets_never_wait_for_the_hit_writer_and_waiting_hits_stay_bounded() {
    let (dir, s, keys) = filled(MAX_WAITING + 1000);
    let thirds: Vec<&[Vec<u8>]> = keys.chunks(keys.len().div_ceil(3)).collect();
    {
        // As if the hit writer were far behind: it cannot get its turn to write.
        let _turn = s.shared.writing();
        // Three threads in turn, each on a shard of its own (a shard holds fewer than
        // MAX_WAITING keys), each reading a third of the keys.
        let mut shards = Vec::new();
        for (i, third) in thirds.iter().enumerate() {
            loop {
                let (s, shards_taken) = (&s, &shards);
                let shard = std::thread::scope(|scope| {
                    scope
                        .spawn(move || {
                            let (_, shard) = s.shared.accesses().room_of_this_thread();
                            if shards_taken.contains(&shard) {
                                return None;
                            }
                            for k in third.iter() {
                                assert!(s.get(k).unwrap().is_some());
                            }
                            if i == 2 {
                                // Full, but a key waiting in this shard still counts.
                                assert_eq!(s.shared.accesses().len(), MAX_WAITING);
                                assert!(s.get(&third[0]).unwrap().is_some());
                            }
                            Some(shard)
                        })
                        .join()
                        .unwrap()
                });
                if let Some(shard) = shard {
                    shards.push(shard);
                    break;
                }
            }
        }
        assert_eq!(s.shared.accesses().len(), MAX_WAITING);
        assert_eq!(rows_with_hits(&dir), 0);
    }
    s.shared.join_hit_writers();
    assert!(rows_with_hits(&dir) >= MAX_WAITING as i64);
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let twice: i64 = raw
        .query_row(
            "SELECT hits FROM entries WHERE key = ?1",
            [&thirds[2][0]],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(twice, 2);
    assert_eq!(s.stats().unwrap().hits, keys.len() as u64 + 1);
}

/// Growing a table of tens of thousands of keys cost the get that did it milliseconds
/// of CPU: a get leaves a hit on a new key out when its shard's table is full, and the
/// hit writer's next merge gives the shard a larger one.
#[test]
fn a_get_never_grows_the_table_of_its_shard() {
    let (dir, s, keys) = filled(40_000);
    let room = {
        // The hit writer, started when the shard filled, cannot write yet.
        let _turn = s.shared.writing();
        for k in &keys {
            assert!(s.get(k).unwrap().is_some());
        }
        let (room, _) = s.shared.accesses().room_of_this_thread();
        assert!(room >= FLUSH_THRESHOLD && room < keys.len(), "room {room}");
        assert_eq!(s.shared.accesses().len(), room, "a get grew its table");
        room
    };
    s.shared.join_hit_writers();
    assert!(rows_with_hits(&dir) >= room as i64);
    // The writer's merge gave this thread's shard a table with room for all of them.
    {
        let _turn = s.shared.writing();
        for k in &keys {
            assert!(s.get(k).unwrap().is_some());
        }
        let (larger, _) = s.shared.accesses().room_of_this_thread();
        assert!(larger > room && larger < MAX_WAITING, "room {larger}");
        assert_eq!(s.shared.accesses().len(), keys.len());
    }
    s.shared.join_hit_writers();
    assert_eq!(s.stats().unwrap().hits, 2 * keys.len() as u64);
}

/// Hits made one after another by different threads (each recording into a shard of
/// its own) keep that order: the least recently used goes first.
#[test]
fn hits_from_many_threads_keep_their_order() {
    let n = 8;
    let dir = tempfile::tempdir().unwrap();
    let mut options = Options::new();
    options.set_max_size(n as u64).unwrap();
    options.set_eviction_policy(crate::EvictionPolicy::LeastRecentlyUsed);
    let s = Storage::open(dir.path().join("c.db"), &options).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    for k in &keys {
        s.set(k, b"v", Expiration::Never).unwrap();
    }
    // Thread i reads first in turn i (taking the i-th shard), then hits key i in turn
    // 2n - 1 - i: hits are made in the opposite order of the shards they go to.
    let turn = (std::sync::Mutex::new(0), std::sync::Condvar::new());
    let in_turn = |mine: usize, f: &dyn Fn()| {
        let mut t = turn.0.lock().unwrap();
        while *t != mine {
            t = turn.1.wait(t).unwrap();
        }
        f();
        *t += 1;
        turn.1.notify_all();
    };
    std::thread::scope(|scope| {
        for (i, k) in keys.iter().enumerate() {
            let (s, in_turn) = (&s, &in_turn);
            scope.spawn(move || {
                in_turn(i, &|| assert!(s.get(b"absent").unwrap().is_none()));
                in_turn(2 * n - 1 - i, &|| assert!(s.get(k).unwrap().is_some()));
            });
        }
    });
    // Each new key evicts the least recently hit: the last key set comes first.
    for (i, old) in keys.iter().rev().enumerate() {
        s.set(format!("new{i}").as_bytes(), b"v", Expiration::Never)
            .unwrap();
        assert!(!s.contains(old).unwrap(), "{i}: {old:?} should be evicted");
        let left: Vec<_> = keys.iter().rev().skip(i + 1).collect();
        for k in left {
            assert!(s.contains(k).unwrap(), "{i}: {k:?} evicted too early");
        }
    }
}

/// Two threads reading the same keys keep a copy of each in their shards: the buffer
/// is not full sooner than for one reader of those keys, which starts no hit writer.
#[test]
fn readers_on_two_threads_of_the_same_keys_start_no_hit_writer() {
    let threads = 2;
    let (dir, s, keys) = filled(FLUSH_THRESHOLD / 2 + 100);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (s, keys) = (&s, &keys);
            scope.spawn(move || {
                for k in keys {
                    assert!(s.get(k).unwrap().is_some());
                }
            });
        }
    });
    s.shared.join_hit_writers();
    assert_eq!(rows_with_hits(&dir), 0, "a hit writer ran");
    // Every hit still counts, and reaches the file with the next write.
    s.flush().unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let hits: i64 = raw
        .query_row("SELECT sum(hits) FROM entries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hits, (threads * keys.len()) as i64);
}

/// A read inside another read's callback, on the same thread and handle, takes
/// another connection instead of waiting for its own.
#[test]
fn a_read_inside_a_read_of_the_same_thread_does_not_wait() {
    let (_dir, s, keys) = filled(2);
    let inner = s
        .get_with(&keys[0], |_, _| s.get(&keys[1]).unwrap())
        .unwrap();
    assert_eq!(inner.unwrap().unwrap().0, b"v");
}

/// The nice value of thread `task` of this process (`self` for the calling one) and its
/// name, from /proc.
#[cfg(target_os = "linux")]
fn nice_and_name(task: &str) -> Option<(i64, String)> {
    let path = if task == "self" {
        "/proc/thread-self/stat".to_string()
    } else {
        format!("/proc/self/task/{task}/stat")
    };
    let stat = std::fs::read_to_string(path).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_string();
    // After the name: state is field 3, nice field 19.
    let nice = rest.split_whitespace().nth(16)?.parse().ok()?;
    Some((nice, name))
}

/// The hit writer runs nicer than the get that started it, so readers sharing a CPU
/// with it get more of it.
#[cfg(target_os = "linux")]
#[test]
fn the_hit_writer_runs_at_a_lower_priority_than_its_reader() {
    let (_dir, s, keys) = filled(FLUSH_THRESHOLD);
    let (mine, _) = nice_and_name("self").unwrap();
    // The writer started by the last get waits for its turn to write, alive.
    let _turn = s.shared.writing();
    for k in &keys {
        assert!(s.get(k).unwrap().is_some());
    }
    let wanted = (mine + 5).min(19);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let found = loop {
        let lowered = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| nice_and_name(&t.ok()?.file_name().to_string_lossy()))
            .any(|(nice, name)| name == "backlite-hits" && nice == wanted);
        if lowered || std::time::Instant::now() > deadline {
            break lowered;
        }
        std::thread::yield_now();
    };
    assert!(found, "no hit writer at nice {wanted}");
}

/// A write transaction writes a batch of the oldest waiting hits, not all of them (a
/// set then waits for a bounded write); the others keep their ticks, so that the file
/// ends in the exact order of the reads once they are all written.
#[test]
fn hits_are_written_a_batch_at_a_time_oldest_first_in_their_exact_order() {
    use crate::transact::HIT_BATCH;
    let (dir, s, keys) = filled(3 * HIT_BATCH);
    // Read newest key first: the order of the reads is the reverse of the sets'.
    for k in keys.iter().rev() {
        assert!(s.get(k).unwrap().is_some());
    }
    s.write_with(false, |t| t.write_oldest_accesses(HIT_BATCH, &|| false))
        .unwrap();
    let read_first: Vec<Vec<u8>> = keys.iter().rev().take(HIT_BATCH).cloned().collect();
    assert_eq!(
        keys_in_order(&dir, "hits > 0"),
        read_first,
        "the batch is the oldest hits, in order"
    );
    // A later set goes after every waiting hit, written or not.
    s.set(b"later", b"v", Expiration::Never).unwrap();
    s.flush().unwrap();
    let mut expected: Vec<Vec<u8>> = keys.iter().rev().cloned().collect();
    expected.push(b"later".to_vec());
    assert_eq!(keys_in_order(&dir, "1"), expected);
}

/// An eviction writes only the waiting hits of the rows that come before its victim
/// (a hit moves its row later), not every waiting hit, and still evicts the entry that
/// writing them all first would have: a set after a burst of reads stays cheap.
#[test]
fn an_eviction_writes_only_the_hits_in_its_way_and_evicts_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let n = 2000;
    let mut options = Options::new();
    options.set_max_size(n as u64).unwrap(); // one byte a value: full once filled
    let s = Storage::open(dir.path().join("c.db"), &options).unwrap();
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i:08}").into_bytes()).collect();
    for k in &keys {
        s.set(k, b"v", Expiration::Never).unwrap();
    }
    // The oldest entry, then the newer half: their hits wait in memory.
    for k in std::iter::once(&keys[0]).chain(&keys[n / 2..]) {
        assert!(s.get(k).unwrap().is_some());
    }
    s.set(b"new", b"v", Expiration::Never).unwrap();
    // Only k0's hit was in the way of the LRU victim, k1.
    assert!(
        !s.contains(&keys[1]).unwrap(),
        "k1 is the least recently used"
    );
    assert!(s.contains(&keys[0]).unwrap());
    assert_eq!(
        rows_with_hits(&dir),
        1,
        "only the hit in the way is written"
    );
    s.flush().unwrap();
    let mut expected: Vec<Vec<u8>> = keys[2..n / 2].to_vec();
    expected.push(keys[0].clone());
    expected.extend_from_slice(&keys[n / 2..]);
    expected.push(b"new".to_vec());
    assert_eq!(keys_in_order(&dir, "1"), expected);
}

/// A write that fails after it wrote hits (an eviction writes those in its way, then a
/// full disk fails its insert) gives them back with the rest: the rollback undoes their
/// rows, so none is lost, and none is written twice.
#[test]
fn a_write_that_rolls_back_after_writing_hits_loses_none() {
    let (dir, s, keys) = filled(10);
    for k in &keys[..5] {
        assert!(s.get(k).unwrap().is_some());
    }
    assert!(s.get(&keys[0]).unwrap().is_some());
    let failed = s.write_with(false, |t| {
        t.write_oldest_accesses(2, &|| false)?;
        Err::<(), _>(crate::Error::new(
            crate::ErrorKind::Internal,
            "failing after writing hits",
        ))
    });
    assert!(failed.is_err());
    assert_eq!(rows_with_hits(&dir), 0, "its writes were rolled back");
    s.flush().unwrap();
    let raw = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    let (rows, hits): (i64, i64) = raw
        .query_row(
            "SELECT count(*), total(hits) FROM entries WHERE hits > 0",
            [],
            |r| Ok((r.get(0)?, r.get::<_, f64>(1)? as i64)),
        )
        .unwrap();
    assert_eq!(
        (rows, hits),
        (5, 6),
        "every hit written once, after the failure"
    );
}

/// A hit writer that failed (another process held the write lock past the busy
/// timeout) is tried again once enough hits came in meanwhile: a process that only
/// reads writes its hits again once the file is free, and other processes see them.
#[test]
fn a_hit_writer_that_met_a_locked_file_is_tried_again() {
    let mut options = Options::new();
    options.set_busy_timeout(std::time::Duration::from_millis(50));
    let (dir, s, keys) = filled_with(FLUSH_THRESHOLD + 100, &options);
    let other = rusqlite::Connection::open(dir.path().join("c.db")).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    for k in &keys {
        assert!(s.get(k).unwrap().is_some());
    }
    s.shared.join_hit_writers(); // it met the lock for its busy timeout, and failed
    assert!(s.shared.accesses().writer_failed());
    other.execute_batch("ROLLBACK").unwrap();
    assert_eq!(rows_with_hits(&dir), 0);
    // Only reads from now on: the buffer is still full, and they start a hit writer
    // again. They stop there: the writer takes the hits numbered before it began, and a
    // key hit again after that waits for the next one (under load the reads ran far
    // ahead of it, and it took fewer than FLUSH_THRESHOLD keys).
    let mut reads = 0;
    for k in keys.iter().cycle().take(2 * FLUSH_THRESHOLD) {
        assert!(s.get(k).unwrap().is_some());
        reads += 1;
        if !s.shared.accesses().writer_failed() {
            break;
        }
    }
    assert!(
        !s.shared.accesses().writer_failed(),
        "no hit writer was started again in {reads} reads"
    );
    s.shared.join_hit_writers();
    assert!(
        rows_with_hits(&dir) >= FLUSH_THRESHOLD as i64,
        "the hits were written once the file was free"
    );
}

/// A write after reads reserves ticks for their hits without merging them from the
/// readers' shards (that merge was most of the first `set_many` after a burst of
/// reads), and each hit still takes its exact place: after the rows set before it,
/// before the rows set after it.
#[test]
fn a_write_after_reads_leaves_their_hits_in_the_shards_in_their_exact_place() {
    let (dir, s, keys) = filled(10);
    for i in [3, 1, 7] {
        assert!(s.get(&keys[i]).unwrap().is_some());
    }
    let batch = [b"n0".as_slice(), b"n1"].map(|key| Entry {
        key,
        value: b"v",
        expiration: Expiration::Never,
    });
    s.set_many(&batch).unwrap();
    assert_eq!(
        s.shared.accesses().in_shards(),
        3,
        "the set merged the hits it did not need"
    );
    assert!(s.get(&keys[5]).unwrap().is_some());
    s.set(b"m", b"v", Expiration::Never).unwrap();
    s.flush().unwrap();
    let mut expected: Vec<Vec<u8>> = [0, 2, 4, 6, 8, 9, 3, 1, 7]
        .iter()
        .map(|&i| keys[i].clone())
        .collect();
    for k in [&b"n0"[..], b"n1", &keys[5], b"m"] {
        expected.push(k.to_vec());
    }
    assert_eq!(keys_in_order(&dir, "1"), expected);
}

/// The ticks a write reserved for hits waiting in the shards are given back when it
/// rolls back, whether it merged those hits or not: the next write ticks them again,
/// in their place, and no tick is used twice.
#[test]
fn a_rolled_back_write_gives_back_the_ticks_it_reserved() {
    use crate::error::{Error, ErrorKind};
    for merge in [false, true] {
        let (dir, s, keys) = filled(4);
        assert!(s.get(&keys[0]).unwrap().is_some());
        let failed = s.write_with(false, |t| {
            if merge {
                assert_eq!(t.accesses_waiting(), 1);
            }
            Err::<(), _>(Error::new(ErrorKind::Internal, "rolled back"))
        });
        assert!(failed.is_err());
        assert!(s.get(&keys[1]).unwrap().is_some());
        s.set(b"n", b"v", Expiration::Never).unwrap();
        s.flush().unwrap();
        let mut expected: Vec<Vec<u8>> = [2, 3, 0, 1].iter().map(|&i| keys[i].clone()).collect();
        expected.push(b"n".to_vec());
        assert_eq!(keys_in_order(&dir, "1"), expected, "merged: {merge}");
    }
}

/// Each write reserves ticks for the hits waiting in the readers' shards, and only a
/// merge of the shards let the reservations go: a program that set a key and read it
/// back, again and again (a refreshed hot key), merged nothing (its hits never filled
/// the buffer) and kept one more reservation (24 bytes) per set, for ever: its memory
/// grew without bound (468 kB per 20,000 sets and gets from Python).
#[test]
fn sets_after_hits_keep_a_bounded_number_of_reservations() {
    let (dir, s, keys) = filled(2);
    for i in 0..3 * MAX_RESERVATIONS {
        s.set(&keys[i % 2], b"v", Expiration::Never).unwrap();
        assert!(s.get(&keys[i % 2]).unwrap().is_some());
        assert!(
            s.shared.accesses().reservations() <= MAX_RESERVATIONS,
            "set {i}: {} reservations kept",
            s.shared.accesses().reservations()
        );
    }
    // The hits merged early are still written, in their order: the last key read is
    // the last in the access order.
    s.flush().unwrap();
    let order = keys_in_order(&dir, "1");
    assert_eq!(order.last(), Some(&keys[(3 * MAX_RESERVATIONS - 1) % 2]));
}
