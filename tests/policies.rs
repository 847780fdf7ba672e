//! The five eviction policies choose their victims in exact order, with no sleeps:
//! the order comes from the file's logical clock.

mod common;
use backlite::EvictionPolicy::{self, *};
use common::*;

/// a, b, c of 10 bytes in a 30-byte cache; `touch` are read in order; then d is set.
fn survivors(policy: EvictionPolicy, touch: &[&str]) -> Vec<String> {
    let (_dir, s) = open(&options(30, policy));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    for k in touch {
        assert!(get(&s, k).is_some());
    }
    set(&s, "d", 10);
    present(&s, &["a", "b", "c", "d"])
}

#[test]
fn lru_evicts_the_oldest_access() {
    assert_eq!(survivors(LeastRecentlyUsed, &["a"]), ["a", "c", "d"]);
    assert_eq!(survivors(LeastRecentlyUsed, &["b", "a"]), ["a", "b", "d"]);
}

#[test]
fn mru_evicts_the_newest_access() {
    assert_eq!(survivors(MostRecentlyUsed, &["a"]), ["b", "c", "d"]);
    assert_eq!(survivors(MostRecentlyUsed, &[]), ["a", "b", "d"]);
}

#[test]
fn lfu_evicts_the_fewest_hits_then_the_least_recent() {
    assert_eq!(
        survivors(LeastFrequentlyUsed, &["a", "a", "b", "c", "c"]),
        ["a", "c", "d"]
    );
    // Equal hits: the least recently used of them goes.
    assert_eq!(
        survivors(LeastFrequentlyUsed, &["c", "b", "a"]),
        ["a", "b", "d"]
    );
}

#[test]
fn fifo_evicts_the_earliest_set_whatever_was_read() {
    assert_eq!(survivors(FirstInFirstOut, &["a", "a"]), ["b", "c", "d"]);
}

#[test]
fn lifo_evicts_the_latest_set() {
    assert_eq!(survivors(LastInFirstOut, &["a"]), ["a", "b", "d"]);
}

#[test]
fn writing_a_key_again_counts_as_a_new_set() {
    let (_dir, s) = open(&options(30, FirstInFirstOut));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    set(&s, "a", 10);
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["a", "c", "d"]);

    let (_dir, s) = open(&options(30, LeastFrequentlyUsed));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    for k in ["a", "a", "b", "c"] {
        get(&s, k);
    }
    set(&s, "a", 10); // its hits start over: now the fewest
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["b", "c", "d"]);
}

#[test]
fn contains_is_not_an_access() {
    let (_dir, s) = open(&options(30, LeastRecentlyUsed));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    assert!(s.contains(b"a").unwrap());
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["b", "c", "d"]);
}

#[test]
fn accesses_of_a_handle_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let o = options(30, LeastRecentlyUsed);
    {
        let s = backlite::Storage::open(&path, &o).unwrap();
        for k in ["a", "b", "c"] {
            set(&s, k, 10);
        }
        get(&s, "a");
    }
    let s = backlite::Storage::open(&path, &o).unwrap();
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["a", "c", "d"]);
}

#[test]
fn many_hits_flush_in_batches_and_keep_their_order() {
    let n = 17_000; // more distinct keys than the hit buffer (16384) holds
    let (_dir, s) = open(&options(n * 10, LeastRecentlyUsed));
    let keys: Vec<Vec<u8>> = (0..n).map(|i| format!("k{i}").into_bytes()).collect();
    let entries: Vec<backlite::Entry> = keys
        .iter()
        .map(|k| backlite::Entry {
            key: k,
            value: &[0; 10],
            expiration: NEVER,
        })
        .collect();
    s.set_many(&entries).unwrap();
    // Read in reverse: the last key set is now the oldest access.
    for k in keys.iter().rev() {
        assert!(s.get(k).unwrap().is_some());
    }
    set(&s, "new", 10);
    assert!(!s.contains(format!("k{}", n - 1).as_bytes()).unwrap());
    assert!(s.contains(format!("k{}", n - 2).as_bytes()).unwrap() && s.contains(b"k0").unwrap());
}

#[test]
fn handles_of_one_process_share_the_access_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cache.db");
    let o = options(30, LeastRecentlyUsed);
    let h1 = backlite::Storage::open(&path, &o).unwrap();
    let h2 = backlite::Storage::open(&path, &o).unwrap();
    set(&h1, "a", 10);
    set(&h2, "b", 10);
    set(&h1, "c", 10);
    get(&h2, "a");
    set(&h1, "d", 10);
    assert_eq!(present(&h2, &["a", "b", "c", "d"]), ["a", "c", "d"]);
}

#[test]
fn hits_keep_their_place_between_sets_that_do_not_evict() {
    let (_dir, s) = open(&options(40, LeastRecentlyUsed));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    get(&s, "a"); // after c
    set(&s, "x", 10); // after the hit on a; no eviction yet
    get(&s, "b"); // newest
    set(&s, "d", 10); // over the limit: c is the oldest access
    assert_eq!(
        present(&s, &["a", "b", "c", "x", "d"]),
        ["a", "b", "x", "d"]
    );
    set(&s, "e", 10); // then a
    assert_eq!(
        present(&s, &["a", "b", "x", "d", "e"]),
        ["b", "x", "d", "e"]
    );
}

#[test]
fn lfu_counts_hits_across_writes_and_flushes() {
    let (_dir, s) = open(&options(30, LeastFrequentlyUsed));
    for k in ["a", "b", "c"] {
        set(&s, k, 10);
    }
    get(&s, "a");
    get(&s, "b");
    s.flush().unwrap();
    get(&s, "a");
    get(&s, "c");
    s.stats().unwrap(); // a write that ticks but does not write the hits
    get(&s, "c");
    get(&s, "a");
    // hits: a 3, b 1, c 2
    set(&s, "d", 10);
    assert_eq!(present(&s, &["a", "b", "c", "d"]), ["a", "c", "d"]);
}

/// A set into a full cache that replaces its key's entry evicts nothing when the new
/// value fits in the old one's place, under every policy, whether the entry is the
/// policy's next victim or not, and right after sets of new keys that evicted (those
/// insert without looking their key up; MRU and LIFO delete their victim first).
#[test]
fn replacing_an_entry_of_a_full_cache_evicts_nothing() {
    for policy in EvictionPolicy::ALL {
        for key in ["b", "c", "d"] {
            let (_dir, s) = open(&options(30, policy));
            for k in ["a", "b", "c", "d"] {
                set(&s, k, 10);
            }
            let before = present(&s, &["a", "b", "c", "d"]);
            let evicted = s.stats().unwrap().evictions;
            assert_eq!(evicted, 1, "{policy}");
            if !before.iter().any(|k| k == key) {
                continue;
            }
            set(&s, key, 10);
            let st = s.stats().unwrap();
            assert_eq!(st.evictions, 1, "{policy}, {key}: evicted again");
            assert_eq!((st.count, st.total_size), (3, 30), "{policy}, {key}");
            assert_eq!(
                present(&s, &["a", "b", "c", "d"]),
                before,
                "{policy}, {key}"
            );
        }
    }
}
