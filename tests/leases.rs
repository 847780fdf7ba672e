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
        LeaseOutcome::Held(_) => panic!("unexpected held"),
    }
}

fn is_held(s: &Arc<Storage>, key: &[u8]) -> bool {
    matches!(
        Lease::try_acquire(s, key, SECOND).unwrap(),
        LeaseOutcome::Held(_)
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
    assert!(is_held(&s, b"k"));
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
    assert!(is_held(&s, b"k"));
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

/// How an owner names its host and PID namespace: `"<boot id>/<pid namespace inode>"`.
fn host_and_namespace() -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    format!("{}/{ns}", boot.trim())
}

/// A lease row of a process that has exited, named with `boot`.
fn lease_of_a_dead_process(dir: &std::path::Path, boot: &str) {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let c = rusqlite::Connection::open(dir.join("cache.db")).unwrap();
    let start = std::fs::read_to_string("/proc/self/stat").unwrap();
    let start: i64 = start[start.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    c.execute(
        "INSERT INTO leases VALUES (x'6b', 1, ?1, ?2, ?3, 9223372036854775807)",
        rusqlite::params![pid, start, boot],
    )
    .unwrap();
}

#[test]
fn a_lease_of_a_dead_process_in_this_pid_namespace_is_taken_over_before_its_deadline() {
    let (dir, s, _) = with_clock();
    lease_of_a_dead_process(dir.path(), &host_and_namespace());
    let _taken = acquire(&s, b"k", SECOND);
}

#[test]
fn a_lease_of_another_pid_namespace_or_an_unknown_one_waits_for_its_deadline() {
    let boot = host_and_namespace();
    let (boot_id, _) = boot.split_once('/').unwrap();
    // Another namespace's pids mean nothing here; 0.1 rows carry the boot id alone.
    for other in [format!("{boot_id}/1"), boot_id.to_string()] {
        let (dir, s, _) = with_clock();
        lease_of_a_dead_process(dir.path(), &other);
        assert!(is_held(&s, b"k"), "owner {other:?} was taken for dead");
    }
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
    assert!(is_held(&s, b"k"));
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
fn a_waiter_times_out_with_lease_held_and_the_holders_time_left() {
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
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);
    let left = err.lease_time_left().unwrap();
    assert!(left > 50 * SECOND && left <= 60 * SECOND, "{left:?}");
    assert_eq!(s.get(b"other").unwrap(), None); // not a lease error
}

/// `Duration::MAX`, a Rust program's "wait as long as it takes", waits for the holder
/// and computes or returns its value: it overflowed the call's deadline (an `Instant`)
/// and panicked before anything was looked up.
#[test]
fn a_wait_timeout_of_duration_max_waits_as_long_as_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let computed = s
        .cached_call_exclusive(b"k", Expiration::Never, Duration::MAX, || Ok(b"v".to_vec()))
        .unwrap();
    assert_eq!(computed, b"v");
    let held = acquire(&s, b"held", SECOND);
    let waiter = {
        let s = s.clone();
        std::thread::spawn(move || {
            s.cached_call_exclusive(b"held", Expiration::Never, Duration::MAX, || {
                Ok(b"not computed".to_vec())
            })
        })
    };
    held.fulfill(b"the holder's", Expiration::Never).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), b"the holder's");
}

/// A wait for another owner's result asks `interrupted` between its looks, and ends
/// with the error it returns: nothing computed, the key still the holder's, which
/// stores its own value after. (Python's Ctrl-C reaches a waiting caller so.)
#[test]
fn an_interrupted_wait_for_another_owner_ends_with_the_interruption() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &Options::new()).unwrap());
    let held = acquire(&s, b"k", SECOND);
    let asked = AtomicUsize::new(0);
    let e = s
        .cached_call_exclusive_interruptible(
            b"k",
            Expiration::Never,
            Duration::MAX,
            || panic!("computed while another owner holds the key"),
            || match asked.fetch_add(1, Ordering::SeqCst) {
                0..=2 => Ok(()),
                _ => Err(backlite::Error::new(
                    ErrorKind::CallbackFailed,
                    "interrupted",
                )),
            },
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CallbackFailed);
    assert_eq!(asked.load(Ordering::SeqCst), 4);
    assert!(is_held(&s, b"k"));
    held.fulfill(b"the holder's", Expiration::Never).unwrap();
    assert_eq!(get(&s, "k"), Some(b"the holder's".to_vec()));
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

fn open_with_lease(path: &std::path::Path, lease: Duration) -> Arc<Storage> {
    let mut o = Options::new();
    o.set_lease_duration(lease).unwrap();
    Arc::new(Storage::open(path, &o).unwrap())
}

#[test]
fn a_compute_outliving_the_lease_length_is_computed_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    // Two handles, as two processes would have: the waiter polls the file.
    let (a, b) = (
        open_with_lease(&path, Duration::from_millis(300)),
        open_with_lease(&path, Duration::from_millis(300)),
    );
    let computes = Arc::new(AtomicUsize::new(0));
    let (started_tx, started) = std::sync::mpsc::channel();
    let holder = {
        let computes = computes.clone();
        std::thread::spawn(move || {
            a.cached_call_exclusive(b"slow", Expiration::Never, 30 * SECOND, || {
                computes.fetch_add(1, Ordering::SeqCst);
                started_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(1500)); // 5 lease lengths
                Ok(b"first".to_vec())
            })
            .unwrap()
        })
    };
    started.recv().unwrap();
    let waited = b
        .cached_call_exclusive(b"slow", Expiration::Never, 30 * SECOND, || {
            computes.fetch_add(1, Ordering::SeqCst);
            Ok(b"second".to_vec())
        })
        .unwrap();
    assert_eq!(holder.join().unwrap(), b"first");
    assert_eq!(waited, b"first");
    assert_eq!(computes.load(Ordering::SeqCst), 1);
}

#[test]
fn a_wait_counts_one_miss_however_many_looks_it_takes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let holder = Arc::new(Storage::open(&path, &Options::new()).unwrap());
    let waiter = Arc::new(Storage::open(&path, &Options::new()).unwrap());
    let held = acquire(&holder, b"k", 60 * SECOND);
    let err = waiter
        .cached_call_exclusive(b"k", NEVER, Duration::from_millis(300), || unreachable!())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld);
    assert_eq!(waiter.stats().unwrap().misses, 1);
    // A wait that ends with the holder's value: still one miss, and the value is a hit.
    let fulfil = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        held.fulfill(b"v", NEVER).unwrap();
    });
    let v = waiter
        .cached_call_exclusive(b"k", NEVER, 30 * SECOND, || unreachable!())
        .unwrap();
    fulfil.join().unwrap();
    assert_eq!(v, b"v");
    let stats = waiter.stats().unwrap();
    assert_eq!((stats.misses, stats.hits), (2, 1));
}

#[test]
fn lease_steps_count_one_miss_back_off_and_renew_the_lease_they_give() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let a = open_with_lease(&path, Duration::from_millis(200));
    let b = open_with_lease(&path, Duration::from_millis(200));
    let lease = match a.lease_step(b"k", 0).unwrap() {
        LeaseOutcome::Acquired(l) => l,
        _ => panic!("expected the lease"),
    };
    let mut pauses = Vec::new();
    for attempt in 0..8 {
        let err = match b.lease_step(b"k", attempt) {
            Err(e) => e,
            Ok(_) => panic!("step {attempt}: the renewed lease was taken"),
        };
        assert_eq!(err.kind(), ErrorKind::LeaseHeld);
        assert!(err.lease_time_left().unwrap() <= Duration::from_millis(200));
        pauses.push(err.retry_in().unwrap());
        std::thread::sleep(Duration::from_millis(100)); // 8 x 100 ms: 4 lease lengths
    }
    assert_eq!(pauses[0], Duration::from_millis(1));
    assert!(pauses.windows(2).all(|w| w[0] <= w[1]), "{pauses:?}");
    assert!(pauses.iter().all(|p| *p <= Duration::from_millis(50)));
    lease.fulfill(b"v", NEVER).unwrap(); // never lost: renewed all along
    match b.lease_step(b"k", 8).unwrap() {
        LeaseOutcome::Hit(v, _) => assert_eq!(v, b"v"),
        _ => panic!("expected a hit"),
    }
    assert_eq!(b.stats().unwrap().misses, 1);
}

/// Runs inside `unshare --pid` for the test below: holds the key for 1.5 s.
#[test]
fn pid_namespace_holder() {
    let Ok(path) = std::env::var("BACKLITE_TEST_NAMESPACE_HOLDER") else {
        return; // only as the child of the test below
    };
    let s = Arc::new(Storage::open(&path, &Options::new()).unwrap());
    let v = s
        .cached_call_exclusive(b"k", NEVER, SECOND, || {
            std::fs::write(format!("{path}.started"), b"").unwrap();
            std::thread::sleep(Duration::from_millis(1500));
            Ok(b"from the namespace".to_vec())
        })
        .unwrap();
    assert_eq!(v, b"from the namespace");
}

#[test]
fn a_holder_in_another_pid_namespace_is_waited_for_not_taken_for_dead() {
    if !std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        eprintln!("SKIP: `unshare --pid --fork --mount-proc` is not permitted here (needs root)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Arc::new(Storage::open(&path, &Options::new()).unwrap());
    let mut holder = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc"])
        .arg(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pid_namespace_holder",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BACKLITE_TEST_NAMESPACE_HOLDER", &path)
        .spawn()
        .unwrap();
    let started = dir.path().join("c.db.started");
    while !started.exists() {
        assert!(
            holder.try_wait().unwrap().is_none(),
            "the holder exited early"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(400));
    let computes = AtomicUsize::new(0);
    let v = s
        .cached_call_exclusive(b"k", NEVER, 30 * SECOND, || {
            computes.fetch_add(1, Ordering::SeqCst);
            Ok(b"from outside".to_vec())
        })
        .unwrap();
    assert!(
        holder.wait().unwrap().success(),
        "the holder's compute failed"
    );
    assert_eq!(computes.load(Ordering::SeqCst), 0);
    assert_eq!(v, b"from the namespace");
}
