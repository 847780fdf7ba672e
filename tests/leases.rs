//! Leases: one owner computes a key; others are told it is busy; a lost lease stores
//! nothing; dead holders and deadlines free keys; single flight computes once.

mod common;
use backlite::{ErrorKind, Expiration, Lease, LeaseOutcome, Options, Storage};
use common::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn acquire(s: &Arc<Storage>, key: &[u8], d: Duration) -> Lease {
    match Lease::try_acquire(s, key, d).unwrap() {
        LeaseOutcome::Acquired(l) => l,
        LeaseOutcome::Hit(..) => panic!("unexpected hit"),
        LeaseOutcome::Busy(_) => panic!("unexpected busy"),
    }
}

fn is_busy(s: &Arc<Storage>, key: &[u8]) -> bool {
    matches!(
        Lease::try_acquire(s, key, SECOND).unwrap(),
        LeaseOutcome::Busy(_)
    )
}

fn with_clock() -> (tempfile::TempDir, Arc<Storage>, FakeClock) {
    let mut o = Options::new();
    let clock = FakeClock::install(&mut o);
    let (dir, s) = open(&o);
    (dir, Arc::new(s), clock)
}

#[test]
fn a_miss_gives_a_lease_others_are_busy_and_fulfil_stores() {
    let (_dir, s, _) = with_clock();
    let lease = acquire(&s, b"k", SECOND);
    assert!(is_busy(&s, b"k"));
    assert!(matches!(
        Lease::try_acquire(&s, b"other", SECOND).unwrap(),
        LeaseOutcome::Acquired(_)
    ));
    lease.fulfill(b"v", Expiration::Never).unwrap();
    match Lease::try_acquire(&s, b"k", SECOND).unwrap() {
        LeaseOutcome::Hit(v, None) => assert_eq!(v, b"v"),
        _ => panic!("expected a hit"),
    }
}

#[test]
fn a_lease_taken_over_after_its_deadline_is_lost_and_stores_nothing() {
    let (_dir, s, clock) = with_clock();
    let first = acquire(&s, b"k", SECOND);
    clock.advance_ms(1000);
    let second = acquire(&s, b"k", SECOND);
    second.fulfill(b"second", Expiration::Never).unwrap();
    let err = first.fulfill(b"first", Expiration::Never).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseLost);
    assert_eq!(get(&s, "k"), Some(b"second".to_vec()));
}

#[test]
fn an_expired_lease_nobody_took_still_fulfils() {
    let (_dir, s, clock) = with_clock();
    let lease = acquire(&s, b"k", SECOND);
    clock.advance_ms(5000);
    lease.fulfill(b"late", Expiration::Never).unwrap();
    assert_eq!(get(&s, "k"), Some(b"late".to_vec()));
}

#[test]
fn extending_keeps_others_out_past_the_first_deadline() {
    let (_dir, s, clock) = with_clock();
    let mut lease = acquire(&s, b"k", SECOND);
    clock.advance_ms(900);
    lease.extend(SECOND).unwrap();
    clock.advance_ms(900);
    assert!(is_busy(&s, b"k"));
    clock.advance_ms(100);
    let _taker = acquire(&s, b"k", SECOND);
    assert_eq!(
        lease.extend(SECOND).unwrap_err().kind(),
        ErrorKind::LeaseLost
    );
}

#[test]
fn abandoning_or_dropping_frees_the_key_at_once() {
    let (_dir, s, _) = with_clock();
    acquire(&s, b"k", SECOND).abandon();
    drop(acquire(&s, b"k", SECOND));
    let _again = acquire(&s, b"k", SECOND);
}

#[test]
fn a_lease_of_a_dead_process_on_this_host_is_taken_over_before_its_deadline() {
    let (dir, s, _) = with_clock();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join("cache.db")).unwrap();
        c.execute(
            "INSERT INTO leases VALUES (x'6b', 1, ?1, 12345, ?2, 9223372036854775807)",
            rusqlite::params![pid, boot.trim()],
        )
        .unwrap();
    }
    let _taken = acquire(&s, b"k", SECOND);
}

#[test]
fn a_lease_of_another_host_waits_for_its_deadline() {
    let (dir, s, clock) = with_clock();
    {
        let c = rusqlite::Connection::open(dir.path().join("cache.db")).unwrap();
        let deadline = 1_700_000_000_000i64 + 500;
        c.execute(
            "INSERT INTO leases VALUES (x'6b', 1, 1, 1, 'another-host', ?1)",
            [deadline],
        )
        .unwrap();
    }
    assert!(is_busy(&s, b"k"));
    clock.advance_ms(500);
    let _taken = acquire(&s, b"k", SECOND);
}

#[test]
fn sixteen_threads_on_one_key_compute_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let computes = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(16));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (s, computes, start) = (s.clone(), computes.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                s.cached_call_exclusive(b"hot", Expiration::Never, 10 * SECOND, || {
                    computes.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(50));
                    Ok(b"value".to_vec())
                })
                .unwrap()
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), b"value");
    }
    assert_eq!(computes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failing_compute_lets_a_waiter_take_over() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let err = s
        .cached_call_exclusive(b"k", Expiration::Never, SECOND, || {
            Err(backlite::Error::new(ErrorKind::CallbackFailed, "boom"))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CallbackFailed);
    assert!(!s.contains(b"k").unwrap());
    let v = s
        .cached_call_exclusive(b"k", Expiration::Never, SECOND, || Ok(b"ok".to_vec()))
        .unwrap();
    assert_eq!(v, b"ok");
}

#[test]
fn a_waiter_times_out_with_busy() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let _held = acquire(&s, b"k", 60 * SECOND);
    let err = s
        .cached_call_exclusive(
            b"k",
            Expiration::Never,
            Duration::from_millis(30),
            || unreachable!(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Busy);
}

#[test]
fn a_lease_outlives_its_storage_handle() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let lease = acquire(&s, b"k", SECOND);
    drop(s);
    lease.fulfill(b"v", Expiration::Never).unwrap();
    let s = Storage::open(dir.path().join("c.db"), &Options::new()).unwrap();
    assert_eq!(get(&s, "k"), Some(b"v".to_vec()));
}
