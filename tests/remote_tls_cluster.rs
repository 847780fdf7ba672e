//! The remote tier on a Redis Cluster over TLS (`rediss+cluster://`): three TLS-only
//! masters (`--tls-cluster yes`) with a certificate from a CA this test makes with
//! `openssl`. Keys spread over every master and are read through by another machine;
//! a clear hides them and reclaims them on every master (the scan's own TLS
//! connections); a client that trusts another CA is refused and writes nothing.
//!
//! The trusted roots come from `SSL_CERT_FILE`, which is process-wide: one test.

mod support;

use backlite::{Expiration, Options};
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::machine::{get, machine, remote_options};
use support::redis::{cluster_node_args, free_port, retry_start, RedisServer, TlsFiles};

const KEYS: usize = 60;

/// `redis-cli` over TLS to `port`, checking the server against `ca`.
fn cli(ca: &Path, port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert"])
        .arg(ca)
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli must be installed");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Three TLS-only cluster masters, made into a cluster.
fn tls_cluster(tls: &TlsFiles) -> Result<Vec<RedisServer>, String> {
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let bus = free_port().to_string();
        let args = [&cluster_node_args(&bus)[..], &["--tls-cluster", "yes"]].concat();
        nodes.push(RedisServer::try_with_tls(tls, &args)?);
    }
    let ca = tls.ca.to_string_lossy().to_string();
    let out = Command::new("redis-cli")
        .args(["--tls", "--cacert", &ca, "--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("redis-cli must be installed");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).to_string());
    }
    let give_up = std::time::Instant::now() + Duration::from_secs(30);
    for n in &nodes {
        while !cli(&tls.ca, n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok") {
            assert!(
                std::time::Instant::now() < give_up,
                "the cluster did not become ok"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    Ok(nodes)
}

fn sizes(nodes: &[RedisServer], ca: &Path) -> Vec<u64> {
    nodes
        .iter()
        .map(|n| cli(ca, n.port, &["DBSIZE"]).parse().unwrap())
        .collect()
}

#[test]
fn a_tls_cluster_is_read_written_and_cleared_and_an_unknown_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let tls = TlsFiles::make(&dir.path().join("trusted"));
    let nodes = retry_start(|| tls_cluster(&tls));
    std::env::set_var("SSL_CERT_FILE", &tls.ca);
    let seeds: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    let mut o: Options = remote_options(&format!("rediss+cluster://{}", seeds.join(",")));
    o.set_remote_timeout(Duration::from_secs(2)).unwrap();
    let a = machine(&dir, "a.db", &o);
    let b = machine(&dir, "b.db", &o);
    assert!(a.remote_stats().unwrap().connected);
    for i in 0..KEYS {
        a.set(format!("k{i}").as_bytes(), b"over TLS", Expiration::Never)
            .unwrap();
    }
    let on_each = sizes(&nodes, &tls.ca);
    assert!(
        on_each.iter().all(|&n| n > 0),
        "keys per master: {on_each:?}"
    );
    for i in 0..KEYS {
        let got = get(&b, format!("k{i}").as_bytes());
        assert_eq!(got.as_deref(), Some(&b"over TLS"[..]), "k{i}");
    }
    let st = b.remote_stats().unwrap();
    assert_eq!((st.hits, st.errors), (KEYS as u64, 0));
    // A clear hides every key and reclaims them on every master: the generation key
    // is all that is left.
    b.clear().unwrap();
    assert_eq!(sizes(&nodes, &tls.ca).iter().sum::<u64>(), 1);
    let c = machine(&dir, "c.db", &o);
    assert_eq!(get(&c, b"k1"), None);
    assert_eq!(c.remote_stats().unwrap().misses, 1);
    // A client that trusts another CA is refused: nothing read or written.
    let unknown = TlsFiles::make(&dir.path().join("unknown"));
    std::env::set_var("SSL_CERT_FILE", &unknown.ca);
    let d = machine(&dir, "d.db", &o);
    d.set(b"k1", b"refused", Expiration::Never).unwrap();
    let st = d.remote_stats().unwrap();
    assert!(!st.connected && st.errors >= 1 && st.writes == 0, "{st:?}");
    std::env::remove_var("SSL_CERT_FILE");
    assert_eq!(sizes(&nodes, &tls.ca).iter().sum::<u64>(), 1);
}
