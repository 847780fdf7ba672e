//! Single flight across machines: a lease key per item, taken with `SET NX PX` (in a
//! script that also takes a lease already holding our token as ours), renewed
//! while the compute runs, and fenced with a random token: the value is written by a
//! script that checks the token first, so a holder that lost its lease (paused, cut
//! off, too slow) cannot overwrite the value of the owner that took it over.

use super::client::Missed;
use super::{codec, random_u64, Remote, MAX_PX};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// Stores the value and releases the lease, only if the lease is still ours. A SET
/// the server refuses (out of memory under `noeviction`) still releases the lease, then
/// fails the script: left held, it kept every other machine waiting for its deadline.
/// KEYS: lease, value. ARGV: token, payload, px (0: no expiry).
const FENCED_SET: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local set
if tonumber(ARGV[3]) > 0 then
  set = redis.pcall('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  set = redis.pcall('SET', KEYS[2], ARGV[2])
end
redis.call('DEL', KEYS[1])
if type(set) == 'table' and set.err then return set end
return 1";

/// Takes the lease: 1 if it is ours, 0 if another owner holds it. A take sent again
/// (its first reply lost with its connection, after the server ran it) finds our own
/// token, and the lease is ours: a plain `SET NX` failed on it, and the caller waited
/// for its own lease as if another machine held it. What no holder made (another type
/// than a string, some other program's; a string without a deadline, which every lease
/// has) is no lease, and is replaced: the other type failed the script (an error that
/// backed the whole remote off at each call of the key), and the string was a lease
/// held for ever.
/// KEYS: lease. ARGV: token, px.
const TAKE: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
local held = redis.pcall('GET', KEYS[1])
if held == ARGV[1] then return 1 end
if type(held) == 'string' and redis.call('PTTL', KEYS[1]) ~= -1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1";

/// Moves the lease's deadline, only if it is still ours. KEYS: lease. ARGV: token, px.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])";

/// Releases the lease, only if it is still ours. KEYS: lease. ARGV: token.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])";

/// A lease on the remote, held while a compute runs.
#[derive(Clone)]
pub(crate) struct RemoteLease {
    key: Vec<u8>,
    gen: u64,
    token: String,
}

impl Remote {
    /// How long a remote lease lasts without renewal: a holder that dies blocks the
    /// key at most this long. Renewed every third of it.
    pub(crate) fn lease_duration(&self) -> Duration {
        (self.client.timeout * 8).max(Duration::from_secs(2))
    }

    fn lease_key(&self, lease: &RemoteLease) -> Vec<u8> {
        self.keys.item(b'l', lease.gen, &lease.key).0
    }

    /// The key of the value the lease guards (in the lease's slot).
    fn value_key(&self, lease: &RemoteLease) -> Vec<u8> {
        self.keys.item(b'd', lease.gen, &lease.key).0
    }

    /// Takes `key`'s remote lease. `Some(Ok)`: ours; `Some(Err(()))`: another owner
    /// holds it; `None`: the remote cannot be asked (or is read-only).
    pub(crate) fn try_lease(&self, key: &[u8]) -> Option<Result<RemoteLease, ()>> {
        if !self.writes() {
            return None;
        }
        let lease = RemoteLease {
            key: key.to_vec(),
            gen: self.gen.load(Relaxed),
            token: format!("{:016x}{:016x}", random_u64(), random_u64()),
        };
        let px = self.lease_duration().as_millis() as u64;
        let cmd = redis::cmd("EVAL")
            .arg(TAKE)
            .arg(1)
            .arg(self.lease_key(&lease))
            .arg(&lease.token)
            .arg(px)
            .clone();
        let taken: i64 = self.run_item(&self.value_key(&lease), |c| c.query(&cmd))?;
        Some(if taken == 1 { Ok(lease) } else { Err(()) })
    }

    /// How long the lease another owner holds on `key` lasts unless renewed (its
    /// `PTTL`): zero when it ends within the millisecond (0) or has ended since it was
    /// found held (-2: released or expired; a wait of the whole lease length would be
    /// for nothing); `None` when the remote cannot say (not reachable, or a lease key
    /// without a deadline, which no holder here sets).
    pub(crate) fn lease_left(&self, key: &[u8]) -> Option<Duration> {
        let gen = self.gen.load(Relaxed);
        let lease_key = self.keys.item(b'l', gen, key).0;
        let value_key = self.keys.item(b'd', gen, key).0;
        let cmd = redis::cmd("PTTL").arg(lease_key).clone();
        let left: i64 = self.run_item(&value_key, |c| c.query(&cmd))?;
        match left {
            0.. => Some(Duration::from_millis(left as u64)),
            -2 => Some(Duration::ZERO),
            _ => None,
        }
    }

    /// Renews the lease: `Some(true)` renewed, `Some(false)` lost (another owner may hold
    /// it), `None` the remote could not be asked (down, slow, backed off): the lease may
    /// still be ours until its deadline.
    pub(crate) fn renew(&self, lease: &RemoteLease) -> Option<bool> {
        let px = self.lease_duration().as_millis() as u64;
        let cmd = redis::cmd("EVAL")
            .arg(RENEW)
            .arg(1)
            .arg(self.lease_key(lease))
            .arg(&lease.token)
            .arg(px)
            .clone();
        self.run_item(&self.value_key(lease), |c| c.query::<i64>(&cmd))
            .map(|renewed| renewed == 1)
    }

    /// Stores `value` and releases the lease if it is still ours; false otherwise
    /// (nothing written).
    pub(crate) fn fulfill(
        &self,
        lease: &RemoteLease,
        value: &[u8],
        expiration: crate::Expiration,
        now: i64,
    ) -> bool {
        // A write of the key still queued by a write-behind thread of the process is
        // older than this one: dropped unsent (or waited for while it is sent), as for
        // a set sent at once; else it landed over the value stored here. When nothing
        // is stored here after all, the key is owed an unlink, as for a lost write: the
        // remote must not keep a value older than the dropped write.
        let queued = self.in_queue.holds(&lease.key);
        self.in_queue.supersede(std::iter::once(&lease.key[..]));
        let lost = || {
            if queued {
                let gen = self.gen.load(Relaxed);
                self.unsynced.add([self.keys.item(b'd', gen, &lease.key).0]);
            }
        };
        let deadline = self.deadline(expiration, now);
        let (value_key, hashed) = self.keys.item(b'd', lease.gen, &lease.key);
        let px = match deadline {
            None => 0,
            Some(t) if t > now => (t - now).min(MAX_PX),
            Some(_) => {
                self.release(lease);
                lost();
                return false;
            }
        };
        let payload = codec::encode(deadline, hashed.then_some(&lease.key[..]), value);
        let cmd = redis::cmd("EVAL")
            .arg(FENCED_SET)
            .arg(2)
            .arg(self.lease_key(lease))
            .arg(&value_key)
            .arg(&lease.token)
            .arg(payload)
            .arg(px)
            .clone();
        let answer = self.attempt_item(&value_key, |c| c.query::<i64>(&cmd));
        if answer == Ok(1) {
            self.client.counters.writes.fetch_add(1, Relaxed);
            return true;
        }
        // A script the server refused before it ran (its payload over the server's
        // `proto-max-bulk-len`, after which the server closes the connection) released
        // nothing: left held, the lease kept every other machine waiting for its
        // deadline, where each computed the key and left it held in turn. Released now,
        // though that failure backed the remote off (a round trip of its own). Not after
        // a timeout: the server may still run the script, and a stopped one would hold
        // the call for a second timeout.
        if answer == Err(Missed::Failed) {
            self.release(lease);
        }
        lost();
        false
    }

    fn release_command(&self, lease: &RemoteLease) -> redis::Cmd {
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(self.lease_key(lease))
            .arg(&lease.token)
            .clone()
    }

    /// Gives the lease up (a failed compute, a value not stored): another owner may take
    /// it at once. Sent even while the remote is backed off (the server answered the
    /// take, and a failure since, of any call of the handle, began the back-off): skipped,
    /// the lease kept every other machine waiting for its deadline.
    pub(crate) fn release(&self, lease: &RemoteLease) {
        let cmd = self.release_command(lease);
        let slot = self.client.slot_of(&self.value_key(lease));
        let _ = self
            .client
            .run_now(slot.as_slice(), |c| c.query::<i64>(&cmd));
    }
}
