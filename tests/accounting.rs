//! `count` and `total_size` are exact after any mix of writes, and the size limit
//! holds without one oversized value wiping the cache.

mod common;
use backlite::{Entry, ErrorKind, EvictionPolicy, Expiration, Options, Storage};
use common::*;
use std::collections::HashMap;

#[test]
fn counters_never_drift_under_overwrites_deletes_and_evictions() {
    for policy in EvictionPolicy::ALL {
        let (_dir, s) = open(&options(5_000, policy));
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..1500 {
            let key = format!("k{}", next() % 60);
            match next() % 5 {
                0 => {
                    s.delete(key.as_bytes()).unwrap();
                }
                1 => {
                    get(&s, &key);
                }
                _ => set(&s, &key, (next() % 400) as usize),
            }
        }
        let st = s.stats().unwrap();
        let mut count = 0;
        let mut total = 0;
        let mut keys = Vec::new();
        s.keys(|k| {
            keys.push(k.to_vec());
            true
        })
        .unwrap();
        for k in keys {
            let (v, _) = s.get(&k).unwrap().unwrap();
            count += 1;
            total += v.len() as u64;
        }
        assert_eq!((st.count, st.total_size), (count, total), "{policy}");
        assert!(st.total_size <= 5_000);
        assert!(st.evictions > 0);
    }
}

#[test]
fn too_large_is_refused_evicts_nothing_and_drops_the_stale_value() {
    let (_dir, s) = open(&options(100, EvictionPolicy::LeastRecentlyUsed));
    set(&s, "a", 40);
    set(&s, "b", 40);
    let err = s.set(b"a", &[0; 101], NEVER).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge);
    assert_eq!(get(&s, "a"), None);
    assert_eq!(get(&s, "b"), Some(vec![b'v'; 40]));
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.evictions), (1, 40, 0));
}

#[test]
fn a_value_of_exactly_max_size_fits_by_evicting_everything_else() {
    let (_dir, s) = open(&options(100, EvictionPolicy::LeastRecentlyUsed));
    set(&s, "a", 50);
    set(&s, "b", 50);
    set(&s, "c", 100);
    assert_eq!(present(&s, &["a", "b", "c"]), ["c"]);
}

#[test]
fn set_many_is_one_transaction_then_evicts_by_policy() {
    let (_dir, s) = open(&options(30, EvictionPolicy::FirstInFirstOut));
    set(&s, "old", 10);
    let v = [b'x'; 10];
    let batch: Vec<Entry> = ["a", "b", "c"]
        .iter()
        .map(|k| Entry {
            key: k.as_bytes(),
            value: &v,
            expiration: NEVER,
        })
        .collect();
    s.set_many(&batch).unwrap();
    assert_eq!(present(&s, &["old", "a", "b", "c"]), ["a", "b", "c"]);

    // LIFO: the batch's own latest entries go first.
    let (_dir, s) = open(&options(20, EvictionPolicy::LastInFirstOut));
    s.set_many(&batch).unwrap();
    assert_eq!(present(&s, &["a", "b", "c"]), ["a", "b"]);
}

/// Refused whole, no value stored; the too-large entry's key loses its older value (a
/// later get must not return a stale value), the other keys keep theirs.
#[test]
fn set_many_with_a_too_large_value_stores_nothing_and_removes_that_keys_older_value() {
    let (_dir, s) = open(&options(30, EvictionPolicy::LeastRecentlyUsed));
    set(&s, "a", 10);
    set(&s, "b", 10);
    let big = [0u8; 31];
    let small = [0u8; 5];
    let batch = [
        Entry {
            key: b"a",
            value: &small,
            expiration: NEVER,
        },
        Entry {
            key: b"b",
            value: &big,
            expiration: NEVER,
        },
    ];
    assert_eq!(s.set_many(&batch).unwrap_err().kind(), ErrorKind::TooLarge);
    assert_eq!(get(&s, "a"), Some(vec![b'v'; 10]));
    assert_eq!(get(&s, "b"), None);
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.evictions), (1, 10, 0));
}

#[test]
fn keys_are_arbitrary_bytes_including_empty() {
    let s = Storage::open(backlite::MEMORY, &Options::new()).unwrap();
    let keys: [&[u8]; 4] = [b"", b"\0", b"a\0b", &[0xff, 0xfe]];
    for (i, k) in keys.iter().enumerate() {
        s.set(k, &[i as u8], Expiration::Never).unwrap();
    }
    let mut seen = HashMap::new();
    s.keys(|k| {
        *seen.entry(k.to_vec()).or_insert(0) += 1;
        true
    })
    .unwrap();
    assert_eq!(seen.len(), 4);
    assert!(seen.values().all(|&n| n == 1));
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(s.get(k).unwrap().unwrap().0, vec![i as u8]);
    }
}

#[test]
fn keys_pages_through_many_entries_and_stops_early() {
    let (_dir, s) = open(&Options::new());
    for i in 0..1000 {
        set(&s, &format!("k{i}"), 1);
    }
    let mut n = 0;
    s.keys(|_| {
        n += 1;
        true
    })
    .unwrap();
    assert_eq!(n, 1000);
    let mut n = 0;
    s.keys(|_| {
        n += 1;
        n < 10
    })
    .unwrap();
    assert_eq!(n, 10);
}

#[test]
fn clear_and_stats_count_hits_and_misses() {
    let (_dir, s) = open(&Options::new());
    set(&s, "a", 3);
    get(&s, "a");
    get(&s, "zz");
    s.clear().unwrap();
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size, st.hits, st.misses), (0, 0, 1, 1));
    assert_eq!(st.max_size, backlite::DEFAULT_MAX_SIZE);
}
