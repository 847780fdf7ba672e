//! One handle shared by many threads, and many handles on one file: no errors, and
//! counters equal a recount at the end.

mod common;
use backlite::{EvictionPolicy, Options, Storage};
use std::sync::Arc;

fn recount(s: &Storage) -> (u64, u64) {
    let mut keys = Vec::new();
    s.keys(|k| {
        keys.push(k.to_vec());
        true
    })
    .unwrap();
    let total = keys
        .iter()
        .map(|k| s.get(k).unwrap().map_or(0, |(v, _)| v.len() as u64))
        .sum();
    (keys.len() as u64, total)
}

fn hammer(handles: Vec<Arc<Storage>>, threads: usize) {
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let s = handles[t % handles.len()].clone();
            std::thread::spawn(move || {
                for i in 0..300u64 {
                    let key = format!("k{}", (i * 7 + t as u64) % 50);
                    match i % 4 {
                        0 => {
                            s.delete(key.as_bytes()).unwrap();
                        }
                        1 => {
                            s.get(key.as_bytes()).unwrap();
                        }
                        2 => {
                            let v = s
                                .cached_call(
                                    key.as_bytes(),
                                    backlite::Expiration::Never,
                                    None,
                                    || Ok(vec![1; 30]),
                                )
                                .unwrap();
                            assert!(!v.is_empty());
                        }
                        _ => s
                            .set(
                                key.as_bytes(),
                                &vec![t as u8; (i % 90) as usize],
                                backlite::Expiration::Never,
                            )
                            .unwrap(),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
}

#[test]
fn eight_threads_on_one_handle_keep_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_max_size(1000).unwrap();
    o.set_eviction_policy(EvictionPolicy::LeastFrequentlyUsed);
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap());
    hammer(vec![s.clone()], 8);
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size), recount(&s));
    assert!(st.total_size <= 1000);
}

#[test]
fn four_handles_on_one_file_keep_counters_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_max_size(1000).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap()))
        .collect();
    hammer(handles.clone(), 8);
    let st = handles[0].stats().unwrap();
    assert_eq!((st.count, st.total_size), recount(&handles[0]));
}
