//! The remote tier over TLS (`rediss://`) against `redis-server --tls-port`, with CAs
//! this test makes with `openssl`: a server whose certificate the trusted CA signed
//! works; one signed by an unknown CA, one whose certificate has expired and one whose
//! certificate names another host are refused (not connected, a miss), never read or
//! written; `rediss://` to a plaintext server never falls back to plaintext.
//!
//! The trusted roots are the system's, or the bundle `SSL_CERT_FILE` names (README,
//! "Remote tier"). That is process-wide, so this file holds one test.

mod support;

use backlite::{Expiration, Storage};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::machine::{get, machine, remote_options};
use support::redis::{RedisServer, TlsFiles};

/// A machine on the remote at `url`, with two seconds for the TLS handshake.
fn tls_machine(dir: &tempfile::TempDir, name: &str, url: &str) -> Storage {
    let mut o = remote_options(url);
    o.set_remote_timeout(Duration::from_secs(2)).unwrap();
    machine(dir, name, &o)
}

/// `files`' server certificate signed again by its CA, valid for `days` (-1: it
/// expired yesterday) with `san` (an `openssl` extension line), as `name`.
fn signed_again(files: &TlsFiles, name: &str, days: &str, san: &str) -> TlsFiles {
    let dir = files.ca.parent().unwrap();
    std::fs::write(dir.join("again.ext"), san).unwrap();
    let status = Command::new("openssl")
        .args(["x509", "-req", "-in", "server.csr", "-CA", "ca.crt"])
        .args(["-CAkey", "ca.key", "-CAcreateserial", "-out", name])
        .args(["-days", days, "-extfile", "again.ext"])
        .current_dir(dir)
        .status()
        .expect("openssl must be installed");
    assert!(status.success());
    TlsFiles {
        ca: files.ca.clone(),
        cert: dir.join(name),
        key: files.key.clone(),
    }
}

/// The number of keys of a TLS server, asked without checking its certificate.
fn keys_of(server: &RedisServer, ca: &Path) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--insecure", "--cacert"])
        .arg(ca)
        .args(["-p", &server.port.to_string(), "DBSIZE"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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

    // Signed by the trusted CA, but expired, or for another host: refused at the
    // handshake, each call counted once (the open's round trip failed, then each
    // call an error or skipped), nothing read or written there.
    let expired = signed_again(
        &trusted,
        "expired.crt",
        "-1",
        "subjectAltName=IP:127.0.0.1\n",
    );
    let elsewhere = signed_again(
        &trusted,
        "elsewhere.crt",
        "2",
        "subjectAltName=IP:127.0.0.2,DNS:example.com\n",
    );
    for (what, files) in [("expired", &expired), ("another host's", &elsewhere)] {
        let server = RedisServer::with_tls(files);
        let m = tls_machine(&dir, &format!("{what}.db"), &server.tls_url());
        let st = m.remote_stats().unwrap();
        assert!(!st.connected && st.errors == 1, "{what}: {st:?}");
        assert_eq!(get(&m, b"k"), None, "{what}");
        m.set(b"k", b"local", Expiration::Never).unwrap();
        assert_eq!(get(&m, b"k").as_deref(), Some(&b"local"[..]));
        let st = m.remote_stats().unwrap();
        assert_eq!(st.errors + st.skipped, 3, "{what}: {st:?}");
        assert_eq!((st.hits, st.misses, st.writes), (0, 0, 0), "{what}: {st:?}");
        assert!(!st.connected);
        assert_eq!(keys_of(&server, &files.ca), "0", "{what}: written to");
    }
    // rediss:// to a server that speaks plaintext: no fallback to it.
    let plaintext = RedisServer::start();
    let url = format!("rediss://127.0.0.1:{}", plaintext.port);
    let m = tls_machine(&dir, "plaintext.db", &url);
    m.set(b"k", b"local", Expiration::Never).unwrap();
    assert_eq!(get(&m, b"k").as_deref(), Some(&b"local"[..]));
    let st = m.remote_stats().unwrap();
    assert!(!st.connected && st.writes == 0 && st.errors >= 1, "{st:?}");
    assert_eq!(plaintext.cli(&["DBSIZE"]), "0", "written in plaintext");
    std::env::remove_var("SSL_CERT_FILE");
}
