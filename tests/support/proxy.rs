//! A TCP proxy in front of a server that holds back the replies of chosen connections,
//! so that a test can order what another connection does between its request and its
//! reply (no sleeps: each step waits for the proxy to report where a held connection is).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where one held connection is.
#[derive(Default, Debug)]
pub struct Held {
    /// Hold the first connection not held yet whose request contains the marker (or,
    /// with `false`, does not contain it) from now on.
    armed: Option<(&'static [u8], bool)>,
    conn: Option<usize>,
    /// Requests (reads from the client) seen on the held connection.
    pub requests: usize,
    /// Replies from the server waiting to be passed on.
    pub waiting: usize,
    /// Replies that may still pass.
    permits: usize,
    released: bool,
    /// Cut the held connection when its next reply arrives, instead of passing it on:
    /// the server ran the request, and the client hears nothing.
    cut: bool,
}

/// Up to this many connections can be held, each by its own `Held`.
const HOLDS: usize = 2;

type Shared = Arc<(Mutex<[Held; HOLDS]>, Condvar)>;

pub struct HoldingProxy {
    pub port: u16,
    state: Shared,
}

impl HoldingProxy {
    pub fn start(server_port: u16) -> HoldingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state: Shared = Default::default();
        let s = state.clone();
        std::thread::spawn(move || {
            for (id, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", server_port)) else {
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (up, down) = (s.clone(), s.clone());
                std::thread::spawn(move || forward(id, client, server, &up, true));
                std::thread::spawn(move || forward(id, s2, c2, &down, false));
            }
        });
        HoldingProxy { port, state }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Holds the replies of the next connection whose request contains `marker`.
    pub fn arm(&self, marker: &'static [u8]) {
        self.arm_nth(0, marker, true);
    }

    /// Holds (as hold `i`) the replies of the next connection not held yet whose
    /// request contains `marker` (`with`), or does not contain it (`!with`).
    pub fn arm_nth(&self, i: usize, marker: &'static [u8], with: bool) {
        self.lock()[i].armed = Some((marker, with));
    }

    /// Lets `n` more replies of the held connection pass.
    pub fn permit(&self, n: usize) {
        self.permit_nth(0, n);
    }

    pub fn permit_nth(&self, i: usize, n: usize) {
        self.lock()[i].permits += n;
        self.state.1.notify_all();
    }

    /// Cuts (both ways) the connection of hold `i` when its next reply arrives.
    pub fn cut_nth(&self, i: usize) {
        self.lock()[i].cut = true;
    }

    /// Lets everything pass from now on.
    pub fn release(&self) {
        for held in self.lock().iter_mut() {
            held.released = true;
        }
        self.state.1.notify_all();
    }

    /// Waits (at most 20 s) until `ready` holds for the held connection.
    pub fn wait_until(&self, ready: impl Fn(&Held) -> bool) {
        self.wait_until_nth(0, ready);
    }

    /// Waits (at most 20 s) until `ready` holds for hold `i`.
    pub fn wait_until_nth(&self, i: usize, ready: impl Fn(&Held) -> bool) {
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut holds = self.lock();
        while !ready(&holds[i]) {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the proxy never reached that point: {:?}",
                holds[i]
            );
            holds = self.state.1.wait_timeout(holds, left).unwrap().0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, [Held; HOLDS]> {
        self.state.0.lock().unwrap()
    }
}

/// Copies `from` to `to`; `up`: client to server. A reply on a held connection waits
/// for a permit of its hold.
fn forward(id: usize, mut from: TcpStream, mut to: TcpStream, state: &Shared, up: bool) {
    let (lock, cv) = &**state;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut holds = lock.lock().unwrap();
            if up {
                let request = &buf[..n];
                let taken = holds.iter().any(|h| h.conn == Some(id));
                if let Some(h) = holds.iter_mut().find(|h| {
                    !taken
                        && h.armed.is_some_and(|(marker, with)| {
                            request.windows(marker.len()).any(|w| w == marker) == with
                        })
                }) {
                    h.armed = None;
                    h.conn = Some(id);
                }
                if let Some(h) = holds.iter_mut().find(|h| h.conn == Some(id)) {
                    h.requests += 1;
                    cv.notify_all();
                }
            } else if let Some(i) = holds.iter().position(|h| h.conn == Some(id) && !h.released) {
                if holds[i].cut {
                    holds[i].released = true;
                    drop(holds);
                    let _ = from.shutdown(Shutdown::Both);
                    let _ = to.shutdown(Shutdown::Both);
                    return;
                }
                holds[i].waiting += 1;
                cv.notify_all();
                while holds[i].permits == 0 && !holds[i].released {
                    holds = cv.wait(holds).unwrap();
                }
                holds[i].permits = holds[i].permits.saturating_sub(1);
                holds[i].waiting -= 1;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
