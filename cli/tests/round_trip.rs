//! export -> import gives back the same keys, values, expiries, hit counts and times
//! of set, in the same access order, and the same lifetime counters.

mod common;

use common::Dir;

/// `(key, value, expires_at, hits, set_at)` of an entry.
type Row = (Vec<u8>, Vec<u8>, Option<i64>, i64, Option<i64>);

/// Every entry, in access order, read directly from the file.
fn rows(path: &std::path::Path) -> Vec<Row> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT e.key, coalesce(e.value, b.value), e.expires_at, e.hits, e.set_at \
             FROM entries e \
             LEFT JOIN blobs b ON b.id = e.value_id ORDER BY e.seq",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

#[test]
fn export_then_import_gives_identical_entries() {
    let d = Dir::new();
    // Text and binary keys and values, the empty key and value, values stored in
    // their rows and apart, expiries, and hits.
    d.ok(&["set", "a.db", "text", "hello", "--expire", "2h"]);
    d.ok(&["set", "a.db", "", "the empty key"]);
    d.ok(&["set", "a.db", "empty value", ""]);
    d.ok(&["set", "a.db", "large", &"L".repeat(5000), "--expire", "3d"]);
    let binary: Vec<u8> = (0..=255).collect();
    let r = d.run_with_input(&["set", "a.db", "-e", "bin\\xff\\x00", "-"], &binary);
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["set", "a.db", "unicode ✓", "välue ✓\n"]);
    for _ in 0..3 {
        d.ok(&["get", "a.db", "text"]);
    }
    d.ok(&["get", "a.db", "large"]);
    assert_eq!(d.run(&["get", "a.db", "missing"]).code, 1);

    let first = d.run(&["export", "a.db"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let r = d.run_with_input(&["import", "b.db"], first.stdout.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "imported 6 entries into b.db\n");

    let (a, b) = (rows(&d.path("a.db")), rows(&d.path("b.db")));
    assert_eq!(a.len(), 6);
    assert_eq!(a, b);
    assert!(
        a.iter().any(|e| e.3 == 3 && e.2.is_some()),
        "hits and expiry kept"
    );
    assert!(a.iter().all(|e| e.4.is_some()), "times of set kept");
    let lifetime = |file: &str| -> serde_json::Value {
        let v: serde_json::Value = serde_json::from_str(&d.ok(&["stats", file, "--json"])).unwrap();
        v["lifetime"].clone()
    };
    assert_eq!(lifetime("a.db")["hits"], 4);
    assert_eq!(lifetime("a.db")["misses"], 1);
    assert_eq!(lifetime("a.db"), lifetime("b.db"));

    // And the exports agree line for line (but the header's time).
    let second = d.ok(&["export", "b.db"]);
    let body = |s: &str| s.lines().skip(1).map(String::from).collect::<Vec<_>>();
    assert_eq!(body(&first.stdout), body(&second));
}
