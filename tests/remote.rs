//! The remote tier against real redis-server processes (each test starts its own on a
//! free loopback port): read-through and write-through between "machines" (handles or
//! processes with different local files), each mode, expiry, clear, version tags, long
//! keys and values, AUTH, a server killed / paused / restarted / answering garbage, and
//! single flight across processes.

mod support;

use backlite::{ErrorKind, Expiration, Lease, LeaseOutcome, Options, RemoteMode, Storage};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::children::Machines;
use support::machine::{get, machine, remote_options};
use support::proxy::HoldingProxy;
use support::redis::{free_port, RedisServer};

const NEVER: Expiration = Expiration::Never;

/// Write-behind options through `proxy`, with a timeout that its held replies do not
/// reach.
fn held_write_behind(proxy: &HoldingProxy) -> Options {
    let mut o = remote_options(&proxy.url());
    o.set_remote_timeout(Duration::from_secs(20)).unwrap();
    o.set_remote_mode(RemoteMode::WriteBehind);
    o
}

/// A server, a proxy that can hold its replies, and two machines: `other` on the
/// server, `wb` writing behind through the proxy (dropped in this order, `wb` first).
fn held_write_behind_beside_another() -> (
    RedisServer,
    HoldingProxy,
    tempfile::TempDir,
    Storage,
    Storage,
) {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    let wb = machine(&dir, "wb.db", &held_write_behind(&proxy));
    (server, proxy, dir, other, wb)
}

#[test]
fn a_value_set_on_one_machine_is_read_through_on_another() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    assert!(a.remote_stats().unwrap().connected);
    a.set(b"k", b"from a", NEVER).unwrap();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"from a"[..]));
    let st = b.remote_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.errors), (1, 0, 0));
    // Stored locally: the next hit does not ask the remote.
    assert!(b.contains(b"k").unwrap());
    get(&b, b"k");
    assert_eq!(b.remote_stats().unwrap().hits, 1);
    // Delete reaches both tiers.
    assert!(a.delete(b"k").unwrap());
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k"), None);
    assert_eq!(c.remote_stats().unwrap().misses, 1);
    // Without a remote, nothing changes.
    let plain = machine(&dir, "plain.db", &Options::new());
    assert!(plain.remote_stats().is_none());
}

/// The two-phase lease API, and the bindings' async memoisers built on its steps, share
/// what they compute: a fulfilled lease's value reaches the remote as a set's does (no
/// remote lease is taken: two machines may compute a key at once).
#[test]
fn a_fulfilled_leases_value_is_read_through_on_another_machine() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = Arc::new(machine(&dir, "a.db", &o));
    let b = Arc::new(machine(&dir, "b.db", &o));
    let LeaseOutcome::Acquired(lease) =
        Lease::try_acquire(&a, b"k", Duration::from_secs(30)).unwrap()
    else {
        panic!("no lease on a miss");
    };
    let minute = Duration::from_secs(60);
    lease
        .fulfill(b"computed on a", Expiration::After(minute))
        .unwrap();
    assert_eq!(a.remote_stats().unwrap().writes, 1);
    let (value, left) = b.get(b"k").unwrap().expect("read through from the remote");
    assert_eq!(value, b"computed on a");
    assert!(left.is_some_and(|l| l <= minute), "{left:?}");
    // The async memoisers' step: its lease's value too.
    let LeaseOutcome::Acquired(lease) = b.lease_step(b"j", 0).unwrap() else {
        panic!("no lease on a miss");
    };
    lease.fulfill(b"computed on b", NEVER).unwrap();
    match a.lease_step(b"j", 0).unwrap() {
        LeaseOutcome::Hit(v, None) => assert_eq!(v, b"computed on b"),
        _ => panic!("a computes again what b stored"),
    }
    // A lost lease stored nothing, and sends nothing.
    let LeaseOutcome::Acquired(stale) =
        Lease::try_acquire(&a, b"l", Duration::from_millis(1)).unwrap()
    else {
        panic!("no lease on a miss");
    };
    // Taken over once its 1 ms deadline has passed.
    let give_up = Instant::now() + Duration::from_secs(10);
    let fresh = loop {
        match Lease::try_acquire(&a, b"l", Duration::from_secs(30)).unwrap() {
            LeaseOutcome::Acquired(fresh) => break fresh,
            LeaseOutcome::Held(_) => assert!(Instant::now() < give_up, "never taken over"),
            LeaseOutcome::Hit(..) => panic!("the stale lease stored a value"),
        }
    };
    let writes = a.remote_stats().unwrap().writes;
    assert_eq!(
        stale.fulfill(b"stale", NEVER).unwrap_err().kind(),
        ErrorKind::LeaseLost
    );
    assert_eq!(a.remote_stats().unwrap().writes, writes);
    fresh.abandon();
    assert_eq!(get(&b, b"l"), None);
}

/// A server on a Unix socket whose path holds a '#' and a '?', written %23 and %3F in
/// the URL (bare, they are refused: the client would drop the rest and connect to
/// another path).
#[test]
fn a_remote_named_by_an_ipv6_address_is_read_through() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!(
            "SKIPPED a_remote_named_by_an_ipv6_address_is_read_through: no IPv6 loopback here"
        );
        return;
    }
    let server = RedisServer::with_args(&["--bind", "127.0.0.1", "::1"]);
    let url = server.url().replace("127.0.0.1", "[::1]");
    let dir = tempfile::tempdir().unwrap();
    let reader = machine(&dir, "reader.db", &remote_options(&url));
    read_through(&dir, &url, &reader, b"k", b"over IPv6");
    assert!(reader.remote_stats().unwrap().connected);
}

#[test]
fn a_unix_socket_is_reached_at_its_decoded_path() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("a#b?c.sock");
    let socket = socket.to_str().unwrap();
    let _server = RedisServer::with_args(&["--unixsocket", socket]);
    let mut o = Options::new();
    for bare in [socket.to_string(), socket.replace('#', "%23")] {
        assert_eq!(
            o.set_remote(Some(&format!("redis+unix://{bare}")))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidArgument
        );
    }
    let o = remote_options(&format!(
        "redis+unix://{}",
        socket.replace('#', "%23").replace('?', "%3F")
    ));
    let dir = tempfile::tempdir().unwrap();
    let one = machine(&dir, "one.db", &o);
    one.set(b"k", b"over the socket", NEVER).unwrap();
    let two = machine(&dir, "two.db", &o);
    assert_eq!(get(&two, b"k").as_deref(), Some(&b"over the socket"[..]));
    assert_eq!(two.remote_stats().unwrap().hits, 1);
}

/// A server on a Unix socket is given its database and password in the query (the
/// client crate's only way there); they never show in the URL the handle reports.
#[test]
fn a_unix_socket_takes_its_database_and_password_from_the_query() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("auth.sock");
    let socket = socket.to_str().unwrap();
    let server = RedisServer::with_args(&["--unixsocket", socket, "--requirepass", "s3cret"]);
    let url = format!("redis+unix://{socket}?db=3&pass=s3cret");
    let o = remote_options(&url);
    assert!(!o.remote().unwrap().contains("s3cret"));
    let dir = tempfile::tempdir().unwrap();
    let one = machine(&dir, "one.db", &o);
    one.set(b"k", b"behind a password", NEVER).unwrap();
    let two = machine(&dir, "two.db", &o);
    assert_eq!(get(&two, b"k").as_deref(), Some(&b"behind a password"[..]));
    let size = |db: &str| server.cli(&["--no-auth-warning", "-a", "s3cret", "-n", db, "DBSIZE"]);
    assert_ne!(size("3").trim(), "0");
    assert_eq!(size("0").trim(), "0");
}

/// Two handles of one process on one file, on two databases of one socket: the
/// delete one could not send is owed to its own database. The URL as shown masks the
/// query, `?db=` with it, so the other handle's next call paid the debt in its own
/// database, and a third machine on the first read the deleted value.
#[test]
fn a_write_lost_in_one_database_of_a_socket_is_undone_there_not_in_another() {
    let sockets = tempfile::tempdir().unwrap();
    let socket = sockets.path().join("dbs.sock");
    let socket = socket.to_str().unwrap();
    let server = RedisServer::with_args(&["--unixsocket", socket]);
    let on_db = |db: u32| remote_options(&format!("redis+unix://{socket}?db={db}"));
    let dir = tempfile::tempdir().unwrap();
    let one = machine(&dir, "shared.db", &on_db(1));
    let two = machine(&dir, "shared.db", &on_db(2));
    one.set(b"k", b"old", NEVER).unwrap();
    // Writes wait while reads go on: the delete times out, and is owed to database 1.
    server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    one.delete(b"k").unwrap();
    server.cli(&["CLIENT", "UNPAUSE"]);
    assert_eq!(one.remote_stats().unwrap().errors, 1);
    assert_eq!(get(&two, b"elsewhere"), None);
    until_connected(&one);
    let third = machine(&dir, "third.db", &on_db(1));
    assert_eq!(get(&third, b"k"), None, "the deleted value was read");
}

/// A read-only handle beside a read-write one on the same file: the delete the
/// read-write handle could not send is owed by both, so the read-only one does not read
/// the deleted value back from the remote (and store it in the file again).
#[test]
fn a_read_only_handle_does_not_read_back_a_delete_its_neighbour_lost() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    let rw = machine(&dir, "shared.db", &o);
    o.set_remote_mode(RemoteMode::ReadOnly);
    let ro = machine(&dir, "shared.db", &o);
    rw.set(b"k", b"old", NEVER).unwrap();
    // Writes wait while reads go on: the delete times out; the remote keeps "old".
    server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    rw.delete(b"k").unwrap();
    server.cli(&["CLIENT", "UNPAUSE"]);
    assert_eq!(rw.remote_stats().unwrap().errors, 1);
    assert_eq!(
        server.cli(&["EXISTS", &remote_key(&server, "backlite", "", "k")]),
        "1"
    );
    assert_eq!(get(&ro, b"k"), None, "the deleted value was read back");
    assert_eq!(ro.remote_stats().unwrap().skipped, 1);
}

/// Two handles on one file naming one server in two ways (a trailing '/', the default
/// database, the scheme's case, `localhost`): the delete one could not send is owed by
/// both. The debts were kept by the URL as written, so the other handle read the
/// deleted value back from the remote (and stored it in the file again).
#[test]
fn a_delete_lost_under_one_spelling_of_the_url_is_not_read_back_under_another() {
    let server = RedisServer::start();
    let p = server.port;
    for (i, spelling) in [
        format!("redis://127.0.0.1:{p}/"),
        format!("redis://127.0.0.1:{p}/0"),
        format!("REDIS://127.0.0.1:{p}"),
        format!("redis://localhost:{p}"),
    ]
    .iter()
    .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        let handle = |url: &str| machine(&dir, "shared.db", &remote_options(url));
        let (a, b) = (handle(&server.url()), handle(spelling));
        let key = format!("k{i}");
        a.set(key.as_bytes(), b"old", NEVER).unwrap();
        server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
        a.delete(key.as_bytes()).unwrap();
        server.cli(&["CLIENT", "UNPAUSE"]);
        assert_eq!(a.remote_stats().unwrap().errors, 1, "{spelling}");
        assert_eq!(get(&b, key.as_bytes()), None, "{spelling}: read back");
        // b paid the debt: the older value is gone from the remote too.
        let remote = remote_key(&server, "backlite", "", &key);
        assert_eq!(server.cli(&["EXISTS", &remote]), "0", "{spelling}");
    }
}

#[test]
fn read_only_reads_through_and_never_writes() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    let ro = machine(&dir, "ro.db", &o);
    rw.set(b"shared", b"1", NEVER).unwrap();
    assert_eq!(get(&ro, b"shared").as_deref(), Some(&b"1"[..]));
    ro.set(b"mine", b"2", NEVER).unwrap();
    ro.delete(b"shared").unwrap();
    ro.clear().unwrap();
    assert_eq!(get(&rw, b"mine"), None);
    assert_eq!(get(&rw, b"shared").as_deref(), Some(&b"1"[..]));
    assert_eq!(ro.remote_stats().unwrap().writes, 0);
}

#[test]
fn write_behind_sends_from_a_queue_and_drains_on_close() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::WriteBehind);
    let wb = machine(&dir, "wb.db", &o);
    for i in 0..100 {
        wb.set(format!("k{i}").as_bytes(), b"v", NEVER).unwrap();
    }
    wb.delete(b"k7").unwrap();
    drop(wb); // sends what is queued
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    assert_eq!(get(&other, b"k99").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&other, b"k7"), None);
}

/// After another client's clear, the write-behind queue writes in the live generation
/// once its handle knows it: a set queued then is read by the others, a delete queued
/// even before removes what was set after the clear. A set queued while the handle still
/// knew only the dead generation is not sent (it may predate the clear: a miss is safe,
/// a value from before the clear is not).
#[test]
fn write_behind_after_another_clients_clear_reaches_the_live_generation() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let mut behind = remote_options(&server.url());
    behind.set_remote_mode(RemoteMode::WriteBehind);
    let wb = machine(&dir, "wb.db", &behind);
    let b = machine(&dir, "b.db", &o);
    let dead = format!("{{{:x}:", generation(&server, "backlite", ""));
    b.clear().unwrap();
    b.set(b"gone", b"set after the clear", NEVER).unwrap();
    wb.set(b"unknown", b"queued in the dead generation", NEVER)
        .unwrap();
    wb.delete(b"gone").unwrap();
    // A read-through teaches wb the live generation.
    assert_eq!(get(&wb, b"k"), None);
    wb.set(b"k", b"from behind", NEVER).unwrap();
    drop(wb); // sends what is queued
    let c = machine(&dir, "c.db", &o);
    assert_eq!(
        get(&c, b"k").as_deref(),
        Some(&b"from behind"[..]),
        "the queued set went where nobody reads"
    );
    assert_eq!(get(&c, b"gone"), None, "the queued delete missed");
    assert_eq!(
        get(&c, b"unknown"),
        None,
        "a set of the dead generation was sent"
    );
    // What went to the dead generation first was unlinked.
    let keys = server.cli(&["--scan", "--pattern", "backlite::d*"]);
    assert!(!keys.contains(&dead), "left in the dead generation: {keys}");
}

/// A set queued before its own handle's clear never appears after it, to that handle
/// or any other client. The write-behind thread races the clear: rounds cover both
/// orders.
#[test]
fn write_behind_set_before_its_own_clear_never_outlives_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut behind = remote_options(&server.url());
    behind.set_remote_mode(RemoteMode::WriteBehind);
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    for round in 0..20 {
        let key = format!("k{round}");
        let wb = machine(&dir, "wb.db", &behind);
        wb.set(key.as_bytes(), b"before the clear", NEVER).unwrap();
        wb.clear().unwrap();
        assert_eq!(get(&wb, key.as_bytes()), None, "round {round}: own read");
        drop(wb); // sends what is queued
        assert_eq!(get(&other, key.as_bytes()), None, "round {round}");
    }
}

/// A key whose delete (or expired set) waits in the write-behind queue is not read
/// back from the remote meanwhile, by its handle or another handle of the process on
/// the file: the remote still holds the value the delete removes. Before, the get read
/// it back (and stored it in the file again). The queue's thread is held on an earlier
/// write's reply, so the queued writes wait, deterministically.
#[test]
fn a_key_with_a_queued_write_is_not_read_back_from_the_remote() {
    let (server, proxy, dir, other, wb) = held_write_behind_beside_another();
    let mut same_file = held_write_behind(&proxy);
    same_file.set_remote_mode(RemoteMode::ReadWrite);
    let beside = machine(&dir, "wb.db", &same_file);
    other.set(b"deleted", b"older value", NEVER).unwrap();
    other.set(b"expired", b"older value", NEVER).unwrap();
    proxy.arm(b"SET");
    wb.set(b"first", b"v", NEVER).unwrap();
    proxy.wait_until(|h| h.waiting == 1); // the thread waits for this reply
    wb.delete(b"deleted").unwrap();
    wb.set(b"expired", b"new value", Expiration::After(Duration::ZERO))
        .unwrap();
    for key in [&b"deleted"[..], b"expired"] {
        assert_eq!(get(&wb, key), None, "{}", String::from_utf8_lossy(key));
        assert_eq!(get(&beside, key), None, "{}", String::from_utf8_lossy(key));
        assert!(!wb.contains(key).unwrap());
    }
    assert_eq!(wb.remote_stats().unwrap().errors, 0);
    proxy.release();
    drop(beside);
    drop(wb); // sends what is queued
    let third = machine(&dir, "third.db", &remote_options(&server.url()));
    assert_eq!(get(&third, b"first").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&third, b"deleted"), None);
    assert_eq!(get(&third, b"expired"), None);
}

/// A set queued before another client's clear never appears after it: neither when
/// the clear lands between the queueing and the send (a race: rounds cover it), nor
/// when the handle has not yet seen a clear made before the set (deterministic).
#[test]
fn write_behind_set_before_another_clients_clear_never_outlives_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let mut behind = remote_options(&server.url());
    behind.set_remote_mode(RemoteMode::WriteBehind);
    let other = machine(&dir, "other.db", &o);
    for round in 0..20 {
        let key = format!("k{round}");
        let wb = machine(&dir, "wb.db", &behind);
        wb.set(key.as_bytes(), b"before the clear", NEVER).unwrap();
        other.clear().unwrap();
        drop(wb); // sends what is queued
        assert_eq!(get(&other, key.as_bytes()), None, "round {round}");
    }
    let wb = machine(&dir, "wb.db", &behind);
    other.clear().unwrap();
    wb.set(b"stale", b"queued in the dead generation", NEVER)
        .unwrap();
    drop(wb);
    assert_eq!(get(&other, b"stale"), None);
}

/// The write-behind thread learns generations from replies that may come late: one
/// read before another client's clear must not set the handle back to that older
/// generation after the handle has read the newer one (a set queued then would be
/// taken for one queued before the clear, and dropped). The thread's replies are held
/// by a proxy so that the order is built, not hoped for.
#[test]
fn the_known_generation_never_goes_back_to_an_older_one() {
    let (_server, proxy, _dir, other, wb) = held_write_behind_beside_another();
    other.clear().unwrap(); // generation 1, not known to wb yet
    proxy.arm(b"SET");
    wb.set(b"queued", b"in the dead generation", NEVER).unwrap();
    // The thread's round trip read generation 1; its reply is held.
    proxy.wait_until(|h| h.waiting == 1);
    other.clear().unwrap(); // generation 2
    assert_eq!(get(&wb, b"k"), None); // wb's reader learns generation 2
                                      // The thread gets generation 1 and sends its writes again: it has learned what it
                                      // will learn from that reply.
    proxy.permit(1);
    proxy.wait_until(|h| h.requests == 2 && h.waiting == 1);
    wb.set(b"after", b"set in the live generation", NEVER)
        .unwrap();
    proxy.release();
    drop(wb); // sends what is queued
    assert_eq!(
        get(&other, b"after").as_deref(),
        Some(&b"set in the live generation"[..])
    );
    assert_eq!(get(&other, b"queued"), None);
}

/// A handle's clear wins over an older generation its other thread learns meanwhile:
/// another client clears (generation 1) while this handle clears (generation 2), and
/// the handle's reader, whose look-up ran before that clear, learns generation 1 before
/// the clear's reply comes. After the clear returns, the handle must know generation 2
/// (or newer): a set made then is a set after the clear, and must reach the others
/// (it was taken for one queued before the clear, and sent as an unlink). Both threads'
/// replies are held by a proxy so that the order is built, not hoped for.
#[test]
fn a_clear_is_never_undone_by_an_older_generation_learned_meanwhile() {
    let (_server, proxy, _dir, other, wb) = held_write_behind_beside_another();
    other.clear().unwrap(); // generation 1, not known to wb yet
    std::thread::scope(|s| {
        // The reader's look-up reads generation 1; its reply is held.
        proxy.arm(b"PTTL");
        let reader = s.spawn(|| get(&wb, b"k"));
        proxy.wait_until(|h| h.waiting == 1);
        // wb's clear reaches the server after it; its reply is held too.
        proxy.arm_nth(1, b"PTTL", false);
        let clear = s.spawn(|| wb.clear().unwrap());
        proxy.wait_until_nth(1, |h| h.waiting == 1);
        // The reader learns generation 1 and looks again: that second look-up
        // reads wb's generation; its reply stays held until the clear has returned.
        proxy.permit(1);
        proxy.wait_until(|h| h.requests == 2 && h.waiting == 1);
        proxy.permit_nth(1, usize::MAX / 2);
        clear.join().unwrap();
        wb.set(b"after", b"set after the clear", NEVER).unwrap();
        proxy.release();
        assert_eq!(reader.join().unwrap(), None);
    });
    drop(wb); // sends what is queued
    assert_eq!(
        get(&other, b"after").as_deref(),
        Some(&b"set after the clear"[..]),
        "a set made after the handle's own clear was lost"
    );
}

/// A look-up that meets two clears by other clients (one before it, one between its two
/// round trips) is a miss, and counted as one: it was counted nowhere (hits, misses,
/// errors and skipped all stayed as they were).
#[test]
fn a_look_up_that_meets_two_clears_is_counted_as_a_miss() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let other = machine(&dir, "other.db", &o);
    let mut slow = remote_options(&proxy.url());
    slow.set_remote_timeout(Duration::from_secs(20)).unwrap();
    let slow = machine(&dir, "slow.db", &slow);
    other.clear().unwrap(); // not known to `slow` yet
    std::thread::scope(|s| {
        // The first look-up reads that clear's generation; its reply is held while
        // another clear comes, which the second look-up then reads.
        proxy.arm(b"PTTL");
        let reader = s.spawn(|| get(&slow, b"k"));
        proxy.wait_until(|h| h.waiting == 1);
        other.clear().unwrap();
        proxy.release();
        assert_eq!(reader.join().unwrap(), None);
    });
    let st = slow.remote_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.errors, st.skipped), (0, 1, 0, 0));
}

/// A clear's reclaim unlinks older generations only: another client's clear made after
/// it (while its reply was held here) and the values set since stay readable.
#[test]
fn a_clears_reclaim_leaves_a_newer_generation_alone() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let other = machine(&dir, "other.db", &o);
    let mut slow = remote_options(&proxy.url());
    slow.set_remote_timeout(Duration::from_secs(20)).unwrap();
    let slow = machine(&dir, "slow.db", &slow);
    proxy.arm_nth(0, b"PTTL", false);
    std::thread::scope(|s| {
        let clear = s.spawn(|| slow.clear().unwrap());
        proxy.wait_until(|h| h.waiting == 1);
        other.clear().unwrap();
        other.set(b"k", b"after both clears", NEVER).unwrap();
        proxy.release();
        clear.join().unwrap();
    });
    assert_eq!(
        get(&machine(&dir, "c.db", &o), b"k").as_deref(),
        Some(&b"after both clears"[..])
    );
}

/// A server that lost the generation key (an eviction, a restart without persistence,
/// an older snapshot) gets a new generation, above every earlier one, from the first
/// handle that finds it missing: the handles follow it (a handle that kept its older
/// generation would write where nobody reads), and the next clear still makes a
/// generation above every earlier one, so no number is used twice.
#[test]
fn a_lost_generation_key_is_followed_and_never_reused() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let mut behind = remote_options(&server.url());
    behind.set_remote_mode(RemoteMode::WriteBehind);
    let wb = machine(&dir, "wb.db", &behind);
    wb.clear().unwrap();
    let gen_key = server.cli(&["--scan", "--pattern", "backlite:*gen"]);
    let gen_key = gen_key.trim();
    let first: u64 = server.cli(&["GET", gen_key]).trim().parse().unwrap();
    assert!(first > 0);
    assert_eq!(server.cli(&["DEL", gen_key]), "1");
    // A read teaches wb the loss; a set queued after it is sent as it is.
    assert_eq!(get(&wb, b"other"), None);
    wb.set(b"k", b"after the loss", NEVER).unwrap();
    drop(wb); // sends what is queued
    let a = machine(&dir, "a.db", &o);
    assert_eq!(
        get(&a, b"k").as_deref(),
        Some(&b"after the loss"[..]),
        "the set went where nobody reads"
    );
    a.clear().unwrap();
    let second: u64 = server.cli(&["GET", gen_key]).trim().parse().unwrap();
    assert!(second > first, "generation {second} after {first}");
    assert_eq!(get(&machine(&dir, "c.db", &o), b"k"), None);
    assert_eq!(a.remote_stats().unwrap().errors, 0);
}

#[test]
fn expiry_travels_with_the_value_and_the_remote_forgets_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    // Long enough to outlive the calls below and two redis-cli runs on a loaded
    // machine (300 ms once expired before its PTTL was read, at load 15).
    a.set(b"soon", b"x", Expiration::After(Duration::from_secs(2)))
        .unwrap();
    a.set(b"later", b"y", Expiration::After(Duration::from_secs(60)))
        .unwrap();
    let (_, left) = b.get(b"later").unwrap().unwrap();
    let left = left.unwrap();
    assert!(left <= Duration::from_secs(60) && left > Duration::from_secs(50));
    // Redis itself holds the expiry (PX), so the remote forgets the key.
    let pttl: i64 = server
        .cli(&["PTTL", &remote_key(&server, "backlite", "", "soon")])
        .parse()
        .unwrap();
    assert!(pttl > 0 && pttl <= 2000, "pttl {pttl}");
    let give_up = Instant::now() + Duration::from_secs(10);
    while server.cli(&["EXISTS", &remote_key(&server, "backlite", "", "soon")]) != "0" {
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(get(&b, b"soon"), None);
    // Expiration 0 removes the remote value too.
    a.set(b"later", b"z", Expiration::After(Duration::ZERO))
        .unwrap();
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"later"), None);
}

/// The live generation of namespace `ns` and version tag `tag` (a handle made it).
fn generation(server: &RedisServer, ns: &str, tag: &str) -> u64 {
    let found = server.cli(&["GET", &format!("{ns}:{tag}:gen")]);
    found
        .parse()
        .unwrap_or_else(|_| panic!("generation {found:?}"))
}

/// The Redis key of a short key in the live generation.
fn remote_key(server: &RedisServer, ns: &str, tag: &str, key: &str) -> String {
    let gen = generation(server, ns, tag);
    format!("{ns}:{tag}:d{{{gen:x}:{key}}}")
}

#[test]
fn clear_hides_every_earlier_entry_from_every_client_and_reclaims_memory() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    for i in 0..50 {
        a.set(format!("k{i}").as_bytes(), b"old", NEVER).unwrap();
    }
    assert_eq!(get(&b, b"k1").as_deref(), Some(&b"old"[..]));
    let old = format!("{{{:x}:", generation(&server, "backlite", ""));
    b.clear().unwrap();
    // a never heard of the clear, but its next miss sees no old entry.
    a.delete(b"k2").unwrap(); // local miss from here
    let fresh = machine(&dir, "fresh.db", &o);
    for i in 0..50 {
        assert_eq!(get(&fresh, format!("k{i}").as_bytes()), None, "k{i}");
    }
    // Written after the clear (by a client that learnt the new generation): visible.
    assert_eq!(get(&a, b"k2"), None);
    a.set(b"new", b"1", NEVER).unwrap();
    assert_eq!(get(&fresh, b"new").as_deref(), Some(&b"1"[..]));
    // The old generation's keys are gone from the server.
    let keys = server.cli(&["--scan", "--pattern", "backlite:*"]);
    assert!(!keys.contains(&old), "left behind: {keys}");
}

/// A handle that has not read since another client's clear still writes to the live
/// generation: its delete removes a value set after the clear, and what it sets is what
/// the others read. Its writes went to the dead generation before (found by a helper's
/// fill tests).
#[test]
fn writes_after_another_clients_clear_reach_the_live_generation() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    a.set(b"k", b"old", NEVER).unwrap(); // a knows the generation before the clear
    b.clear().unwrap();
    b.set(b"k", b"after the clear", NEVER).unwrap();
    a.delete(b"k").unwrap();
    assert_eq!(
        get(&machine(&dir, "c.db", &o), b"k"),
        None,
        "a's delete missed"
    );

    b.clear().unwrap();
    a.set(b"j", b"from a", NEVER).unwrap();
    assert_eq!(
        get(&machine(&dir, "d.db", &o), b"j").as_deref(),
        Some(&b"from a"[..]),
        "a's set went where nobody reads"
    );

    b.clear().unwrap();
    let entries = [
        backlite::Entry {
            key: b"m1",
            value: b"1",
            expiration: NEVER,
        },
        backlite::Entry {
            key: b"m2",
            value: b"2",
            expiration: NEVER,
        },
    ];
    a.set_many(&entries).unwrap();
    let e = machine(&dir, "e.db", &o);
    assert_eq!(get(&e, b"m1").as_deref(), Some(&b"1"[..]));
    assert_eq!(get(&e, b"m2").as_deref(), Some(&b"2"[..]));
    assert_eq!(a.remote_stats().unwrap().errors, 0);

    // What went to a dead generation first was unlinked: only live keys are left.
    let gen_key = server.cli(&["--scan", "--pattern", "backlite:*gen"]);
    let live = server.cli(&["GET", gen_key.trim()]);
    let keys = server.cli(&["--scan", "--pattern", "backlite:*"]);
    for k in keys.lines().filter(|k| k.contains('{')) {
        let gen = u64::from_str_radix(k.split('{').nth(1).unwrap().split(':').next().unwrap(), 16);
        assert_eq!(
            gen.ok(),
            live.trim().parse().ok(),
            "{k} is in a dead generation"
        );
    }
}

/// A read goes out with the clear generation the handle last saw, and the live one is
/// read in the same round trip: after another client's clear, a value of the old
/// generation is never returned, even one still on the server (as if the clear's
/// reclaim had not reached it yet).
#[test]
fn a_read_after_another_clients_clear_never_returns_a_value_of_the_old_generation() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    b.set(b"k", b"old", NEVER).unwrap();
    b.set(b"seen", b"by a", NEVER).unwrap();
    // a reads through in the generation before the clear, and remembers it.
    assert_eq!(get(&a, b"seen").as_deref(), Some(&b"by a"[..]));
    let old_key = remote_key(&server, "backlite", "", "k");
    assert_eq!(server.cli(&["COPY", &old_key, "stash"]), "1");
    b.clear().unwrap();
    b.set(b"k", b"new", NEVER).unwrap();
    assert_eq!(server.cli(&["RENAME", "stash", &old_key]), "OK");
    assert_eq!(
        get(&a, b"k").as_deref(),
        Some(&b"new"[..]),
        "a read the old generation"
    );
    // Absent from the live generation: a miss, not the old value.
    b.delete(b"k").unwrap();
    assert_eq!(get(&machine(&dir, "c.db", &o), b"k"), None);
    assert_eq!(a.remote_stats().unwrap().errors, 0);
}

#[test]
fn version_tags_and_namespaces_separate_the_key_spaces() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut v1 = remote_options(&server.url());
    v1.set_version_tag("1.0");
    let mut v2 = remote_options(&server.url());
    v2.set_version_tag("2.0");
    let mut other_ns = remote_options(&server.url());
    other_ns.set_version_tag("1.0");
    other_ns.set_remote_namespace("team-b").unwrap();
    let a = machine(&dir, "a.db", &v1);
    a.set(b"k", b"v1", NEVER).unwrap();
    assert_eq!(get(&machine(&dir, "b.db", &v2), b"k"), None);
    assert_eq!(get(&machine(&dir, "c.db", &other_ns), b"k"), None);
    assert_eq!(
        get(&machine(&dir, "d.db", &v1), b"k").as_deref(),
        Some(&b"v1"[..])
    );
    assert_eq!(
        server.cli(&["EXISTS", &remote_key(&server, "backlite", "1.0", "k")]),
        "1"
    );
}

#[test]
fn long_keys_are_hashed_and_values_near_the_size_limit_travel() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_max_size(4 << 20).unwrap();
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    let long_key = vec![b'k'; 10_000];
    let big = vec![7u8; 4 << 20];
    a.set(&long_key, &big, NEVER).unwrap();
    a.set(b"", b"empty key", NEVER).unwrap();
    a.set(b"empty value", b"", NEVER).unwrap();
    assert_eq!(get(&b, &long_key).as_deref(), Some(&big[..]));
    assert_eq!(get(&b, b"").as_deref(), Some(&b"empty key"[..]));
    assert_eq!(get(&b, b"empty value").as_deref(), Some(&b""[..]));
    // A value over max_size is refused and removes the older value on both tiers.
    let err = a
        .set(&long_key, &vec![0u8; (4 << 20) + 1], NEVER)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, &long_key), None);
    let longest = server.cli(&["--scan"]).lines().map(str::len).max().unwrap();
    assert!(longest < 400, "a Redis key of {longest} bytes");
}

#[test]
fn a_foreign_or_damaged_remote_value_is_a_miss() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"the real value", NEVER).unwrap();
    let key = remote_key(&server, "backlite", "", "k");
    server.cli(&[
        "SET",
        &remote_key(&server, "backlite", "", "foreign"),
        "plain text",
    ]);
    server.cli(&["SETRANGE", &key, "30", "X"]); // one byte of the value changed
    let b = machine(&dir, "b.db", &o);
    assert_eq!(get(&b, b"k"), None);
    assert_eq!(get(&b, b"foreign"), None);
    assert_eq!(b.remote_stats().unwrap().misses, 2);
    server.cli(&["LPUSH", &remote_key(&server, "backlite", "", "list"), "x"]);
    assert_eq!(get(&b, b"list"), None); // WRONGTYPE: a miss
}

/// A key of another type than a string under a key of ours (a list, a hash: some other
/// program's) is a foreign value, a miss like a string without our header: the GET's
/// WRONGTYPE failed the look-up's round trip, counted an error and backed the whole
/// remote off, so the next look-ups of every other key were skipped (each look-up of
/// the foreign key did it again). A set replaces it, a delete removes it (NOT_FOUND).
#[test]
fn a_key_of_another_type_is_a_miss_that_backs_nothing_off() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"v", NEVER).unwrap();
    server.cli(&["LPUSH", &remote_key(&server, "backlite", "", "list"), "x"]);
    server.cli(&[
        "HSET",
        &remote_key(&server, "backlite", "", "hash"),
        "f",
        "x",
    ]);
    let b = machine(&dir, "b.db", &o);
    assert_eq!(get(&b, b"list"), None);
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    assert!(!b.contains(b"hash").unwrap());
    let st = b.remote_stats().unwrap();
    assert_eq!(
        (st.hits, st.misses, st.errors, st.skipped, st.connected),
        (1, 2, 0, 0, true),
        "{st:?}"
    );
    assert!(!b.delete(b"hash").unwrap());
    b.set(b"list", b"a value", NEVER).unwrap();
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"list").as_deref(), Some(&b"a value"[..]));
    assert_eq!(get(&c, b"hash"), None);
    assert_eq!(c.remote_stats().unwrap().errors, 0);
}

/// What no holder made under a key's remote lease (another type, some other program's;
/// a string without a deadline, which every lease has) is no lease:
/// cached_call_exclusive takes the key over, computes once, and its value reaches the
/// remote. The list failed the take's script (an error, the whole remote backed off at
/// each call of the key) and the string was a lease held for ever (LEASE_HELD at each
/// call once the wait ran out).
#[test]
fn a_foreign_key_under_a_remote_lease_is_no_lease() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = Arc::new(machine(&dir, "a.db", &o));
    let lease_key = |key: &str| remote_key(&server, "backlite", "", key).replacen(":d{", ":l{", 1);
    server.cli(&["LPUSH", &lease_key("list"), "x"]);
    server.cli(&["SET", &lease_key("string"), "not a token"]);
    for key in ["list", "string"] {
        let value = a
            .cached_call_exclusive(key.as_bytes(), NEVER, Duration::from_secs(2), || {
                Ok(format!("{key} computed").into_bytes())
            })
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert_eq!(value, format!("{key} computed").as_bytes());
    }
    let st = a.remote_stats().unwrap();
    assert_eq!(
        (st.errors, st.skipped, st.connected),
        (0, 0, true),
        "{st:?}"
    );
    let b = machine(&dir, "b.db", &o);
    for key in ["list", "string"] {
        let found = get(&b, key.as_bytes());
        assert_eq!(found, Some(format!("{key} computed").into_bytes()), "{key}");
    }
}

#[test]
fn auth_works_and_the_password_never_appears_in_an_error() {
    let secret = "Tr0ub4dor-and-3";
    let server = RedisServer::with_args(&["--requirepass", secret]);
    let dir = tempfile::tempdir().unwrap();
    let good = format!("redis://:{secret}@127.0.0.1:{}", server.port);
    let a = machine(&dir, "a.db", &remote_options(&good));
    a.set(b"k", b"v", NEVER).unwrap();
    assert_eq!(a.remote_stats().unwrap().errors, 0);
    let b = machine(&dir, "b.db", &remote_options(&good));
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    // A wrong password: open succeeds, connected is 0, calls go on locally.
    let wrong = format!("redis://:{secret}x@127.0.0.1:{}", server.port);
    let c = machine(&dir, "c.db", &remote_options(&wrong));
    assert!(!c.remote_stats().unwrap().connected);
    assert_eq!(get(&c, b"k"), None);
    // Malformed URLs name the problem without the password.
    for bad in [
        format!("redis://:{secret}@127.0.0.1:notaport"),
        format!("redis://user:{secret}@"),
        format!("rediss+cluster://user:{secret}@h:1,,h:2"),
        format!("memcache://user:{secret}@h:1"),
        format!("redis://user:{secret}@h:1/abc"),
    ] {
        let e = Options::new().set_remote(Some(&bad)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument);
        assert!(!e.message().contains(secret), "{}", e.message());
        assert!(e.message().contains("***") || e.message().contains("scheme"));
    }
}

/// A server where the user `cache` (password `pw`) may run the commands `perms` (on
/// every key), and the URL that logs in as that user.
fn server_with_user(perms: &[&str]) -> (RedisServer, String) {
    let server = RedisServer::start();
    let mut args = vec!["ACL", "SETUSER", "cache", "on", ">pw", "~*"];
    args.extend(perms);
    assert_eq!(server.cli(&args), "OK");
    let url = format!("redis://cache:pw@127.0.0.1:{}", server.port);
    (server, url)
}

/// `server_with_user` with the commands README lists for an ACL user on one server's
/// database 0, but `missing`.
fn server_with_readme_user_but(missing: &str) -> (RedisServer, String) {
    let perms = [
        "+get", "+set", "+unlink", "+pttl", "+eval", "+del", "+pexpire", "+time", "+scan",
    ];
    assert!(perms.contains(&missing));
    server_with_user(
        &perms
            .into_iter()
            .filter(|p| *p != missing)
            .collect::<Vec<_>>(),
    )
}

/// Waits out a back-off after one failure (100 ms) on a handle's remote.
fn past_first_back_off() {
    std::thread::sleep(Duration::from_millis(150));
}

/// The commands README's "Remote tier" lists for an ACL user are all the tier sends:
/// with only those (on database 1), every call of each kind reaches the remote without
/// an error, a clear and its reclaim included, and single flight across machines works.
#[test]
fn the_commands_the_readme_lists_for_an_acl_user_are_enough() {
    let (server, url) = server_with_user(&[
        "+get", "+set", "+unlink", "+pttl", "+eval", "+del", "+pexpire", "+time", "+scan",
        "+select",
    ]);
    let url = format!("{url}/1");
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&url);
    let a = Arc::new(machine(&dir, "a.db", &o));
    let b = machine(&dir, "b.db", &o);
    a.set(b"k", b"v", NEVER).unwrap();
    a.set_many(&[backlite::Entry {
        key: b"m",
        value: b"many",
        expiration: NEVER,
    }])
    .unwrap();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v"[..]));
    assert_eq!(get(&b, b"m").as_deref(), Some(&b"many"[..]));
    a.delete(b"m").unwrap();
    let value = a
        .cached_call_exclusive(b"c", NEVER, Duration::from_secs(5), || {
            Ok(b"computed".to_vec())
        })
        .unwrap();
    assert_eq!(value, b"computed");
    assert_eq!(get(&b, b"c").as_deref(), Some(&b"computed"[..]));
    b.clear().unwrap();
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k"), None);
    assert_eq!(get(&c, b"m"), None);
    for s in [&*a, &b, &c] {
        let st = s.remote_stats().unwrap();
        assert_eq!((st.errors, st.skipped), (0, 0), "{st:?}");
        assert!(st.connected);
    }
    // The clear's reclaim unlinked the older generation's keys (the generation key and
    // nothing else is left).
    let keys = server.cli(&["-n", "1", "KEYS", "*"]);
    assert_eq!(keys, "backlite::gen");
}

/// A user who may not run scripts cannot make the missing generation key: each get
/// that finds it missing is one error (it counted two, and doubled the back-off), and
/// the local file still serves.
#[test]
fn a_generation_a_get_cannot_make_is_one_error() {
    let (_server, url) = server_with_user(&["+get", "+set", "+unlink", "+pttl", "+scan"]);
    let dir = tempfile::tempdir().unwrap();
    let a = machine(&dir, "a.db", &remote_options(&url));
    // The open found the key missing and could not make it.
    let st = a.remote_stats().unwrap();
    assert_eq!((st.errors, st.skipped, st.connected), (1, 0, false));
    past_first_back_off();
    assert_eq!(get(&a, b"k"), None);
    let st = a.remote_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.errors), (0, 0, 2));
    assert_eq!((st.skipped, st.connected), (0, false));
    a.set(b"k", b"local", NEVER).unwrap();
    assert_eq!(get(&a, b"k").as_deref(), Some(&b"local"[..]));
}

/// A generation key that holds something else than a number (an operator's or another
/// program's write) fails each remote call once, a write as a read: a write that found
/// one was lost without a count, and the remote still showed connected.
#[test]
fn a_generation_that_is_not_a_number_is_an_error_for_writes_too() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let a = machine(&dir, "a.db", &remote_options(&server.url()));
    a.set(b"k", b"v1", NEVER).unwrap();
    assert_eq!(server.cli(&["SET", "backlite::gen", "not a number"]), "OK");
    a.set(b"k", b"v2", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors, st.skipped), (1, 1, 0));
    assert!(!st.connected);
    // Backed off: the next call is skipped, not sent.
    a.set(b"j", b"j", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors, st.skipped), (1, 1, 1));
    // A read finds it too, once.
    past_first_back_off();
    assert_eq!(get(&a, b"q"), None);
    let st = a.remote_stats().unwrap();
    assert_eq!((st.hits, st.misses, st.errors), (0, 0, 2));
    // The local file keeps serving what was set.
    assert_eq!(get(&a, b"k").as_deref(), Some(&b"v2"[..]));
}

#[test]
fn bad_options_are_refused_and_an_unreachable_host_still_opens() {
    let mut o = Options::new();
    for bad in [
        "not a url",
        "ftp://h",
        "redis://",
        "redis://h:70000",
        "redis+unix://x",
    ] {
        assert_eq!(
            o.set_remote(Some(bad)).unwrap_err().kind(),
            ErrorKind::InvalidArgument,
            "{bad}"
        );
    }
    assert!(o.remote().is_none(), "a refused URL changes nothing");
    for bad in ["", "has space", "nul\0", "{brace}", &"x".repeat(65)] {
        assert!(o.set_remote_namespace(bad).is_err(), "{bad:?}");
    }
    assert!(o.set_remote_timeout(Duration::ZERO).is_err());
    // Nobody listens on this port: open succeeds at once, not connected.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let o = remote_options(&format!("redis://127.0.0.1:{port}"));
    let started = Instant::now();
    let s = machine(&dir, "a.db", &o);
    s.set(b"k", b"v", NEVER).unwrap();
    assert_eq!(get(&s, b"k").as_deref(), Some(&b"v"[..]));
    assert!(started.elapsed() < Duration::from_secs(2));
    let st = s.remote_stats().unwrap();
    assert!(!st.connected && st.errors >= 1, "{st:?}");
}

/// A remote timeout is 1 ms to `u32::MAX` ms, the C API's range, in Rust too: anything
/// else is refused at the setter and changes nothing. `Duration::MAX` (a Rust program's
/// "no timeout") was taken, and the open's first round trip panicked ("overflow when
/// adding duration to instant"); 999 µs was taken though the doc said at least 1 ms.
#[test]
fn a_remote_timeout_outside_its_range_is_refused_at_the_setter() {
    let server = RedisServer::start();
    let mut o = remote_options(&server.url());
    let longest = Duration::from_millis(u32::MAX.into());
    for bad in [
        Duration::MAX,
        longest + Duration::from_millis(1),
        Duration::from_micros(999),
        Duration::from_nanos(1),
    ] {
        let err = o.set_remote_timeout(bad).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
        assert_eq!(o.remote_timeout(), Duration::from_secs(1), "{bad:?}");
    }
    o.set_remote_timeout(longest).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(machine(&dir, "a.db", &o));
    s.set(b"k", b"v", NEVER).unwrap();
    let computed = s
        .cached_call_exclusive(b"c", NEVER, Duration::from_secs(5), || Ok(b"v".to_vec()))
        .unwrap();
    assert_eq!(computed, b"v");
    s.clear().unwrap();
    let st = s.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors), (3, 0), "{st:?}");
}

/// Every call below is local-only in effect and must finish within a few timeouts.
fn exercise(s: &Storage, key: &[u8]) -> Duration {
    let started = Instant::now();
    s.set(key, b"local", NEVER).unwrap();
    assert_eq!(get(s, key).as_deref(), Some(&b"local"[..]));
    assert_eq!(get(s, b"missing"), None);
    s.delete(key).unwrap();
    started.elapsed()
}

#[test]
fn a_killed_paused_or_restarted_server_never_fails_a_call() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_remote_timeout(Duration::from_millis(200)).unwrap();
    let s = machine(&dir, "a.db", &o);
    s.set(b"before", b"1", NEVER).unwrap();

    // Killed: refused at once, then skipped while backed off.
    server.kill();
    for i in 0..20 {
        assert!(exercise(&s, format!("k{i}").as_bytes()) < Duration::from_secs(1));
    }
    let st = s.remote_stats().unwrap();
    assert!(!st.connected && st.errors >= 1 && st.skipped >= 1, "{st:?}");

    // Restarted: used again once the back-off has run out.
    server.restart();
    let give_up = Instant::now() + Duration::from_secs(10);
    loop {
        s.set(b"after", b"2", NEVER).unwrap();
        if s.remote_stats().unwrap().connected {
            break;
        }
        assert!(Instant::now() < give_up, "never reconnected");
        std::thread::sleep(Duration::from_millis(20));
    }
    let other = machine(&dir, "b.db", &o);
    assert_eq!(get(&other, b"after").as_deref(), Some(&b"2"[..]));

    // Paused (SIGSTOP): each round trip times out (200 ms), never hangs.
    server.signal("STOP");
    let errors = s.remote_stats().unwrap().errors;
    for i in 0..10 {
        let took = exercise(&s, format!("p{i}").as_bytes());
        assert!(took < Duration::from_millis(1500), "call took {took:?}");
    }
    let st = s.remote_stats().unwrap();
    assert!(
        st.errors > errors && st.skipped > 0 && !st.connected,
        "{st:?}"
    );
    server.signal("CONT");
}

/// Waits until `s`'s back-off has run out and a round trip succeeds.
fn until_connected(s: &Storage) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !s.remote_stats().unwrap().connected {
        assert!(Instant::now() < give_up, "never reconnected");
        std::thread::sleep(Duration::from_millis(20));
        let _ = s.get(b"probe").unwrap();
    }
}

/// While one thread unlinks the keys whose writes were lost, another thread's look-up
/// of such a key still skips the remote: the ledger let go of every key when the unlink
/// was sent, so a get meanwhile read the value the lost delete removes, returned it
/// and stored it in the file again. The unlink is held by the server (`CLIENT PAUSE
/// WRITE`: reads go on) so that the order is built, not hoped for.
#[test]
fn a_key_being_unlinked_is_not_read_back_meanwhile() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_remote_timeout(Duration::from_secs(20)).unwrap();
    let h = Arc::new(machine(&dir, "h.db", &o));
    h.set(b"k", b"deleted", NEVER).unwrap();
    // The delete cannot reach the server; the value survives its restart.
    assert_eq!(server.cli(&["SAVE"]), "OK");
    server.kill();
    h.delete(b"k").unwrap();
    server.restart();
    past_first_back_off();
    // The next call unlinks "k" first; the server holds that write.
    server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    let unlinking = {
        let h = h.clone();
        std::thread::spawn(move || get(&h, b"other"))
    };
    let give_up = Instant::now() + Duration::from_secs(20);
    while !server
        .cli(&["INFO", "clients"])
        .contains("blocked_clients:1")
    {
        assert!(
            Instant::now() < give_up,
            "the unlink never reached the server"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let read = get(&h, b"k");
    server.cli(&["CLIENT", "UNPAUSE"]);
    assert_eq!(unlinking.join().unwrap(), None);
    assert_eq!(read, None, "the deleted value was read back");
    assert_eq!(get(&h, b"k"), None);
    let st = h.remote_stats().unwrap();
    assert_eq!((st.hits, st.skipped), (0, 1));
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    assert_eq!(get(&other, b"k"), None);
}

/// A get on one thread while another thread's delete waits for the remote may read
/// the value the delete removes there (the calls overlap), but must not leave that
/// value in the file once the delete has returned: a value stored at once (over 1 MiB)
/// or a waiting one written meanwhile (here by `stats`) stayed, so a key deleted from
/// both tiers kept being served from the file. The remote's write is held by the server
/// (`CLIENT PAUSE WRITE`: reads go on).
#[test]
fn a_value_read_through_while_a_delete_reaches_the_remote_is_not_kept() {
    let big = vec![7u8; 2 << 20];
    for key in [&b"small"[..], b"big"] {
        let value = if key == b"big" { &big[..] } else { b"small" };
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut o = remote_options(&server.url());
        o.set_remote_timeout(Duration::from_secs(20)).unwrap();
        let h = Arc::new(machine(&dir, "h.db", &o));
        h.set(key, value, NEVER).unwrap();
        server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
        let removing = {
            let h = h.clone();
            let key = key.to_vec();
            std::thread::spawn(move || assert!(h.delete(&key).unwrap()))
        };
        let give_up = Instant::now() + Duration::from_secs(20);
        while !server
            .cli(&["INFO", "clients"])
            .contains("blocked_clients:1")
        {
            assert!(
                Instant::now() < give_up,
                "the delete never reached the server"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        // The calls overlap: the remote's value may be returned.
        get(&h, key);
        h.stats().unwrap(); // writes what waits in memory
        server.cli(&["CLIENT", "UNPAUSE"]);
        removing.join().unwrap();
        let what = String::from_utf8_lossy(key);
        assert_eq!(
            get(&h, key).map(|v| v.len()),
            None,
            "{what}: the deleted value was kept"
        );
    }
}

#[test]
fn a_write_that_never_reached_the_remote_leaves_no_older_value_there() {
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut o = remote_options(&server.url());
        o.set_remote_timeout(Duration::from_millis(200)).unwrap();
        o.set_remote_mode(mode);
        let a = machine(&dir, "a.db", &o);
        a.set(b"k", b"old", NEVER).unwrap();
        a.set(b"gone", b"old", NEVER).unwrap();
        drop(a); // write-behind: drains its queue
        let a = machine(&dir, "a.db", &o);

        // Paused: a first write times out and backs the remote off; the writes after
        // it are not sent at all.
        server.signal("STOP");
        a.set(b"trigger", b"x", NEVER).unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while a.remote_stats().unwrap().errors == 0 {
            assert!(
                Instant::now() < give_up,
                "{mode:?}: the pause was never noticed"
            );
            a.set(b"trigger", b"x", NEVER).unwrap();
            std::thread::sleep(Duration::from_millis(50));
        }
        a.set(b"k", b"new", NEVER).unwrap();
        a.delete(b"gone").unwrap();
        server.signal("CONT");
        until_connected(&a);
        drop(a);

        // Another machine never reads the values those writes replaced.
        let b = machine(&dir, "b.db", &o);
        let k = get(&b, b"k");
        assert!(
            k.is_none() || k.as_deref() == Some(&b"new"[..]),
            "{mode:?}: k = {k:?}"
        );
        assert_eq!(get(&b, b"gone"), None, "{mode:?}: a deleted key came back");
    }
}

/// A set_many of more keys than one round trip can carry within the timeout, to a
/// healthy server: it went as one pipeline, which timed out, so none of its values
/// reached the remote, and past 65,536 lost keys the handle cleared the whole remote
/// (another machine's value with it). It goes in pieces, each a round trip.
#[test]
fn a_set_many_of_70000_keys_reaches_a_healthy_remote_and_clears_nothing() {
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut o = remote_options(&server.url());
        // The default: a pipeline of 20,000 sets outran it (a debug build), one of
        // 70,000 did not outrun a second.
        o.set_remote_timeout(Duration::from_millis(250)).unwrap();
        o.set_remote_mode(mode);
        let other = machine(&dir, "other.db", &o);
        other.set(b"precious", b"kept", NEVER).unwrap();
        drop(other);
        let keys: Vec<Vec<u8>> = (0..70_000).map(|i| format!("k{i}").into_bytes()).collect();
        let entries: Vec<backlite::Entry> = keys
            .iter()
            .map(|k| backlite::Entry {
                key: k,
                value: k,
                expiration: NEVER,
            })
            .collect();
        let bulk = machine(&dir, "bulk.db", &o);
        bulk.set_many(&entries).unwrap();
        drop(bulk); // write-behind: sends its queue
        let dbsize = server.cli(&["DBSIZE"]);
        // Every value, the other machine's and the generation key.
        assert_eq!(dbsize.trim(), "70002", "{mode:?}");
        let third = machine(&dir, "third.db", &o);
        assert_eq!(
            get(&third, b"precious").as_deref(),
            Some(&b"kept"[..]),
            "{mode:?}"
        );
        assert_eq!(
            get(&third, b"k69999").as_deref(),
            Some(&b"k69999"[..]),
            "{mode:?}"
        );
    }
}

#[test]
fn a_server_answering_garbage_is_an_error_and_never_a_value() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().enumerate() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                // Alternate kinds of nonsense: bytes that are not RESP, and well-formed
                // replies of the wrong kind.
                let replies: [&[u8]; 3] = [b"\x00\xffgarbage\r\n", b"$5\r\nhello\r\n", b"+OK\r\n"];
                while let Ok(k) = conn.read(&mut buf) {
                    if k == 0 || conn.write_all(replies[n % 3]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&format!("redis://127.0.0.1:{port}"));
    o.set_remote_timeout(Duration::from_millis(200)).unwrap();
    let s = machine(&dir, "a.db", &o);
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut calls = 0;
    while Instant::now() < give_up && calls < 40 {
        assert!(exercise(&s, b"k") < Duration::from_secs(1));
        calls += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
    let st = s.remote_stats().unwrap();
    assert_eq!(st.hits, 0, "{st:?}");
    assert!(st.errors + st.misses > 0, "{st:?}");
}

#[test]
fn a_waiter_given_the_value_by_another_machine_keeps_its_remote_time_left() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let holder = Arc::new(machine(&dir, "holder.db", &o));
    let waiter = Arc::new(machine(&dir, "waiter.db", &o));
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let h = holder.clone();
    let holding = std::thread::spawn(move || {
        let minute = Expiration::After(Duration::from_secs(60));
        h.cached_call_exclusive(b"k", minute, Duration::from_secs(20), || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            Ok(b"from the holder".to_vec())
        })
        .unwrap()
    });
    started.recv().unwrap(); // the holder has the remote lease
    let w = waiter.clone();
    let waiting = std::thread::spawn(move || {
        w.cached_call_exclusive(b"k", NEVER, Duration::from_secs(20), || {
            panic!("computed twice")
        })
        .unwrap()
    });
    // Its look-up missed on the remote: the value can only come from the flight now.
    let give_up = Instant::now() + Duration::from_secs(20);
    while waiter.remote_stats().unwrap().misses == 0 {
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(1));
    }
    go.send(()).unwrap();
    assert_eq!(holding.join().unwrap(), b"from the holder");
    assert_eq!(waiting.join().unwrap(), b"from the holder");
    let (_, left) = waiter.get(b"k").unwrap().unwrap();
    let left = left.expect("stored without the remote's expiration");
    assert!(
        left > Duration::from_secs(40) && left <= Duration::from_secs(60),
        "{left:?}"
    );
}

// ---- values read through wait in memory before they are written (fill) -----------

/// `key` on the remote (set through a new handle of another file, which knows the
/// latest clear), then read through by `reader`: a fill waits in `reader`'s process.
/// A remote lease take whose reply was lost (the server took the lease, then the
/// connection dropped before its reply came) is sent again on a new connection, and
/// finds the lease it took: it is ours. Before, the second `SET NX` failed on our own
/// token, and the call waited for its own lease as if another machine held it
/// (LEASE_HELD at once here, with no wait; a waiting caller lost the lease's length).
#[test]
fn a_lease_take_sent_again_after_its_reply_was_lost_is_ours() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(machine(&dir, "a.db", &remote_options(&proxy.url())));
    // The pooled connection (it served the open's round trip) carries the take.
    proxy.arm(b"NX");
    proxy.cut_nth(0);
    let value = s.cached_call_exclusive(b"k", NEVER, Duration::ZERO, || Ok(b"computed".to_vec()));
    assert_eq!(value.unwrap(), b"computed");
    let st = s.remote_stats().unwrap();
    assert_eq!((st.errors, st.writes), (0, 1));
    let other = machine(&dir, "b.db", &remote_options(&server.url()));
    assert_eq!(get(&other, b"k").as_deref(), Some(&b"computed"[..]));
}

/// A wait that runs out after the other machine's remote lease ended (released or
/// expired between the take that found it held and the question of its time left)
/// reports no time left. The lease's `PTTL` was then -2 (or 0: ending within the
/// millisecond), read as "cannot say", and the error claimed the whole lease length
/// (8 timeouts, 80 s here) for a lease that was gone.
#[test]
fn a_wait_that_runs_out_after_the_remote_lease_ended_reports_no_time_left() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_remote_timeout(Duration::from_secs(10)).unwrap();
    let there = machine(&dir, "there.db", &o);
    o.set_remote(Some(&proxy.url())).unwrap();
    let here = Arc::new(machine(&dir, "here.db", &o));
    // Another machine's lease on "k".
    let lease = remote_key(&server, "backlite", "", "k").replacen(":d{", ":l{", 1);
    assert_eq!(server.cli(&["SET", &lease, "theirs", "PX", "60000"]), "OK");
    // The take finds it held; its reply waits while the lease goes.
    proxy.arm(b"NX");
    let waiter = {
        let here = here.clone();
        std::thread::spawn(move || {
            here.cached_call_exclusive(b"k", NEVER, Duration::ZERO, || {
                panic!("computed while another machine held the lease")
            })
        })
    };
    proxy.wait_until(|h| h.waiting >= 1);
    assert_eq!(server.cli(&["DEL", &lease]), "1");
    proxy.release();
    let e = waiter.join().unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseHeld, "{e}");
    assert_eq!(e.lease_time_left(), Some(Duration::ZERO), "{e}");
    drop(there);
}

fn read_through(dir: &tempfile::TempDir, url: &str, reader: &Storage, key: &[u8], value: &[u8]) {
    static WRITERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let writer = machine(dir, &format!("writer-{n}.db"), &remote_options(url));
    writer.set(key, value, NEVER).unwrap();
    let hits = reader.remote_stats().unwrap().hits;
    assert_eq!(get(reader, key).as_deref(), Some(value));
    assert_eq!(
        reader.remote_stats().unwrap().hits,
        hits + 1,
        "not read through"
    );
}

/// The entries in the file `name`, read with SQLite itself (`stats` would first write
/// what waits in memory).
fn rows_in_file(dir: &tempfile::TempDir, name: &str) -> i64 {
    let c = rusqlite::Connection::open(dir.path().join(name)).unwrap();
    c.query_row("SELECT count(*) FROM entries", [], |r| r.get(0))
        .unwrap()
}

#[test]
fn values_waiting_in_memory_are_counted_listed_and_checked() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let b = machine(&dir, "b.db", &remote_options(&url));
    read_through(&dir, &url, &b, b"k1", b"remote");
    assert_eq!(rows_in_file(&dir, "b.db"), 0);
    let st = b.stats().unwrap();
    assert_eq!((st.count, st.total_size), (1, 6));
    read_through(&dir, &url, &b, b"k2", b"remote");
    let mut keys = Vec::new();
    b.keys(|k| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    assert_eq!(keys, [b"k1".to_vec(), b"k2".to_vec()]);
    read_through(&dir, &url, &b, b"k3", b"remote");
    let report = b.check(false).unwrap();
    assert!(report.healthy());
    assert_eq!((report.entries, report.actual_count), (3, 3));
    assert_eq!(rows_in_file(&dir, "b.db"), 3);
}

#[test]
fn a_remote_hit_is_served_from_memory_until_written_and_reaches_the_file_at_close() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let b = machine(&dir, "b.db", &remote_options(&url));
    read_through(&dir, &url, &b, b"k", b"from a");
    // Not in the file yet: the read path wrote nothing.
    assert_eq!(rows_in_file(&dir, "b.db"), 0);
    // Served from memory: the remote is not asked again, even once it is gone.
    server.kill();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"from a"[..]));
    assert!(b.contains(b"k").unwrap());
    let st = b.remote_stats().unwrap();
    assert_eq!((st.hits, st.errors), (1, 0));
    drop(b); // closing writes it
    let plain = machine(&dir, "b.db", &Options::new());
    assert_eq!(get(&plain, b"k").as_deref(), Some(&b"from a"[..]));
}

#[test]
fn a_local_set_delete_or_clear_after_a_remote_hit_wins_over_the_waiting_fill() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let o = remote_options(&url);
    let b = machine(&dir, "b.db", &o);
    // A second handle of this process on the same file.
    let b2 = machine(&dir, "b.db", &o);
    for (i, writer) in [&b, &b2].into_iter().enumerate() {
        let key = |k: &str| format!("{k}{i}").into_bytes();
        read_through(&dir, &url, &b, &key("set"), b"remote");
        writer.set(&key("set"), b"local", NEVER).unwrap();
        assert_eq!(get(&b, &key("set")).as_deref(), Some(&b"local"[..]));
        read_through(&dir, &url, &b, &key("deleted"), b"remote");
        assert!(writer.delete(&key("deleted")).unwrap());
        assert_eq!(get(&b, &key("deleted")), None);
    }
    // (Clears last: a handle learns of another's clear only when it next reads.)
    for (i, writer) in [&b2, &b].into_iter().enumerate() {
        let key = format!("cleared{i}").into_bytes();
        read_through(&dir, &url, &b, &key, b"remote");
        writer.clear().unwrap();
        assert_eq!(get(&b, &key), None);
    }
    // A fill never overwrites a newer local value when it is written.
    read_through(&dir, &url, &b, b"newer", b"remote");
    b2.set(b"newer", b"local", NEVER).unwrap();
    b.flush().unwrap();
    drop((b, b2));
    let plain = machine(&dir, "b.db", &Options::new());
    assert_eq!(get(&plain, b"newer").as_deref(), Some(&b"local"[..]));
}

#[test]
fn a_waiting_fill_expires_with_the_time_the_remote_gave_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    let now = Arc::new(std::sync::atomic::AtomicI64::new(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    ));
    let mut ob = remote_options(&server.url());
    let clock = now.clone();
    ob.set_clock(Arc::new(move || {
        clock.load(std::sync::atomic::Ordering::SeqCst)
    }));
    let b = machine(&dir, "b.db", &ob);
    let minute = Expiration::After(Duration::from_secs(60));
    a.set(b"k", b"v", minute).unwrap();
    let (_, left) = b.get(b"k").unwrap().unwrap();
    assert!(left.unwrap() <= Duration::from_secs(60));
    now.fetch_add(61_000, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(get(&b, b"k"), None);
    assert!(!b.contains(b"k").unwrap());
    // Nor is it written once due.
    a.set(b"k2", b"v", Expiration::After(Duration::from_secs(180)))
        .unwrap();
    assert!(get(&b, b"k2").is_some());
    now.fetch_add(200_000, std::sync::atomic::Ordering::SeqCst);
    b.flush().unwrap();
    assert_eq!(b.stats().unwrap().count, 0);
}

#[test]
fn the_fill_writer_writes_waiting_fills_once_enough_wait() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let b = machine(&dir, "b.db", &remote_options(&url));
    // 1 MiB waiting starts the writer.
    let value = vec![7u8; 64 << 10];
    for i in 0..17 {
        read_through(&dir, &url, &b, format!("k{i}").as_bytes(), &value);
    }
    let give_up = Instant::now() + Duration::from_secs(20);
    // (Not `stats`: it writes what waits itself.)
    while rows_in_file(&dir, "b.db") < 16 {
        assert!(Instant::now() < give_up, "the fills were not written");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Another process sees them in the file (the remote is not asked: it is gone).
    drop(server);
    let machines = Machines::new(&url, dir.path());
    let mut child = machines.spawn("expect", "b.db", &[("KEY", "k0"), ("VALUE", "64KiB of 7")]);
    assert!(child.wait().unwrap().success());
}

#[test]
fn another_process_writing_the_file_makes_this_process_drop_its_waiting_fills() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let url = server.url();
    let a = machine(&dir, "shared.db", &remote_options(&url));
    let machines = Machines::new(&url, dir.path());
    let run = |role: &str, extra: &[(&str, &str)]| {
        let mut child = machines.spawn(role, "shared.db", extra);
        assert!(child.wait().unwrap().success(), "{role} failed");
    };
    // Process B clears the file (empty here: nothing but the clear itself changes it).
    read_through(&dir, &url, &a, b"k", b"old");
    run("clear", &[]);
    assert_eq!(get(&a, b"k"), None);
    // B deletes the key, which its file does not hold (only A's memory does).
    read_through(&dir, &url, &a, b"k", b"old");
    run("delete", &[("KEY", "k")]);
    assert_eq!(get(&a, b"k"), None);
    // B sets it.
    read_through(&dir, &url, &a, b"k", b"old");
    run("set", &[("KEY", "k"), ("VALUE", "new")]);
    assert_eq!(get(&a, b"k").as_deref(), Some(&b"new"[..]));
}

// ---- processes -------------------------------------------------------------------

/// The child processes' entry point; does nothing when run as a test.
#[test]
fn child() {
    let Ok(role) = std::env::var("BACKLITE_REMOTE_CHILD") else {
        return;
    };
    let var = |k: &str| std::env::var(k).unwrap();
    let mut o = remote_options(&var("URL"));
    o.set_remote_timeout(Duration::from_millis(500)).unwrap();
    let s = Arc::new(Storage::open(var("FILE"), &o).unwrap());
    match role.as_str() {
        "writer" => s
            .set(b"shared", b"written by another process", NEVER)
            .unwrap(),
        "reader" => {
            let got = get(&s, b"shared");
            assert_eq!(got.as_deref(), Some(&b"written by another process"[..]));
        }
        "flight" => {
            let counter = var("COUNTER");
            let hang = std::env::var("HANG").is_ok();
            let v = s
                .cached_call_exclusive(b"expensive", NEVER, Duration::from_secs(20), || {
                    std::fs::OpenOptions::new()
                        .append(true)
                        .create(true)
                        .open(&counter)
                        .unwrap()
                        .write_all(b"x")
                        .unwrap();
                    if hang {
                        std::thread::sleep(Duration::from_secs(600));
                    }
                    std::thread::sleep(Duration::from_millis(300));
                    Ok(b"computed once".to_vec())
                })
                .unwrap();
            assert_eq!(v, b"computed once");
        }
        // Computes until the file GO exists (the test stops it meanwhile), then
        // returns its value: its own, whatever the remote holds by then.
        "fence" => {
            let (counter, go) = (var("COUNTER"), var("GO"));
            let v = s
                .cached_call_exclusive(b"fenced", NEVER, Duration::from_secs(20), || {
                    std::fs::write(&counter, b"x").unwrap();
                    while !std::path::Path::new(&go).exists() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok(b"old holder".to_vec())
                })
                .unwrap();
            assert_eq!(v, b"old holder");
        }
        // The fill tests' other process, on the same file.
        "expect" => {
            let want = match var("VALUE").as_str() {
                "64KiB of 7" => vec![7u8; 64 << 10],
                v => v.as_bytes().to_vec(),
            };
            assert_eq!(get(&s, var("KEY").as_bytes()), Some(want));
        }
        "delete" => {
            s.delete(var("KEY").as_bytes()).unwrap();
        }
        "set" => s
            .set(var("KEY").as_bytes(), var("VALUE").as_bytes(), NEVER)
            .unwrap(),
        "clear" => s.clear().unwrap(),
        // Writes behind, then exits without dropping its handle, as a C program
        // returning from main does (the C library's atexit runs the same call).
        "behind-exit" => {
            let mut o = remote_options(&var("URL"));
            o.set_remote_timeout(Duration::from_secs(20)).unwrap();
            o.set_remote_mode(RemoteMode::WriteBehind);
            // An in-memory cache is in no list of open files.
            let wb = match std::env::var("MEMORY") {
                Ok(_) => Storage::open(":memory:", &o).unwrap(),
                Err(_) => Storage::open(format!("{}.wb", var("FILE")), &o).unwrap(),
            };
            for i in 0..2000 {
                wb.set(
                    format!("k{i}").as_bytes(),
                    b"from the exited process",
                    NEVER,
                )
                .unwrap();
            }
            wb.delete(b"deleted").unwrap();
            backlite::write_waiting_at_exit();
            std::mem::forget(wb);
            std::process::exit(0);
        }
        // Owes the unlink of a delete the server refused (a user without EVAL), then
        // exits without dropping its handle, once the back-off is over.
        "owed-exit" => {
            s.delete(b"deleted").unwrap();
            assert_eq!(s.remote_stats().unwrap().errors, 1);
            std::thread::sleep(Duration::from_secs(1));
            backlite::write_waiting_at_exit();
            std::mem::forget(s);
            std::process::exit(0);
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn two_processes_with_their_own_files_share_through_the_remote() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let machines = Machines::new(&server.url(), dir.path());
    assert!(machines.run("writer", "one.db"));
    assert!(machines.run("reader", "two.db"));
}

#[test]
fn single_flight_across_four_processes_with_two_files_computes_once() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let machines = Machines::new(&server.url(), dir.path());
    assert!(machines.run_on_two_files("flight", 4));
    assert_eq!(machines.computes(), 1, "computed more than once");
}

/// A value computed under a remote lease taken before another machine's clear, and
/// stored after it, goes to the generation the lease was taken in: no machine reads
/// it as a value of the live generation (each look-up reads the live generation in its
/// own round trip), and the live generation's own single flight computes again.
#[test]
fn a_value_computed_across_another_machines_clear_is_never_read_after_it() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let holder = Arc::new(machine(&dir, "holder.db", &o));
    let other = machine(&dir, "other.db", &o);
    let (started, wait_started) = std::sync::mpsc::channel();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let computing = {
        let holder = holder.clone();
        std::thread::spawn(move || {
            holder.cached_call_exclusive(b"k", NEVER, Duration::from_secs(5), move || {
                started.send(()).unwrap();
                wait_go.recv().unwrap();
                Ok(b"computed before the clear".to_vec())
            })
        })
    };
    wait_started.recv().unwrap();
    other.clear().unwrap();
    go.send(()).unwrap();
    assert_eq!(
        computing.join().unwrap().unwrap(),
        b"computed before the clear"
    );
    let fresh = Arc::new(machine(&dir, "fresh.db", &o));
    assert_eq!(get(&fresh, b"k"), None);
    let value = fresh
        .cached_call_exclusive(b"k", NEVER, Duration::from_secs(5), || {
            Ok(b"computed after the clear".to_vec())
        })
        .unwrap();
    assert_eq!(value, b"computed after the clear");
    assert_eq!(
        get(&machine(&dir, "third.db", &o), b"k").as_deref(),
        Some(&b"computed after the clear"[..])
    );
}

#[test]
fn single_flight_takes_over_from_a_killed_holder_after_its_lease_deadline() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let machines = Machines::new(&server.url(), dir.path());
    let mut holder = machines.spawn("flight", "x.db", &[("HANG", "1")]);
    let give_up = Instant::now() + Duration::from_secs(10);
    while machines.computes() == 0 {
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.kill().unwrap(); // SIGKILL while computing, holding the remote lease
    holder.wait().unwrap();
    let started = Instant::now();
    assert!(machines.run_on_two_files("flight", 3));
    assert_eq!(machines.computes(), 2);
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A value read through that is stored at once (over 1 MiB, or kept in a file of its
/// own) ends when it ends on the remote: its time left is measured when the remote is
/// asked, and the moments that pass before the row is written (the round trip, the
/// wait for the write lock, the value file's writing) are not added to it. B's clock
/// runs a minute ahead of A's and steps one second on each reading; A's stands still,
/// so the remote's deadline is exactly A's clock plus the hour (the server's PTTL,
/// longer than the hour less B's lead, is not the shorter).
#[test]
fn a_value_read_through_and_stored_at_once_never_outlives_the_remote() {
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock_at = |t: i64| -> Arc<dyn Fn() -> i64 + Send + Sync> { Arc::new(move || t) };
    let mut oa = remote_options(&server.url());
    oa.set_clock(clock_at(t0));
    let a = machine(&dir, "a.db", &oa);
    let mut ob = remote_options(&server.url());
    let steps = Arc::new(AtomicI64::new(t0 + 60_000));
    let clock = steps.clone();
    ob.set_clock(Arc::new(move || clock.fetch_add(1000, SeqCst)));
    let b = machine(&dir, "b.db", &ob);
    let hour = 3_600_000;
    let deadline = t0 + hour;
    let large = vec![5u8; (1 << 20) + 1];
    for (key, value) in [(&b"over 1 MiB"[..], &large[..]), (b"small", b"v")] {
        a.set(
            key,
            value,
            Expiration::After(Duration::from_millis(hour as u64)),
        )
        .unwrap();
        assert_eq!(get(&b, key).as_deref(), Some(value));
    }
    b.flush().unwrap();
    drop(b);
    // The file alone, read at the remote's deadline and just before it.
    for (at, alive) in [(deadline - 1, true), (deadline, false)] {
        let mut o = Options::new();
        o.set_clock(clock_at(at));
        let file = machine(&dir, "b.db", &o);
        for key in [&b"over 1 MiB"[..], b"small"] {
            assert_eq!(
                file.contains(key).unwrap(),
                alive,
                "{} at the deadline {}",
                String::from_utf8_lossy(key),
                at - deadline
            );
        }
    }
}

/// A value another machine computed under the remote lease, found by a waiter, is
/// stored by the waiter to end when it ends on the remote: the release of the
/// waiter's own lease and its wait for the file's write lock are not added to its
/// time left. Clocks as in the test above: the waiter's a minute ahead of the
/// holder's and stepping a second on each reading.
#[test]
fn a_value_found_under_another_machines_lease_never_outlives_the_remote() {
    use std::sync::atomic::{AtomicI64, Ordering::SeqCst};
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let t0 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let clock_at = |t: i64| -> Arc<dyn Fn() -> i64 + Send + Sync> { Arc::new(move || t) };
    let mut oh = remote_options(&server.url());
    oh.set_clock(clock_at(t0));
    let holder = Arc::new(machine(&dir, "holder.db", &oh));
    let mut ow = remote_options(&server.url());
    let steps = Arc::new(AtomicI64::new(t0 + 60_000));
    let clock = steps.clone();
    ow.set_clock(Arc::new(move || clock.fetch_add(1000, SeqCst)));
    let waiter = Arc::new(machine(&dir, "waiter.db", &ow));
    let hour = 3_600_000;
    let deadline = t0 + hour;
    let (started_tx, started) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let h = holder.clone();
    let holding = std::thread::spawn(move || {
        let expiration = Expiration::After(Duration::from_millis(hour as u64));
        h.cached_call_exclusive(b"k", expiration, Duration::from_secs(20), || {
            started_tx.send(()).unwrap();
            go_rx.recv().unwrap();
            Ok(b"from the holder".to_vec())
        })
        .unwrap()
    });
    started.recv().unwrap();
    let w = waiter.clone();
    let waiting = std::thread::spawn(move || {
        w.cached_call_exclusive(b"k", NEVER, Duration::from_secs(20), || {
            panic!("computed twice")
        })
        .unwrap()
    });
    let give_up = Instant::now() + Duration::from_secs(20);
    while waiter.remote_stats().unwrap().misses == 0 {
        assert!(Instant::now() < give_up);
        std::thread::sleep(Duration::from_millis(1));
    }
    go.send(()).unwrap();
    assert_eq!(holding.join().unwrap(), b"from the holder");
    assert_eq!(waiting.join().unwrap(), b"from the holder");
    drop(waiter);
    for (at, alive) in [(deadline - 1, true), (deadline, false)] {
        let mut o = Options::new();
        o.set_clock(clock_at(at));
        let file = machine(&dir, "waiter.db", &o);
        assert_eq!(
            file.contains(b"k").unwrap(),
            alive,
            "at the deadline {}",
            at - deadline
        );
    }
}

/// A write that never reached the remote is undone in the generation that is live
/// when its key is unlinked, not only in the one the handle knew when it wrote: after
/// another machine's clear (which this handle had not read yet) and a set made after
/// that clear, a delete here that timed out left that set's value for every machine,
/// this one included, to read (its key was unlinked in the dead generation only).
#[test]
fn a_write_lost_after_another_clients_clear_is_undone_in_the_live_generation() {
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        let server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let mut o = remote_options(&server.url());
        o.set_remote_timeout(Duration::from_millis(200)).unwrap();
        let mut ob = o.clone();
        ob.set_remote_mode(mode);
        let b = machine(&dir, "b.db", &ob); // knows the first generation
        let a = machine(&dir, "a.db", &o);
        a.clear().unwrap();
        a.set(b"k", b"set after the clear", NEVER).unwrap();
        // B's delete of k, made after that set, times out.
        server.signal("STOP");
        b.delete(b"k").unwrap();
        let give_up = Instant::now() + Duration::from_secs(10);
        while b.remote_stats().unwrap().errors == 0 {
            assert!(
                Instant::now() < give_up,
                "{mode:?}: the pause was never noticed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server.signal("CONT");
        until_connected(&b);
        assert_eq!(get(&b, b"k"), None, "{mode:?}: read back here");
        drop(b);
        let c = machine(&dir, "c.db", &o);
        assert_eq!(get(&c, b"k"), None, "{mode:?}: read by another machine");
    }
}

/// A file opened with a new version tag is emptied, and so are the values read through
/// from the remote that wait in memory to be written to it: a handle opened with tag
/// "v2" got the value another handle of the process (tag "v1") had read from the
/// remote's v1 keys, when the file held no entry (emptying it changed nothing the
/// waiting values are checked against), and the fill writer would have written it
/// into the file now tagged v2.
#[test]
fn values_waiting_in_memory_go_with_the_file_a_new_version_tag_empties() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let tagged = |tag: &str| {
        let mut o = remote_options(&server.url());
        o.set_version_tag(tag);
        o
    };
    let a = machine(&dir, "a.db", &tagged("v1"));
    a.set(b"k", b"computed by v1", NEVER).unwrap();
    let v1 = machine(&dir, "b.db", &tagged("v1"));
    assert_eq!(get(&v1, b"k").as_deref(), Some(&b"computed by v1"[..]));
    assert_eq!(rows_in_file(&dir, "b.db"), 0); // it waits in memory
    let v2 = machine(&dir, "b.db", &tagged("v2"));
    assert_eq!(get(&v2, b"k"), None);
    // A handle whose tag the file left writes nothing to it (schema::check_tag).
    assert_eq!(v1.flush().unwrap_err().kind(), ErrorKind::Incompatible);
    v2.flush().unwrap();
    assert_eq!(rows_in_file(&dir, "b.db"), 0);
}

/// A clock that runs `ms` ahead of this machine's (behind it when negative).
fn clock_off_by(ms: i64) -> backlite::Clock {
    Arc::new(move || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            + ms
    })
}

/// A value the server is about to expire (`PTTL` 0: it ends within the millisecond) has
/// no time left, whatever its header says: the header's deadline is in the writer's
/// clock, here an hour ahead of this machine's. Read as the header's, the value was
/// kept in the file for the writer's lead, though the remote forgot it at once.
#[test]
fn a_value_the_remote_is_about_to_expire_is_not_kept_for_the_writers_lead() {
    // The value as a writer whose clock runs an hour ahead stores it for two hours.
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut ahead = remote_options(&server.url());
    ahead.set_clock(clock_off_by(3_600_000));
    let two_hours = Expiration::After(Duration::from_secs(7200));
    machine(&dir, "writer.db", &ahead)
        .set(b"k", b"about to go", two_hours)
        .unwrap();
    let mut c = redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap();
    let payload: Vec<u8> = redis::cmd("GET")
        .arg(remote_key(&server, "backlite", "", "k"))
        .query(&mut c)
        .unwrap();
    let gen = generation(&server, "backlite", "").to_string();
    let gen_reply = format!("${}\r\n{gen}\r\n", gen.len()).into_bytes();

    // A server that has it once, with PTTL 0, then no more (it expired).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let (payload, served) = (payload.clone(), served.clone());
            let gen_reply = gen_reply.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().unwrap());
                while let Some(command) = read_command(&mut reader) {
                    let reply = match (&command[0].to_ascii_uppercase()[..], command.get(1)) {
                        (b"GET", Some(k)) if k.ends_with(b"gen") => gen_reply.clone(),
                        (b"GET", Some(_))
                            if !served.swap(true, std::sync::atomic::Ordering::SeqCst) =>
                        {
                            let mut r = format!("${}\r\n", payload.len()).into_bytes();
                            r.extend_from_slice(&payload);
                            r.extend_from_slice(b"\r\n");
                            r
                        }
                        (b"GET", _) => b"$-1\r\n".to_vec(),
                        (b"PTTL", _) => b":0\r\n".to_vec(),
                        _ => b"+OK\r\n".to_vec(),
                    };
                    if conn.write_all(&reply).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let reader = machine(
        &dir,
        "reader.db",
        &remote_options(&format!("redis://127.0.0.1:{port}")),
    );
    let (value, left) = reader.get(b"k").unwrap().expect("the remote's value");
    assert_eq!(value, b"about to go");
    assert!(
        left.is_some_and(|l| l <= Duration::from_millis(1)),
        "{left:?}"
    );
    assert_eq!(get(&reader, b"k"), None, "kept after the remote forgot it");
    assert_eq!(reader.remote_stats().unwrap().hits, 1);
}

/// One command of a client's pipeline (an array of bulk strings), or None at its end.
fn read_command(r: &mut impl std::io::BufRead) -> Option<Vec<Vec<u8>>> {
    let mut line = String::new();
    let number = |r: &mut dyn std::io::BufRead, line: &mut String, mark: char| {
        line.clear();
        r.read_line(line).ok().filter(|&n| n > 0)?;
        line.trim_end().strip_prefix(mark)?.parse::<usize>().ok()
    };
    let n = number(r, &mut line, '*')?;
    let mut args = Vec::with_capacity(n);
    for _ in 0..n {
        let len = number(r, &mut line, '$')?;
        let mut arg = vec![0; len + 2];
        r.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}

/// A server that lost the generation key (an eviction under allkeys-*, a `DEL`, a
/// master restarted without data) never shows a value written before a clear: the keys
/// of old generations a clear's bounded unlinking left (here restored by hand), and
/// any left under generation 0, stay hidden from a fresh handle and from one that knew
/// the generation before the loss; both then agree on a new one. A read-only handle
/// misses and makes none.
#[test]
fn a_lost_generation_key_never_brings_back_values_hidden_by_a_clear() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let mut ro = remote_options(&server.url());
    ro.set_remote_mode(RemoteMode::ReadOnly);
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"old", NEVER).unwrap();
    let old_key = remote_key(&server, "backlite", "", "k");
    assert_eq!(server.cli(&["COPY", &old_key, "stash"]), "1");
    if old_key != "backlite::d{0:k}" {
        assert_eq!(server.cli(&["COPY", &old_key, "backlite::d{0:k}"]), "1");
    }
    a.clear().unwrap();
    assert_eq!(server.cli(&["RENAME", "stash", &old_key]), "OK");
    let knew = machine(&dir, "knew.db", &o);
    assert_eq!(get(&knew, b"other"), None); // reads the generation after the clear
    assert_eq!(server.cli(&["DEL", "backlite::gen"]), "1");
    let reader = machine(&dir, "reader.db", &ro);
    assert_eq!(get(&reader, b"k"), None, "read-only read a cleared value");
    assert_eq!(server.cli(&["EXISTS", "backlite::gen"]), "0");
    let fresh = machine(&dir, "fresh.db", &o);
    assert_eq!(
        get(&fresh, b"k"),
        None,
        "a fresh handle read a cleared value"
    );
    assert_eq!(get(&knew, b"k"), None, "a handle read a cleared value");
    assert_eq!(
        get(&a, b"k"),
        None,
        "the clearing handle read a cleared value"
    );
    knew.set(b"after", b"the loss", NEVER).unwrap();
    assert_eq!(get(&fresh, b"after").as_deref(), Some(&b"the loss"[..]));
    assert_eq!(get(&reader, b"after").as_deref(), Some(&b"the loss"[..]));
}

/// Each set queued for a remote that is down counts once, as an error (its round trip
/// failed) or as skipped (not sent while the remote was backed off), as a set written
/// through does. The write-behind thread counted a batch once for the unlinks it owed
/// and once more for its writes: 10 sets, each sent alone, counted 19.
#[test]
fn write_behind_counts_each_set_once_through_an_outage() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::WriteBehind);
    let wb = machine(&dir, "wb.db", &o);
    server.kill();
    let counted = || {
        let st = wb.remote_stats().unwrap();
        st.errors + st.skipped
    };
    for i in 0..10 {
        let before = counted();
        wb.set(format!("k{i}").as_bytes(), b"v", NEVER).unwrap();
        // Sent alone: the next set is queued once this one is counted.
        let give_up = Instant::now() + Duration::from_secs(20);
        while counted() == before {
            assert!(Instant::now() < give_up, "the set was never counted");
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let st = wb.remote_stats().unwrap();
    assert_eq!(st.errors + st.skipped, 10, "{st:?}");
    assert!(st.errors >= 1 && st.writes == 0, "{st:?}");
}

/// A set that leaves no value under its key (refused as too large, or already expired,
/// alone or in a `set_many`) removes the remote's older value too. A get on another
/// thread between the set's local write and the remote's removal may read that older
/// value (the calls overlap), but must not leave it in the file once the set has
/// returned: a value stored at once (over 1 MiB) or a waiting one written meanwhile
/// (here by `stats`) stayed, served from the file after a set that removed it from both
/// tiers. The remote's write is held by the server (`CLIENT PAUSE WRITE`: reads go on).
#[test]
fn a_value_read_through_while_a_set_removes_it_from_the_remote_is_not_kept() {
    let big = vec![7u8; 2 << 20];
    let too_large = vec![8u8; 5 << 20];
    for how in ["too large", "expired", "expired in set_many"] {
        for key in [&b"small"[..], b"big"] {
            let value = if key == b"big" { &big[..] } else { b"small" };
            let server = RedisServer::start();
            let dir = tempfile::tempdir().unwrap();
            let mut o = remote_options(&server.url());
            o.set_remote_timeout(Duration::from_secs(20)).unwrap();
            o.set_max_size(4 << 20).unwrap();
            let h = Arc::new(machine(&dir, "h.db", &o));
            h.set(key, value, NEVER).unwrap();
            server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
            let setting = {
                let (h, key, too_large) = (h.clone(), key.to_vec(), too_large.clone());
                std::thread::spawn(move || {
                    let gone = Expiration::After(Duration::ZERO);
                    match how {
                        "too large" => assert_eq!(
                            h.set(&key, &too_large, NEVER).unwrap_err().kind(),
                            ErrorKind::TooLarge
                        ),
                        "expired" => h.set(&key, b"new", gone).unwrap(),
                        _ => h
                            .set_many(&[
                                backlite::Entry {
                                    key: b"another",
                                    value: b"v",
                                    expiration: NEVER,
                                },
                                backlite::Entry {
                                    key: &key,
                                    value: b"new",
                                    expiration: gone,
                                },
                            ])
                            .unwrap(),
                    }
                })
            };
            let give_up = Instant::now() + Duration::from_secs(20);
            while !server
                .cli(&["INFO", "clients"])
                .contains("blocked_clients:1")
            {
                assert!(Instant::now() < give_up, "the set never reached the server");
                std::thread::sleep(Duration::from_millis(5));
            }
            // The calls overlap: the remote's older value may be returned.
            get(&h, key);
            h.stats().unwrap(); // writes what waits in memory
            server.cli(&["CLIENT", "UNPAUSE"]);
            setting.join().unwrap();
            let what = String::from_utf8_lossy(key);
            assert_eq!(
                get(&h, key).map(|v| v.len()),
                None,
                "{how}, {what}: the removed value was kept"
            );
            let other = machine(&dir, "other.db", &remote_options(&server.url()));
            assert_eq!(get(&other, key).map(|v| v.len()), None, "{how}, {what}");
        }
    }
}

/// Two handles of one process on one file: a write through the second, made after the
/// first handle's write of the same key was queued, is the one the remote keeps. Each
/// handle has a write-behind queue and a thread of its own, and the second's write
/// (sent at once, or from its own queue) landed first, then the first's older one over
/// it: the file held the new value and every other machine read the old one. The first
/// handle's queue is held behind an earlier write's reply, so the order is built.
#[test]
fn a_write_queued_by_one_handle_never_lands_over_a_later_one_of_another() {
    for how in ["write-behind set", "read-write set", "read-write delete"] {
        let server = RedisServer::start();
        let proxy = HoldingProxy::start(server.port);
        let dir = tempfile::tempdir().unwrap();
        let first = machine(&dir, "m.db", &held_write_behind(&proxy));
        let mut o = held_write_behind(&proxy);
        if how.starts_with("read-write") {
            o.set_remote_mode(RemoteMode::ReadWrite);
        }
        let second = machine(&dir, "m.db", &o);
        proxy.arm(b"SET");
        first.set(b"held", b"v", NEVER).unwrap();
        proxy.wait_until(|h| h.waiting == 1); // its thread waits for this reply
        first.set(b"k", b"older", NEVER).unwrap();
        if how == "read-write delete" {
            second.delete(b"k").unwrap();
        } else {
            second.set(b"k", b"newer", NEVER).unwrap();
        }
        drop(second); // sends what it queued
        proxy.release();
        let st = first.remote_stats().unwrap();
        drop(first);
        assert_eq!(st.errors, 0, "{how}: {st:?}");
        let expected = (how != "read-write delete").then_some(&b"newer"[..]);
        let third = machine(&dir, "third.db", &remote_options(&server.url()));
        assert_eq!(get(&third, b"k").as_deref(), expected, "{how}");
        let local = machine(&dir, "m.db", &remote_options(&server.url()));
        assert_eq!(get(&local, b"k").as_deref(), expected, "{how}");
    }
}

/// A server that loses everything mid-session (an operator's FLUSHALL, a restart
/// without persistence) serves no value from before, costs no error, and each call
/// counts once: a look-up that finds the generation gone makes a new one (a read-write
/// handle) or misses (read-only), and a write moves to it.
#[test]
fn a_server_emptied_mid_session_counts_each_call_once_and_serves_nothing_older() {
    for how in ["FLUSHALL", "restart"] {
        let mut server = RedisServer::start();
        let dir = tempfile::tempdir().unwrap();
        let o = remote_options(&server.url());
        let mut ro = remote_options(&server.url());
        ro.set_remote_mode(RemoteMode::ReadOnly);
        let a = machine(&dir, "a.db", &o);
        let b = machine(&dir, "b.db", &o);
        let r = machine(&dir, "r.db", &ro);
        a.set(b"k1", b"v1", NEVER).unwrap();
        a.set(b"k2", b"v2", NEVER).unwrap();
        assert_eq!(get(&b, b"k1").as_deref(), Some(&b"v1"[..]));
        assert_eq!(get(&r, b"k1").as_deref(), Some(&b"v1"[..]));
        if how == "FLUSHALL" {
            assert_eq!(server.cli(&["FLUSHALL"]), "OK");
        } else {
            server.kill();
            server.restart();
        }
        // Read-only first: no generation to read yet, a miss.
        let before = r.remote_stats().unwrap();
        assert_eq!(get(&r, b"k2"), None, "{how}");
        let st = r.remote_stats().unwrap();
        assert_eq!(
            (st.hits, st.misses, st.errors, st.skipped),
            (
                before.hits,
                before.misses + 1,
                before.errors,
                before.skipped
            ),
            "{how}: read-only {st:?}"
        );
        let before = b.remote_stats().unwrap();
        assert_eq!(get(&b, b"k2"), None, "{how}");
        let st = b.remote_stats().unwrap();
        assert_eq!(
            (st.hits, st.misses, st.errors, st.skipped),
            (
                before.hits,
                before.misses + 1,
                before.errors,
                before.skipped
            ),
            "{how}: read-write {st:?}"
        );
        assert!(st.connected);
        let before = a.remote_stats().unwrap();
        a.set(b"k3", b"v3", NEVER).unwrap();
        a.delete(b"k1").unwrap();
        let st = a.remote_stats().unwrap();
        assert_eq!(
            (st.writes, st.errors, st.skipped),
            (before.writes + 2, before.errors, before.skipped),
            "{how}: writes {st:?}"
        );
        for h in [&b, &r] {
            assert_eq!(get(h, b"k3").as_deref(), Some(&b"v3"[..]), "{how}");
        }
        let c = machine(&dir, "c.db", &o);
        assert_eq!(get(&c, b"k1"), None, "{how}");
        assert_eq!(get(&c, b"k2"), None, "{how}");
        let st = c.remote_stats().unwrap();
        assert_eq!((st.hits, st.misses, st.errors), (0, 2, 0), "{how}: {st:?}");
    }
}

/// A write-behind set queued before another client's clear is sent as the unlink it
/// must be (its value must not outlive the clear): the remote acknowledges that write,
/// and nothing failed, so it is one write and no error, whether the thread knew of the
/// clear before sending it or learned it from the write's own round trip. It counted
/// an error as well (1 error and 1 write for one call), though `errors` counts round
/// trips that failed and writes dropped from a full queue.
#[test]
fn a_write_behind_set_dropped_by_another_clients_clear_is_one_write_and_no_error() {
    let (server, proxy, dir, other, wb) = held_write_behind_beside_another();
    proxy.arm(b"SET");
    wb.set(b"a", b"sent before the clear", NEVER).unwrap();
    proxy.wait_until(|h| h.waiting == 1); // the thread waits for this reply
    other.clear().unwrap();
    // Queued in the generation `wb` knows, which the clear ended.
    wb.set(b"k1", b"queued before the clear was read", NEVER)
        .unwrap();
    // `wb` reads the clear before its thread sends k1.
    assert_eq!(get(&wb, b"z"), None);
    proxy.release();
    let wait_for_writes = |n: u64| {
        let give_up = Instant::now() + Duration::from_secs(20);
        while wb.remote_stats().unwrap().writes < n {
            assert!(Instant::now() < give_up, "{:?}", wb.remote_stats());
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    wait_for_writes(2);
    // Sent in the generation `wb` knows; the round trip finds the clear.
    other.clear().unwrap();
    wb.set(b"k2", b"sent before the clear was read", NEVER)
        .unwrap();
    wait_for_writes(3);
    let st = wb.remote_stats().unwrap();
    assert_eq!(
        (st.hits, st.misses, st.writes, st.errors, st.skipped),
        (0, 1, 3, 0, 0),
        "{st:?}"
    );
    assert!(st.connected);
    drop(wb);
    let third = machine(&dir, "third.db", &remote_options(&server.url()));
    for key in [&b"a"[..], b"k1", b"k2"] {
        assert_eq!(get(&third, key), None, "{}", String::from_utf8_lossy(key));
    }
}

/// A clear whose reclaim the server refuses (a user without `SCAN`, as README's ACL
/// list warns) counts that round trip as an error and backs off, as every refused
/// command does: it counted nothing, so a monitor never learned that the older
/// generations' keys stay. The clear itself reached the remote (one write), every other
/// machine misses the values before it, and the handle is used again after the back-off.
#[test]
fn a_clears_reclaim_the_server_refuses_is_an_error() {
    let (server, url) = server_with_readme_user_but("+scan");
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&url);
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    a.set(b"k", b"before the clear", NEVER).unwrap();
    b.clear().unwrap();
    let st = b.remote_stats().unwrap();
    assert_eq!(
        (
            st.hits,
            st.misses,
            st.writes,
            st.errors,
            st.skipped,
            st.connected
        ),
        (0, 0, 1, 1, 0, false),
        "{st:?}"
    );
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k"), None);
    past_first_back_off();
    b.set(b"after", b"v", NEVER).unwrap();
    let st = b.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors, st.skipped), (2, 1, 0), "{st:?}");
    assert!(st.connected);
    assert_eq!(get(&c, b"after").as_deref(), Some(&b"v"[..]));
    // The older generation's key was left (no SCAN to find it).
    assert_eq!(server.cli(&["DBSIZE"]), "3");
}

/// A value `cached_call_exclusive` stores on the remote is a write of its key like a
/// set: an older write of the key still queued for the write-behind thread (here a set
/// whose local entry was evicted since, so the call computed) is dropped, not sent
/// after it. It landed over the computed value: every other machine read the older
/// value, while the file held the newer one.
#[test]
fn a_queued_write_never_lands_over_a_value_a_cached_call_stored_after_it() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let mut o = held_write_behind(&proxy);
    o.set_max_size(1000).unwrap();
    let wb = Arc::new(machine(&dir, "wb.db", &o));
    proxy.arm(b"SET");
    wb.set(b"first", b"v", NEVER).unwrap();
    proxy.wait_until(|h| h.waiting == 1); // the thread waits for this reply
    wb.set(b"k", b"older", NEVER).unwrap();
    // Fills the file: "k" is evicted here, its set still queued.
    wb.set(b"big", &[7u8; 1000], NEVER).unwrap();
    assert_eq!(get(&wb, b"k"), None);
    let value = wb
        .cached_call_exclusive(b"k", NEVER, Duration::from_secs(5), || {
            Ok(b"computed later".to_vec())
        })
        .unwrap();
    assert_eq!(value, b"computed later");
    proxy.release();
    drop(wb); // sends what is queued
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    assert_eq!(get(&other, b"k").as_deref(), Some(&b"computed later"[..]));
}

/// A holder stopped (SIGSTOP) past its remote lease while it computes: another machine
/// takes the lease over at its deadline, computes and stores its value; the holder,
/// continued, finishes its compute (its renewal finds the lease lost) and its late
/// store is fenced off: every other machine reads the new holder's value, and the old
/// holder's call still returns its own.
#[test]
fn a_holder_stopped_past_its_lease_never_overwrites_the_new_holders_value() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let machines = Machines::new(&server.url(), dir.path());
    let go = dir.path().join("go");
    let mut holder = machines.spawn("fence", "x.db", &[("GO", go.to_str().unwrap())]);
    let give_up = Instant::now() + Duration::from_secs(20);
    while machines.computes() == 0 {
        assert!(Instant::now() < give_up, "the holder never computed");
        std::thread::sleep(Duration::from_millis(5));
    }
    let signal = |sig: &str| {
        let pid = holder.id().to_string();
        let ok = std::process::Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig}");
    };
    signal("-STOP");
    let mut o = remote_options(&server.url());
    o.set_remote_timeout(Duration::from_millis(500)).unwrap();
    let other = Arc::new(machine(&dir, "y.db", &o));
    // Waits out the stopped holder's lease (4 s: it renews no more), then computes.
    let value = other
        .cached_call_exclusive(b"fenced", NEVER, Duration::from_secs(30), || {
            Ok(b"new holder".to_vec())
        })
        .unwrap();
    assert_eq!(value, b"new holder");
    signal("-CONT");
    std::fs::write(&go, b"").unwrap();
    assert!(holder.wait().unwrap().success());
    let third = machine(&dir, "z.db", &o);
    assert_eq!(get(&third, b"fenced").as_deref(), Some(&b"new holder"[..]));
    let st = other.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors), (1, 0), "{st:?}");
}

/// A wait for another machine's compute polls the remote; while a write of the key
/// waits in this process's write-behind queue, each poll is not sent (the remote still
/// holds what that write replaces). The call counts its look-up once, as skipped, and
/// nothing for its polls: each poll counted one more skipped, a dozen for one call that
/// waited 300 ms.
#[test]
fn a_wait_on_another_machines_lease_counts_a_key_held_back_once() {
    let (_server, proxy, _dir, other, wb) = held_write_behind_beside_another();
    let (other, wb) = (Arc::new(other), Arc::new(wb));
    let (started, wait_started) = std::sync::mpsc::channel();
    let (go, wait_go) = std::sync::mpsc::channel::<()>();
    let holder = {
        let other = other.clone();
        std::thread::spawn(move || {
            other.cached_call_exclusive(b"k", NEVER, Duration::from_secs(20), move || {
                started.send(()).unwrap();
                wait_go.recv().unwrap();
                Ok(b"computed".to_vec())
            })
        })
    };
    wait_started.recv().unwrap(); // `other` holds the key's remote lease
    proxy.arm(b"SET");
    wb.set(b"first", b"v", NEVER).unwrap();
    proxy.wait_until(|h| h.waiting == 1); // the thread waits for this reply
                                          // Queued: the removal of the key's older value.
    wb.set(b"k", b"x", Expiration::After(Duration::ZERO))
        .unwrap();
    let before = wb.remote_stats().unwrap();
    let err = wb
        .cached_call_exclusive(b"k", NEVER, Duration::from_millis(300), || {
            Ok(b"not computed here".to_vec())
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseHeld, "{err}");
    let st = wb.remote_stats().unwrap();
    let counted = |f: fn(&backlite::RemoteStats) -> u64| f(&st) - f(&before);
    assert_eq!(
        (
            counted(|s| s.hits),
            counted(|s| s.misses),
            counted(|s| s.errors),
            counted(|s| s.skipped)
        ),
        (0, 0, 0, 1),
        "{st:?}"
    );
    go.send(()).unwrap();
    assert_eq!(holder.join().unwrap().unwrap(), b"computed");
    proxy.release();
}

/// A set that waited in the write-behind queue past its deadline reaches the remote as
/// the removal it is by then, and one sent late lives there only for what is left of
/// its time: the PX counted from the set, not from the send, kept a value the file
/// had expired on the server for a whole expiration more. A reader whose clock runs
/// behind the writer's, which the server's PTTL is there to bound, read it back
/// after its deadline.
#[test]
fn a_write_behind_set_sent_after_its_deadline_leaves_nothing_on_the_remote() {
    let server = RedisServer::start();
    let proxy = HoldingProxy::start(server.port);
    let dir = tempfile::tempdir().unwrap();
    let wb = machine(&dir, "wb.db", &held_write_behind(&proxy));
    proxy.arm(b"SET");
    wb.set(b"first", b"v", NEVER).unwrap();
    proxy.wait_until(|h| h.waiting == 1); // the thread waits for this reply
    wb.set(
        b"k",
        b"short-lived",
        Expiration::After(Duration::from_secs(2)),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(2300)); // past k's deadline, still queued
    assert_eq!(get(&wb, b"k"), None);
    proxy.release();
    drop(wb); // sends what is queued
    let key = remote_key(&server, "backlite", "", "k");
    assert_eq!(
        server.cli(&["EXISTS", &key]),
        "0",
        "PTTL {}",
        server.cli(&["PTTL", &key])
    );
    let mut behind = remote_options(&server.url());
    behind.set_clock(clock_off_by(-3_600_000));
    let reader = machine(&dir, "reader.db", &behind);
    assert_eq!(get(&reader, b"k"), None);
    assert_eq!(get(&reader, b"first").as_deref(), Some(&b"v"[..]));
}

/// A value `cached_call_exclusive` computes that the file refuses as too large is
/// returned and stored nowhere, as a set of it stores nothing (API.md: "just not
/// stored"): the remote lease's fenced store put it on the remote, and the next get on
/// the same machine read it back from there (another machine too).
#[test]
fn a_computed_value_too_large_to_store_is_stored_on_neither_tier() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut small = remote_options(&server.url());
    small.set_max_size(1000).unwrap();
    let big = vec![7u8; 5000];
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        small.set_remote_mode(mode);
        let s = Arc::new(machine(&dir, "small.db", &small));
        let key = format!("{mode:?}");
        let got = s
            .cached_call_exclusive(key.as_bytes(), NEVER, Duration::from_secs(5), || {
                Ok(big.clone())
            })
            .unwrap();
        assert_eq!(got, big);
        drop(s);
        let s = machine(&dir, "small.db", &small);
        assert!(
            get(&s, key.as_bytes()).is_none(),
            "{mode:?}: stored after all"
        );
        let other = machine(&dir, "other.db", &remote_options(&server.url()));
        assert!(
            get(&other, key.as_bytes()).is_none(),
            "{mode:?}: on the remote"
        );
    }
}

/// A set_many refused for a value too large stores nothing, and the older value under
/// that key goes from both tiers, as a set of the value removes it (API.md "Too large":
/// a later get must not return a stale value): another machine reading through missed
/// it neither here nor there before, and read the value the batch was to replace.
#[test]
fn a_batch_refused_as_too_large_removes_that_keys_older_value_on_both_tiers() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; 5000];
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        let mut small = remote_options(&server.url());
        small.set_max_size(1000).unwrap();
        small.set_remote_mode(mode);
        let s = machine(&dir, &format!("small-{mode:?}.db"), &small);
        s.set(b"k", b"old", NEVER).unwrap();
        s.set(b"other", b"stays", NEVER).unwrap();
        let batch = [
            backlite::Entry {
                key: b"other",
                value: b"new",
                expiration: NEVER,
            },
            backlite::Entry {
                key: b"k",
                value: &big,
                expiration: NEVER,
            },
        ];
        assert_eq!(s.set_many(&batch).unwrap_err().kind(), ErrorKind::TooLarge);
        s.flush().unwrap();
        assert!(get(&s, b"k").is_none(), "{mode:?}: kept here");
        assert_eq!(get(&s, b"other").as_deref(), Some(&b"stays"[..]));
        let other = machine(
            &dir,
            &format!("other-{mode:?}.db"),
            &remote_options(&server.url()),
        );
        assert!(get(&other, b"k").is_none(), "{mode:?}: kept on the remote");
        assert_eq!(get(&other, b"other").as_deref(), Some(&b"stays"[..]));
        s.clear().unwrap();
    }
}

/// A read-only handle beside a read-write one whose clear could not reach the remote
/// sends nothing while the clear is owed (it would read values the clear hides), and
/// counts each local miss meanwhile as a call held back (`skipped`), as it counts one
/// for a key held back. It counted nothing at all: hits, misses, errors and skipped
/// stayed 0 for a call that missed the file.
#[test]
fn a_read_only_look_up_held_back_by_an_owed_clear_is_counted_as_skipped() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    let rw = machine(&dir, "shared.db", &o);
    o.set_remote_mode(RemoteMode::ReadOnly);
    let ro = machine(&dir, "shared.db", &o);
    rw.set(b"k", b"old", NEVER).unwrap();
    // Writes wait while reads go on: the clear's script times out, and is owed.
    server.cli(&["CLIENT", "PAUSE", "30000", "WRITE"]);
    rw.clear().unwrap();
    server.cli(&["CLIENT", "UNPAUSE"]);
    assert_eq!(rw.remote_stats().unwrap().errors, 1);
    assert_eq!(get(&ro, b"k"), None);
    assert!(!ro.contains(b"k").unwrap());
    let st = ro.remote_stats().unwrap();
    assert_eq!(
        (st.hits, st.misses, st.errors, st.skipped),
        (0, 0, 0, 2),
        "{st:?}"
    );
}

/// A delete answers NOT_FOUND when the remote holds nothing a get would return under
/// the key, as for the file (API.md: NOT_FOUND is "no live entry: absent, expired, or
/// damaged"): a foreign value (not of this format), a value of another key, or one
/// whose header says it has expired (written by a machine whose clock runs behind:
/// the server still keeps it). The UNLINK's count said OK for each of them, where a get
/// just before had missed. A value of this format, live, still answers OK; each is
/// removed all the same.
#[test]
fn a_delete_of_what_no_get_would_return_from_the_remote_is_not_found() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let mut behind = remote_options(&server.url());
    behind.set_clock(clock_off_by(-3_600_000));
    let ten_minutes = Expiration::After(Duration::from_secs(600));
    machine(&dir, "behind.db", &behind)
        .set(b"expired", b"an hour behind", ten_minutes)
        .unwrap();
    let a = machine(&dir, "a.db", &o);
    a.set(b"live", b"v", NEVER).unwrap();
    let long = vec![b'x'; 300];
    a.set(&long, b"the long key's", NEVER).unwrap();
    let foreign = remote_key(&server, "backlite", "", "foreign");
    server.cli(&["SET", &foreign, "plain text"]);
    let b = machine(&dir, "b.db", &o);
    for key in [&b"foreign"[..], b"expired"] {
        let name = String::from_utf8_lossy(key);
        assert_eq!(get(&b, key), None, "{name}");
        assert!(!b.delete(key).unwrap(), "{name}: deleted a live entry");
        let redis_key = remote_key(&server, "backlite", "", &name);
        assert_eq!(server.cli(&["EXISTS", &redis_key]), "0", "{name}: left");
    }
    assert!(b.delete(b"live").unwrap());
    assert!(b.delete(&long).unwrap());
    assert_eq!(get(&a, b"live").as_deref(), Some(&b"v"[..])); // a's own file
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"live"), None);
    assert_eq!(get(&c, &long), None);
}

/// A call that waits while another handle on the same file computes the key (its
/// lease is the file's) counts one look-up on the remote, as a wait on another
/// machine's lease does: each poll asked the remote again and counted a miss of its
/// own, 17 for one `cached_call_exclusive` that waited 600 ms, and as many for the
/// steps of an async memoiser's wait (`lease_step`).
#[test]
fn a_wait_on_the_files_lease_counts_one_remote_look_up() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let holder = Arc::new(machine(&dir, "same.db", &o));
    let waiter = Arc::new(machine(&dir, "same.db", &o));
    for key in [&b"exclusive"[..], b"steps"] {
        let (started, wait_started) = std::sync::mpsc::channel();
        let (go, wait_go) = std::sync::mpsc::channel::<()>();
        let computing = {
            let (holder, key) = (holder.clone(), key.to_vec());
            std::thread::spawn(move || {
                let LeaseOutcome::Acquired(lease) = holder.lease_step(&key, 0).unwrap() else {
                    panic!("no lease on a miss");
                };
                started.send(()).unwrap();
                wait_go.recv().unwrap();
                lease.fulfill(b"computed", NEVER).unwrap();
            })
        };
        wait_started.recv().unwrap();
        let before = waiter.remote_stats().unwrap();
        // The waiter polls a while (1 ms doubling to 50 ms) before the value comes.
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            go.send(()).unwrap();
        });
        let value = if key == b"exclusive" {
            waiter
                .cached_call_exclusive(key, NEVER, Duration::from_secs(30), || {
                    Ok(b"computed twice".to_vec())
                })
                .unwrap()
        } else {
            let mut attempt = 0;
            loop {
                match waiter.lease_step(key, attempt) {
                    Ok(LeaseOutcome::Hit(v, _)) => break v,
                    Err(e) if e.kind() == ErrorKind::LeaseHeld => {
                        std::thread::sleep(e.retry_in().unwrap())
                    }
                    _ => panic!("a step took the lease the holder has"),
                }
                attempt += 1;
            }
        };
        assert_eq!(value, b"computed");
        computing.join().unwrap();
        release.join().unwrap();
        let st = waiter.remote_stats().unwrap();
        let name = String::from_utf8_lossy(key);
        assert_eq!(
            (
                st.hits - before.hits,
                st.misses - before.misses,
                st.errors,
                st.skipped
            ),
            (0, 1, 0, 0),
            "{name}: {st:?}"
        );
    }
}

/// A read-only handle sends the server nothing but reads (`GET`, `PTTL`), whatever it
/// is asked: sets (a value, one too large for its file, one already expired, a batch),
/// deletes, a clear, `cached_call_exclusive`, a fulfilled lease, and its free; and on a
/// namespace whose generation key is missing it makes none (every look-up misses).
/// Watched with `MONITOR`, which shows every command any client sends.
#[test]
fn a_read_only_handle_sends_nothing_but_reads() {
    use std::io::BufRead;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    machine(&dir, "rw.db", &remote_options(&server.url()))
        .set(b"shared", b"1", NEVER)
        .unwrap();
    let mut monitor = std::process::Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string(), "MONITOR"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut seen = std::io::BufReader::new(monitor.stdout.take().unwrap());
    let mut line = String::new();
    seen.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "OK", "MONITOR did not start");
    for namespace in ["backlite", "never-written"] {
        let mut o = remote_options(&server.url());
        o.set_remote_mode(RemoteMode::ReadOnly);
        o.set_remote_namespace(namespace).unwrap();
        o.set_max_size(1 << 20).unwrap();
        let ro = Arc::new(machine(&dir, &format!("{namespace}.db"), &o));
        let read = get(&ro, b"shared");
        assert_eq!(read.is_some(), namespace == "backlite", "{namespace}");
        ro.set(b"a", b"1", NEVER).unwrap();
        let too_large = ro.set(b"a", &vec![0; 2 << 20], NEVER).unwrap_err();
        assert_eq!(too_large.kind(), ErrorKind::TooLarge);
        ro.set(b"b", b"1", Expiration::After(Duration::ZERO))
            .unwrap();
        let entry = backlite::Entry {
            key: b"c",
            value: b"1",
            expiration: NEVER,
        };
        ro.set_many(&[entry]).unwrap();
        ro.delete(b"shared").unwrap();
        assert!(!ro.delete(b"absent").unwrap());
        assert!(!ro.contains(b"absent").unwrap());
        let computed = ro
            .cached_call_exclusive(b"cc", NEVER, Duration::from_secs(5), || Ok(b"v".to_vec()))
            .unwrap();
        assert_eq!(computed, b"v");
        let LeaseOutcome::Acquired(lease) = ro.lease_step(b"l", 0).unwrap() else {
            panic!("no lease on a miss");
        };
        lease.fulfill(b"v", NEVER).unwrap();
        ro.clear().unwrap();
        assert_eq!(get(&ro, b"after the clear"), None);
        assert_eq!(ro.remote_stats().unwrap().writes, 0);
    }
    // Every command sent before this one has been shown.
    server.cli(&["ECHO", "the end"]);
    let mut commands = Vec::new();
    loop {
        line.clear();
        assert!(seen.read_line(&mut line).unwrap() > 0, "MONITOR ended");
        // `<time> [<db> <client>] "<COMMAND>" "<arg>"...`
        let command = line.split('"').nth(1).unwrap_or("").to_ascii_uppercase();
        if command == "ECHO" {
            break;
        }
        commands.push(line.trim().to_string());
    }
    monitor.kill().unwrap();
    monitor.wait().unwrap();
    assert!(commands.len() > 10, "{commands:?}");
    let writes: Vec<_> = commands
        .iter()
        .filter(|c| !["\"GET\"", "\"PTTL\""].iter().any(|r| c.contains(r)))
        .collect();
    assert!(writes.is_empty(), "a read-only handle sent {writes:?}");
}

/// An ACL user who may not run `UNLINK` (README's list less that command): the first
/// refusal is one error, and removals go as `DEL` from then on, so each later write
/// reaches the remote. Every write failed before, after its `SET` went through, and
/// the key was written no more: another machine read the first value set ("v1") after
/// "v3" was set. A delete's script falls back to `DEL` at once, without an error.
#[test]
fn an_acl_user_without_unlink_removes_with_del_and_never_leaves_a_stale_value() {
    let (server, url) = server_with_readme_user_but("+unlink");
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&url);
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"v1", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors), (0, 1), "{st:?}");
    past_first_back_off();
    a.set(b"k", b"v2", NEVER).unwrap();
    a.set(b"k", b"v3", NEVER).unwrap();
    a.set(b"x", b"x", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors, st.skipped), (3, 1, 0), "{st:?}");
    let b = machine(&dir, "b.db", &o);
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"v3"[..]));
    // A handle that never met the refusal: its delete's script removes with DEL.
    let c = machine(&dir, "c.db", &o);
    assert!(c.delete(b"x").unwrap(), "the remote held a live value");
    let st = c.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors), (1, 0), "{st:?}");
    a.delete(b"k").unwrap();
    let d = machine(&dir, "d.db", &o);
    assert_eq!(get(&d, b"k"), None);
    assert_eq!(get(&d, b"x"), None);
    // A clear's reclaim removes the older generation's keys with DEL too.
    a.set(b"k", b"v4", NEVER).unwrap();
    a.clear().unwrap();
    assert_eq!(a.remote_stats().unwrap().errors, 1);
    assert_eq!(server.cli(&["KEYS", "*"]), "backlite::gen");
}
/// A server over its `maxmemory` under `noeviction` refuses every write, the clear's
/// new generation (a `SET` in its script) too, but not a removal. Filled with this
/// namespace's values, a clear refused (an error) unlinks them, then makes its
/// generation: it reaches the remote, and the server takes writes again. Full of
/// something else, the clear stays owed (its script refused twice, two errors), but
/// nothing written before it is left to read. Before, the clear
/// stayed owed for as long as the server was full, and another machine read the value
/// set before it ("old") once the clear had returned.
#[test]
fn a_clear_on_a_server_full_under_noeviction_leaves_nothing_before_it_to_read() {
    let server = RedisServer::with_args(&["--maxmemory-policy", "noeviction"]);
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let a = machine(&dir, "a.db", &o);
    a.set(b"k", b"old", NEVER).unwrap();
    let big = vec![7u8; 64 << 10];
    for i in 0..40 {
        a.set(format!("fill {i}").as_bytes(), &big, NEVER).unwrap();
    }
    // 1 MiB less than it holds: full of this namespace's values.
    let max = (server.used_memory() - (1 << 20)).to_string();
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", &max]), "OK");
    a.set(b"refused", b"x", NEVER).unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!((st.writes, st.errors), (41, 1), "{st:?}");
    past_first_back_off();
    a.clear().unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!(
        (st.writes, st.errors, st.connected),
        (42, 2, true),
        "{st:?}"
    );
    let b = machine(&dir, "b.db", &o);
    assert_eq!(get(&b, b"k"), None, "a value set before the clear");
    a.set(b"after", b"new", NEVER).unwrap();
    assert_eq!(get(&b, b"after").as_deref(), Some(&b"new"[..]));

    // Full of something else: the clear cannot make its generation.
    a.set(b"k", b"old again", NEVER).unwrap();
    let max = (server.used_memory() - (256 << 10)).to_string();
    assert_eq!(server.cli(&["CONFIG", "SET", "maxmemory", &max]), "OK");
    a.clear().unwrap();
    let st = a.remote_stats().unwrap();
    assert_eq!(
        (st.writes, st.errors, st.connected),
        (44, 4, false),
        "{st:?}"
    );
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k"), None, "a value set before the clear");
    assert_eq!(get(&c, b"after"), None, "a value set before the clear");
}

/// A read-only handle never writes to the remote, but its removals hold on its own
/// side: after its delete, or a set refused as too large or already expired, the
/// process's handles on the file no longer read back the value the remote held then
/// (API.md: "a later get must not return a stale value"). A value another machine
/// writes after that is read as any. Before, the next get read the removed value back
/// from the remote and stored it in the file again. Its clear empties its file only:
/// the remote's values are read again (the cluster tests clear a read-only reader to
/// read the remote anew), but for those its removals hid.
#[test]
fn a_read_only_handles_removals_are_not_read_back_from_the_remote() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    o.set_max_size(100).unwrap();
    let ro = machine(&dir, "ro.db", &o);
    let neighbour = machine(&dir, "ro.db", &o);
    for k in ["deleted", "too-large", "expired", "many", "untouched"] {
        rw.set(k.as_bytes(), b"old", NEVER).unwrap();
        assert_eq!(get(&ro, k.as_bytes()).as_deref(), Some(&b"old"[..]), "{k}");
    }
    assert!(ro.delete(b"deleted").unwrap());
    let big = vec![b'x'; 200];
    let too_large = ro.set(b"too-large", &big, NEVER).unwrap_err();
    assert_eq!(too_large.kind(), ErrorKind::TooLarge);
    ro.set(b"expired", b"new", Expiration::After(Duration::ZERO))
        .unwrap();
    ro.set_many(&[backlite::Entry {
        key: b"many",
        value: b"new",
        expiration: Expiration::After(Duration::ZERO),
    }])
    .unwrap();
    for k in ["deleted", "too-large", "expired", "many"] {
        assert_eq!(get(&ro, k.as_bytes()), None, "{k} read back");
        assert_eq!(
            get(&neighbour, k.as_bytes()),
            None,
            "{k} read back by a neighbour"
        );
        assert!(!ro.contains(k.as_bytes()).unwrap(), "{k} contained");
    }
    assert_eq!(get(&ro, b"untouched").as_deref(), Some(&b"old"[..]));
    // Nothing was written to the remote: another machine still reads the old values.
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    assert_eq!(get(&other, b"deleted").as_deref(), Some(&b"old"[..]));
    // A value written after the removal is read.
    rw.set(b"deleted", b"newer", NEVER).unwrap();
    assert_eq!(get(&ro, b"deleted").as_deref(), Some(&b"newer"[..]));
    // A clear empties the file only.
    ro.clear().unwrap();
    assert_eq!(get(&ro, b"untouched").as_deref(), Some(&b"old"[..]));
    assert_eq!(get(&ro, b"deleted").as_deref(), Some(&b"newer"[..]));
    assert_eq!(
        get(&neighbour, b"too-large"),
        None,
        "read back after the clear"
    );
    assert_eq!(ro.remote_stats().unwrap().writes, 0);
}

/// A process that exits without freeing a WRITE_BEHIND handle sends what its queue
/// holds, as the free would: the C library's atexit handler (for Rust,
/// `write_waiting_at_exit`) did only the file's buffered hits, and the queue's thread
/// ended with the process, so other machines missed the sets and read the deleted
/// value back.
#[test]
fn a_process_that_exits_without_freeing_a_write_behind_handle_sends_its_queue() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let machines = Machines::new(&server.url(), dir.path());
    let other = machine(&dir, "other.db", &remote_options(&server.url()));
    // A cache file, then an in-memory cache.
    for (i, memory) in [&[][..], &[("MEMORY", "1")][..]].into_iter().enumerate() {
        other.set(b"deleted", b"old", NEVER).unwrap();
        let mut child = machines.spawn("behind-exit", "exiting.db", memory);
        assert!(child.wait().unwrap().success());
        let fresh = machine(
            &dir,
            &format!("fresh{i}.db"),
            &remote_options(&server.url()),
        );
        let what = if memory.is_empty() { "file" } else { "memory" };
        assert_eq!(
            get(&fresh, b"deleted"),
            None,
            "{what}: the deleted value was read"
        );
        for i in 0..2000 {
            let key = format!("k{i}");
            assert_eq!(
                get(&fresh, key.as_bytes()).as_deref(),
                Some(&b"from the exited process"[..]),
                "{what}: {key}"
            );
        }
        server.cli(&["FLUSHALL"]);
    }
}

/// A read-only handle's set replaces the remote's value for the process's handles on
/// the file, as its delete removes it: once the set's own entry is gone from the file
/// (expired, or evicted), the value it replaced is not read back from the remote. It
/// was: a set with an expiration answered the older value again once it expired, and
/// a set evicted by later sets did at once, a value older than the last set of the key.
#[test]
fn a_read_only_handles_set_is_not_undone_by_the_remote_once_it_expires_or_is_evicted() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    o.set_max_size(100).unwrap();
    let ro = machine(&dir, "ro.db", &o);
    let neighbour = machine(&dir, "ro.db", &o);
    for k in ["expiring", "evicted", "untouched"] {
        rw.set(k.as_bytes(), b"old", NEVER).unwrap();
    }
    ro.set(b"evicted", b"new", NEVER).unwrap();
    // 101 bytes: the set makes room by evicting "evicted", the only other entry.
    ro.set(b"filler", &[b'f'; 98], NEVER).unwrap();
    assert_eq!(ro.stats().unwrap().count, 1);
    let ttl = Duration::from_millis(300);
    let set_at = Instant::now();
    ro.set(b"expiring", b"new", Expiration::After(ttl)).unwrap();
    // A value computed after a miss replaced nothing there: another machine's later
    // value is read once it expires.
    let computed = ro
        .cached_call(b"computed", Expiration::After(ttl), None, || {
            Ok(b"mine".to_vec())
        })
        .unwrap();
    assert_eq!(computed, b"mine");
    rw.set(b"computed", b"theirs", NEVER).unwrap();
    std::thread::sleep(ttl.saturating_sub(set_at.elapsed()) + Duration::from_millis(50));
    for k in ["expiring", "evicted"] {
        assert_eq!(
            get(&ro, k.as_bytes()),
            None,
            "{k}: the value it replaced read back"
        );
        assert_eq!(
            get(&neighbour, k.as_bytes()),
            None,
            "{k}: the value it replaced read back by a neighbour"
        );
    }
    assert_eq!(get(&ro, b"untouched").as_deref(), Some(&b"old"[..]));
    assert_eq!(get(&ro, b"computed").as_deref(), Some(&b"theirs"[..]));
    // Nothing was written to the remote; a value written after the set is read.
    rw.set(b"expiring", b"newer", NEVER).unwrap();
    assert_eq!(get(&ro, b"expiring").as_deref(), Some(&b"newer"[..]));
    assert_eq!(ro.remote_stats().unwrap().writes, 0);
}

/// A read-only handle's set hides the remote value it replaced, not one another machine
/// writes after it. The hide learned "what the set replaced" at the first look-up after
/// the set's entry left the file, so a value written meanwhile was missed as if the set
/// had replaced it; and a program that memoises by hand (get, a miss, compute, set)
/// hid every newer value at each round: such a handle never read another machine's
/// value of a key it had once set. The set now reads what it replaces.
#[test]
fn a_value_written_after_a_read_only_set_is_read_once_the_set_leaves_the_file() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    o.set_max_size(100).unwrap();
    let ro = machine(&dir, "ro.db", &o);
    rw.set(b"replaced", b"old", NEVER).unwrap();
    for round in 0..3 {
        // The memoiser's round: a miss, its own value, then another machine's newer one.
        assert_eq!(get(&ro, b"k"), None, "round {round}");
        ro.set(b"k", b"mine", NEVER).unwrap();
        ro.set(b"replaced", b"new", NEVER).unwrap();
        let theirs = format!("theirs {round}");
        rw.set(b"k", theirs.as_bytes(), NEVER).unwrap();
        // 99 bytes: room is made by evicting both sets.
        ro.set(b"filler", &[b'f'; 99], NEVER).unwrap();
        assert_eq!(ro.stats().unwrap().count, 1, "round {round}");
        assert_eq!(
            get(&ro, b"k").as_deref(),
            Some(theirs.as_bytes()),
            "round {round}: a value written after the set was hidden"
        );
        // What the set did replace stays hidden.
        assert_eq!(get(&ro, b"replaced"), None, "round {round}");
        ro.delete(b"k").unwrap();
        rw.delete(b"k").unwrap();
        ro.delete(b"filler").unwrap();
    }
    assert_eq!(ro.remote_stats().unwrap().writes, 0);
}

/// `a_value_written_after_a_read_only_set_is_read_once_the_set_leaves_the_file` for the
/// keys of a batch: each hides what the remote held when it was set, not a value
/// another machine wrote after it.
#[test]
fn a_value_written_after_a_read_only_batch_is_read_once_the_batch_leaves_the_file() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    o.set_max_size(100).unwrap();
    let ro = machine(&dir, "ro.db", &o);
    rw.set(b"replaced", b"old", NEVER).unwrap();
    let batch = [
        backlite::Entry {
            key: b"k",
            value: b"mine",
            expiration: NEVER,
        },
        backlite::Entry {
            key: b"replaced",
            value: b"new",
            expiration: NEVER,
        },
    ];
    ro.set_many(&batch).unwrap();
    rw.set(b"k", b"theirs", NEVER).unwrap();
    ro.set(b"filler", &[b'f'; 99], NEVER).unwrap();
    assert_eq!(ro.stats().unwrap().count, 1);
    assert_eq!(
        get(&ro, b"k").as_deref(),
        Some(&b"theirs"[..]),
        "a value written after the batch was hidden"
    );
    assert_eq!(get(&ro, b"replaced"), None);
}

/// A value a read-only handle computed after a miss and could not store (too large for
/// its file) hides nothing on the remote, as a computed value it stores hides nothing:
/// the remote held no value the call replaced. It was sent as the removal a refused set
/// is, which such a handle keeps as a hide: another machine's later value of the key was
/// missed, and each call computed the key again (hiding that value anew), for ever.
#[test]
fn a_computed_value_too_large_for_a_read_only_file_hides_nothing() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let rw = machine(&dir, "rw.db", &remote_options(&server.url()));
    let mut o = remote_options(&server.url());
    o.set_remote_mode(RemoteMode::ReadOnly);
    o.set_max_size(10).unwrap();
    let ro = machine(&dir, "ro.db", &o);
    let big = [b'm'; 20];
    let mut computed = 0;
    let got = ro
        .cached_call(b"k", NEVER, None, || {
            computed += 1;
            Ok(big.to_vec())
        })
        .unwrap();
    assert_eq!((got, computed), (big.to_vec(), 1));
    rw.set(b"k", &[b't'; 20], NEVER).unwrap();
    for round in 0..2 {
        let got = ro
            .cached_call(b"k", NEVER, None, || {
                computed += 1;
                Ok(big.to_vec())
            })
            .unwrap();
        assert_eq!(
            got, [b't'; 20],
            "round {round}: another machine's value was hidden"
        );
    }
    assert_eq!(computed, 1);
    assert_eq!(get(&ro, b"k").as_deref(), Some(&[b't'; 20][..]));
}

/// A process that exits without freeing a READ_WRITE handle pays the unlinks it owes
/// the remote, as the free would: a delete that never reached the server (here refused
/// to a user without EVAL) left the deleted value there for every other machine to read
/// once the process was gone, the handle's owed unlink never sent.
#[test]
fn a_process_that_exits_without_freeing_a_read_write_handle_pays_its_owed_unlinks() {
    let (server, url) = server_with_readme_user_but("+eval");
    let dir = tempfile::tempdir().unwrap();
    // The default user may run everything: it makes the generation and the old value.
    let admin = format!("redis://127.0.0.1:{}", server.port);
    let other = machine(&dir, "other.db", &remote_options(&admin));
    other.set(b"deleted", b"old", NEVER).unwrap();
    let machines = Machines::new(&url, dir.path());
    let mut child = machines.spawn("owed-exit", "exiting.db", &[]);
    assert!(child.wait().unwrap().success());
    let fresh = machine(&dir, "fresh.db", &remote_options(&admin));
    assert_eq!(get(&fresh, b"deleted"), None, "the deleted value was read");
}

/// The remote lease keys of the server's default namespace.
fn lease_keys(server: &RedisServer) -> String {
    server.cli(&["--scan", "--pattern", "backlite:*:l{*"])
}

/// A value the server refuses whole (over its `proto-max-bulk-len`: the fenced write's
/// script never runs, and the connection is closed) leaves the key's remote lease
/// released, as a refused SET inside the script does: held, it kept the next machine
/// waiting for the whole lease, which then left it held in turn.
#[test]
fn a_lease_whose_value_the_server_refuses_is_released() {
    let server = RedisServer::with_args(&["--proto-max-bulk-len", "1mb"]);
    let dir = tempfile::tempdir().unwrap();
    let o = remote_options(&server.url());
    let big = vec![5u8; 1 << 20];
    for (i, name) in ["a.db", "b.db"].into_iter().enumerate() {
        let s = Arc::new(machine(&dir, name, &o));
        let mut computed = 0;
        let v = s
            .cached_call_exclusive(b"k", NEVER, Duration::from_secs(60), || {
                computed += 1;
                Ok(big.clone())
            })
            .unwrap();
        assert_eq!((v.len(), computed), (big.len(), 1), "machine {i}");
        let st = s.remote_stats().unwrap();
        assert_eq!((st.writes, st.errors), (0, 1), "machine {i}: {st:?}");
        assert_eq!(lease_keys(&server), "", "machine {i} left its lease held");
    }
}

/// One value of a batch that the server refuses whole (over its `proto-max-bulk-len`,
/// after which it closes the connection) is the only one lost: the other values of
/// the same set_many reach the remote, in each mode that writes.
#[test]
fn a_value_the_server_refuses_loses_no_other_value_of_its_batch() {
    for mode in [RemoteMode::ReadWrite, RemoteMode::WriteBehind] {
        let server = RedisServer::with_args(&["--proto-max-bulk-len", "1mb"]);
        let dir = tempfile::tempdir().unwrap();
        let mut o = remote_options(&server.url());
        o.set_remote_mode(mode);
        let big = vec![7u8; 1 << 20];
        let entry = |key: &'static [u8], value: &'static [u8]| backlite::Entry {
            key,
            value,
            expiration: NEVER,
        };
        let writer = machine(&dir, "writer.db", &o);
        writer
            .set_many(&[
                entry(b"before", b"1"),
                backlite::Entry {
                    key: b"big",
                    value: &big,
                    expiration: NEVER,
                },
                entry(b"after", b"2"),
            ])
            .unwrap();
        if mode == RemoteMode::ReadWrite {
            let st = writer.remote_stats().unwrap();
            assert_eq!(st.errors, 1, "{mode:?}: {st:?}");
        }
        drop(writer); // write-behind: sends its queue
        let reader = machine(&dir, "reader.db", &remote_options(&server.url()));
        assert_eq!(
            get(&reader, b"before").as_deref(),
            Some(&b"1"[..]),
            "{mode:?}"
        );
        assert_eq!(
            get(&reader, b"after").as_deref(),
            Some(&b"2"[..]),
            "{mode:?}"
        );
        assert_eq!(get(&reader, b"big"), None, "{mode:?}");
    }
}

/// A cached_call_exclusive whose compute ends while the remote is backed off (here by a
/// set of another key the server refused during the compute) gives its remote lease
/// back: the compute failed, or its value was too large to store. The release was
/// skipped with the back-off, and every other machine waited out the whole lease.
#[test]
fn a_lease_is_released_though_the_remote_backed_off_during_the_compute() {
    let server = RedisServer::with_args(&["--proto-max-bulk-len", "1mb"]);
    let dir = tempfile::tempdir().unwrap();
    let mut o = remote_options(&server.url());
    o.set_max_size(4 << 20).unwrap();
    let refused = vec![1u8; 1 << 20];
    let too_large = vec![2u8; 5 << 20];
    for (i, fails) in [true, false].into_iter().enumerate() {
        let s = Arc::new(machine(&dir, &format!("{i}.db"), &o));
        let result = s.cached_call_exclusive(b"k", NEVER, Duration::from_secs(60), || {
            s.set(b"other", &refused, NEVER).unwrap();
            assert_eq!(s.remote_stats().unwrap().errors, 1, "not backed off");
            match fails {
                true => Err(backlite::Error::new(
                    ErrorKind::CallbackFailed,
                    "compute failed",
                )),
                false => Ok(too_large.clone()),
            }
        });
        assert_eq!(result.is_err(), fails);
        assert_eq!(lease_keys(&server), "", "fails: {fails}: the lease is held");
    }
}
