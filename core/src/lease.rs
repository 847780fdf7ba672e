//! Stampede protection: per-key leases kept in the file.
//!
//! A lease says "this key is being computed by owner X until deadline T". Whoever
//! misses a key takes its lease, computes, and fulfils it; everyone else is told the
//! key is busy. A lease is taken over when its deadline passes or, on the same host,
//! as soon as its holder is found dead. Fulfilling a lease that was taken over stores
//! nothing ([`ErrorKind::LeaseLost`]), so the new owner's value is never overwritten.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::expiration::Expiration;
use crate::owner::{self, Owner};
use crate::storage::Storage;
use crate::txn::Txn;
use rusqlite::{params, OptionalExtension};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long [`Storage::cached_call_exclusive`] holds its lease: a holder on another
/// host (or one whose death cannot be seen) blocks the key at most this long.
pub const EXCLUSIVE_LEASE: Duration = Duration::from_secs(60);
/// The longest pause between two polls of a key computed by another process.
const MAX_POLL: Duration = Duration::from_millis(50);

/// The answer of [`Lease::try_acquire`].
pub enum LeaseOutcome {
    /// The key has a live value (and its time left): nothing to compute.
    Hit(Vec<u8>, Option<Duration>),
    /// The key is missing and this caller now holds its lease: compute, then fulfil.
    Acquired(Lease),
    /// Another owner is computing the key; its lease runs out after this long.
    Busy(Duration),
}

/// The right, and the duty, to compute one key. Dropping it abandons it.
pub struct Lease {
    storage: Arc<Storage>,
    key: Vec<u8>,
    token: i64,
    open: bool,
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
    Busy(Duration),
}

impl Lease {
    /// Looks `key` up; on a miss, takes its lease for `duration` unless another live
    /// owner holds it. Never waits for another owner.
    pub fn try_acquire(
        storage: &Arc<Storage>,
        key: &[u8],
        duration: Duration,
    ) -> Result<LeaseOutcome> {
        check_duration(duration)?;
        if let Some((v, left)) = storage.get(key)? {
            return Ok(LeaseOutcome::Hit(v, left));
        }
        let me = owner::current();
        let decision = storage.write(|t| {
            // Another owner may have stored the value since the look-up.
            if let Some((value, deadline)) = t.find(key)? {
                let left = deadline.map(|d| Duration::from_millis((d - t.now).max(1) as u64));
                return Ok(Decision::Hit(value, left));
            }
            if let Some((holder, deadline)) = holder_of(t, key)? {
                if deadline > t.now && !owner::is_dead(&holder) {
                    return Ok(Decision::Busy(Duration::from_millis(
                        (deadline - t.now) as u64,
                    )));
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
            Ok(Decision::Taken(token))
        })?;
        Ok(match decision {
            Decision::Hit(v, left) => {
                storage.record_hit(key);
                LeaseOutcome::Hit(v, left)
            }
            Decision::Busy(left) => LeaseOutcome::Busy(left),
            Decision::Taken(token) => LeaseOutcome::Acquired(Lease {
                storage: storage.clone(),
                key: key.to_vec(),
                token,
                open: true,
            }),
        })
    }

    /// The key this lease is for.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// Whether this lease still holds `key` (its deadline may have passed: it is lost
    /// only once another owner takes it over).
    fn held(&self, t: &Txn<'_>) -> Result<bool> {
        let token: Option<i64> = t
            .conn()
            .prepare_cached("SELECT token FROM leases WHERE key = ?1")
            .and_then(|mut s| s.query_row([&self.key], |r| r.get(0)).optional())
            .ctx("reading a lease")?;
        Ok(token == Some(self.token))
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
        let held = self.storage.write(|t| {
            let n = t
                .conn()
                .prepare_cached("UPDATE leases SET deadline = ?1 WHERE key = ?2 AND token = ?3")
                .and_then(|mut s| {
                    s.execute(params![
                        t.now.saturating_add(ms(duration)),
                        self.key,
                        self.token
                    ])
                })
                .ctx("extending a lease")?;
            Ok(n == 1)
        })?;
        if held {
            Ok(())
        } else {
            self.open = false;
            Err(Self::lost())
        }
    }

    /// Stores `value` under the key and releases the lease, in one transaction. A lost
    /// lease stores nothing. A value too large to store releases the lease too.
    pub fn fulfill(mut self, value: &[u8], expiration: Expiration) -> Result<()> {
        self.open = false;
        let storage = self.storage.clone();
        // A value too large to store is not hashed (store refuses it).
        let crc = if value.len() as u64 <= storage.value_limit() {
            crc32fast::hash(value)
        } else {
            0
        };
        let stored = storage.write(|t| {
            if !self.held(t)? {
                return Ok(None);
            }
            self.release_in(t)?;
            storage
                .store(t, &self.key, value, crc, expiration)
                .map(Some)
        });
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

    fn release(&mut self) {
        if std::mem::take(&mut self.open) {
            // Best effort: if the file is unwritable now, the deadline frees the key.
            let _ = self.storage.write(|t| self.release_in(t));
            self.storage.shared.notify_release();
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.release();
    }
}

impl Storage {
    /// The value under `key`, computed on a miss by at most one caller at a time across
    /// every thread and process sharing the file. Other callers wait for that result
    /// (woken at once in this process, polling with backoff across processes) up to
    /// `wait_timeout`, then fail with [`ErrorKind::Busy`]. A failing compute releases
    /// the key, and one waiter takes over.
    pub fn cached_call_exclusive(
        self: &Arc<Self>,
        key: &[u8],
        expiration: Expiration,
        wait_timeout: Duration,
        compute: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        let give_up = Instant::now() + wait_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            let epoch = self.shared.release_epoch();
            match Lease::try_acquire(self, key, EXCLUSIVE_LEASE)? {
                LeaseOutcome::Hit(value, _) => return Ok(value),
                LeaseOutcome::Acquired(lease) => {
                    let value = compute()?; // dropping the lease releases it
                    return match lease.fulfill(&value, expiration) {
                        Err(e)
                            if !matches!(e.kind(), ErrorKind::TooLarge | ErrorKind::LeaseLost) =>
                        {
                            Err(e)
                        }
                        _ => Ok(value),
                    };
                }
                LeaseOutcome::Busy(_) => {
                    let now = Instant::now();
                    if now >= give_up {
                        return Err(Error::new(
                            ErrorKind::Busy,
                            format!(
                                "another caller is still computing this key after {} ms",
                                wait_timeout.as_millis()
                            ),
                        ));
                    }
                    self.shared
                        .wait_for_release(epoch, pause.min(give_up - now));
                    pause = (pause * 2).min(MAX_POLL);
                }
            }
        }
    }
}

/// The holder and deadline of `key`'s lease, if any.
fn holder_of(t: &Txn<'_>, key: &[u8]) -> Result<Option<(Owner, i64)>> {
    t.conn()
        .prepare_cached(
            "SELECT owner_pid, owner_start, owner_boot, deadline FROM leases WHERE key = ?1",
        )
        .and_then(|mut s| {
            s.query_row([key], |r| {
                Ok((
                    Owner {
                        pid: r.get(0)?,
                        start: r.get(1)?,
                        boot: r.get(2)?,
                    },
                    r.get(3)?,
                ))
            })
            .optional()
        })
        .ctx("reading a lease")
}
