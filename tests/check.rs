//! Check finds damaged values, orphan values and drifted counters without changing
//! anything; repair fixes them; vacuum gives space back.

mod common;
use backlite::{Options, Storage};
use common::*;

fn damage(path: &std::path::Path) {
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(
        "UPDATE entries SET value = zeroblob(10) WHERE key = x'61';
         UPDATE blobs SET value = zeroblob(1000) WHERE id = (SELECT value_id FROM entries WHERE key = x'62');
         INSERT INTO blobs (value) VALUES (x'00');
         UPDATE entries SET state_count = state_count + 5,
             state_total_size = state_total_size + 7
             WHERE seq = (SELECT max(seq) FROM entries);",
    )
    .unwrap();
}

#[test]
fn check_reports_damage_and_repair_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, &Options::new()).unwrap();
    // a and c are small (stored in their rows), b large (stored apart).
    set(&s, "a", 10);
    set(&s, "b", 1000);
    set(&s, "c", 10);
    let clean = s.check(false).unwrap();
    assert!(clean.healthy() && clean.integrity_ok && !clean.repaired);
    assert_eq!(
        (clean.entries, clean.actual_count, clean.actual_total_size),
        (3, 3, 1020)
    );

    damage(&path);
    let found = s.check(false).unwrap();
    assert!(!found.healthy() && found.integrity_ok && !found.repaired);
    assert_eq!((found.damaged, found.orphan_values), (2, 1));
    assert_eq!((found.recorded_count, found.recorded_total_size), (8, 1027));
    assert_eq!((found.actual_count, found.actual_total_size), (1, 10));
    assert_eq!(
        s.check(false).unwrap(),
        found,
        "a check without repair changes nothing"
    );

    let fixed = s.check(true).unwrap();
    assert!(fixed.repaired && fixed.healthy());
    let after = s.check(false).unwrap();
    assert!(after.healthy() && !after.repaired);
    assert_eq!((after.recorded_count, after.recorded_total_size), (1, 10));
    let st = s.stats().unwrap();
    assert_eq!((st.count, st.total_size), (1, 10));
    assert_eq!(get(&s, "a"), None);
    assert_eq!(get(&s, "b"), None);
    assert_eq!(get(&s, "c"), Some(vec![b'v'; 10]));
}

#[test]
fn vacuum_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, &Options::new()).unwrap();
    for i in 0..200 {
        set(&s, &format!("k{i}"), 10_000);
    }
    s.clear().unwrap();
    s.vacuum().unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 100_000, "file still {size} bytes after vacuum");
    let wal = std::fs::metadata(format!("{}-wal", path.display())).map_or(0, |m| m.len());
    assert_eq!(wal, 0);
    set(&s, "after", 3);
    assert_eq!(get(&s, "after"), Some(vec![b'v'; 3]));
}
