//! `NEW_GENERATION` against a real redis-server: clears sent faster than the server's
//! clock ticks (one pipeline) never make a generation above that clock, so a clear
//! after the server lost the key still makes one above every earlier generation.

use super::NEW_GENERATION;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A private redis-server on a free loopback port, killed when dropped.
struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn connect(&self) -> redis::Connection {
        let give_up = Instant::now() + Duration::from_secs(10);
        loop {
            let c = redis::Client::open(format!("redis://127.0.0.1:{}", self.port))
                .and_then(|c| c.get_connection());
            match c {
                Ok(c) => return c,
                Err(e) if Instant::now() > give_up => panic!("redis-server: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_us(time: (u64, u64)) -> u64 {
    time.0 * 1_000_000 + time.1
}

#[test]
fn clears_faster_than_the_clock_never_make_a_generation_above_it() {
    let server = Server::start();
    let mut c = server.connect();
    let mut p = redis::pipe();
    p.cmd("TIME");
    for _ in 0..2000 {
        p.cmd("EVAL").arg(NEW_GENERATION).arg(1).arg("gen");
    }
    p.cmd("TIME");
    let mut replies: Vec<redis::Value> = p.query(&mut c).unwrap();
    let after: (u64, u64) = redis::from_redis_value(&replies.pop().unwrap()).unwrap();
    let before: (u64, u64) = redis::from_redis_value(&replies.remove(0)).unwrap();
    let made: Vec<u64> = replies
        .iter()
        .map(|v| {
            redis::from_redis_value::<String>(v)
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(
        made.windows(2).all(|w| w[0] < w[1]),
        "generations only grow"
    );
    assert!(made[0] > clock_us(before));
    assert!(
        made[made.len() - 1] <= clock_us(after),
        "the last generation {} ran ahead of the clock {}",
        made[made.len() - 1],
        clock_us(after)
    );
}

#[test]
fn a_clear_right_after_the_key_was_lost_makes_a_generation_above_every_earlier_one() {
    let server = Server::start();
    let mut c = server.connect();
    // Each clear, a loss of the key, and the next clear, in one pipeline: all within a
    // few microseconds of each other.
    let mut p = redis::pipe();
    for _ in 0..500 {
        p.cmd("EVAL").arg(NEW_GENERATION).arg(1).arg("gen");
        p.cmd("DEL").arg("gen").ignore();
    }
    let made: Vec<String> = p.query(&mut c).unwrap();
    let made: Vec<u64> = made.iter().map(|g| g.parse().unwrap()).collect();
    assert!(
        made.windows(2).all(|w| w[0] < w[1]),
        "a generation was made twice or went back: {made:?}"
    );
}
