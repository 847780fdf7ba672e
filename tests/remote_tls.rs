//! The remote tier over TLS (`rediss://`) against `redis-server --tls-port`, with CAs
//! this test makes with `openssl`: a server whose certificate the trusted CA signed
//! works; one signed by an unknown CA is refused (not connected, a miss), never read.
//!
//! The trusted roots are the system's, or the bundle `SSL_CERT_FILE` names (README,
//! "Remote tier"). That is process-wide, so this file holds one test.

mod support;

use backlite::{Expiration, Storage};
use std::time::Duration;
use support::machine::{get, machine, remote_options};
use support::redis::{RedisServer, TlsFiles};

/// A machine on the remote at `url`, with two seconds for the TLS handshake.
fn tls_machine(dir: &tempfile::TempDir, name: &str, url: &str) -> Storage {
    let mut o = remote_options(url);
    o.set_remote_timeout(Duration::from_secs(2)).unwrap();
    machine(dir, name, &o)
}

#[test]
fn tls_works_with_the_trusted_ca_and_a_server_from_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let trusted = TlsFiles::make(&dir.path().join("trusted"));
    let unknown = TlsFiles::make(&dir.path().join("unknown"));
    let good = RedisServer::with_tls(&trusted);
    let impostor = RedisServer::with_tls(&unknown);

    std::env::set_var("SSL_CERT_FILE", &trusted.ca);
    let a = tls_machine(&dir, "a.db", &good.tls_url());
    let b = tls_machine(&dir, "b.db", &good.tls_url());
    assert!(a.remote_stats().unwrap().connected);
    a.set(b"k", b"over TLS", Expiration::Never).unwrap();
    assert_eq!(get(&b, b"k").as_deref(), Some(&b"over TLS"[..]));
    let st = b.remote_stats().unwrap();
    assert_eq!((st.hits, st.errors), (1, 0));

    // A value on the impostor, written by a client that trusts its CA...
    std::env::set_var("SSL_CERT_FILE", &unknown.ca);
    let planted = tls_machine(&dir, "planted.db", &impostor.tls_url());
    planted
        .set(b"k", b"from the impostor", Expiration::Never)
        .unwrap();
    assert_eq!(planted.remote_stats().unwrap().writes, 1);
    drop(planted);
    // ...is never read by one that does not: the handshake is refused.
    std::env::set_var("SSL_CERT_FILE", &trusted.ca);
    let c = tls_machine(&dir, "c.db", &impostor.tls_url());
    let st = c.remote_stats().unwrap();
    assert!(!st.connected && st.errors >= 1, "{st:?}");
    assert_eq!(get(&c, b"k"), None);
    c.set(b"k", b"local", Expiration::Never).unwrap();
    assert_eq!(get(&c, b"k").as_deref(), Some(&b"local"[..]));
    // Plain redis:// to a TLS port is not a value either.
    let plain = tls_machine(&dir, "plain.db", &good.url());
    assert_eq!(get(&plain, b"k"), None);
    assert!(!plain.remote_stats().unwrap().connected);
    std::env::remove_var("SSL_CERT_FILE");
}
