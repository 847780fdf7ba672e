//! Stampede protection: per-key leases kept in the file.
//!
//! A lease says "this key is being computed by owner X until deadline T". Whoever
//! misses a key takes its lease, computes, and fulfils it; everyone else is told the
//! key is held. A lease is taken over when its deadline passes or, on the same host
//! and in the same PID namespace, as soon as its holder is found dead. Fulfilling a
//! lease that was taken over stores nothing ([`ErrorKind::LeaseLost`]), so the new
//! owner's value is never overwritten.
//!
//! Leases taken by [`Storage::cached_call_exclusive`] and [`Storage::lease_step`] are
//! renewed by a thread of the holder's process while the value is computed, so a
//! compute of any length is computed once. The renewals stop when the process dies or
//! stops running (SIGSTOP, a frozen container, a suspended machine): the lease then
//! runs out after the storage's lease length and another caller takes over. A compute
//! that never returns in a live process cannot be told from a long one and keeps its
//! key; waiters give up after their own wait timeout.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::expiration::Expiration;
use crate::owner::{self, Owner};
use crate::storage::Storage;
use crate::sync::lock;
use crate::txn::Txn;
use rusqlite::{params, OptionalExtension};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// The first and the longest pause between two looks at a key another owner computes.
const FIRST_POLL: Duration = Duration::from_millis(1);
const MAX_POLL: Duration = Duration::from_millis(50);

/// How long to wait before the next look at a held key, after `attempt` earlier
/// looks: 1 ms doubling to 50 ms, and never past the holder's deadline.
pub fn poll_delay(attempt: u32, time_left: Duration) -> Duration {
    let backoff = FIRST_POLL
        .saturating_mul(1 << attempt.min(16))
        .min(MAX_POLL);
    backoff.min(time_left.max(FIRST_POLL))
}

/// The answer of [`Lease::try_acquire`].
pub enum LeaseOutcome {
    /// The key has a live value (and its time left): nothing to compute.
    Hit(Vec<u8>, Option<Duration>),
    /// The key is missing and this caller now holds its lease: compute, then fulfil.
    Acquired(Lease),
    /// Another live owner is computing the key; its lease runs out after this long
    /// unless it renews it.
    Held(Duration),
}

/// The right, and the duty, to compute one key. Dropping it abandons it.
pub struct Lease {
    storage: Arc<Storage>,
    key: Vec<u8>,
    token: i64,
    open: bool,
    renewer: Option<Renewer>,
}

/// The thread that renews a lease while its value is computed.
struct Renewer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: std::thread::JoinHandle<()>,
    /// A forked child has no such thread: it must not wait for it.
    pid: u32,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn check_duration(d: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(Error::invalid("a lease must last at least 1 ms"));
    }
    Ok(())
}

/// What the write transaction of `try_acquire` decided.
enum Decision {
    Hit(Vec<u8>, Option<Duration>),
    Taken(i64),
    Held(Duration),
}

impl Lease {
    /// Looks `key` up; on a miss, takes its lease for `duration` unless another live
    /// owner holds it. Never waits for another owner. The lease is not renewed unless
    /// the caller extends it.
    pub fn try_acquire(
        storage: &Arc<Storage>,
        key: &[u8],
        duration: Duration,
    ) -> Result<LeaseOutcome> {
        Self::acquire(storage, key, duration, true, false)
    }

    /// `try_acquire`; `count_miss`: whether a miss counts in the stats (once per wait);
    /// `renewed`: whether a thread of this process will renew the lease taken (marked
    /// so from its commit on, so that no waiter here takes it over before it does).
    fn acquire(
        storage: &Arc<Storage>,
        key: &[u8],
        duration: Duration,
        count_miss: bool,
        renewed: bool,
    ) -> Result<LeaseOutcome> {
        check_duration(duration)?;
        if let Some((v, left)) =
            storage.lookup(key, true, count_miss, |v, left| (v.to_vec(), left))?
        {
            return Ok(LeaseOutcome::Hit(v, left));
        }
        let me = owner::current();
        let mut marked = None;
        let decision = storage.write(|t| {
            // Another owner may have stored the value since the look-up.
            if let Some((value, deadline)) = t.find(key)? {
                let left = deadline.map(|d| Duration::from_millis((d - t.now).max(1) as u64));
                return Ok(Decision::Hit(value, left));
            }
            if let Some((holder, token, deadline)) = holder_of(t, key)? {
                if deadline > t.now && !owner::is_dead(&holder) {
                    return Ok(Decision::Held(Duration::from_millis(
                        (deadline - t.now) as u64,
                    )));
                }
                // A lease a thread of this very process renews has a holder that runs
                // (this call does): a late renewal (a loaded machine, a lease of a few
                // ms) is no stopped holder, and taking it over computed the key twice.
                // Its release wakes this process's waiters at once.
                if holder == me && storage.shared.is_renewed(token) {
                    return Ok(Decision::Held(duration));
                }
            }
            let token = t.random()?;
            t.conn()
                .prepare_cached(
                    "INSERT OR REPLACE INTO leases \
                     (key, token, owner_pid, owner_start, owner_boot, deadline) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        key,
                        token,
                        me.pid,
                        me.start,
                        me.boot,
                        t.now.saturating_add(ms(duration))
                    ])
                })
                .ctx("taking a lease")?;
            if renewed {
                storage.shared.set_renewed(token, true);
                marked = Some(token);
            }
            Ok(Decision::Taken(token))
        });
        let decision = match decision {
            Ok(decision) => decision,
            Err(e) => {
                if let Some(token) = marked {
                    storage.shared.set_renewed(token, false);
                }
                return Err(e);
            }
        };
        Ok(match decision {
            Decision::Hit(v, left) => {
                // Found inside a write: the entry the key has until its hits are written
                // by this process, or set again by another (then a stale hit is possible:
                // rare, and only an order).
                storage.record_hit(key, crate::access::UNKNOWN_ENTRY);
                LeaseOutcome::Hit(v, left)
            }
            Decision::Held(left) => LeaseOutcome::Held(left),
            Decision::Taken(token) => LeaseOutcome::Acquired(Lease {
                storage: storage.clone(),
                key: key.to_vec(),
                token,
                open: true,
                renewer: None,
            }),
        })
    }

    /// The key this lease is for.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether this lease still holds `key` (its deadline may have passed: it is lost
    /// only once another owner takes it over).
    /// A token of another type than BackLite writes (a damaged row) is not this one.
    fn held(&self, t: &Txn<'_>) -> Result<bool> {
        let mine = rusqlite::types::ValueRef::Integer(self.token);
        let held = t
            .conn()
            .prepare_cached("SELECT token FROM leases WHERE key = ?1")
            .and_then(|mut s| {
                s.query_row([&self.key], |r| Ok(r.get_ref(0)? == mine))
                    .optional()
            })
            .ctx("reading a lease")?;
        Ok(held == Some(true))
    }

    fn lost() -> Error {
        Error::new(
            ErrorKind::LeaseLost,
            "the lease expired and another owner took it over; nothing was stored",
        )
    }

    /// Moves the deadline to `duration` from now.
    pub fn extend(&mut self, duration: Duration) -> Result<()> {
        check_duration(duration)?;
        if extend_row(&self.storage, &self.key, self.token, duration)? {
            Ok(())
        } else {
            self.open = false;
            Err(Self::lost())
        }
    }

    /// Stores `value` under the key and releases the lease, in one transaction. A lost
    /// lease stores nothing. The lease is released whatever the result: a value too
    /// large to store, or one the write failed to store, releases it too. With a
    /// remote tier the value then reaches the remote as a set's does (a value too large
    /// removes the remote's older one); no remote lease was taken for it.
    pub fn fulfill(self, value: &[u8], expiration: Expiration) -> Result<()> {
        let storage = self.storage.clone();
        let key = self.key.clone();
        // The async memoisers of the bindings store through here: a value kept in the
        // file alone was computed again by every other machine.
        storage.store_through(&key, value, expiration, || {
            self.fulfill_since(value, expiration, None)
        })
    }

    /// `fulfill` of a value of `len` bytes that no memory can hold (a C caller's length
    /// past `isize::MAX`), refused from its length alone, unread, as
    /// [`Storage::refuse_unread`] refuses a set of it: the lease is released and the
    /// older value under the key removed, from the remote tier too;
    /// [`ErrorKind::TooLarge`], or `Ok` for a value already expired. A lost lease
    /// removes nothing ([`ErrorKind::LeaseLost`]).
    pub fn refuse_unread(mut self, len: usize, expiration: Expiration) -> Result<()> {
        self.stop_renewing();
        let storage = self.storage.clone();
        let key = self.key.clone();
        storage.store_through(&key, &[], expiration, || {
            let removed = storage.write(|t| {
                if !self.held(t)? {
                    return Ok(false);
                }
                self.release_in(t)?;
                t.remove_key(&key)?;
                Ok(true)
            });
            // Released by that write, or lost; a write that failed released nothing,
            // and the drop of `self` releases it as an abandon does.
            if removed.is_ok() {
                self.open = false;
            }
            storage.shared.notify_release();
            match removed? {
                false => Err(Self::lost()),
                true if storage.already_expired(expiration) => Ok(()),
                true => Err(storage.too_large(len)),
            }
        })
    }

    /// `fulfill`, with an expiration that counts from the clock reading `since` (epoch
    /// ms; `None`: from the store): a value found on the remote has the time it had
    /// left when the remote answered, not that much more from when it is stored.
    pub(crate) fn fulfill_since(
        mut self,
        value: &[u8],
        expiration: Expiration,
        since: Option<i64>,
    ) -> Result<()> {
        self.stop_renewing();
        let storage = self.storage.clone();
        // A value too large to store is not hashed (store refuses it).
        let crc = if value.len() as u64 <= storage.value_limit() {
            crc32fast::hash(value)
        } else {
            0
        };
        // A value kept in a file is written before the write lock is taken, as a set's
        // is: written inside the transaction, a value of gigabytes held up every other
        // writer of the file, in every process, until they failed BUSY.
        let ahead = storage.file_ahead(value, expiration)?;
        let mut named = false;
        let stored = storage.write(|t| {
            if !self.held(t)? {
                return Ok(None);
            }
            self.release_in(t)?;
            let expiration = match (expiration, since) {
                (Expiration::After(left), Some(since)) => {
                    let end = since.saturating_add(ms(left));
                    Expiration::After(Duration::from_millis(
                        end.saturating_sub(t.now).max(0) as u64
                    ))
                }
                (expiration, _) => expiration,
            };
            match &ahead {
                Some(written) => {
                    storage.store_written(t, &self.key, written, expiration, &mut named)
                }
                None => storage.store(t, &self.key, value, crc, expiration),
            }
            .map(Some)
        });
        // Not named by a committed row (the lease lost, the value due, a failed write).
        if ahead.is_some() && !(named && matches!(stored, Ok(Some(true)))) {
            storage.discard_file(ahead.as_ref());
        }
        drop(ahead);
        // Released by that write, or lost. A write that failed (a large value its file
        // could not take, a full disk) released nothing: the lease is released as by
        // an abandon when `self` drops, or the key waited out the whole lease.
        if stored.is_ok() {
            self.open = false;
        }
        storage.shared.notify_release();
        match stored? {
            None => Err(Self::lost()),
            Some(false) => Err(storage.too_large(value.len())),
            Some(true) => Ok(()),
        }
    }

    /// Releases the lease without storing anything; another caller may take it.
    pub fn abandon(mut self) {
        self.release();
    }

    fn release_in(&self, t: &Txn<'_>) -> Result<()> {
        t.conn()
            .prepare_cached("DELETE FROM leases WHERE key = ?1 AND token = ?2")
            .and_then(|mut s| s.execute(params![self.key, self.token]))
            .ctx("releasing a lease")?;
        Ok(())
    }

    /// Renews the lease by `duration` every third of it, from a thread of this
    /// process, until it is fulfilled, abandoned or dropped, or found lost.
    fn keep_renewed(&mut self, duration: Duration) {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let (storage, key, token) = (self.storage.clone(), self.key.clone(), self.token);
        let signal = stop.clone();
        let period = (duration / 3).max(Duration::from_millis(1));
        let spawned = std::thread::Builder::new()
            .name("backlite-lease".into())
            .spawn(move || {
                let (stopped, wake) = &*signal;
                let mut guard = lock(stopped);
                loop {
                    guard = match wake.wait_timeout_while(guard, period, |s| !*s) {
                        Ok((g, _)) => g,
                        Err(e) => e.into_inner().0,
                    };
                    if *guard {
                        return;
                    }
                    drop(guard);
                    // In a step that a fork waits for (see fork::step): the compute
                    // this renews may fork, and a child must not inherit the writer's
                    // mutex or SQLite's write lock held by this thread, which it does
                    // not have (its first write hung).
                    let renewed = {
                        let _step = crate::fork::step();
                        extend_row(&storage, &key, token, duration)
                    };
                    // A busy file is tried again at the next period; a lost lease
                    // has nothing left to renew.
                    if let Ok(false) = renewed {
                        return;
                    }
                    guard = lock(stopped);
                }
            });
        // Without a thread the lease is still held for `duration`, as an unrenewed one.
        let Ok(thread) = spawned else {
            self.storage.shared.set_renewed(self.token, false);
            return;
        };
        self.renewer = Some(Renewer {
            stop,
            thread,
            pid: std::process::id(),
        });
    }

    /// Stops the renewals, and waits until none runs: a lease has one writer.
    fn stop_renewing(&mut self) {
        if let Some(r) = self.renewer.take() {
            *lock(&r.stop.0) = true;
            r.stop.1.notify_all();
            if r.pid == std::process::id() {
                let _ = r.thread.join();
            }
        }
    }

    fn release(&mut self) {
        self.stop_renewing();
        if std::mem::take(&mut self.open) {
            // Best effort: if the file is unwritable now, the deadline frees the key.
            // Of any tag: a handle whose tag the file left still frees the key.
            let _ = self.storage.write_any_tag(|t| self.release_in(t));
            self.storage.shared.notify_release();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
        // Only now, fulfilled or released: a fulfil stops the renewals before its
        // write, and a waiter here that took the lease over in between made the
        // fulfil LEASE_LOST and computed the key again.
        self.storage.shared.set_renewed(self.token, false);
    }
}

impl Storage {
    /// The value under `key`, computed on a miss by at most one caller at a time across
    /// every thread and process sharing the file. Other callers wait for that result
    /// (woken at once in this process, polling with backoff across processes) up to
    /// `wait_timeout`, then fail with [`ErrorKind::LeaseHeld`]. The lease is renewed
    /// while `compute` runs, so a compute of any length is computed once. A failing
    /// compute releases the key, and one waiter takes over. A call counts at most one
    /// miss, however long it waits.
    pub fn cached_call_exclusive(
        self: &Arc<Self>,
        key: &[u8],
        expiration: Expiration,
        wait_timeout: Duration,
        compute: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        self.cached_call_exclusive_interruptible(key, expiration, wait_timeout, compute, || Ok(()))
    }

    /// [`Storage::cached_call_exclusive`] that calls `interrupted` between two looks
    /// while it waits for another owner's result (at least every 50 ms): an error it
    /// returns ends the wait and is returned, with nothing computed and no lease held.
    /// A language runtime checks its interrupts there (Python's Ctrl-C, which cannot
    /// reach a thread blocked in here: it waited for the other owner, up to the wait
    /// timeout, before the interrupt was seen).
    pub fn cached_call_exclusive_interruptible(
        self: &Arc<Self>,
        key: &[u8],
        expiration: Expiration,
        wait_timeout: Duration,
        compute: impl FnOnce() -> Result<Vec<u8>>,
        mut interrupted: impl FnMut() -> Result<()>,
    ) -> Result<Vec<u8>> {
        // `Duration::MAX` (no end) overflowed the instant and panicked: a wait past
        // the clock's range has no end in practice.
        let now = Instant::now();
        let give_up = now
            .checked_add(wait_timeout)
            .unwrap_or_else(|| now + Duration::from_secs(1 << 40));
        let mut attempt = 0u32;
        loop {
            let epoch = self.shared.release_epoch();
            match Lease::acquire(self, key, self.lease_duration(), attempt == 0, true)? {
                LeaseOutcome::Hit(value, _) => return Ok(value),
                LeaseOutcome::Acquired(mut lease) => {
                    lease.keep_renewed(self.lease_duration());
                    // Dropping the lease releases it; with a remote tier, the compute
                    // runs under its lease there too (remote/tier.rs).
                    let (value, expiration, since) = self.remote_single_flight(
                        key,
                        expiration,
                        give_up,
                        wait_timeout,
                        compute,
                        &mut interrupted,
                    )?;
                    return match lease.fulfill_since(&value, expiration, since) {
                        Err(e)
                            if !matches!(e.kind(), ErrorKind::TooLarge | ErrorKind::LeaseLost) =>
                        {
                            Err(e)
                        }
                        _ => Ok(value),
                    };
                }
                LeaseOutcome::Held(left) => {
                    let pause = poll_delay(attempt, left);
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(held_error(left, pause, Some(wait_timeout)));
                    }
                    self.shared
                        .wait_for_release(epoch, pause.min(give_up - now));
                    interrupted()?;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// One step of waiting for `key` without blocking, for callers that wait in an
    /// event loop or an async task: a hit, or the key's lease (held for the storage's
    /// lease length and renewed by the library until it is fulfilled or abandoned), or
    /// an [`ErrorKind::LeaseHeld`] error whose [`Error::retry_in`] says when to take
    /// the next step. `attempt` is 0 for a wait's first step, then the number of steps
    /// before: only the first counts a miss, and the pauses grow with it.
    pub fn lease_step(self: &Arc<Self>, key: &[u8], attempt: u32) -> Result<LeaseOutcome> {
        match Lease::acquire(self, key, self.lease_duration(), attempt == 0, true)? {
            LeaseOutcome::Acquired(mut lease) => {
                lease.keep_renewed(self.lease_duration());
                Ok(LeaseOutcome::Acquired(lease))
            }
            LeaseOutcome::Held(left) => Err(held_error(left, poll_delay(attempt, left), None)),
            hit => Ok(hit),
        }
    }
}

/// The [`ErrorKind::LeaseHeld`] error of a key another live owner is computing: its
/// lease ends in `left` unless renewed; ask again after `retry_in`.
pub fn held_error(left: Duration, retry_in: Duration, waited: Option<Duration>) -> Error {
    let after = match waited {
        Some(w) => format!(" after waiting {} ms", w.as_millis()),
        None => String::new(),
    };
    Error::lease_held(
        format!(
            "another owner is still computing this key{after} (its lease ends in {} ms unless it renews it)",
            left.as_millis()
        ),
        left,
        retry_in,
    )
}

/// Moves the deadline of the lease `token` on `key` to `duration` from now; false if
/// another owner has taken it over.
fn extend_row(storage: &Storage, key: &[u8], token: i64, duration: Duration) -> Result<bool> {
    storage.write(|t| {
        let n = t
            .conn()
            .prepare_cached("UPDATE leases SET deadline = ?1 WHERE key = ?2 AND token = ?3")
            .and_then(|mut s| s.execute(params![t.now.saturating_add(ms(duration)), key, token]))
            .ctx("extending a lease")?;
        Ok(n == 1)
    })
}

/// The holder, token and deadline of `key`'s lease, if any. A row whose columns are not of the
/// types BackLite writes (damaged, or written by another program) holds nothing: it is
/// no owner's, so the caller takes it over (its INSERT OR REPLACE rewrites it), as a
/// damaged entry is a miss. Read as an error, it made every lease and exclusive call on
/// the key fail (INTERNAL) for good, and no check saw it.
fn holder_of(t: &Txn<'_>, key: &[u8]) -> Result<Option<(Owner, i64, i64)>> {
    use rusqlite::types::ValueRef::{Integer, Text};
    t.conn()
        .prepare_cached(
            "SELECT owner_pid, owner_start, owner_boot, token, deadline \
             FROM leases WHERE key = ?1",
        )
        .and_then(|mut s| {
            s.query_row([key], |r| {
                Ok(
                    match (
                        r.get_ref(0)?,
                        r.get_ref(1)?,
                        r.get_ref(2)?,
                        r.get_ref(3)?,
                        r.get_ref(4)?,
                    ) {
                        (
                            Integer(pid),
                            Integer(start),
                            Text(boot),
                            Integer(token),
                            Integer(deadline),
                        ) => std::str::from_utf8(boot).ok().map(|boot| {
                            let boot = boot.to_string();
                            (Owner { pid, start, boot }, token, deadline)
                        }),
                        _ => None,
                    },
                )
            })
            .optional()
        })
        .map(Option::flatten)
        .ctx("reading a lease")
}
