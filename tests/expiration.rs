//! Expired entries are never returned, listed or counted, and are removed lazily.
//! A fake clock moves time, so nothing here sleeps.

mod common;
use backlite::{Entry, Expiration, Options};
use common::*;
use std::time::Duration;

fn after(ms: u64) -> Expiration {
    Expiration::After(Duration::from_millis(ms))
}

#[test]
fn an_entry_is_gone_once_due_and_reports_its_time_left() {
    let mut o = Options::new();
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    s.set(b"a", b"1", after(1000)).unwrap();
    s.set(b"b", b"2", NEVER).unwrap();
    assert_eq!(
        s.get(b"a").unwrap().unwrap().1,
        Some(Duration::from_millis(1000))
    );
    assert_eq!(s.get(b"b").unwrap().unwrap().1, None);
    clock.advance_ms(999);
    assert_eq!(
        s.get(b"a").unwrap().unwrap().1,
        Some(Duration::from_millis(1))
    );
    clock.advance_ms(1);
    assert_eq!(s.get(b"a").unwrap(), None);
    assert!(!s.contains(b"a").unwrap());
    let mut keys = Vec::new();
    s.keys(|k| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(keys, [b"b".to_vec()]);
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.expirations), (1, 1, 1));
}

#[test]
fn expired_entries_are_not_listed_or_counted_before_removal() {
    let mut o = Options::new();
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    for i in 0..10 {
        s.set(format!("k{i}").as_bytes(), b"xx", after(10)).unwrap();
    }
    clock.advance_ms(10);
    let mut n = 0;
    s.keys(|_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 0);
    // stats only reads: they are left out of the counters, not yet removed
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.expirations), (0, 0, 0));
    s.set(b"x", b"1", NEVER).unwrap(); // the next write removes them
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.expirations), (1, 1, 10));
}

#[test]
fn default_expiration_applies_unless_overridden() {
    let mut o = Options::new();
    o.set_default_expiration(after(100)).unwrap();
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    s.set(b"default", b"1", Expiration::Default).unwrap();
    s.set(b"never", b"1", Expiration::Never).unwrap();
    s.set(b"long", b"1", after(1000)).unwrap();
    clock.advance_ms(100);
    assert_eq!(
        present(&s, &["default", "never", "long"]),
        ["never", "long"]
    );
}

#[test]
fn zero_means_already_expired_and_removes_the_old_value() {
    let (_dir, s) = open(&Options::new());
    s.set(b"a", b"old", NEVER).unwrap();
    s.set(b"a", b"new", after(0)).unwrap();
    assert_eq!(s.get(b"a").unwrap(), None);
    assert_eq!(s.stats().unwrap().count, 0);
}

#[test]
fn expired_entries_go_before_live_ones_are_evicted() {
    let mut o = options(30, backlite::EvictionPolicy::LeastRecentlyUsed);
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    set(&s, "a", 10);
    s.set(b"b", &[0; 10], after(5)).unwrap();
    set(&s, "c", 10);
    clock.advance_ms(5);
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["a", "c", "d"]);
    assert_eq!(s.stats().unwrap().evictions, 0);
}

/// A write takes the earliest deadline from what its handle's last write left (no
/// other write since), so each way of inserting must lower it: here the batch's runs
/// of 16 rows, after a set that left no deadline at all.
#[test]
fn expired_entries_of_a_batch_go_before_live_ones_are_evicted() {
    let mut o = options(200, backlite::EvictionPolicy::LeastRecentlyUsed);
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    set(&s, "a", 10);
    let keys: Vec<String> = (0..16).map(|i| format!("b{i:02}")).collect();
    let batch: Vec<Entry<'_>> = keys
        .iter()
        .map(|k| Entry {
            key: k.as_bytes(),
            value: &[0; 10],
            expiration: after(5),
        })
        .collect();
    s.set_many(&batch).unwrap();
    set(&s, "c", 10);
    clock.advance_ms(5);
    // 200 bytes with the batch's 160 still there: "a" would be evicted.
    set(&s, "d", 30);
    assert_eq!(present(&s, &["a", "c", "d"]), ["a", "c", "d"]);
    let st = s.stats().unwrap();
    assert_eq!((st.evictions, st.expirations, st.count), (0, 16, 3));
}

#[test]
fn set_many_takes_per_entry_expirations() {
    let mut o = Options::new();
    let clock = FakeClock::install(&mut o);
    let (_dir, s) = open(&o);
    s.set_many(&[
        Entry {
            key: b"short",
            value: b"1",
            expiration: after(10),
        },
        Entry {
            key: b"never",
            value: b"1",
            expiration: NEVER,
        },
        Entry {
            key: b"dead",
            value: b"1",
            expiration: after(0),
        },
    ])
    .unwrap();
    assert_eq!(s.stats().unwrap().count, 2);
    clock.advance_ms(10);
    assert_eq!(present(&s, &["short", "never", "dead"]), ["never"]);
}

#[test]
fn expiration_values_are_validated() {
    assert!(Expiration::from_ms(-3).is_err());
    assert_eq!(Expiration::from_ms(-1).unwrap(), Expiration::Default);
    assert_eq!(Expiration::from_ms(-2).unwrap(), Expiration::Never);
    assert!(Options::new()
        .set_default_expiration(Expiration::Default)
        .is_err());
}

/// A look-up that meets an expired or damaged entry removes it only if that needs no
/// waiting: behind another process's write transaction it returns at once, a miss.
/// Checked as an order, not a duration: the writer holds its transaction until the
/// reads are done, or for half the busy timeout at most, then commits. Reads that
/// waited for the writer end after its commit (or fail BUSY), so the order is wrong.
#[test]
fn a_read_never_waits_for_another_writer_to_remove_an_entry() {
    use std::sync::mpsc;
    use std::sync::{Arc, Mutex};
    let mut o = Options::new();
    let clock = FakeClock::install(&mut o);
    let busy = Duration::from_secs(10);
    o.set_busy_timeout(busy);
    let (dir, s) = open(&o);
    s.set(b"gone", b"1", after(10)).unwrap();
    s.set(b"bad", b"2", NEVER).unwrap();
    s.set(b"live", b"3", NEVER).unwrap();
    clock.advance_ms(10);
    let other = rusqlite::Connection::open(dir.path().join("cache.db")).unwrap();
    other
        .execute("UPDATE entries SET crc = crc + 1 WHERE key = x'626164'", [])
        .unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let (locked_tx, locked) = mpsc::channel();
    let (reads_done, reads_done_rx) = mpsc::channel::<()>();
    let writer = {
        let order = Arc::clone(&order);
        std::thread::spawn(move || {
            other.execute_batch("BEGIN IMMEDIATE").unwrap(); // another process writing
            locked_tx.send(()).unwrap();
            // A bound that only ends a wait that already failed, below the busy
            // timeout so that reads waiting for the lock end after this commit.
            let _ = reads_done_rx.recv_timeout(busy / 2);
            order.lock().unwrap().push("commit");
            other.execute_batch("COMMIT").unwrap();
        })
    };
    locked.recv().unwrap();
    for (what, key) in [("get", "gone"), ("contains", "gone"), ("get", "bad")] {
        let found = if what == "get" {
            s.get(key.as_bytes()).unwrap().is_some()
        } else {
            s.contains(key.as_bytes()).unwrap()
        };
        assert!(!found, "{what}({key})");
    }
    order.lock().unwrap().push("reads");
    // The writer stopped listening if it gave up waiting: the order tells.
    let _ = reads_done.send(());
    writer.join().unwrap();
    assert_eq!(
        *order.lock().unwrap(),
        ["reads", "commit"],
        "the reads waited for the writer"
    );
    // Once the file is free, the next look-up removes them.
    assert_eq!(get(&s, "bad"), None);
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.expirations), (1, 1, 1));
    assert!(s.check(false).unwrap().healthy());
}
