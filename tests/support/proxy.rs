//! A TCP proxy in front of a server that holds back the replies of one connection,
//! so that a test can order what another connection does between its request and its
//! reply (no sleeps: each step waits for the proxy to report where that connection is).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the held connection is.
#[derive(Default, Debug)]
pub struct Held {
    /// Hold the first connection that sends a request containing `marker` from now on.
    armed: Option<&'static [u8]>,
    conn: Option<usize>,
    /// Requests (reads from the client) seen on the held connection.
    pub requests: usize,
    /// Replies from the server waiting to be passed on.
    pub waiting: usize,
    /// Replies that may still pass.
    permits: usize,
    released: bool,
}

type Shared = Arc<(Mutex<Held>, Condvar)>;

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
        self.lock().armed = Some(marker);
    }

    /// Lets `n` more replies of the held connection pass.
    pub fn permit(&self, n: usize) {
        self.lock().permits += n;
        self.state.1.notify_all();
    }

    /// Lets everything pass from now on.
    pub fn release(&self) {
        self.lock().released = true;
        self.state.1.notify_all();
    }

    /// Waits (at most 20 s) until `ready` holds for the held connection.
    pub fn wait_until(&self, ready: impl Fn(&Held) -> bool) {
        let give_up = Instant::now() + Duration::from_secs(20);
        let mut held = self.lock();
        while !ready(&held) {
            let left = give_up.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "the proxy never reached that point: {held:?}"
            );
            held = self.state.1.wait_timeout(held, left).unwrap().0;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        self.state.0.lock().unwrap()
    }
}

/// Copies `from` to `to`; `up`: client to server. A reply on the held connection waits
/// for a permit.
fn forward(id: usize, mut from: TcpStream, mut to: TcpStream, state: &Shared, up: bool) {
    let (lock, cv) = &**state;
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut held = lock.lock().unwrap();
            if up {
                if let Some(marker) = held.armed {
                    if buf[..n].windows(marker.len()).any(|w| w == marker) {
                        held.armed = None;
                        held.conn = Some(id);
                    }
                }
                if held.conn == Some(id) {
                    held.requests += 1;
                    cv.notify_all();
                }
            } else if held.conn == Some(id) && !held.released {
                held.waiting += 1;
                cv.notify_all();
                while held.permits == 0 && !held.released {
                    held = cv.wait(held).unwrap();
                }
                held.permits = held.permits.saturating_sub(1);
                held.waiting -= 1;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}
