//! The remote tier: a second, shared cache on Redis or Valkey (one server or a Redis
//! Cluster) behind the local file, for caches shared by many machines.
//!
//! - `url`: the URL forms, checked when set, passwords never shown;
//! - `codec`: the value format (header, expiry, CRC-32) that makes anything foreign a miss;
//! - `client`: connections, bounded round trips, back-off;
//! - `keys` (here): `<namespace>:<tag>:<kind>{<generation>:<key>}`;
//! - `lease`: single flight across machines, fenced with a token;
//! - `tier`: the hooks `Storage` calls (read-through, write-through, delete, clear);
//! - `fill`: values read through, kept in memory until written to the local file.
//!
//! A remote that is down, slow or answering garbage never fails a call: every method
//! here returns `None`/`false` instead, and the counters say why.

mod bounded;
mod client;
mod codec;
pub(crate) mod fill;
mod hidden;
mod lease;
#[cfg(test)]
mod new_generation_tests;
pub(crate) mod options;
mod tier;
mod unsynced;
pub(crate) mod url;

pub use self::options::{
    RemoteMode, RemoteOptions, DEFAULT_REMOTE_NAMESPACE, DEFAULT_REMOTE_TIMEOUT,
};
pub use self::url::{redact, RemoteUrl};

use self::client::{Client, Conn, Missed};
use self::hidden::Hidden;
use self::unsynced::{InQueue, Unsynced};
use crate::expiration::Expiration;
use crate::options::Options;
use crate::sync::lock;
use redis::Cmd;
use std::borrow::Cow;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Keys longer than this are replaced by their SHA-1 (the full key is kept in the value).
pub const MAX_PLAIN_KEY: usize = 256;
/// Writes waiting for the write-behind thread; more are dropped (and counted as errors).
const BEHIND_QUEUE: usize = 4096;
/// Bytes of keys and values held for the write-behind thread (waiting or being sent); a
/// write that would hold more is dropped like one that finds the queue full, unless
/// nothing is held (a single larger write still goes). Without it a burst of large
/// values to a slow remote held up to 4096 of them in memory.
const BEHIND_BYTES: usize = 64 << 20;
/// Queued commands sent in one round trip, at most.
const BEHIND_BATCH: usize = 256;
/// Writes sent in one round trip, at most, and the bytes of keys and values past which
/// no more are added to it (a larger write still goes, alone): each round trip is
/// bounded by the timeout, so its size must be bounded too. One pipeline of a 20,000-key
/// `set_many` to a healthy local server outran the default 250 ms every time: the keys
/// were remembered as lost, their unlinks (one pipeline again) timed out on every later
/// call, and past 65,536 keys the whole remote was cleared.
const ROUND_TRIP_WRITES: usize = 1024;
const ROUND_TRIP_BYTES: usize = 1 << 20;
/// A write of more bytes than this goes in a round trip of its own. A server refuses a
/// value over its `proto-max-bulk-len` (1 MiB at the least it can be set to) and closes
/// the connection: every write sent with it failed, and was lost, with the one refused.
const ALONE_BYTES: usize = 512 << 10;
/// Keys of one read-only call whose replaced remote value is read when they are set
/// (`Remote::learn_replaced`, a round trip each); a larger batch's other keys learn it
/// at their next look-up. Bounded so that a batch's set costs a few round trips, not
/// one per entry.
const LEARNED_PER_CALL: usize = 64;
/// The longest `PX` sent (2^62 ms, 146 million years): Redis refuses a PX whose
/// deadline, its clock plus the PX, overflows 64 bits, which an expiration near
/// INT64_MAX ms would (the value header keeps the exact deadline).
pub(crate) const MAX_PX: i64 = 1 << 62;

/// A handle's remote activity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Local misses answered by the remote.
    pub hits: u64,
    /// Local misses the remote did not answer (absent, expired, foreign or damaged).
    pub misses: u64,
    /// Writes (sets, deletes, clears) the remote acknowledged.
    pub writes: u64,
    /// Round trips that failed (refused, timed out, garbage), and write-behind writes
    /// dropped because the queue was full.
    pub errors: u64,
    /// Calls not sent while the remote was backed off.
    pub skipped: u64,
    /// Whether the last round trip succeeded.
    pub connected: bool,
}

/// Remote key names. Every key of one item shares its hash tag `{<gen>:<key>}`, so
/// its value and lease live in one cluster slot (the fenced write is one script).
/// The namespace and tag contain no `{`, so the first `{` is always ours.
struct Keys {
    prefix: String,
    /// `<prefix>gen`, read with every look-up.
    generation: Vec<u8>,
}

impl Keys {
    fn new(namespace: &str, version_tag: Option<&str>) -> Keys {
        // The empty tag is a tag, as for the file: hashed like any tag outside the plain
        // set, so that it is apart from no tag (`<namespace>::`).
        let tag = match version_tag {
            None => String::new(),
            Some(t)
                if !t.is_empty()
                    && t.len() <= 64
                    && t.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
            {
                t.to_string()
            }
            Some(t) => format!("~{}", sha1_smol::Sha1::from(t).digest()),
        };
        let prefix = format!("{namespace}:{tag}:");
        Keys {
            generation: format!("{prefix}gen").into_bytes(),
            prefix,
        }
    }

    fn generation(&self) -> &[u8] {
        &self.generation
    }

    /// `kind` is b'd' (value) or b'l' (lease); the flag says whether `key` was hashed.
    fn item(&self, kind: u8, gen: u64, key: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(self.prefix.len() + 24 + key.len().min(48));
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(kind);
        // (`write!` into the key itself: no string made per look-up.)
        let _ = write!(out, "{{{gen:x}:");
        let hashed = key.len() > MAX_PLAIN_KEY;
        if hashed {
            out.push(b'#');
            out.extend_from_slice(sha1_smol::Sha1::from(key).digest().to_string().as_bytes());
        } else {
            out.extend_from_slice(key);
        }
        out.push(b'}');
        (out, hashed)
    }

    /// The SCAN pattern of every value and lease key of this namespace and tag.
    fn pattern(&self) -> String {
        format!("{}[dl]{{*", self.prefix)
    }

    /// The generation of a value or lease key of this prefix, and the part after it
    /// (the key, or `#<sha1>` for a hashed one: the same Redis key as a plain key in
    /// another generation).
    fn split<'k>(&self, redis_key: &'k [u8]) -> Option<(u64, &'k [u8])> {
        let rest = redis_key.strip_prefix(self.prefix.as_bytes())?.get(2..)?;
        let end = rest.iter().position(|&b| b == b':')?;
        let gen = u64::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?, 16).ok()?;
        let key = rest.get(end + 1..)?.strip_suffix(b"}")?;
        Some((gen, key))
    }

    /// The generation in a key the pattern matched.
    fn generation_of(&self, redis_key: &[u8]) -> Option<u64> {
        let rest = redis_key.get(self.prefix.len() + 2..)?;
        let end = rest.iter().position(|&b| b == b':')?;
        u64::from_str_radix(std::str::from_utf8(&rest[..end]).ok()?, 16).ok()
    }
}

/// One write to the remote: a value for `key`, or its removal (`set: None`). Made into
/// a command for a generation only when it is sent (the write-behind thread sends a
/// write queued before another client's clear to the live generation).
struct Write<'a> {
    key: Cow<'a, [u8]>,
    set: Option<SetValue<'a>>,
    /// A removal that returns the start of the value it removes (`LOOK_AND_UNLINK`),
    /// for a delete that answers whether a live value was there (`Remote::remove`).
    look: bool,
}

/// A value, with its deadline (epoch ms; `None`: never) and the time of the set.
struct SetValue<'a> {
    value: Cow<'a, [u8]>,
    deadline: Option<i64>,
    now: i64,
    /// When `now` was read: a write sent later (a queue, a retry) has that much less
    /// time left.
    at: Instant,
}

impl SetValue<'_> {
    /// The handle's clock when the write is sent: the time of the set plus what has
    /// passed since (the write-behind thread has no clock of the handle's).
    fn now_when_sent(&self) -> i64 {
        let waited = self.at.elapsed().as_millis().min(i64::MAX as u128) as i64;
        self.now.saturating_add(waited)
    }
}

impl<'a> Write<'a> {
    fn unlink(key: &'a [u8]) -> Write<'a> {
        Write {
            key: Cow::Borrowed(key),
            set: None,
            look: false,
        }
    }

    /// For the write-behind queue: the caller's bytes are copied.
    fn into_owned(self) -> Write<'static> {
        Write {
            key: Cow::Owned(self.key.into_owned()),
            set: self.set.map(|s| SetValue {
                value: Cow::Owned(s.value.into_owned()),
                deadline: s.deadline,
                now: s.now,
                at: s.at,
            }),
            look: self.look,
        }
    }

    /// The bytes of its key and value.
    fn bytes(&self) -> usize {
        self.key.len() + self.set.as_ref().map_or(0, |s| s.value.len())
    }

    /// The unlink of this write's key.
    fn as_unlink(&self) -> Write<'static> {
        Write {
            key: Cow::Owned(self.key.to_vec()),
            set: None,
            look: false,
        }
    }

    /// Adds to `out` the commands that make this write in generation `gen`, and returns
    /// the remote key it writes. A removal (or a value already expired) is one UNLINK. A
    /// value is an UNLINK, then its SET: a server that refuses the SET (out of memory
    /// under `noeviction`, a value over its `proto-max-bulk-len`, which also closes the
    /// connection) has run the UNLINK before it, so other machines never read the
    /// key's older value meanwhile (before, they did until this handle's next remote
    /// call unlinked the lost key).
    /// `unlink` is the command that removes a key (`Client::unlink_command`).
    fn commands_into(&self, keys: &Keys, gen: u64, unlink: &str, out: &mut Vec<Cmd>) -> Vec<u8> {
        let (redis_key, hashed) = keys.item(b'd', gen, &self.key);
        let unlink = match self.look {
            true => redis::cmd("EVAL")
                .arg(LOOK_AND_UNLINK)
                .arg(1)
                .arg(&redis_key)
                .arg(codec::header_len(&self.key, hashed))
                .clone(),
            false => redis::cmd(unlink).arg(&redis_key).clone(),
        };
        out.push(unlink);
        if let Some(s) = &self.set {
            // The PX counts from the send: counted from the set, a value that waited
            // in the write-behind queue stayed on the server past its deadline for as
            // long as it had waited (a whole expiration more for one sent after it),
            // and a reader whose clock runs behind the writer's, which the PTTL is to
            // bound, read it back.
            let now = s.now_when_sent();
            if !s.deadline.is_some_and(|t| t <= now) {
                let payload = codec::encode(s.deadline, hashed.then_some(&self.key[..]), &s.value);
                let mut cmd = redis::cmd("SET");
                cmd.arg(&redis_key).arg(payload);
                if let Some(t) = s.deadline {
                    cmd.arg("PX").arg((t - now).min(MAX_PX));
                }
                out.push(cmd);
            }
        }
        redis_key
    }
}

/// Unlinks a key and returns the start of the value it held (nil if none, or not a
/// string), for a delete that answers whether a live value was there: the header (and
/// a hashed key's full key) tells, without the value crossing the network. A script,
/// not a `GETRANGE` before the `UNLINK`: an ACL user needs no command beyond the
/// README's list (`GET` and `UNLINK` run by it, as by the other scripts; `DEL` when
/// the user may not run `UNLINK`, as for the other removals, `Client::unlink_command`).
/// KEYS: the value. ARGV: the bytes wanted.
const LOOK_AND_UNLINK: &str = r"
local v = redis.pcall('GET', KEYS[1])
local gone = redis.pcall('UNLINK', KEYS[1])
if type(gone) == 'table' and gone.err then redis.call('DEL', KEYS[1]) end
if type(v) ~= 'string' then return false end
return string.sub(v, 1, tonumber(ARGV[1]))";

/// The remote keys `writes` write in generation `gen`, for remembering writes that were
/// lost (no payload is encoded).
fn redis_keys<'w, 'a: 'w>(
    keys: &Keys,
    gen: u64,
    writes: impl IntoIterator<Item = &'w Write<'a>>,
) -> Vec<Vec<u8>> {
    writes
        .into_iter()
        .map(|w| keys.item(b'd', gen, &w.key).0)
        .collect()
}

/// Unlinks the remote keys of writes that never reached the remote (`Unsynced`), each
/// in the generation it was written in and, when another client cleared since, in the
/// live one too (`write_in_live_generation`; `live` learns it): the handle may have lost
/// the write before it read that clear, and a value set after the clear is older than
/// the lost write, which must not leave it. Returns the keys not unlinked.
fn unlink_lost(client: &Client, keys: &Keys, live: &AtomicU64, lost: &[Vec<u8>]) -> Vec<Vec<u8>> {
    // By generation (nearly always one): the part after it names the key in any
    // generation (a hashed key's `#<sha1>` too, as a plain key of 41 bytes). Every key
    // here is one `Keys::item` made, which `split` takes apart.
    let mut by_generation: std::collections::HashMap<u64, Vec<Write<'_>>> = Default::default();
    for (gen, key) in lost.iter().filter_map(|k| keys.split(k)) {
        by_generation
            .entry(gen)
            .or_default()
            .push(Write::unlink(key));
    }
    let mut left = Vec::new();
    for (gen, writes) in &by_generation {
        let (_, unsent) = write_in_pieces(client, keys, live, *gen, writes, true);
        left.extend(redis_keys(keys, *gen, unsent));
    }
    left
}

/// `write_in_live_generation` for any number of writes: a round trip for each piece
/// that fits one (`ROUND_TRIP_WRITES`, `ROUND_TRIP_BYTES`; a write over `ALONE_BYTES`
/// alone), in order, until one fails. A large write the server refused alone is the
/// only one lost: the next piece is sent at once, past the back-off its failure began
/// (a server that is down fails that one too, which ends the call). Returns the
/// replies of the writes sent, and the writes not sent.
fn write_in_pieces<'w, 'a>(
    client: &Client,
    keys: &Keys,
    live: &AtomicU64,
    gen: u64,
    writes: &'w [Write<'a>],
    sets_move: bool,
) -> (Vec<redis::Value>, Vec<&'w Write<'a>>) {
    let mut replies = Vec::new();
    let mut unsent = Vec::new();
    let mut sent = 0;
    let mut after_failure = false;
    while sent < writes.len() {
        let end = piece_end(writes, sent);
        let piece = &writes[sent..end];
        // Each piece from the generation the writes were checked in: a set queued
        // before another client's clear must not reach the live one (`sets_move`).
        match write_in_live_generation(client, keys, live, gen, piece, sets_move, after_failure) {
            Ok(r) => {
                replies.extend(r);
                after_failure = false;
            }
            Err(Missed::Failed) if !after_failure && piece[0].bytes() > ALONE_BYTES => {
                unsent.push(&piece[0]);
                after_failure = true;
            }
            Err(_) => break,
        }
        sent = end;
    }
    unsent.extend(&writes[sent..]);
    (replies, unsent)
}

/// The end of the piece of `writes` that starts at `start`.
fn piece_end(writes: &[Write<'_>], start: usize) -> usize {
    let mut end = start;
    let mut bytes = 0;
    while end < writes.len() && end - start < ROUND_TRIP_WRITES && bytes < ROUND_TRIP_BYTES {
        let b = writes[end].bytes();
        if b > ALONE_BYTES && end > start {
            break;
        }
        bytes += b;
        end += 1;
        if b > ALONE_BYTES {
            break;
        }
    }
    end
}

/// The writes of `writes` that may be sent now in generation `gen`. A write is held
/// back, and remembered as lost, when an older lost write of its key is still to be
/// unlinked (that unlink would undo it) or its cluster slot is backed off.
fn sendable<'a>(
    client: &Client,
    keys: &Keys,
    lost: &Unsynced,
    gen: u64,
    writes: Vec<Write<'a>>,
) -> Vec<Write<'a>> {
    if !lost.any() && !client.any_slot_backed_off() {
        return writes;
    }
    let (send, held): (Vec<Write<'a>>, Vec<Write<'a>>) = writes.into_iter().partition(|w| {
        let k = keys.item(b'd', gen, &w.key).0;
        !lost.holds(&k)
            && !client
                .slot_of(&k)
                .is_some_and(|s| client.slot_backed_off(s))
    });
    if !held.is_empty() {
        client.counters.skipped.fetch_add(1, Relaxed);
        lost.add(redis_keys(keys, gen, &held));
    }
    send
}

/// The commands of `writes` in generation `gen`, and the remote keys they write.
fn commands(keys: &Keys, gen: u64, unlink: &str, writes: &[Write<'_>]) -> (Vec<Cmd>, Vec<Vec<u8>>) {
    let mut cmds = Vec::with_capacity(writes.len() * 2);
    let written = writes
        .iter()
        .map(|w| w.commands_into(keys, gen, unlink, &mut cmds))
        .collect();
    (cmds, written)
}

/// Sends `writes` with a GET of the clear generation after them, in one round trip.
/// When another client cleared since this handle last read, the writes went to a dead
/// generation (a delete would miss the value set after the clear, a set would be read
/// by nobody): they are unlinked there and sent again for the live one, the sets as
/// unlinks unless `sets_move` (a set queued before that clear must not outlive it).
/// `gen` is the generation to try first (what `live` held when the writes were
/// checked). The generation is read after the writes, so on one server a match means
/// they landed in the live generation. The writes' replies, or why not (the live
/// generation not found is a failure of the round trip). `now`: sent even while the
/// remote is backed off (`Client::attempt_now`).
fn write_in_live_generation(
    client: &Client,
    keys: &Keys,
    live: &AtomicU64,
    mut gen: u64,
    writes: &[Write<'_>],
    sets_move: bool,
    now: bool,
) -> Result<Vec<redis::Value>, Missed> {
    let mut dead: Vec<Vec<u8>> = Vec::new();
    let mut unlinks: Option<Vec<Write<'_>>> = None;
    // Each clear makes a new generation: more than a few in one call is a storm of
    // clears, after which the writes are left unsynced like any failed write.
    for _ in 0..4 {
        let writes = unlinks.as_deref().unwrap_or(writes);
        let unlink = client.unlink_command();
        let (mut cmds, written) = commands(keys, gen, unlink, writes);
        let n = cmds.len();
        // One UNLINK per key: a multi-key UNLINK across slots is refused on a cluster.
        let slots: Vec<u16> = written
            .iter()
            .chain(&dead)
            .filter_map(|k| client.slot_of(k))
            .collect();
        cmds.extend(dead.drain(..).map(|k| redis::cmd(unlink).arg(k).clone()));
        cmds.push(redis::cmd("GET").arg(keys.generation()).clone());
        let round_trip = |c: &mut Conn| c.pipe::<Vec<redis::Value>>(cmds);
        let mut replies = match now {
            true => client.attempt_now(&slots, round_trip)?,
            false => client.attempt_on(&slots, round_trip)?,
        };
        let found = replies.pop().ok_or(Missed::Failed)?;
        let Ok(found) = redis::from_redis_value::<Option<Vec<u8>>>(&found) else {
            client.failed();
            return Err(Missed::Failed);
        };
        let current = match found {
            Some(found) => generation_or_fail(client, found),
            // The key was lost: the writes went to no live generation.
            None => ensure_generation(client, keys),
        };
        let current = current.ok_or(Missed::Failed)?;
        if current == gen {
            replies.truncate(n);
            return Ok(replies);
        }
        learn_generation(live, gen, current);
        gen = current;
        dead = written;
        // Sent as the unlinks they must be: a write the remote acknowledges, no error.
        if !sets_move && unlinks.is_none() && writes.iter().any(|w| w.set.is_some()) {
            unlinks = Some(writes.iter().map(Write::as_unlink).collect());
        }
    }
    Err(Missed::Skipped)
}

/// Teaches the handle's known generation `known` the generation `found`, read by a round
/// trip sent while the handle knew `seen`. Generations only grow on the server (each
/// clear makes one above the last, see `NEW_GENERATION`), so the larger one is the newer:
/// a reply that comes late never takes the handle back past a clear another thread has
/// learned meanwhile, nor past this handle's own clear. A round trip sent after `seen`
/// was on the server that reads less than `seen` means the server went back (a restored
/// snapshot; a lost key is made again above every earlier generation, see
/// `ENSURE_GENERATION`): the handle follows it, but only from `seen`, so that a reply
/// older than that cannot.
fn learn_generation(known: &AtomicU64, seen: u64, found: u64) {
    if found >= seen {
        known.fetch_max(found, Relaxed);
    } else {
        let _ = known.compare_exchange(seen, found, Relaxed, Relaxed);
    }
}

/// The live generation, made by `ENSURE_GENERATION` if the key is missing; None when
/// the remote could not be asked or answered something else, counted once either way.
fn ensure_generation(client: &Client, keys: &Keys) -> Option<u64> {
    match run_generation_script(client, keys, ENSURE_GENERATION)? {
        Some(found) => generation_or_fail(client, found),
        None => {
            client.failed();
            None
        }
    }
}

/// The generation the server answered, or None when it is not a number: a failure of
/// the remote like a refused round trip (counted in `errors`, backed off). A write that
/// found one was lost and counted nowhere, and the remote stayed `connected`.
fn generation_or_fail(client: &Client, found: Vec<u8>) -> Option<u64> {
    let gen = Remote::parse_generation(found);
    if gen.is_none() {
        client.failed();
    }
    gen
}

/// Runs `script`, one of the generation scripts, on the generation key: its reply, or
/// None when the remote could not be asked.
fn run_generation_script(client: &Client, keys: &Keys, script: &str) -> Option<Option<Vec<u8>>> {
    let script = redis::cmd("EVAL")
        .arg(script)
        .arg(1)
        .arg(keys.generation())
        .clone();
    client.run(|c| c.query::<Option<Vec<u8>>>(&script))
}

/// Makes a clear's new generation, above the current one and at least the server's
/// clock in microseconds, and returns it. The clock part keeps generations growing even
/// after the server lost the key (`ENSURE_GENERATION` then makes one): a number used before is
/// not used again, so no value hidden by an old clear comes back. For that the script
/// first waits (a few `TIME` calls, about a microsecond) until the clock has moved past
/// the moment it started, and takes that reading: scripts run one at a time, so two
/// clears never share a microsecond, every generation is at most the clock when it was
/// made (one above the current one would run ahead of the clock if clears came faster),
/// and a clear after a loss reads a clock above every generation made before. Only a
/// server clock that steps back, together with a lost key, can repeat a number. A
/// clock that never moves within a script (none known) ends the wait after 10,000
/// readings, and generations then grow by one. Below 2^52 a Lua number is exact;
/// anything larger or not a number was not made here (e.g. by an older library, whose
/// generations were random) and is replaced.
/// KEYS: the generation key.
macro_rules! new_generation {
    () => {
        r"
if redis.replicate_commands then redis.replicate_commands() end
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local start = clock()
local now = clock()
local readings = 0
while now <= start and readings < 10000 do
  now = clock()
  readings = readings + 1
end
local cur = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if cur >= 2^52 or cur < 0 then cur = 0 end
local g = string.format('%.0f', math.max(cur + 1, now))
redis.call('SET', KEYS[1], g)
return g"
    };
}
const NEW_GENERATION: &str = new_generation!();

/// The live generation, made as a clear makes one when the key is missing: a server
/// that lost it (an eviction, a `DEL`, a restart without persistence) must never read
/// as generation 0 or any earlier one again, or the keys of generations hidden by
/// earlier clears (those the clear's bounded unlinking left, until their TTL) would be
/// read again. One script, so two clients that find the key missing agree.
/// KEYS: the generation key.
const ENSURE_GENERATION: &str = concat!(
    "local found = redis.call('GET', KEYS[1])\nif found then return found end",
    new_generation!()
);

/// Generations at or above this were not made by `NEW_GENERATION` (its 2^52).
const MAX_GENERATION: u64 = 1 << 52;

/// Writes queued by one call, with what the handle knew when it queued them.
struct Queued {
    writes: Vec<Write<'static>>,
    /// The bytes of their keys and values (counted in `Behind::held`).
    bytes: usize,
    /// The clear generation the handle knew.
    gen: u64,
    /// The handle's count of its own clears.
    epoch: u64,
    /// Its number among the process's writes of its keys (`InQueue::add`).
    number: u64,
}

/// The write-behind thread: sends what is queued, in order, until the queue closes.
/// A write queued before this handle's own clear is dropped; a set queued in a
/// generation that is no longer live (another client cleared) is sent as an unlink
/// (a miss is safe, a value from before the clear is not), and the live generation
/// is remembered so that writes queued afterwards are sent as they are.
#[allow(clippy::too_many_arguments)]
fn write_behind(
    rx: Receiver<Queued>,
    held: &AtomicUsize,
    in_queue: &InQueue,
    client: &Client,
    keys: &Keys,
    live: &AtomicU64,
    epoch: &AtomicU64,
    lost: &Unsynced,
) {
    while let Ok(first) = rx.recv() {
        // The batch is sent in a step (fork.rs), left for each round trip: a child
        // forked while this thread held a lock (of the keys being sent, the pool of
        // connections, the back-off, the lost keys) inherited it held, with no thread
        // to let it go, and hung at its first call on the remote.
        let step = crate::fork::step();
        // What queued up meanwhile goes in the same round trip (in order): under load,
        // one pipeline per write costs the server and this machine a syscall pair and
        // a wake-up each.
        let mut batch = vec![first];
        let mut len = batch[0].writes.len();
        while len < BEHIND_BATCH {
            let Ok(more) = rx.try_recv() else { break };
            len += more.writes.len();
            batch.push(more);
        }
        let bytes: usize = batch.iter().map(|q| q.bytes).sum();
        // A write of a key written again since (through another handle) is not sent.
        let mut calls: Vec<_> = batch
            .iter_mut()
            .map(|q| (q.number, &mut q.writes))
            .collect();
        let sending = Sending(in_queue, in_queue.begin_sending(&mut calls, |w| &w.key));
        send_batch(batch, sending.1.len(), client, keys, live, epoch, lost);
        // Sent, or remembered as lost: the remote may be read for these keys again.
        drop(sending);
        // Their memory is freed: room for as many bytes more.
        held.fetch_sub(bytes, Relaxed);
        drop(step);
    }
}

/// Writes a write-behind thread is sending (`InQueue::begin_sending`), ended when
/// dropped: left marked (a panic), later writes of their keys would wait forever.
struct Sending<'a>(&'a InQueue, Vec<Vec<u8>>);

impl Drop for Sending<'_> {
    fn drop(&mut self) {
        self.0.end_sending(&self.1);
    }
}

/// Sends one batch of the write-behind queue (`len` writes).
fn send_batch(
    batch: Vec<Queued>,
    len: usize,
    client: &Client,
    keys: &Keys,
    live: &AtomicU64,
    epoch: &AtomicU64,
    lost: &Unsynced,
) {
    let (gen, cleared) = (live.load(Relaxed), epoch.load(SeqCst));
    let mut writes = Vec::with_capacity(len);
    // Every call counts once: one made needless by a later write of its key or by this
    // handle's clear (dropped unsent) as the call that stands for it, as a write.
    let ops = batch.len() as u64;
    for q in batch.into_iter().filter(|q| q.epoch == cleared) {
        if q.gen == gen {
            writes.extend(q.writes);
        } else {
            // Its sets' values must not outlive that clear: the call is the unlinks,
            // counted as the call (a write once acknowledged), not as an error.
            writes.extend(q.writes.iter().map(Write::as_unlink));
        }
    }
    // Every call was made needless (a later write of its key, this handle's clear).
    if writes.is_empty() {
        client.counters.writes.fetch_add(ops, Relaxed);
        return;
    }
    // Each call of the batch counts once, as a call through the write-through path
    // does: while the remote is backed off, as skipped, and nothing is tried (the
    // unlinks owed and the writes each counted the whole batch as skipped once more:
    // 10 sets to a killed server counted 19).
    if ops > 0 && client.backed_off() {
        client.counters.skipped.fetch_add(ops, Relaxed);
        lost.add(redis_keys(keys, gen, &writes));
        return;
    }
    // Older lost writes are unlinked first, so none undoes these; a write whose
    // key's could not be unlinked yet waits with it. When that round trip fails (one
    // error), the writes wait too, not counted again.
    if !lost.flush(client, |k| unlink_lost(client, keys, live, k)) && client.backed_off() {
        lost.add(redis_keys(keys, gen, &writes));
        return;
    }
    let writes = sendable(client, keys, lost, gen, writes);
    if writes.is_empty() {
        return;
    }
    let (_, unsent) = write_in_pieces(client, keys, live, gen, &writes, false);
    if unsent.len() < writes.len() {
        // A call that lost a write is not counted (an error was): a write the server
        // refused alone takes one call out of the count, at most every call.
        client
            .counters
            .writes
            .fetch_add(ops.saturating_sub(unsent.len() as u64), Relaxed);
    }
    lost.add(redis_keys(keys, live.load(Relaxed), unsent));
}

/// A value found on the remote, checked.
pub(crate) struct Hit {
    pub value: Arc<[u8]>,
    /// Its time left; `None`: it never expires.
    pub left: Option<Duration>,
    /// The CRC-32 of `value`.
    pub crc: u32,
}

/// The remote tier of one storage handle.
pub(crate) struct Remote {
    client: Arc<Client>,
    mode: RemoteMode,
    keys: Arc<Keys>,
    default_expiration: Expiration,
    /// The newest clear generation this handle has seen on the remote (0, which no
    /// server holds, until one is read; see `learn_generation`).
    gen: Arc<AtomicU64>,
    /// The number of this handle's clears (the write-behind thread drops what was
    /// queued before one).
    epoch: Arc<AtomicU64>,
    /// Set when a clear could not reach the remote: it is retried before any other call.
    /// Shared with the process's other handles on the file with this remote (`Owed`).
    pending_clear: Arc<AtomicBool>,
    /// Keys whose last write did not reach the remote: unlinked before the next call.
    /// Shared like `pending_clear`.
    unsynced: Arc<Unsynced>,
    /// Keys with a write in a write-behind queue: not read from the remote meanwhile.
    /// Shared like `pending_clear`.
    in_queue: Arc<InQueue>,
    /// What read-only handles removed: not read back. Shared like `pending_clear`.
    hidden: Arc<Hidden>,
    behind: Option<Arc<Behind>>,
}

struct Behind {
    queue: Mutex<Option<SyncSender<Queued>>>,
    /// The bytes of the writes queued and not yet sent or dropped (`BEHIND_BYTES`).
    held: Arc<AtomicUsize>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// The process whose thread sends the queue: a child made by `fork` has no such
    /// thread (a write it queued would never be sent), and a lock of the queue may have
    /// been held by that thread at the fork. The child writes through instead.
    pid: u32,
}

impl Behind {
    /// Closes the queue and waits while the thread sends what is queued (each write
    /// bounded by the timeout, skipped while the remote is backed off); it then ends.
    /// Once: a second call (a free after the process's exit began) finds nothing.
    fn finish(&self) {
        drop(lock(&self.queue).take());
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

impl Remote {
    /// The remote tier `options` describe, if any. Tries one round trip (bounded by the
    /// timeout) so that `connected` tells at once whether the remote is reachable; an
    /// unreachable remote is not an error.
    /// `owed` is what the process's handles on the file owe their remotes.
    pub(crate) fn open(options: &Options, owed: &Owed) -> Option<Remote> {
        let r = &options.remote;
        let url = r.url.as_ref()?;
        let client = Arc::new(Client::new(url, r.timeout));
        let keys = Arc::new(Keys::new(&r.namespace, options.version_tag.as_deref()));
        let (unsynced, pending_clear, in_queue, hidden) = owed.of(url, &keys);
        let gen = Arc::new(AtomicU64::new(0));
        let epoch = Arc::new(AtomicU64::new(0));
        let behind = (r.mode == RemoteMode::WriteBehind).then(|| {
            let (tx, rx) = sync_channel(BEHIND_QUEUE);
            let (c, k, g, lost) = (client.clone(), keys.clone(), gen.clone(), unsynced.clone());
            let (e, held) = (epoch.clone(), Arc::new(AtomicUsize::new(0)));
            let (h, q) = (held.clone(), in_queue.clone());
            let thread = std::thread::Builder::new()
                .name("backlite-write-behind".into())
                .spawn(move || write_behind(rx, &h, &q, &c, &k, &g, &e, &lost))
                .ok();
            Arc::new(Behind {
                queue: Mutex::new(Some(tx)),
                held,
                thread: Mutex::new(thread),
                pid: crate::fork::this_process(),
            })
        });
        let remote = Remote {
            client,
            mode: r.mode,
            keys,
            default_expiration: options.default_expiration,
            gen,
            epoch,
            pending_clear,
            unsynced,
            in_queue,
            hidden,
            behind,
        };
        remote.refresh_generation();
        Some(remote)
    }

    pub(crate) fn stats(&self) -> RemoteStats {
        let c = &self.client.counters;
        RemoteStats {
            hits: c.hits.load(Relaxed),
            misses: c.misses.load(Relaxed),
            writes: c.writes.load(Relaxed),
            errors: c.errors.load(Relaxed),
            skipped: c.skipped.load(Relaxed),
            connected: c.connected.load(Relaxed),
        }
    }

    /// The write-behind queue, unless this is a child made by `fork` (see `Behind::pid`).
    fn own_behind(&self) -> Option<&Behind> {
        self.behind
            .as_deref()
            .filter(|b| b.pid == crate::fork::this_process())
    }

    fn writes(&self) -> bool {
        self.mode != RemoteMode::ReadOnly
    }

    fn parse_generation(v: Vec<u8>) -> Option<u64> {
        std::str::from_utf8(&v).ok()?.parse().ok()
    }

    /// Reads the clear generation; false if the remote could not be asked.
    fn refresh_generation(&self) -> bool {
        if !self.retry_clear() {
            return false;
        }
        let seen = self.gen.load(Relaxed);
        let found: Option<Option<Vec<u8>>> = self
            .client
            .run(|c| c.query(redis::cmd("GET").arg(self.keys.generation())));
        let found = match found {
            None => return false,
            Some(Some(g)) => Self::parse_generation(g),
            // A read-only handle makes none: its look-ups miss until a writer does.
            Some(None) if !self.writes() => return true,
            Some(None) => match ensure_generation(&self.client, &self.keys) {
                None => return false,
                g => g,
            },
        };
        match found {
            Some(g) => {
                learn_generation(&self.gen, seen, g);
                true
            }
            None => {
                self.client.failed();
                false
            }
        }
    }

    /// Looks `key` up: its value, time left and CRC, checked. `count` adds to hits/misses
    /// (and to skipped for a key held back).
    ///
    /// One round trip: the clear generation, and the value under the generation this
    /// handle last saw with its time left, pipelined. The value is valid only if that
    /// generation is still the live one; after another client's clear it is not, and
    /// the look-up is sent again under the new one (once). The time left is the
    /// shorter of the header's deadline and the server's `PTTL`: the deadline is in the
    /// writer's clock, which may run ahead of this machine's.
    /// `pid` is this process.
    pub(crate) fn get(&self, pid: u32, key: &[u8], now: i64, count: bool) -> Option<Hit> {
        // A poll while the remote is backed off is not sent, and counts nothing: the
        // call counted its first look-up (each poll counted one more skipped).
        if !count && self.client.backed_off() {
            return None;
        }
        if !self.ready() {
            // A read-write handle counted the round trip that failed or was skipped; a
            // read-only one sends nothing while a clear is owed: a call held back, as
            // for a key held back (below). It counted nothing at all.
            if count && !self.writes() {
                self.client.counters.skipped.fetch_add(1, Relaxed);
            }
            return None;
        }
        // A key held back counts as skipped once per call: a poll (`count` false, the
        // waits of `cached_call_exclusive`) is no call of its own.
        if self.in_queue.holds(key) {
            if count {
                self.client.counters.skipped.fetch_add(1, Relaxed);
            }
            return None;
        }
        let generation_key = self.keys.generation();
        let mut gen = self.gen.load(Relaxed);
        for _ in 0..2 {
            let (redis_key, hashed) = self.keys.item(b'd', gen, key);
            if self.unsynced.holds(&redis_key) {
                if count {
                    self.client.counters.skipped.fetch_add(1, Relaxed);
                }
                return None;
            }
            let slot = self.client.slot_of(&redis_key);
            let (found_gen, value, pttl): (Option<Vec<u8>>, Option<Vec<u8>>, i64) = self
                .client
                .run_in(pid, slot.as_slice(), |c| c.read(generation_key, &redis_key))?;
            // Each failure below is counted once, where it happens: a generation
            // script that could not run has counted its error (the get counted a
            // second one, and doubled the back-off).
            let current = match found_gen {
                Some(found) => generation_or_fail(&self.client, found),
                // The key was lost. Whatever this handle knew, the keys of every
                // generation before are hidden by a new one; a read-only handle makes
                // none, and misses.
                None if self.writes() => ensure_generation(&self.client, &self.keys),
                None => {
                    if count {
                        self.client.counters.misses.fetch_add(1, Relaxed);
                    }
                    return None;
                }
            };
            let current = current?;
            if current != gen {
                learn_generation(&self.gen, gen, current);
                gen = current;
                continue;
            }
            let mut seen = None;
            let found = value.and_then(|v| {
                let d = codec::decode(&v, key, hashed)?;
                seen = Some(hidden::Found {
                    gen,
                    crc: d.crc,
                    expires_at: d.expires_at,
                    len: d.value.len(),
                });
                let mut left = match d.expires_at {
                    None => None,
                    Some(t) if t > now => Some(t - now),
                    Some(_) => return None,
                };
                // 0 is a value the server ends within the millisecond (-1: none, -2:
                // gone): the header's deadline, in the writer's clock, may be later.
                if pttl >= 0 {
                    left = Some(left.map_or(pttl, |l| l.min(pttl)));
                }
                Some(Hit {
                    value: Arc::from(d.value),
                    left: left.map(|ms| Duration::from_millis(ms as u64)),
                    crc: d.crc,
                })
            });
            // A value a read-only handle of the process removed is not read back.
            let passes = self.hidden.passes(key, gen, seen);
            let found = found.filter(|_| passes);
            if count {
                let c = &self.client.counters;
                match found {
                    Some(_) => c.hits.fetch_add(1, Relaxed),
                    None => c.misses.fetch_add(1, Relaxed),
                };
            }
            return found;
        }
        // Another clear came between the two look-ups: the remote answered, and had
        // nothing for this generation yet (a miss, which was counted nowhere).
        if count {
            self.client.counters.misses.fetch_add(1, Relaxed);
        }
        None
    }

    /// Reads what a read-only handle's set of `key` (or a batch's, for its first
    /// `LEARNED_PER_CALL` keys) replaced on the remote, so that its
    /// hide is that value alone: left to the first look-up after the set's entry leaves
    /// the file, the hide took whatever was there then, a value another machine wrote
    /// after the set too (and a program memoising by hand, get then set, hid each newer
    /// value in turn, never reading the key from the remote again). One round trip,
    /// the read of a get (no command beyond a get's); when it cannot be made now (the
    /// remote backed off, a clear owed, the key held back or the generation moved) or
    /// fails, the hide is learned at the next look-up as before. Counted as an error
    /// when it fails, never as a hit, miss or skipped call.
    fn learn_replaced(&self, key: &[u8]) {
        let gen = self.gen.load(Relaxed);
        if gen == 0
            || self.client.backed_off()
            || self.pending_clear.load(Relaxed)
            || self.in_queue.holds(key)
        {
            return;
        }
        let (redis_key, hashed) = self.keys.item(b'd', gen, key);
        let slot = self.client.slot_of(&redis_key);
        if self.unsynced.holds(&redis_key) || slot.is_some_and(|s| self.client.slot_backed_off(s)) {
            return;
        }
        // The generation, the value and its time left, as a get reads them.
        type Read = (Option<Vec<u8>>, Option<Vec<u8>>, i64);
        let read: Option<Read> = self.client.run_on(slot.as_slice(), |c| {
            c.read(self.keys.generation(), &redis_key)
        });
        let Some((Some(found_gen), value, _)) = read else {
            return;
        };
        let Some(current) = generation_or_fail(&self.client, found_gen) else {
            return;
        };
        if current != gen {
            learn_generation(&self.gen, gen, current);
            return;
        }
        let found = value.and_then(|v| {
            let d = codec::decode(&v, key, hashed)?;
            Some(hidden::Found {
                gen,
                crc: d.crc,
                expires_at: d.expires_at,
                len: d.value.len(),
            })
        });
        self.hidden.learn_replaced(key, found);
    }

    /// The deadline of a set at `now` (epoch ms; `None`: never).
    fn deadline(&self, expiration: Expiration, now: i64) -> Option<i64> {
        expiration.deadline(now, self.default_expiration)
    }

    /// Sends `writes` now (read-write) or queues them (write-behind); true if the
    /// remote acknowledged them.
    /// A write that does not reach the remote remembers its keys (`unsynced`), so
    /// that no older value of theirs outlives it there.
    fn send(&self, writes: Vec<Write<'_>>) -> bool {
        self.send_for_replies(writes).is_some()
    }

    /// `send`, with the replies of the writes sent now (none for the write-behind queue).
    fn send_for_replies(&self, writes: Vec<Write<'_>>) -> Option<Vec<redis::Value>> {
        if writes.is_empty() {
            return None;
        }
        if !self.writes() {
            // Never sent: a removal holds on this side instead, and so does a set,
            // which stays local (its entry may leave the file before the remote's
            // older value does).
            let removed = writes.iter().filter(|w| w.set.is_none());
            self.hidden.hide(removed.map(|w| &w.key[..]));
            let stored: Vec<&[u8]> = writes
                .iter()
                .filter(|w| w.set.is_some())
                .map(|w| &w.key[..])
                .collect();
            self.hidden.replace(stored.iter().copied());
            for key in stored.iter().take(LEARNED_PER_CALL) {
                self.learn_replaced(key);
            }
            return None;
        }
        // What the remote holds for these keys from now on is this process's.
        self.hidden.forget(writes.iter().map(|w| &w.key[..]));
        let lost = |writes: &[Write<'_>]| {
            self.unsynced
                .add(redis_keys(&self.keys, self.gen.load(Relaxed), writes));
        };
        if let Some(behind) = self.own_behind() {
            let queue = lock(&behind.queue);
            let Some(q) = queue.as_ref() else {
                self.client.counters.errors.fetch_add(1, Relaxed);
                lost(&writes);
                return None;
            };
            let bytes = writes.iter().map(Write::bytes).sum();
            let before = behind.held.fetch_add(bytes, Relaxed);
            if before > 0 && before + bytes > BEHIND_BYTES {
                behind.held.fetch_sub(bytes, Relaxed);
                self.client.counters.errors.fetch_add(1, Relaxed);
                lost(&writes);
                return None;
            }
            let mut queued = Queued {
                writes: writes.into_iter().map(Write::into_owned).collect(),
                bytes,
                gen: self.gen.load(Relaxed),
                epoch: self.epoch.load(SeqCst),
                number: 0,
            };
            // Before it is queued: the thread may send it (and forget the keys) at once.
            queued.number = self.in_queue.add(queued.writes.iter().map(|w| &w.key[..]));
            if let Err(TrySendError::Full(q) | TrySendError::Disconnected(q)) = q.try_send(queued) {
                behind.held.fetch_sub(q.bytes, Relaxed);
                self.client.counters.errors.fetch_add(1, Relaxed);
                lost(&q.writes);
                self.in_queue.remove(q.writes.iter().map(|w| &w.key[..]));
            }
            return None;
        }
        // After an older write of these keys queued by another handle of the process:
        // that one must not land after this one.
        self.in_queue.supersede(writes.iter().map(|w| &w.key[..]));
        let replies = if self.ready() {
            let gen = self.gen.load(Relaxed);
            let writes = sendable(&self.client, &self.keys, &self.unsynced, gen, writes);
            if writes.is_empty() {
                return None;
            }
            let (replies, unsent) =
                write_in_pieces(&self.client, &self.keys, &self.gen, gen, &writes, true);
            if !unsent.is_empty() {
                let gen = self.gen.load(Relaxed);
                self.unsynced.add(redis_keys(&self.keys, gen, unsent));
                return None;
            }
            Some(replies)
        } else {
            lost(&writes);
            None
        };
        if replies.is_some() {
            self.client.counters.writes.fetch_add(1, Relaxed);
        }
        replies
    }

    fn set_write<'a>(
        &self,
        key: &'a [u8],
        value: &'a [u8],
        expiration: Expiration,
        now: i64,
    ) -> Write<'a> {
        let deadline = self.deadline(expiration, now);
        // A value already expired is only the removal of the older one: the
        // write-behind queue need not copy (nor count against its bytes) a value that
        // is never sent.
        if deadline.is_some_and(|t| t <= now) {
            return Write::unlink(key);
        }
        Write {
            key: Cow::Borrowed(key),
            set: Some(SetValue {
                value: Cow::Borrowed(value),
                deadline,
                now,
                at: Instant::now(),
            }),
            look: false,
        }
    }

    pub(crate) fn set(&self, key: &[u8], value: &[u8], expiration: Expiration, now: i64) {
        self.send(vec![self.set_write(key, value, expiration, now)]);
    }

    /// `set` of a value computed after a look-up of its key missed (a memoised call, a
    /// lease's fulfil). A read-only handle hides nothing for it: the remote held no value
    /// it replaces, and one found there later is another machine's, newer (hiding it
    /// would cost every later look-up of the key a compute).
    pub(crate) fn set_computed(&self, key: &[u8], value: &[u8], expiration: Expiration, now: i64) {
        if self.writes() {
            self.set(key, value, expiration, now);
        }
    }

    /// `remove` after a value computed after a miss was refused by the file as too
    /// large: a mode that writes removes the remote's value as for any refused set. A
    /// read-only handle hides nothing, as for a computed value it stores
    /// (`set_computed`): kept as a hide, the next look-up took another machine's later
    /// value for one the call replaced, and each call computed the key again.
    pub(crate) fn remove_computed(&self, key: &[u8], now: i64) {
        if self.writes() {
            self.remove(key, now);
        }
    }

    pub(crate) fn set_many(&self, entries: &[crate::Entry<'_>], now: i64) {
        self.send(
            entries
                .iter()
                .map(|e| self.set_write(e.key, e.value, e.expiration, now))
                .collect(),
        );
    }

    /// Removes `key`'s value (a set that could not be stored must not leave an older
    /// one); whether the remote had one a look-up at `now` could have returned (sent
    /// at once: read-write mode). A foreign value, another key's or one expired by its
    /// header is removed too, and was no live entry: the UNLINK's count alone said it
    /// was, where a get just before had missed.
    pub(crate) fn remove(&self, key: &[u8], now: i64) -> bool {
        let write = Write {
            look: self.own_behind().is_none(),
            ..Write::unlink(key)
        };
        let hashed = key.len() > MAX_PLAIN_KEY;
        self.send_for_replies(vec![write])
            .and_then(|replies| redis::from_redis_value::<Vec<u8>>(replies.first()?).ok())
            .is_some_and(|start| codec::live_header(&start, key, hashed, now))
    }

    /// Hides every entry written before now from every client (a new generation), then
    /// unlinks the older generations' keys. When the remote cannot be reached, the clear
    /// is retried before any later call reaches it.
    pub(crate) fn clear(&self) {
        if !self.writes() {
            return;
        }
        self.epoch.fetch_add(1, SeqCst);
        self.pending_clear.store(true, Relaxed);
        self.retry_clear();
    }

    /// Runs what must reach the remote before anything else (a pending clear, then the
    /// unlinks of lost writes); false while the clear cannot be done or the remote is
    /// backed off, and then no call reads from or writes to the remote. A lost write
    /// left (its slot backed off) holds back the calls on its own key only.
    /// A read-only handle sends neither: while a handle of this process on the file
    /// owes the remote a clear, it does not use the remote; a key owed an unlink is
    /// skipped by each call (`holds`).
    fn ready(&self) -> bool {
        if !self.writes() {
            return !self.pending_clear.load(Relaxed);
        }
        if self.unsynced.take_overflow() {
            self.pending_clear.store(true, Relaxed);
        }
        self.retry_clear()
            && (self.unsynced.flush(&self.client, |k| {
                unlink_lost(&self.client, &self.keys, &self.gen, k)
            }) || !self.client.backed_off())
    }

    /// Runs a pending clear; false while it cannot be done.
    fn retry_clear(&self) -> bool {
        if !self.pending_clear.load(Relaxed) {
            return true;
        }
        if !self.writes() {
            return false;
        }
        let seen = self.gen.load(Relaxed);
        let Some(made) = self.new_generation() else {
            return false;
        };
        let Some(gen) = made.and_then(Self::parse_generation) else {
            self.client.failed();
            return false;
        };
        learn_generation(&self.gen, seen, gen);
        self.hidden.reset();
        self.pending_clear.store(false, Relaxed);
        self.client.counters.writes.fetch_add(1, Relaxed);
        self.reclaim(gen);
        true
    }

    /// Runs `NEW_GENERATION`: its reply, or None when the remote could not be asked. A
    /// server over its `maxmemory` under `noeviction` refuses the script's `SET`, as it
    /// refuses every write, but not a removal: after that refusal (an error, backed off
    /// as any), this namespace's keys of every generation are unlinked (the clear hides
    /// them all anyway), and the script is run once more, at once. Before, the clear
    /// stayed owed for as long as the server was full, which the clear was to relieve,
    /// and other machines kept reading the values written before it.
    fn new_generation(&self) -> Option<Option<Vec<u8>>> {
        let script = redis::cmd("EVAL")
            .arg(NEW_GENERATION)
            .arg(1)
            .arg(self.keys.generation())
            .clone();
        let full = std::cell::Cell::new(false);
        let made = self.client.run(|c| {
            c.query::<Option<Vec<u8>>>(&script)
                .inspect_err(|e| full.set(e.code() == Some("OOM")))
        });
        if made.is_some() || !full.get() {
            return made;
        }
        self.reclaim(MAX_GENERATION);
        self.client
            .run_now(&[], |c| c.query::<Option<Vec<u8>>>(&script))
    }

    /// Unlinks the keys of generations older than `gen`, master by master, for at most
    /// a few timeouts (what is left is invisible and reclaimed by a later clear). A
    /// newer generation is another client's later clear: its values stay.
    fn reclaim(&self, gen: u64) {
        let budget = std::time::Instant::now() + self.client.timeout * 8;
        let Some(masters) = self.client.masters() else {
            return;
        };
        for info in masters {
            // A failed round trip here (a master down, SCAN refused to an ACL user) is
            // an error like any other, counted and backed off; the next master is tried,
            // and what is left is reclaimed by a later clear or its expiry.
            let Some(mut conn) = self.client.direct(&info) else {
                self.client.failed();
                continue;
            };
            let mut cursor: u64 = 0;
            loop {
                let page: redis::RedisResult<(u64, Vec<Vec<u8>>)> = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(self.keys.pattern())
                    .arg("COUNT")
                    .arg(1000)
                    .query(&mut conn);
                let Ok((next, keys)) = page else {
                    self.client.failed();
                    break;
                };
                // One UNLINK per key, pipelined: on a cluster master the keys of one
                // page lie in many slots, and a multi-key UNLINK across slots is refused.
                let mut unlink = redis::pipe();
                for k in keys.iter().filter(|k| {
                    self.keys
                        .generation_of(k)
                        .map_or(true, |g| g < gen || g >= MAX_GENERATION)
                }) {
                    unlink.cmd(self.client.unlink_command()).arg(k).ignore();
                }
                if let Err(e) = unlink.query::<()>(&mut conn) {
                    self.client.note_refusal(&e);
                    self.client.failed();
                    break;
                }
                cursor = next;
                if cursor == 0 || std::time::Instant::now() >= budget {
                    break;
                }
            }
        }
    }

    /// Runs `f` with a pooled connection on the keys of one item (the lease scripts),
    /// whose value key is `value_key`.
    fn run_item<T>(
        &self,
        value_key: &[u8],
        f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Option<T> {
        self.attempt_item(value_key, f).ok()
    }

    /// `run_item`, telling a call not sent from a round trip that failed.
    fn attempt_item<T>(
        &self,
        value_key: &[u8],
        f: impl FnOnce(&mut Conn) -> redis::RedisResult<T>,
    ) -> Result<T, Missed> {
        if !self.ready() || self.unsynced.holds(value_key) {
            return Err(Missed::Skipped);
        }
        self.client
            .attempt_on(self.client.slot_of(value_key).as_slice(), f)
    }
}

/// What the handles of one process on one file owe each remote (URL, namespace and
/// version tag) they use: the keys whose last write did not reach it, and a clear that
/// did not. Shared, so that another handle of the process on the file neither reads an
/// older value back from the remote (and stores it in the file) after a delete or
/// clear that could not reach it, nor leaves the debt unpaid when the handle that made
/// it is freed first. A debt lives as long as the process has the file open; another
/// process knows nothing of it (README, "A write that never reached the remote").
#[derive(Default)]
pub(crate) struct Owed(Mutex<OwedMap>);

/// The process's remote tiers, with the process that opened each, settled at its exit
/// if their handles were never freed (`settle_at_exit`). Process-wide, as the exit
/// is: an in-memory cache's handles share no file with any other, and the list of open
/// files holds none.
static REMOTES: Mutex<Vec<(u32, std::sync::Weak<Remote>)>> = Mutex::new(Vec::new());

/// `remote`, listed for the process's exit.
pub(crate) fn opened(remote: Remote) -> Arc<Remote> {
    let remote = Arc::new(remote);
    let mut remotes = lock(&REMOTES);
    remotes.retain(|(_, r)| r.strong_count() > 0);
    remotes.push((crate::fork::this_process(), Arc::downgrade(&remote)));
    remote
}

/// At the process's exit: does for the remote tiers of handles never freed what their
/// free would: sends what their write-behind queues still hold, and pays what they
/// still owe the remote (the unlinks of writes that never reached it, a clear). Their
/// threads end with the process: the sets were lost, and a queued delete, or one that
/// failed and was owed, left the deleted value on the remote for every other machine to
/// read (another process on the file stored it again). A child made by `fork` leaves
/// its parent's alone (it has no thread to send their queues, and its own handles pay
/// its own debts); a list another thread held at the fork (it may be stopped anywhere)
/// is left alone.
pub(crate) fn settle_at_exit() {
    let pid = crate::fork::this_process();
    let remotes: Vec<Arc<Remote>> = crate::sync::try_lock(&REMOTES)
        .map(|r| {
            r.iter()
                .filter(|(opener, _)| *opener == pid)
                .filter_map(|(_, r)| r.upgrade())
                .collect()
        })
        .unwrap_or_default();
    for r in remotes {
        r.settle();
    }
}

type OwedMap = std::collections::HashMap<String, Debts>;

/// A remote's unsynced keys, owed clear, keys in write-behind queues (`Owed`) and what
/// read-only handles removed (`Hidden`).
type Debts = (Arc<Unsynced>, Arc<AtomicBool>, Arc<InQueue>, Arc<Hidden>);

impl Owed {
    /// The debts to the remote at `url` under the key prefix of `keys`.
    fn of(&self, url: &RemoteUrl, keys: &Keys) -> Debts {
        // The server and database, not the URL as written: another spelling of the
        // same server (a default port left out, `localhost`) must see the debt, and a
        // debt paid in another database leaves the older value where it was owed.
        let id = format!("{}\n{}", url.keyspace(), keys.prefix);
        lock(&self.0).entry(id).or_default().clone()
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        // A forked child's inherited queue is its parent's: no thread of the child
        // sends it, and its locks may have been held at the fork (kept undropped).
        if self
            .behind
            .as_ref()
            .is_some_and(|b| b.pid != crate::fork::this_process())
        {
            crate::fork::set_aside_pump(self.behind.take());
        }
        self.settle();
    }
}

impl Remote {
    /// At a free, or at the process's exit for a handle never freed: sends what is
    /// queued and pays what is owed. Once is enough; again, it finds nothing to do.
    fn settle(&self) {
        // The write-behind thread sends what is queued (each write bounded by the
        // timeout, skipped while the remote is backed off), then ends.
        if let Some(b) = self.own_behind() {
            b.finish();
        }
        // What is still owed to the remote (a clear, the unlinks of writes that never
        // reached it, such as those dropped from a full queue) is paid now, once, unless
        // the remote is backed off: the next remote call that would have paid it may
        // never come, and meanwhile other machines would read the older values.
        if self.writes()
            && (self.pending_clear.load(Relaxed) || self.unsynced.any())
            && !self.client.backed_off()
        {
            self.ready();
        }
    }
}

/// 64 random bits (lease tokens), from the OS's hash seed.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
