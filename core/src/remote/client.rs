//! Connections to the remote: a small pool per handle, every round trip bounded by the
//! timeout (connect included; on one server the whole reply, `bounded.rs`), and a back-off after a failure during which calls are
//! not sent at all (counted as `skipped`), doubling up to 30 s. On a cluster, an error
//! about one slot (a resharding or failover moving it: MOVED, ASK, TRYAGAIN, a slot not
//! served) backs off that slot only; the rest of the cluster is still used.

use super::bounded::BoundedConnection;
use super::url::{RemoteUrl, Target};
use crate::sync::lock;
use redis::cluster::{ClusterClient, ClusterConnection};
use redis::{
    Cmd, ConnectionAddr, ConnectionInfo, ConnectionLike, ErrorKind, FromRedisValue, RedisError,
    RedisResult, Value,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first pause after a failure; it doubles with each failure in a row.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest pause.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Idle connections kept per handle.
const MAX_IDLE: usize = 4;

/// One connection, to a server or to a cluster.
pub(crate) enum Conn {
    /// With the buffers the read path packs its commands into, kept with the
    /// connection from one read to the next.
    Single(BoundedConnection, Box<Scratch>),
    /// The crate's own connections: its cluster pipeline takes no other kind.
    Cluster(Box<ClusterConnection>),
}

/// A command and the bytes of a pipeline, reused (`Cmd::clear` keeps the capacity).
pub(crate) struct Scratch {
    cmd: Cmd,
    packed: Vec<u8>,
}

impl Conn {
    /// Sends `cmds` in one pipeline and reads their replies.
    pub(crate) fn pipe<T: FromRedisValue>(&mut self, cmds: Vec<Cmd>) -> RedisResult<T> {
        match self {
            Conn::Single(c, _) => {
                let mut p = redis::pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c)
            }
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for cmd in cmds {
                    p.add_command(cmd);
                }
                p.query(c.as_mut())
            }
        }
    }

    /// The read path's round trip, built in place: the clear generation (`GET
    /// generation`), the value (`GET key`) and its time left on the server (`PTTL key`).
    /// On one server the commands are packed by the client crate into the connection's
    /// own buffers, and its replies converted as a pipeline's would be (an error reply
    /// is an error): no command, pipeline or packed request is allocated per read. A
    /// key that holds another type than a string reads as no value (`is_wrong_type`).
    pub(crate) fn read<T: FromRedisValue>(
        &mut self,
        generation: &[u8],
        key: &[u8],
    ) -> RedisResult<T> {
        let commands = [("GET", generation), ("GET", key), ("PTTL", key)];
        match self {
            Conn::Single(c, s) => {
                s.packed.clear();
                for (name, arg) in commands {
                    s.cmd.clear();
                    s.cmd.arg(name).arg(arg);
                    s.cmd.write_packed_command(&mut s.packed);
                }
                let mut replies = c.req_packed_commands(&s.packed, 0, commands.len())?;
                if replies.get(1).is_some_and(is_wrong_type) {
                    replies[1] = Value::Nil;
                }
                T::from_owned_redis_value(Value::Array(replies).extract_error()?)
            }
            Conn::Cluster(c) => {
                let mut p = redis::cluster::cluster_pipe();
                for (name, arg) in commands {
                    p.cmd(name).arg(arg);
                }
                match p.query::<Value>(c.as_mut()) {
                    // The crate's cluster pipeline fails whole on one error reply: the
                    // generation and the time left are asked again, without the value.
                    Err(e) if e.code() == Some(WRONG_TYPE) => {
                        let mut p = redis::cluster::cluster_pipe();
                        p.cmd("GET").arg(generation).cmd("PTTL").arg(key);
                        let mut replies: Vec<Value> = p.query(c.as_mut())?;
                        replies.insert(1.min(replies.len()), Value::Nil);
                        T::from_owned_redis_value(Value::Array(replies))
                    }
                    found => T::from_owned_redis_value(found?),
                }
            }
        }
    }

    pub(crate) fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<T> {
        match self {
            Conn::Single(c, _) => cmd.query(c),
            Conn::Cluster(c) => cmd.query(c.as_mut()),
        }
    }
}

/// The error code of a command on a key holding another type (a list, a hash).
const WRONG_TYPE: &str = "WRONGTYPE";

/// Whether `reply` is the error of a `GET` of a key that holds another type than a
/// string: a value some other program stored under the key, foreign like a string
/// without this format's header, so a miss. As an error it failed the round trip and
/// backed the whole remote off (every other key skipped meanwhile), each time the key
/// was looked up.
fn is_wrong_type(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.code() == WRONG_TYPE)
}

enum Endpoint {
    Single(ConnectionInfo),
    Cluster(ClusterClient),
}

#[derive(Default)]
struct Backoff {
    until: Option<Instant>,
    next: Duration,
}

impl Backoff {
    /// After a failure: skip calls for the next pause, and double the one after.
    fn fail(&mut self) {
        let pause = self.next.max(FIRST_BACKOFF);
        self.until = Some(Instant::now() + pause);
        self.next = (pause * 2).min(MAX_BACKOFF);
    }

    fn active(&self) -> bool {
        self.until.is_some_and(|t| Instant::now() < t)
    }
}

/// The cluster slot of a Redis key (CRC16 of its hash tag, the part between the first
/// `{` and the next `}` if not empty, else of the whole key).
pub(crate) fn slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tagged.unwrap_or(key)) % 16384
}

/// Whether `e` is about one slot of a cluster rather than the server or the network:
/// `Some(Some(slot))` when the error names it (MOVED, ASK), `Some(None)` when it is one
/// of the slots the call touched (TRYAGAIN, a slot not served).
fn slot_error(e: &RedisError) -> Option<Option<u16>> {
    match e.kind() {
        ErrorKind::Moved | ErrorKind::Ask => Some(e.redirect_node().map(|(_, slot)| slot)),
        ErrorKind::TryAgain => Some(None),
        ErrorKind::ClusterDown if e.detail().is_some_and(|d| d.contains("not served")) => {
            Some(None)
        }
        _ => None,
    }
}

/// The host of the seed node with `port`, else of the first: where a node that lists
/// itself with no address is reached.
fn seed_host(seeds: &[ConnectionInfo], port: u16) -> String {
    let host_port = |info: &ConnectionInfo| match &info.addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            Some((host.clone(), *port))
        }
        _ => None,
    };
    let mut seeds = seeds.iter().filter_map(host_port);
    let first = seeds.clone().next();
    seeds
        .find(|(_, p)| *p == port)
        .or(first)
        .map_or_else(String::new, |(host, _)| host)
}

/// The activity counters of a handle's remote tier.
#[derive(Default)]
pub(crate) struct Counters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub writes: AtomicU64,
    pub errors: AtomicU64,
    pub skipped: AtomicU64,
    pub connected: AtomicBool,
}

/// Why a round trip gave nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// Not sent: the remote, or a slot of the call, is backed off, or the call is held
    /// back (counted as skipped, or not at all).
    Skipped,
    /// Sent, and failed (counted as an error; the remote or the slot is backed off).
    Failed,
    /// Sent, and not answered in time (counted and backed off as `Failed`): the server
    /// may still run it.
    TimedOut,
}

pub(crate) struct Client {
    endpoint: Endpoint,
    pub(crate) url: RemoteUrl,
    pub(crate) timeout: Duration,
    idle: Mutex<Vec<Conn>>,
    /// The process the idle connections belong to: a forked child must not share a
    /// socket with its parent (their replies would interleave), so it opens its own.
    pid: AtomicU32,
    backoff: Mutex<Backoff>,
    /// Whether `backoff` holds a pause (or a grown next pause): while it does not, a
    /// round trip takes no lock for it.
    backing_off: AtomicBool,
    /// Cluster slots backed off after an error about them alone.
    slots: Mutex<HashMap<u16, Backoff>>,
    /// Whether `slots` may be non-empty (the common case takes no lock).
    any_slot: AtomicBool,
    /// Whether the server refused `UNLINK` to this handle's user (an ACL user without
    /// it): removals are sent as `DEL` from then on (`unlink_command`).
    unlink_refused: AtomicBool,
    pub(crate) counters: Counters,
}

impl Client {
    /// A client for `url`; nothing is sent yet.
    pub(crate) fn new(url: &RemoteUrl, timeout: Duration) -> Client {
        let endpoint = match &url.target {
            Target::Single(info) => Endpoint::Single(info.clone()),
            Target::Cluster(nodes) => Endpoint::Cluster(
                redis::cluster::ClusterClientBuilder::new(nodes.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    .retries(1)
                    .min_retry_wait(1)
                    .max_retry_wait(timeout.as_millis().max(1) as u64)
                    .build()
                    .expect("a checked URL makes a cluster client"),
            ),
        };
        Client {
            endpoint,
            url: url.clone(),
            timeout,
            idle: Mutex::new(Vec::new()),
            pid: AtomicU32::new(crate::fork::this_process()),
            backoff: Mutex::new(Backoff::default()),
            backing_off: AtomicBool::new(false),
            slots: Mutex::new(HashMap::new()),
            any_slot: AtomicBool::new(false),
            unlink_refused: AtomicBool::new(false),
            counters: Counters::default(),
        }
    }

    fn connect(&self) -> RedisResult<Conn> {
        match &self.endpoint {
            Endpoint::Single(info) => {
                let c = BoundedConnection::open(info, self.timeout)?;
                let scratch = Scratch {
                    cmd: Cmd::with_capacity(2, 64),
                    packed: Vec::with_capacity(256),
                };
                Ok(Conn::Single(c, Box::new(scratch)))
            }
            Endpoint::Cluster(client) => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(self.timeout))?;
                c.set_write_timeout(Some(self.timeout))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }

    /// The command that removes a key: `UNLINK`, or `DEL` once the server refused
    /// `UNLINK` to this user. For our values (strings) the two do the same: Redis frees
    /// a string at once either way. Without it, every write to an ACL user lacking
    /// `UNLINK` failed after its `SET` went through, and the key, owed an unlink that
    /// never succeeded, was written no more: other machines kept reading the value of
    /// its first write, whatever was set since.
    pub(crate) fn unlink_command(&self) -> &'static str {
        match self.unlink_refused.load(Relaxed) {
            true => "DEL",
            false => "UNLINK",
        }
    }

    /// Notes a refusal of `UNLINK` in `e` (`NOPERM ... 'unlink' command`), so that the
    /// next removals go as `DEL` (`unlink_command`).
    pub(crate) fn note_refusal(&self, e: &RedisError) {
        if e.code() == Some("NOPERM") && e.detail().is_some_and(|d| d.contains("'unlink'")) {
            self.unlink_refused.store(true, Relaxed);
        }
    }

    /// Whether calls are being skipped now.
    pub(crate) fn backed_off(&self) -> bool {
        self.backing_off.load(Relaxed) && lock(&self.backoff).active()
    }

    /// The cluster slot of `redis_key`; `None` on one server (it has no slots).
    pub(crate) fn slot_of(&self, redis_key: &[u8]) -> Option<u16> {
        matches!(self.endpoint, Endpoint::Cluster(_)).then(|| slot(redis_key))
    }

    /// Whether some slot may be backed off (one load, no lock).
    pub(crate) fn any_slot_backed_off(&self) -> bool {
        self.any_slot.load(Relaxed)
    }

    /// Whether calls on `slot` are being skipped now, for that slot alone.
    pub(crate) fn slot_backed_off(&self, slot: u16) -> bool {
        self.any_slot.load(Relaxed) && lock(&self.slots).get(&slot).is_some_and(Backoff::active)
    }

    /// Runs `f` on a connection. `None` when the remote is backed off (counted as
    /// skipped) or the round trip failed (counted as an error; the back-off grows).
    pub(crate) fn run<T>(&self, f: impl FnOnce(&mut Conn) -> RedisResult<T>) -> Option<T> {
        self.run_in(crate::fork::this_process(), &[], f)
    }

    /// `run` for a round trip on the keys of `slots`: skipped while one of them is
    /// backed off, and an error about a slot backs off that slot only.
    pub(crate) fn run_on<T>(
        &self,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Option<T> {
        self.run_in(crate::fork::this_process(), slots, f)
    }

    /// `run_on` in process `pid` (this one; the read path asks the system once per get).
    pub(crate) fn run_in<T>(
        &self,
        pid: u32,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Option<T> {
        self.attempt_in(pid, slots, f).ok()
    }

    /// `run_on`, telling a call not sent from a round trip that failed.
    pub(crate) fn attempt_on<T>(
        &self,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, Missed> {
        self.attempt_in(crate::fork::this_process(), slots, f)
    }

    fn attempt_in<T>(
        &self,
        pid: u32,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, Missed> {
        if self.backed_off() || slots.iter().any(|&s| self.slot_backed_off(s)) {
            self.counters.skipped.fetch_add(1, Relaxed);
            return Err(Missed::Skipped);
        }
        self.round_trip(pid, slots, f)
    }

    /// `run_on`, sent even while the remote (or a slot of `slots`) is backed off: a
    /// round trip that must follow one that failed in the same call (the clear's
    /// generation, once a full server's memory was relieved; the release of a lease
    /// whose fenced write was refused).
    pub(crate) fn run_now<T>(
        &self,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Option<T> {
        self.attempt_now(slots, f).ok()
    }

    /// `run_now`, telling why it gave nothing.
    pub(crate) fn attempt_now<T>(
        &self,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, Missed> {
        self.round_trip(crate::fork::this_process(), slots, f)
    }

    /// One round trip on a pooled or new connection: counted and backed off on failure.
    fn round_trip<T>(
        &self,
        pid: u32,
        slots: &[u16],
        f: impl FnOnce(&mut Conn) -> RedisResult<T>,
    ) -> Result<T, Missed> {
        let idle = {
            let mut idle = lock(&self.idle);
            if self.pid.load(Relaxed) != pid {
                // The parent's sockets: never used, never closed here.
                std::mem::forget(std::mem::take(&mut *idle));
                self.pid.store(pid, Relaxed);
            }
            idle.pop()
        };
        // The round trip (and a connect) holds no lock: a write-behind thread, which
        // sends its batch in a step (fork.rs), lets a fork go on meanwhile.
        let result = crate::fork::outside_step(|| {
            let conn = match idle {
                Some(c) => Ok(c),
                None => self.connect(),
            };
            conn.and_then(|mut c| f(&mut c).map(|v| (v, c)))
        });
        match result {
            Ok((v, c)) => {
                self.succeeded(slots);
                let mut idle = lock(&self.idle);
                if idle.len() < MAX_IDLE {
                    idle.push(c);
                }
                Ok(v)
            }
            Err(e) => {
                self.note_refusal(&e);
                match slot_error(&e) {
                    // A slot the call did not name is backed off whole: on one server
                    // (which names none: a node of a cluster named by a plain redis://
                    // URL answers MOVED for the keys it does not serve), and on a cluster
                    // the generation key's, which every round trip reads. Backed off
                    // alone, no call would look at it and every call would fail in turn.
                    Some(Some(named)) if slots.contains(&named) => self.slots_failed(&[named]),
                    Some(None) if !slots.is_empty() => self.slots_failed(slots),
                    _ => self.failed(),
                }
                Err(match e.is_timeout() {
                    true => Missed::TimedOut,
                    false => Missed::Failed,
                })
            }
        }
    }

    /// Counts a failure about `slots` alone and backs them off; the connections and the
    /// rest of the cluster are fine.
    fn slots_failed(&self, slots: &[u16]) {
        self.counters.errors.fetch_add(1, Relaxed);
        self.counters.connected.store(false, Relaxed);
        let mut backed = lock(&self.slots);
        for &s in slots {
            backed.entry(s).or_default().fail();
        }
        self.any_slot.store(true, Relaxed);
    }

    /// After a round trip on `slots` succeeded: they and the remote are well again.
    fn succeeded(&self, slots: &[u16]) {
        self.counters.connected.store(true, Relaxed);
        if self.any_slot.load(Relaxed) && !slots.is_empty() {
            let mut backed = lock(&self.slots);
            for s in slots {
                backed.remove(s);
            }
            self.any_slot.store(!backed.is_empty(), Relaxed);
        }
        if !self.backing_off.load(Relaxed) {
            return;
        }
        let mut b = lock(&self.backoff);
        b.until = None;
        b.next = FIRST_BACKOFF;
        self.backing_off.store(false, Relaxed);
    }

    /// Counts a failure, drops the idle connections (they may be as broken) and backs off.
    pub(crate) fn failed(&self) {
        self.counters.errors.fetch_add(1, Relaxed);
        self.counters.connected.store(false, Relaxed);
        lock(&self.idle).clear();
        lock(&self.backoff).fail();
        self.backing_off.store(true, Relaxed);
    }

    /// The addresses of the masters (one server: itself), for scans.
    pub(crate) fn masters(&self) -> Option<Vec<ConnectionInfo>> {
        let seeds = match &self.url.target {
            Target::Single(info) => return Some(vec![info.clone()]),
            Target::Cluster(nodes) => nodes,
        };
        let first = seeds[0].clone();
        // Sent even while backed off: a clear's reclaim follows the round trip that made
        // its generation, or relieves a full server after its refusal (`new_generation`).
        let text: String = self.run_now(&[], |c| c.query(redis::cmd("CLUSTER").arg("NODES")))?;
        let mut out = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            if fields.len() < 3 {
                continue;
            }
            // Whole flags: `nofailover` (a node configured with
            // cluster-replica-no-failover) is no failure.
            let flags: Vec<&str> = fields[2].split(',').collect();
            if !flags.contains(&"master")
                || flags
                    .iter()
                    .any(|f| matches!(*f, "fail" | "fail?" | "noaddr"))
            {
                continue;
            }
            let addr = fields[1].split(['@', ',']).next().unwrap_or("");
            let Some((host, port)) = addr.rsplit_once(':') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            // A node that never met another (a cluster of one) lists itself with no
            // address: it is reached as the URL names it.
            let host = match host {
                "" => seed_host(seeds, port),
                known => known.to_string(),
            };
            let mut info = first.clone();
            info.addr = match &first.addr {
                ConnectionAddr::TcpTls {
                    insecure,
                    tls_params,
                    ..
                } => ConnectionAddr::TcpTls {
                    host: host.clone(),
                    port,
                    insecure: *insecure,
                    tls_params: tls_params.clone(),
                },
                _ => ConnectionAddr::Tcp(host, port),
            };
            out.push(info);
        }
        Some(out)
    }

    /// A direct connection to one server (for a scan), bounded by the timeout.
    pub(crate) fn direct(&self, info: &ConnectionInfo) -> Option<BoundedConnection> {
        BoundedConnection::open(info, self.timeout).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_from_100_ms_and_stops_growing_at_30_s() {
        let mut b = Backoff::default();
        assert!(!b.active());
        let ms = |n: u64| Duration::from_millis(n);
        let pauses = [
            100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000, 30000,
        ];
        for pause in pauses.map(ms) {
            let before = Instant::now();
            b.fail();
            let until = b.until.expect("a failure pauses");
            assert!(until >= before + pause && until <= Instant::now() + pause);
            assert!(b.active());
            assert_eq!(b.next, (pause * 2).min(MAX_BACKOFF));
        }
    }
}
