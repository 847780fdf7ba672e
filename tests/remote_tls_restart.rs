//! A TLS server (`rediss://`) that dies, restarts or stops answering in the middle of a
//! run: no call fails or hangs, a connection the restart closed is replaced, and the
//! remote is used again once it is back.
//!
//! The trusted roots come from `SSL_CERT_FILE`, which is process-wide: one test.

mod support;

use backlite::{Expiration, RemoteMode};
use std::time::{Duration, Instant};
use support::machine::{get, machine, remote_options};
use support::redis::{RedisServer, TlsFiles};

const NEVER: Expiration = Expiration::Never;

#[test]
fn a_tls_server_that_dies_restarts_or_stops_never_fails_a_call_and_is_used_again() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::make(&dir.path().join("tls"));
    let mut server = RedisServer::with_tls(&tls);
    std::env::set_var("SSL_CERT_FILE", &tls.ca);
    let mut o = remote_options(&server.tls_url());
    o.set_remote_timeout(Duration::from_secs(2)).unwrap();
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    a.set(b"k1", b"v1", NEVER).unwrap();
    assert_eq!(get(&b, b"k1").as_deref(), Some(&b"v1"[..]));

    // Restarted while both machines' connections lay idle: the next round trip of each
    // is sent again on a new connection, no error, nothing backed off.
    server.restart();
    a.set(b"k2", b"v2", NEVER).unwrap();
    assert_eq!(get(&b, b"k2").as_deref(), Some(&b"v2"[..]));
    let (sa, sb) = (a.remote_stats().unwrap(), b.remote_stats().unwrap());
    assert_eq!((sa.errors, sa.skipped, sa.writes), (0, 0, 2), "{sa:?}");
    assert_eq!((sb.errors, sb.skipped, sb.hits), (0, 0, 2), "{sb:?}");

    // Killed: calls go on locally, counted; a delete owed to it is paid once it is back.
    server.kill();
    a.set(b"k3", b"local", NEVER).unwrap();
    assert_eq!(get(&a, b"k3").as_deref(), Some(&b"local"[..]));
    a.delete(b"k2").unwrap();
    let st = a.remote_stats().unwrap();
    assert!(!st.connected && st.errors >= 1, "{st:?}");
    server.restart();
    let give_up = Instant::now() + Duration::from_secs(30);
    loop {
        a.set(b"k4", b"v4", NEVER).unwrap();
        if a.remote_stats().unwrap().connected {
            break;
        }
        assert!(Instant::now() < give_up, "never reconnected over TLS");
        std::thread::sleep(Duration::from_millis(20));
    }
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k4").as_deref(), Some(&b"v4"[..]));
    assert_eq!(get(&c, b"k2"), None);

    // Writing behind through a restart: the queue reaches the server that came back.
    let mut behind = o.clone();
    behind.set_remote_mode(RemoteMode::WriteBehind);
    let w = machine(&dir, "w.db", &behind);
    w.set(b"w1", b"first", NEVER).unwrap();
    drop(w);
    assert_eq!(get(&c, b"w1").as_deref(), Some(&b"first"[..]));
    server.restart();
    let w = machine(&dir, "w.db", &behind);
    w.set(b"w2", b"second", NEVER).unwrap();
    drop(w);
    assert_eq!(get(&c, b"w2").as_deref(), Some(&b"second"[..]));

    // Stopped (SIGSTOP) with TLS connections open and idle: each call ends (its round
    // trip bounded by the timeout) and goes on locally, then the remote is skipped.
    let b_errors = b.remote_stats().unwrap().errors;
    server.signal("STOP");
    for i in 0..5 {
        assert_eq!(get(&b, format!("p{i}").as_bytes()), None);
        b.set(format!("p{i}").as_bytes(), b"local", NEVER).unwrap();
        assert_eq!(
            get(&b, format!("p{i}").as_bytes()).as_deref(),
            Some(&b"local"[..])
        );
    }
    let st = b.remote_stats().unwrap();
    assert!(st.errors > b_errors && st.skipped > 0, "{st:?}");
    server.signal("CONT");
    std::env::remove_var("SSL_CERT_FILE");
}
