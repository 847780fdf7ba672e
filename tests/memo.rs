//! The memoiser: compute once on a miss, never on a hit, and the barrier protocol.

mod common;
use backlite::{Barrier, Error, ErrorKind, EvictionPolicy, Options, Result, Storage};
use common::*;
use std::cell::{Cell, RefCell};

#[derive(Default)]
struct CountingBarrier<'a> {
    locks: Cell<u32>,
    unlocks: Cell<u32>,
    fail: bool,
    while_locked: RefCell<Option<Box<dyn Fn() + 'a>>>,
}

impl Barrier for CountingBarrier<'_> {
    fn lock(&self) -> Result<()> {
        if self.fail {
            return Err(Error::new(ErrorKind::CallbackFailed, "lock refused"));
        }
        self.locks.set(self.locks.get() + 1);
        if let Some(f) = self.while_locked.borrow().as_ref() {
            f();
        }
        Ok(())
    }
    fn unlock(&self) {
        self.unlocks.set(self.unlocks.get() + 1);
    }
}

fn mem() -> Storage {
    Storage::open(backlite::MEMORY, &Options::new()).unwrap()
}

#[test]
fn a_miss_computes_once_and_a_hit_does_not_compute() {
    let s = mem();
    let calls = Cell::new(0);
    let compute = || {
        calls.set(calls.get() + 1);
        Ok(b"42".to_vec())
    };
    assert_eq!(s.cached_call(b"k", NEVER, None, compute).unwrap(), b"42");
    assert_eq!(s.cached_call(b"k", NEVER, None, compute).unwrap(), b"42");
    assert_eq!(calls.get(), 1);
    let st = s.stats().unwrap();
    assert_eq!((st.hits, st.misses), (1, 1));
}

#[test]
fn a_failing_compute_stores_nothing_and_still_unlocks() {
    let s = mem();
    let b = CountingBarrier::default();
    let err = s
        .cached_call(b"k", NEVER, Some(&b), || {
            Err(Error::new(ErrorKind::CallbackFailed, "no"))
        })
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CallbackFailed);
    assert!(!s.contains(b"k").unwrap());
    assert_eq!((b.locks.get(), b.unlocks.get()), (1, 1));
}

#[test]
fn the_barrier_is_taken_only_on_a_miss() {
    let s = mem();
    let b = CountingBarrier::default();
    s.cached_call(b"k", NEVER, Some(&b), || Ok(vec![1]))
        .unwrap();
    s.cached_call(b"k", NEVER, Some(&b), || unreachable!())
        .unwrap();
    assert_eq!((b.locks.get(), b.unlocks.get()), (1, 1));
}

#[test]
fn a_failing_lock_computes_nothing_and_does_not_unlock() {
    let s = mem();
    let b = CountingBarrier {
        fail: true,
        ..Default::default()
    };
    let err = s
        .cached_call(b"k", NEVER, Some(&b), || unreachable!())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::CallbackFailed);
    assert_eq!(b.unlocks.get(), 0);
}

#[test]
fn a_value_filled_while_we_waited_is_returned_without_computing() {
    let s = mem();
    let b = CountingBarrier::default();
    *b.while_locked.borrow_mut() = Some(Box::new(|| s.set(b"k", b"theirs", NEVER).unwrap()));
    let v = s
        .cached_call(b"k", NEVER, Some(&b), || unreachable!())
        .unwrap();
    assert_eq!(v, b"theirs");
    assert_eq!((b.locks.get(), b.unlocks.get()), (1, 1));
}

#[test]
fn a_value_too_large_to_store_is_still_returned() {
    let mut o = Options::new();
    o.set_max_size(4).unwrap();
    o.set_eviction_policy(EvictionPolicy::LeastRecentlyUsed);
    let s = Storage::open(backlite::MEMORY, &o).unwrap();
    assert_eq!(
        s.cached_call(b"k", NEVER, None, || Ok(vec![7; 5])).unwrap(),
        vec![7; 5]
    );
    assert!(!s.contains(b"k").unwrap());
}
