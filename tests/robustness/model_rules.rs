//! A plain in-memory model of the cache rules of API.md, and a runner that drives a
//! real `Storage` and the model with the same operations and compares every result.
//!
//! Shared by the proptest differential test (`tests/model.rs`) and the cargo-fuzz
//! target (`fuzz/fuzz_targets/ops.rs`), which include this file with `#[path]`.
//!
//! The rules modelled (API.md "Semantics", README "Behaviour worth knowing"):
//! - one logical clock orders every access: a set and a get hit (or cached-call hit)
//!   are accesses; `contains`, a miss and `keys` are not. Setting a key again starts
//!   its creation order and hit count over.
//! - least-recently-used evicts the oldest access, most-recently-used the newest,
//!   least-frequently-used the fewest hits then the oldest access, first-in-first-out
//!   the earliest set, last-in-first-out the latest set.
//! - a set removes the old value under its key first, then evicts by the policy until
//!   the new value fits, never choosing the entry being written; a value larger than
//!   max_size is refused (TooLarge), evicts nothing, and the old value stays removed;
//!   expiration 0 stores nothing (the set succeeds, the old value is removed).
//! - set_many refuses the whole batch if one value is too large (nothing written);
//!   otherwise writes every entry, then evicts down to max_size (batch entries may go).
//! - an expired entry is never returned, listed or counted, and expired entries are
//!   removed at the start of every write, before any eviction; a lookup that finds its
//!   key expired also removes it (a write, when it needs no waiting). `stats` and
//!   `check` without repair only read: due entries are left out, not removed.
//! - the hit / miss / eviction / expiration counters belong to the handle.
//!
//! One implementation detail is modelled because it decides which handle counts an
//! expiration: hits are buffered in the process and written to the file before an
//! eviction by a policy that uses them, or when the handle closes (which is then a
//! write, removing expired entries in the closing handle).

use backlite::{Entry, ErrorKind, EvictionPolicy, Expiration, Options, Storage};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// An expiration as a test asks for it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Exp {
    Default,
    Never,
    Ms(u64),
}

impl fmt::Debug for Exp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exp::Default => f.write_str("Default"),
            Exp::Never => f.write_str("Never"),
            Exp::Ms(ms) => write!(f, "{ms}ms"),
        }
    }
}

impl Exp {
    fn to_lib(self) -> Expiration {
        match self {
            Exp::Default => Expiration::Default,
            Exp::Never => Expiration::Never,
            Exp::Ms(ms) => Expiration::After(Duration::from_millis(ms)),
        }
    }
}

/// One operation. Keys are small numbers (0 is the empty key); values are `len` bytes
/// that differ for every write, so a stale value cannot pass for the current one.
#[derive(Clone, Debug)]
pub enum Op {
    Set { key: u8, len: usize, exp: Exp },
    SetMany(Vec<(u8, usize, Exp)>),
    Get(u8),
    Contains(u8),
    Delete(u8),
    CachedCall { key: u8, len: usize, exp: Exp },
    Clear,
    Advance(u64),
    Reopen(u8),
    Stats,
    Check,
}

/// How the storage is opened.
#[derive(Clone, Debug)]
pub struct Config {
    pub max_size: u64,
    pub policy: u8,
    /// `None`: entries set with `Exp::Default` never expire.
    pub default_exp_ms: Option<u64>,
}

pub fn policy_of(i: u8) -> EvictionPolicy {
    EvictionPolicy::ALL[i as usize % 5]
}

pub fn key_bytes(k: u8) -> Vec<u8> {
    if k == 0 {
        Vec::new()
    } else {
        vec![b'k', b'0' + k / 10, b'0' + k % 10]
    }
}

/// The bytes of the `n`th write: unique per write.
fn value_bytes(n: u64, len: usize) -> Vec<u8> {
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD6E8_FEB8_6659_FD93;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[derive(Clone, Debug)]
struct MEntry {
    value: Vec<u8>,
    created: u64,
    last_access: u64,
    hits: u64,
    deadline: Option<i64>,
}

/// The model: what API.md says the cache holds.
struct Model {
    entries: BTreeMap<Vec<u8>, MEntry>,
    clock: u64,
    now: i64,
    max_size: u64,
    policy: EvictionPolicy,
    default_exp_ms: Option<u64>,
    /// keys whose hits are buffered, not yet written to the file
    pending_hits: BTreeSet<Vec<u8>>,
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

#[derive(Debug, PartialEq, Eq)]
struct Counters {
    count: u64,
    total_size: u64,
    max_size: u64,
    hits: u64,
    misses: u64,
    evictions: u64,
    expirations: u64,
}

enum Found {
    Hit(Vec<u8>, Option<Duration>),
    Miss,
}

impl Model {
    fn deadline(&self, exp: Exp) -> Option<i64> {
        let ms = match exp {
            Exp::Default => self.default_exp_ms?,
            Exp::Never => return None,
            Exp::Ms(ms) => ms,
        };
        Some(
            self.now
                .saturating_add(i64::try_from(ms).unwrap_or(i64::MAX)),
        )
    }

    fn due(&self, e: &MEntry) -> bool {
        e.deadline.is_some_and(|t| t <= self.now)
    }

    fn total_size(&self) -> u64 {
        self.entries.values().map(|e| e.value.len() as u64).sum()
    }

    /// The start of every write transaction: expired entries go.
    fn begin_write(&mut self) {
        let now = self.now;
        let before = self.entries.len();
        self.entries
            .retain(|_, e| !e.deadline.is_some_and(|t| t <= now));
        self.expirations += (before - self.entries.len()) as u64;
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn remove_key(&mut self, key: &[u8]) -> bool {
        self.pending_hits.remove(key);
        self.entries.remove(key).is_some()
    }

    fn insert(&mut self, key: &[u8], value: Vec<u8>, deadline: Option<i64>) {
        let at = self.tick();
        self.entries.insert(
            key.to_vec(),
            MEntry {
                value,
                created: at,
                last_access: at,
                hits: 0,
                deadline,
            },
        );
    }

    fn victim(&self) -> Option<Vec<u8>> {
        let it = self.entries.iter();
        let pick = match self.policy {
            EvictionPolicy::LeastRecentlyUsed => it.min_by_key(|(_, e)| e.last_access),
            EvictionPolicy::MostRecentlyUsed => it.max_by_key(|(_, e)| e.last_access),
            EvictionPolicy::LeastFrequentlyUsed => it.min_by_key(|(_, e)| (e.hits, e.last_access)),
            EvictionPolicy::FirstInFirstOut => it.min_by_key(|(_, e)| e.created),
            EvictionPolicy::LastInFirstOut => it.max_by_key(|(_, e)| e.created),
        };
        pick.map(|(k, _)| k.clone())
    }

    fn evict_to_fit(&mut self, incoming: u64) {
        let mut total = self.total_size();
        if total + incoming > self.max_size
            && !matches!(
                self.policy,
                EvictionPolicy::FirstInFirstOut | EvictionPolicy::LastInFirstOut
            )
        {
            self.pending_hits.clear(); // written, so that the victim sees every hit
        }
        while total + incoming > self.max_size {
            let Some(k) = self.victim() else { break };
            total -= self.entries.remove(&k).unwrap().value.len() as u64;
            self.evictions += 1;
        }
    }

    /// The body of a set inside its write: Ok(false) when too large.
    fn store(&mut self, key: &[u8], value: Vec<u8>, exp: Exp) -> bool {
        self.remove_key(key);
        let deadline = self.deadline(exp);
        if deadline.is_some_and(|t| t <= self.now) {
            return true;
        }
        if value.len() as u64 > self.max_size {
            return false;
        }
        self.evict_to_fit(value.len() as u64);
        self.insert(key, value, deadline);
        true
    }

    /// Whether a write that stores `exp` now stores nothing: already expired.
    fn stores_nothing(&self, exp: Exp) -> bool {
        self.deadline(exp).is_some_and(|t| t <= self.now)
    }

    fn set(&mut self, key: &[u8], value: Vec<u8>, exp: Exp) -> Result<(), ErrorKind> {
        // Storing nothing (too large, already expired) under a key with no entry
        // (live or due) is no write.
        let nothing = self.stores_nothing(exp) || value.len() as u64 > self.max_size;
        if nothing && !self.entries.contains_key(key) {
            return if self.stores_nothing(exp) {
                Ok(())
            } else {
                Err(ErrorKind::TooLarge)
            };
        }
        self.begin_write();
        if self.store(key, value, exp) {
            Ok(())
        } else {
            Err(ErrorKind::TooLarge)
        }
    }

    fn set_many(&mut self, batch: &[(Vec<u8>, Vec<u8>, Exp)]) -> Result<(), ErrorKind> {
        if batch.iter().any(|(_, v, _)| v.len() as u64 > self.max_size) {
            return Err(ErrorKind::TooLarge);
        }
        // Nothing stored, nothing removed, nothing to evict: no write.
        if batch.iter().all(|(k, _, exp)| {
            self.stores_nothing(*exp) && !self.entries.contains_key(k.as_slice())
        }) && self.total_size() <= self.max_size
        {
            return Ok(());
        }
        self.begin_write();
        for (k, v, exp) in batch {
            self.remove_key(k);
            let deadline = self.deadline(*exp);
            if !deadline.is_some_and(|t| t <= self.now) {
                self.insert(k, v.clone(), deadline);
            }
        }
        self.evict_to_fit(0);
        Ok(())
    }

    /// get / contains / the look-up of a cached call.
    fn lookup(&mut self, key: &[u8], is_access: bool) -> Found {
        let found = match self.entries.get(key) {
            None => None,
            Some(e) if self.due(e) => {
                self.begin_write(); // the expired entry is removed at once
                None
            }
            Some(e) => Some((e.value.clone(), e.deadline)),
        };
        match found {
            Some((value, deadline)) => {
                if is_access {
                    let at = self.tick();
                    let e = self.entries.get_mut(key).unwrap();
                    e.last_access = at;
                    e.hits += 1;
                    self.pending_hits.insert(key.to_vec());
                    self.hits += 1;
                }
                let left = deadline.map(|t| Duration::from_millis((t - self.now) as u64));
                Found::Hit(value, left)
            }
            None => {
                if is_access {
                    self.misses += 1;
                }
                Found::Miss
            }
        }
    }

    fn delete(&mut self, key: &[u8]) -> bool {
        self.begin_write();
        self.remove_key(key)
    }

    fn clear(&mut self) {
        self.begin_write();
        self.entries.clear();
        self.pending_hits.clear();
    }

    /// The count and size of the entries that are not due (which stay until a write).
    fn live(&self) -> (u64, u64) {
        let live = self.entries.values().filter(|e| !self.due(e));
        live.fold((0, 0), |(n, size), e| (n + 1, size + e.value.len() as u64))
    }

    /// stats only reads: due entries are left out, not removed.
    fn stats(&self) -> Counters {
        let (count, total_size) = self.live();
        Counters {
            count,
            total_size,
            max_size: self.max_size,
            hits: self.hits,
            misses: self.misses,
            evictions: self.evictions,
            expirations: self.expirations,
        }
    }

    /// Closing the handle writes its buffered hits (a write); a new handle has fresh
    /// counters and possibly another policy.
    fn reopen(&mut self, policy: EvictionPolicy) {
        if !self.pending_hits.is_empty() {
            self.begin_write();
            self.pending_hits.clear();
        }
        self.policy = policy;
        self.hits = 0;
        self.misses = 0;
        self.evictions = 0;
        self.expirations = 0;
    }

    fn live_keys(&self) -> Vec<Vec<u8>> {
        self.entries
            .iter()
            .filter(|(_, e)| !self.due(e))
            .map(|(k, _)| k.clone())
            .collect()
    }
}

fn open(path: &Path, config: &Config, policy: EvictionPolicy, clock: &Arc<AtomicI64>) -> Storage {
    let mut o = Options::new();
    o.set_max_size(config.max_size).expect("max_size");
    o.set_eviction_policy(policy);
    let default = match config.default_exp_ms {
        Some(ms) => Expiration::After(Duration::from_millis(ms)),
        None => Expiration::Never,
    };
    o.set_default_expiration(default)
        .expect("default expiration");
    let c = clock.clone();
    o.set_clock(Arc::new(move || c.load(Ordering::SeqCst)));
    Storage::open(path, &o).expect("open")
}

fn kind<T>(r: &backlite::Result<T>) -> Result<(), ErrorKind> {
    match r {
        Ok(_) => Ok(()),
        Err(e) => Err(e.kind()),
    }
}

fn show_key(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

/// Runs `ops` on a fresh cache file in `dir` and on the model; the first difference is
/// returned as a message naming the step.
pub fn run(dir: &Path, config: &Config, ops: &[Op]) -> Result<(), String> {
    const START: i64 = 1_700_000_000_000;
    let clock = Arc::new(AtomicI64::new(START));
    let path = dir.join("model.db");
    let mut policy = policy_of(config.policy);
    let mut s = open(&path, config, policy, &clock);
    let mut m = Model {
        entries: BTreeMap::new(),
        clock: 0,
        now: START,
        max_size: config.max_size,
        policy,
        default_exp_ms: config.default_exp_ms,
        pending_hits: BTreeSet::new(),
        hits: 0,
        misses: 0,
        evictions: 0,
        expirations: 0,
    };
    let mut writes = 0u64;
    let mut fresh = |len: usize| {
        writes += 1;
        value_bytes(writes, len)
    };
    for (step, op) in ops.iter().enumerate() {
        let shown = policy;
        let fail = |what: String| Err(format!("step {step} ({op:?}), policy {shown:?}: {what}"));
        match op {
            Op::Set { key, len, exp } => {
                let (k, v) = (key_bytes(*key), fresh(*len));
                let got = kind(&s.set(&k, &v, exp.to_lib()));
                let want = m.set(&k, v, *exp);
                if got != want {
                    return fail(format!("set returned {got:?}, the model says {want:?}"));
                }
            }
            Op::SetMany(items) => {
                let batch: Vec<(Vec<u8>, Vec<u8>, Exp)> = items
                    .iter()
                    .map(|(k, len, exp)| (key_bytes(*k), fresh(*len), *exp))
                    .collect();
                let entries: Vec<Entry<'_>> = batch
                    .iter()
                    .map(|(k, v, exp)| Entry {
                        key: k,
                        value: v,
                        expiration: exp.to_lib(),
                    })
                    .collect();
                let got = kind(&s.set_many(&entries));
                let want = m.set_many(&batch);
                if got != want {
                    return fail(format!(
                        "set_many returned {got:?}, the model says {want:?}"
                    ));
                }
            }
            Op::Get(key) => {
                let k = key_bytes(*key);
                let got = s.get(&k).map_err(|e| format!("get failed: {e}"))?;
                match (got, m.lookup(&k, true)) {
                    (None, Found::Miss) => {}
                    (Some((v, left)), Found::Hit(want, want_left)) => {
                        if v != want {
                            return fail(format!(
                                "get returned {} bytes, not the value last stored ({} bytes)",
                                v.len(),
                                want.len()
                            ));
                        }
                        if left != want_left {
                            return fail(format!(
                                "time left {left:?}, the model says {want_left:?}"
                            ));
                        }
                    }
                    (got, want) => {
                        return fail(format!(
                            "get {} but the model says {}",
                            if got.is_some() { "hit" } else { "missed" },
                            if matches!(want, Found::Hit(..)) {
                                "hit"
                            } else {
                                "miss"
                            }
                        ))
                    }
                }
            }
            Op::Contains(key) => {
                let k = key_bytes(*key);
                let got = s
                    .contains(&k)
                    .map_err(|e| format!("contains failed: {e}"))?;
                let want = matches!(m.lookup(&k, false), Found::Hit(..));
                if got != want {
                    return fail(format!("contains returned {got}, the model says {want}"));
                }
            }
            Op::Delete(key) => {
                let k = key_bytes(*key);
                let got = s.delete(&k).map_err(|e| format!("delete failed: {e}"))?;
                let want = m.delete(&k);
                if got != want {
                    return fail(format!("delete returned {got}, the model says {want}"));
                }
            }
            Op::CachedCall { key, len, exp } => {
                let k = key_bytes(*key);
                let v = fresh(*len);
                let mut computed = false;
                let got = s
                    .cached_call(&k, exp.to_lib(), None, || {
                        computed = true;
                        Ok(v.clone())
                    })
                    .map_err(|e| format!("cached_call failed: {e}"))?;
                let (want, model_computes) = match m.lookup(&k, true) {
                    Found::Hit(stored, _) => (stored, false),
                    Found::Miss => {
                        let _ = m.set(&k, v.clone(), *exp); // too large: returned, not stored
                        (v, true)
                    }
                };
                if got != want || computed != model_computes {
                    return fail(format!(
                        "cached_call returned {} bytes (computed: {computed}), \
                         the model says {} bytes (computed: {model_computes})",
                        got.len(),
                        want.len()
                    ));
                }
            }
            Op::Clear => {
                s.clear().map_err(|e| format!("clear failed: {e}"))?;
                m.clear();
            }
            Op::Advance(ms) => {
                clock.fetch_add(*ms as i64, Ordering::SeqCst);
                m.now += *ms as i64;
            }
            Op::Reopen(p) => {
                drop(s);
                policy = policy_of(*p);
                s = open(&path, config, policy, &clock);
                m.reopen(policy);
            }
            Op::Stats => {
                let st = s.stats().map_err(|e| format!("stats failed: {e}"))?;
                let got = Counters {
                    count: st.count,
                    total_size: st.total_size,
                    max_size: st.max_size,
                    hits: st.hits,
                    misses: st.misses,
                    evictions: st.evictions,
                    expirations: st.expirations,
                };
                let want = m.stats();
                if got != want {
                    return fail(format!("stats {got:?}, the model says {want:?}"));
                }
            }
            Op::Check => {
                let r = s.check(false).map_err(|e| format!("check failed: {e}"))?;
                let (count, size) = m.live(); // without repair, check only reads
                if !r.healthy() || r.actual_count != count || r.actual_total_size != size {
                    return fail(format!(
                        "check {r:?}, the model holds {count} entries of {size} bytes"
                    ));
                }
            }
        }
        // After every step: exactly the model's live keys, in the file.
        let mut keys = Vec::new();
        s.keys(|k| {
            keys.push(k.to_vec());
            true
        })
        .map_err(|e| format!("keys failed: {e}"))?;
        let want = m.live_keys();
        if keys != want {
            let show =
                |ks: &[Vec<u8>]| ks.iter().map(|k| show_key(k)).collect::<Vec<_>>().join(",");
            return fail(format!(
                "live keys [{}], the model says [{}]",
                show(&keys),
                show(&want)
            ));
        }
    }
    Ok(())
}
