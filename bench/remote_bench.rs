//! The remote tier's costs against their baselines, against a private redis-server on a
//! free loopback port (issue 13, item 5):
//!
//!     cargo run --release --example remote_bench [-- operations [rounds [placement [side]]]]
//!
//! `side` (`hit`, `get` or `none`) runs the setup, then that side alone over every key
//! once, and prints its mean: for a profiler (bench/README.md, the remote tier's fifth
//! look), the `none` run to subtract.
//!
//! `placement` says where the bench and its redis-server run: `same` (both on CPU 0),
//! `apart` (the bench on CPU 0, the server on CPU 1) or, by default, wherever the
//! scheduler puts them. It matters more than anything the tier does: on a virtual
//! machine whose idle CPUs halt without polling first, waking a process on a halted
//! CPU costs tens of µs, and a round trip across two idle CPUs pays it twice (a pipe
//! ping-pong between two processes here: 2 µs on one CPU, 70 µs across two idle ones).
//! So a quiet machine shows a plain GET of 100 µs, a busy one 10 µs. The last columns,
//! the calling thread's CPU time per operation and its ratio, do not depend on that.
//!
//! | case | baseline | target |
//! | remote hit (local miss, remote GET, value kept to be stored) | a plain GET of the same Redis key (redis crate) | <= 1.2x |
//! | local hit with a remote configured | local hit without one (same keys in both files) | <= 1.05x |
//! | set, WRITE_BEHIND | set without a remote | <= 1.2x |
//! | set, READ_WRITE | set without a remote + one plain SET round trip | <= 1.1x |
//!
//! Two more lines, without a target, say where a remote hit's time goes: the same
//! 3-command pipeline sent raw (the protocol's floor), and a local miss followed by a
//! plain GET (the local look-up a remote hit starts with; on a small machine a pause of
//! the client between round trips also lets the server's thread fall asleep).
//!
//! The machine may be shared and noisy: each round times every case beside its baseline
//! (in alternating order), and the figures are the medians over the rounds of each
//! round's mean and ratio. Printed, never asserted.
//!
//! A remote hit keeps its value in memory and leaves the local write to a background
//! writer (core/src/remote/fill.rs). So that this write does not land, at random, in
//! whichever case runs meanwhile, each round of remote hits ends with a `flush`, timed
//! apart: the line "remote hit + its local store" adds it to the hit.

use backlite::{Expiration, Options, RemoteMode, Storage};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const NEVER: Expiration = Expiration::Never;

/// The calling thread's CPU time, in µs.
fn thread_cpu_us() -> f64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as f64 * 1e6 + t.tv_nsec as f64 / 1e3
}

/// The mean wall time and calling thread's CPU time of `f(i)` for `i` in `range`, in µs.
fn mean_us(range: std::ops::Range<usize>, mut f: impl FnMut(usize)) -> (f64, f64) {
    let n = range.len() as f64;
    let (t, cpu) = (Instant::now(), thread_cpu_us());
    for i in range {
        f(i);
    }
    let cpu = thread_cpu_us() - cpu;
    (t.elapsed().as_secs_f64() * 1e6 / n, cpu / n)
}

/// Keeps this thread (and the threads and processes it starts later) on `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is an empty set; the call reads it only.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set),
            0,
            "pinning to CPU {cpu}"
        );
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// One case beside its baseline: per-round means of each and their ratio.
struct Case {
    name: &'static str,
    /// `None`: printed for comparison only.
    target: Option<f64>,
    case: Vec<f64>,
    base: Vec<f64>,
    /// The calling thread's CPU time per operation, per round.
    case_cpu: Vec<f64>,
    base_cpu: Vec<f64>,
}

impl Case {
    fn new(name: &'static str, target: f64) -> Case {
        Case {
            name,
            target: Some(target),
            case: Vec::new(),
            base: Vec::new(),
            case_cpu: Vec::new(),
            base_cpu: Vec::new(),
        }
    }

    /// Times `case` and `base` on the same operations, in an order that alternates
    /// with `round` so that drift in the machine's load falls on both.
    fn round(
        &mut self,
        round: usize,
        ops: std::ops::Range<usize>,
        case: impl FnMut(usize),
        base: impl FnMut(usize),
    ) {
        let (c, b) = if round % 2 == 0 {
            let c = mean_us(ops.clone(), case);
            (c, mean_us(ops, base))
        } else {
            let b = mean_us(ops.clone(), base);
            (mean_us(ops, case), b)
        };
        self.push(c, b);
    }

    /// One round's (wall, CPU) means of the case and of its baseline.
    fn push(&mut self, case: (f64, f64), base: (f64, f64)) {
        self.case.push(case.0);
        self.case_cpu.push(case.1);
        self.base.push(base.0);
        self.base_cpu.push(base.1);
    }

    fn print(&self) {
        let ratio_of = |case: &[f64], base: &[f64]| {
            median(case.iter().zip(base).map(|(c, b)| c / b).collect())
        };
        let ratio = ratio_of(&self.case, &self.base);
        let (target, verdict) = match self.target {
            Some(t) if ratio <= t => (format!("{t:.2}x"), "pass"),
            Some(t) => (format!("{t:.2}x"), "FAIL"),
            None => ("-".to_string(), ""),
        };
        println!(
            "{:<40} {:>9.1} {:>9.1} {:>7.3}x {:>7}  {:<4} {:>6.2} {:>6.2} {:>6.3}x",
            self.name,
            median(self.case.clone()),
            median(self.base.clone()),
            ratio,
            target,
            verdict,
            median(self.case_cpu.clone()),
            median(self.base_cpu.clone()),
            ratio_of(&self.case_cpu, &self.base_cpu),
        );
    }
}

fn main() {
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (n, rounds) = (arg(1, 1000), arg(2, 9));
    let placement = std::env::args().nth(3).unwrap_or_else(|| "any".into());
    let server_cpu = match placement.as_str() {
        "any" => None,
        "same" => Some(0),
        "apart" => Some(1),
        other => panic!("placement is same, apart or any, not {other:?}"),
    };
    // The redis-server started below (and every thread of the tier) inherits CPU 0.
    if server_cpu.is_some() {
        pin(0);
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = match server_cpu {
        Some(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu.to_string(), "redis-server"]);
            c
        }
        None => Command::new("redis-server"),
    };
    let mut server = Server(
        server
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server"),
    );
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = server.0.try_wait() {
            panic!("redis-server ended before it listened on port {port}: {status}");
        }
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
    // The baselines' other connection (a case and its baseline are both borrowed).
    let mut raw2 = redis::Client::open(url.as_str())
        .unwrap()
        .get_connection()
        .unwrap();
    let key = |i: usize| format!("key-{i}").into_bytes();

    let writer = open("writer.db", Some(RemoteMode::ReadWrite));
    // The Redis key of `key(i)` (remote/mod.rs: namespace, no tag, the generation the
    // writer's open made).
    let gen: u64 = redis::cmd("GET")
        .arg("backlite::gen")
        .query(&mut raw)
        .unwrap();
    let redis_key = |i: usize| format!("backlite::d{{{gen:x}:key-{i}}}");
    let reader = open("reader.db", Some(RemoteMode::ReadWrite));
    let local = open("local.db", None);
    let with_remote = open("with-remote.db", Some(RemoteMode::ReadWrite));
    let behind = open("behind.db", Some(RemoteMode::WriteBehind));
    let rw = open("rw.db", Some(RemoteMode::ReadWrite));
    // Each set case's baseline has a file of its own: both insert new keys.
    let local_sets = open("local-sets.db", None);
    let local_sets_rw = open("local-sets-rw.db", None);
    // Every round reads keys of its own: each remote hit is a local miss.
    for i in 0..n * rounds {
        writer.set(&key(i), &value, NEVER).unwrap();
    }
    // Both local-hit handles hold the same keys.
    for i in 0..n {
        local.set(&key(i), &value, NEVER).unwrap();
        with_remote.set(&key(i), &value, NEVER).unwrap();
    }

    // One side alone, over every key once, for a profiler (see the module comment).
    if let Some(side) = std::env::args().nth(4) {
        let (wall, cpu) = match side.as_str() {
            "none" => (0.0, 0.0),
            "hit" => mean_us(0..n * rounds, |i| {
                assert!(reader.get(&key(i)).unwrap().is_some())
            }),
            "get" => mean_us(0..n * rounds, |i| {
                let v: Vec<u8> = redis::cmd("GET").arg(redis_key(i)).query(&mut raw).unwrap();
                assert!(v.len() > value.len());
            }),
            other => panic!("side is none, hit or get, not {other:?}"),
        };
        println!(
            "{side}: {} operations, {wall:.2} us wall, {cpu:.2} us CPU each",
            n * rounds
        );
        drop(reader);
        drop(server);
        return;
    }

    let mut remote_hit = Case::new("remote hit vs plain GET", 1.2);
    let mut stored = Case::new("remote hit + its local store vs GET", 1.2);
    let mut pipeline = Case {
        target: None,
        ..Case::new("read pipeline sent raw vs plain GET", 0.0)
    };
    let mut miss_get = Case {
        target: None,
        ..Case::new("local miss + plain GET vs plain GET", 0.0)
    };
    let mut local_hit = Case::new("local hit, remote set vs none", 1.05);
    let mut set_behind = Case::new("set WRITE_BEHIND vs local only", 1.2);
    let mut set_rw = Case::new("set READ_WRITE vs local set + SET", 1.1);
    for r in 0..rounds {
        let ops = r * n..(r + 1) * n;
        remote_hit.round(
            r,
            ops.clone(),
            |i| assert!(reader.get(&key(i)).unwrap().is_some()),
            |i| {
                let v: Vec<u8> = redis::cmd("GET").arg(redis_key(i)).query(&mut raw).unwrap();
                assert!(v.len() > value.len());
            },
        );
        pipeline.round(
            r,
            ops.clone(),
            |i| {
                let (_gen, v, _pttl): (Option<Vec<u8>>, Vec<u8>, i64) = redis::pipe()
                    .cmd("GET")
                    .arg("backlite::gen")
                    .cmd("GET")
                    .arg(redis_key(i))
                    .cmd("PTTL")
                    .arg(redis_key(i))
                    .query(&mut raw2)
                    .unwrap();
                assert!(v.len() > value.len());
            },
            |i| {
                let v: Vec<u8> = redis::cmd("GET").arg(redis_key(i)).query(&mut raw).unwrap();
                assert!(v.len() > value.len());
            },
        );
        miss_get.round(
            r,
            ops.clone(),
            |i| {
                assert!(local.get(&key(i + n)).unwrap().is_none());
                let v: Vec<u8> = redis::cmd("GET")
                    .arg(redis_key(i))
                    .query(&mut raw2)
                    .unwrap();
                assert!(v.len() > value.len());
            },
            |i| {
                let v: Vec<u8> = redis::cmd("GET").arg(redis_key(i)).query(&mut raw).unwrap();
                assert!(v.len() > value.len());
            },
        );
        // With fewer than 1024 hits a round (the default 1000), the fill writer never
        // starts during the timing: the round's values are all written here.
        let (t, cpu) = (Instant::now(), thread_cpu_us());
        reader.flush().unwrap();
        let flush = (
            t.elapsed().as_secs_f64() * 1e6 / n as f64,
            (thread_cpu_us() - cpu) / n as f64,
        );
        stored.push(
            (
                remote_hit.case[r] + flush.0,
                remote_hit.case_cpu[r] + flush.1,
            ),
            (remote_hit.base[r], remote_hit.base_cpu[r]),
        );
        local_hit.round(
            r,
            0..n,
            |i| assert!(with_remote.get(&key(i)).unwrap().is_some()),
            |i| assert!(local.get(&key(i)).unwrap().is_some()),
        );
        set_behind.round(
            r,
            ops.clone(),
            |i| behind.set(&key(i), &value, NEVER).unwrap(),
            |i| local_sets.set(&key(i), &value, NEVER).unwrap(),
        );
        set_rw.round(
            r,
            ops.clone(),
            |i| rw.set(&key(i), &value, NEVER).unwrap(),
            |i| {
                local_sets_rw.set(&key(i), &value, NEVER).unwrap();
                redis::cmd("SET")
                    .arg(redis_key(i))
                    .arg(&value)
                    .query::<()>(&mut raw)
                    .unwrap();
            },
        );
    }
    drop(behind);

    println!("remote tier: {rounds} rounds of {n} operations per case, 1 KiB values, loopback redis-server, placement {placement}");
    println!("medians over the rounds of each round's mean (us) and of its ratio; wall time, then the calling thread's CPU time");
    println!(
        "{:<40} {:>9} {:>9} {:>8} {:>7}  {:<4} {:>6} {:>6} {:>7}",
        "case", "case us", "base us", "ratio", "target", "", "cpu", "base", "ratio"
    );
    for c in [
        &remote_hit,
        &stored,
        &pipeline,
        &miss_get,
        &local_hit,
        &set_behind,
        &set_rw,
    ] {
        c.print();
    }
    drop(server);
}

/// The private redis-server, stopped however the bench ends, a panic included (a
/// `Child` dropped is left running: it outlived a failed bench, and the test command).
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
