//! What a read-only handle's removals and sets hide. Such a handle never writes to the
//! remote, so its delete, and a set of its refused as too large or already expired, leave
//! the remote's value where it is; read back at the next local miss, it undid the removal
//! (a delete followed by a get returned the deleted value, and stored it in the file
//! again). So the process's handles on the file stop reading it: each removed key
//! hides the value the remote holds for it until another machine writes something
//! newer there. A set it stored replaces that value the same way: once the set's entry
//! leaves the file (it expires, or is evicted), the older value it replaced is not read
//! back either. A read-only handle's clear empties its file only: the remote is what
//! such a handle reads its values from again (a clear is the way to drop local copies).
//!
//! Which value is "the one the remote held" is learned at the next look-up, not asked
//! at the removal (a read-only removal costs no round trip): the first value found
//! afterwards is hidden, and only a different one (or none, then a new one) is read.
//! A value another machine wrote between the removal and that look-up is hidden too:
//! a miss more, never a value older than the removal.

use crate::sync::lock;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Mutex;

/// Keys hidden at most; past that the removals hide the whole live generation, until
/// another client's clear moves the remote past it (memory stays bounded, and nothing
/// removed is read back).
const MAX_HIDDEN: usize = 65_536;

/// Keys hidden by sets at most; past that the oldest set's hide is dropped (a set is
/// the common write of such a handle: hiding the whole live generation for it would
/// take the shared tier from a process that merely stores its own results).
const MAX_REPLACED: usize = 65_536;

/// A remote value as a look-up found it: what tells it from a later write of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub gen: u64,
    pub crc: u32,
    pub expires_at: Option<i64>,
    pub len: usize,
}

#[derive(Default)]
pub(crate) struct Hidden {
    state: Mutex<State>,
    /// Whether anything is hidden: the common case costs one load, no lock.
    any: AtomicBool,
}

#[derive(Default)]
struct State {
    /// Removed keys: `None` until a look-up found what to hide.
    keys: HashMap<Vec<u8>, Option<Found>>,
    /// Too many keys: `Some(None)` until a look-up read the live generation.
    clear: Option<Option<u64>>,
    /// Keys replaced by a set, with the number of that set (`order`'s key).
    replaced: HashMap<Vec<u8>, (u64, Option<Found>)>,
    /// The keys of `replaced`, oldest set first.
    order: BTreeMap<u64, Vec<u8>>,
    sets: u64,
}

impl State {
    fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.clear.is_none() && self.replaced.is_empty()
    }

    fn unreplace(&mut self, key: &[u8]) {
        if let Some((n, _)) = self.replaced.remove(key) {
            self.order.remove(&n);
        }
    }

    fn clear_keys(&mut self) {
        self.keys.clear();
        self.replaced.clear();
        self.order.clear();
    }
}

/// Whether a look-up that found `found` may return it, for a key hidden as `hid`
/// (`None`: not yet learned), and what the key hides from then on (`None`: nothing).
fn judge(hid: Option<Found>, found: Option<Found>) -> (bool, Option<Option<Found>>) {
    match (hid, found) {
        // Not yet learned: what is found now is what the removal left.
        (None, Some(f)) => (false, Some(Some(f))),
        (Some(hid), Some(f)) if hid == f => (false, Some(Some(hid))),
        // Gone, or written again since: the removal is behind us.
        _ => (true, None),
    }
}

impl Hidden {
    /// A read-only handle removed `keys`.
    pub(crate) fn hide<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut s = lock(&self.state);
        for k in keys {
            // A removal again hides what the remote holds now, which may be newer.
            s.unreplace(k);
            s.keys.insert(k.to_vec(), None);
        }
        if s.keys.len() > MAX_HIDDEN {
            s.clear_keys();
            s.clear = Some(None);
        }
        self.any.store(!s.is_empty(), Relaxed);
    }

    /// A read-only handle stored a set of `keys`: once its entry leaves the file, the
    /// value it replaced is not read back.
    pub(crate) fn replace<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        let mut s = lock(&self.state);
        for k in keys {
            // As a removal again: what the remote holds now, which may be newer.
            s.keys.remove(k);
            s.unreplace(k);
            let n = s.sets;
            s.sets += 1;
            s.replaced.insert(k.to_vec(), (n, None));
            s.order.insert(n, k.to_vec());
        }
        while s.replaced.len() > MAX_REPLACED {
            let Some((_, oldest)) = s.order.pop_first() else {
                break;
            };
            s.replaced.remove(&oldest);
        }
        self.any.store(!s.is_empty(), Relaxed);
    }

    /// What the remote held for `key` just after a read-only set of it replaced it
    /// (`None`: nothing a look-up returns): hidden from then on, rather than whatever
    /// the first look-up after the set finds. A hide already learned is kept.
    pub(crate) fn learn_replaced(&self, key: &[u8], found: Option<Found>) {
        let mut s = lock(&self.state);
        let Some(&(n, None)) = s.replaced.get(key) else {
            return;
        };
        match found {
            Some(f) => {
                s.replaced.insert(key.to_vec(), (n, Some(f)));
            }
            None => s.unreplace(key),
        }
        self.any.store(!s.is_empty(), Relaxed);
    }

    /// A handle of the process that writes to the remote sent (or queued, or owes the
    /// unlink of) a write of `keys`: what the remote holds for them from then on is
    /// this process's, newer than any removal.
    pub(crate) fn forget<'k>(&self, keys: impl IntoIterator<Item = &'k [u8]>) {
        if !self.any.load(Relaxed) {
            return;
        }
        let mut s = lock(&self.state);
        for k in keys {
            s.keys.remove(k);
            s.unreplace(k);
        }
        self.any.store(!s.is_empty(), Relaxed);
    }

    /// A clear reached the remote: it hides everything the removals hid.
    pub(crate) fn reset(&self) {
        if !self.any.load(Relaxed) {
            return;
        }
        *lock(&self.state) = State::default();
        self.any.store(false, Relaxed);
    }

    /// Whether a look-up of `key` in the live generation `gen`, which found `found`,
    /// may return it.
    pub(crate) fn passes(&self, key: &[u8], gen: u64, found: Option<Found>) -> bool {
        if !self.any.load(Relaxed) {
            return true;
        }
        let mut s = lock(&self.state);
        let passes = match s.clear {
            Some(None) => {
                s.clear = Some(Some(gen));
                false
            }
            // A generation that went back (a restored snapshot) stays hidden too.
            Some(Some(g)) if gen <= g => false,
            Some(Some(_)) => {
                // Another client's clear: everything before it is hidden there.
                s.clear_keys();
                s.clear = None;
                true
            }
            None => true,
        };
        let passes = passes
            && if let Some(hid) = s.keys.get(key).copied() {
                let (passes, next) = judge(hid, found);
                match next {
                    Some(hid) => s.keys.insert(key.to_vec(), hid),
                    None => s.keys.remove(key),
                };
                passes
            } else if let Some(&(n, hid)) = s.replaced.get(key) {
                let (passes, next) = judge(hid, found);
                match next {
                    Some(hid) => {
                        s.replaced.insert(key.to_vec(), (n, hid));
                    }
                    None => s.unreplace(key),
                }
                passes
            } else {
                true
            };
        self.any.store(!s.is_empty(), Relaxed);
        passes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(gen: u64, crc: u32) -> Option<Found> {
        Some(Found {
            gen,
            crc,
            expires_at: None,
            len: 1,
        })
    }

    #[test]
    fn a_removed_key_hides_the_value_found_after_it_until_another_is_written() {
        let h = Hidden::default();
        h.hide([&b"k"[..]]);
        assert!(!h.passes(b"k", 1, found(1, 7)));
        assert!(!h.passes(b"k", 1, found(1, 7)));
        assert!(h.passes(b"other", 1, found(1, 7)));
        assert!(h.passes(b"k", 1, found(1, 8)));
        assert!(
            h.passes(b"k", 1, found(1, 7)),
            "the hide outlived its value"
        );
        assert!(!h.any.load(Relaxed));
    }

    #[test]
    fn a_removed_key_found_absent_is_read_once_written() {
        let h = Hidden::default();
        h.hide([&b"k"[..]]);
        assert!(h.passes(b"k", 1, None));
        assert!(h.passes(b"k", 1, found(1, 7)));
    }

    #[test]
    fn too_many_removed_keys_hide_the_generation() {
        let h = Hidden::default();
        let keys: Vec<Vec<u8>> = (0..=MAX_HIDDEN)
            .map(|i| i.to_string().into_bytes())
            .collect();
        h.hide(keys.iter().map(|k| &k[..]));
        assert!(!h.passes(b"never removed", 3, found(3, 1)));
        assert!(!h.passes(b"other", 3, None));
        assert!(!h.passes(b"other", 2, found(2, 1)));
        assert!(h.passes(b"never removed", 4, found(4, 1)));
    }

    #[test]
    fn a_set_hides_the_value_it_replaced_and_too_many_sets_drop_the_oldest() {
        let h = Hidden::default();
        h.hide([&b"k"[..]]);
        assert!(!h.passes(b"k", 1, found(1, 7)));
        // A set after the delete hides what is there then (the same value here).
        h.replace([&b"k"[..]]);
        assert!(!h.passes(b"k", 1, found(1, 7)));
        assert!(h.passes(b"k", 1, found(1, 8)));
        let keys: Vec<Vec<u8>> = (0..=MAX_REPLACED)
            .map(|i| i.to_string().into_bytes())
            .collect();
        h.replace(keys.iter().map(|k| &k[..]));
        // Set again: the newest now.
        h.replace([&b"0"[..]]);
        assert!(!h.passes(b"0", 1, found(1, 7)));
        assert!(h.passes(b"1", 1, found(1, 7)), "the oldest set still hides");
        assert!(!h.passes(b"2", 1, found(1, 7)));
        // Never the whole generation.
        assert!(h.passes(b"never set", 1, found(1, 7)));
        let s = lock(&h.state);
        assert_eq!(s.replaced.len(), MAX_REPLACED);
        assert_eq!(s.order.len(), MAX_REPLACED);
    }

    #[test]
    fn a_write_of_the_process_or_a_clear_that_reached_the_remote_ends_the_hide() {
        let h = Hidden::default();
        h.hide([&b"k"[..], &b"j"[..]]);
        h.replace([&b"r"[..]]);
        h.forget([&b"k"[..], &b"r"[..]]);
        assert!(h.passes(b"r", 1, found(1, 7)));
        assert!(h.passes(b"k", 1, found(1, 7)));
        assert!(!h.passes(b"j", 1, found(1, 7)));
        h.reset();
        assert!(h.passes(b"j", 1, found(1, 7)));
    }
}
