//! The remote tier's costs against their baselines, measured in the same run against a
//! private redis-server on a free loopback port (issue 13, item 5):
//!
//!     cargo run --release --example remote_bench [-- iterations]
//!
//! | case | baseline | target |
//! | remote hit (local miss, remote GET, local store) | a plain GET of the same value (redis crate) | <= 1.2x |
//! | local hit with a remote configured | local hit without one | <= 1.05x |
//! | set, WRITE_BEHIND | set without a remote | <= 1.2x |
//! | set, READ_WRITE | set without a remote + one plain SET round trip | <= 1.1x |

use backlite::{Expiration, Options, RemoteMode, Storage};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn stats(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let mean = v.iter().map(|d| d.as_secs_f64()).sum::<f64>() / v.len() as f64 * 1e6;
    let p99 = v[(v.len() * 99 / 100).min(v.len() - 1)].as_secs_f64() * 1e6;
    (mean, p99)
}

fn time(n: usize, mut f: impl FnMut(usize)) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i);
            t.elapsed()
        })
        .collect()
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("redis-server");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let url = format!("redis://127.0.0.1:{port}");
    let value = vec![b'v'; 1024];
    let open = |name: &str, mode: Option<RemoteMode>| {
        let mut o = Options::new();
        if let Some(m) = mode {
            o.set_remote(Some(&url)).unwrap();
            o.set_remote_mode(m);
        }
        Storage::open(dir.path().join(name), &o).unwrap()
    };
    let mut raw = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = |i: usize| format!("key-{i}").into_bytes();

    // Remote hit vs plain GET.
    let writer = open("writer.db", Some(RemoteMode::ReadWrite));
    for i in 0..n {
        writer.set(&key(i), &value, Expiration::Never).unwrap();
        redis::cmd("SET")
            .arg(format!("raw-{i}"))
            .arg(&value)
            .query::<()>(&mut raw)
            .unwrap();
    }
    let reader = open("reader.db", Some(RemoteMode::ReadWrite));
    let remote_hit = time(n, |i| assert!(reader.get(&key(i)).unwrap().is_some()));
    let plain_get = time(n, |i| {
        let v: Vec<u8> = redis::cmd("GET")
            .arg(format!("raw-{i}"))
            .query(&mut raw)
            .unwrap();
        assert_eq!(v.len(), value.len());
    });
    // Local hit with and without a remote.
    let local = open("local.db", None);
    local.set(b"hot", &value, Expiration::Never).unwrap();
    writer.set(b"hot", &value, Expiration::Never).unwrap();
    let hit_remote = time(n, |_| assert!(writer.get(b"hot").unwrap().is_some()));
    let hit_local = time(n, |_| assert!(local.get(b"hot").unwrap().is_some()));
    // Sets.
    let behind = open("behind.db", Some(RemoteMode::WriteBehind));
    let set_behind = time(n, |i| {
        behind.set(&key(i), &value, Expiration::Never).unwrap()
    });
    let set_local = time(n, |i| {
        local.set(&key(i), &value, Expiration::Never).unwrap()
    });
    let set_rw = time(n, |i| {
        writer.set(&key(i), &value, Expiration::Never).unwrap()
    });
    let set_local_plus_rt = time(n, |i| {
        local.set(&key(i), &value, Expiration::Never).unwrap();
        redis::cmd("SET")
            .arg(format!("raw-{i}"))
            .arg(&value)
            .query::<()>(&mut raw)
            .unwrap();
    });
    drop(behind);

    println!("remote tier, {n} operations each, 1 KiB values, loopback redis-server");
    println!(
        "{:<44} {:>10} {:>10} {:>10} {:>10} {:>7} {:>7}",
        "case", "mean us", "p99 us", "base mean", "base p99", "ratio", "target"
    );
    let row = |name: &str, a: Vec<Duration>, b: Vec<Duration>, target: &str| {
        let ((am, ap), (bm, bp)) = (stats(a), stats(b));
        println!(
            "{name:<44} {am:>10.1} {ap:>10.1} {bm:>10.1} {bp:>10.1} {:>6.2}x {target:>7}",
            am / bm
        );
    };
    row("remote hit vs plain GET", remote_hit, plain_get, "<=1.2x");
    row(
        "local hit, remote set vs none",
        hit_remote,
        hit_local,
        "<=1.05x",
    );
    row(
        "set WRITE_BEHIND vs local only",
        set_behind,
        set_local.clone(),
        "<=1.2x",
    );
    row(
        "set READ_WRITE vs local set + SET",
        set_rw,
        set_local_plus_rt,
        "<=1.1x",
    );
    let _ = server.kill();
    let _ = server.wait();
}
