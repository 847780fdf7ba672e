//! A command that changes the cache and then cannot write its report (stdout on a full
//! disk) exits 2, as every output that fails does, and its line says the change was made.

mod common;

use common::{have_dev_full, into_dev_full, Dir};

/// d with c.db holding k1 and k2.
fn two_entries() -> Dir {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k1", "one"]);
    d.ok(&["set", "c.db", "k2", "two"]);
    d
}

/// Whether a command's change is in the cache.
type Made = fn(&Dir) -> bool;

/// The live keys of c.db, quoted, sorted, space-separated.
fn keys(d: &Dir) -> String {
    let listed = d.ok(&["keys", "c.db", "--json"]);
    let mut keys: Vec<String> = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["key"].to_string())
        .collect();
    keys.sort();
    keys.join(" ")
}

/// The lifetime count of misses of c.db.
fn misses(d: &Dir) -> serde_json::Value {
    let stats = d.ok(&["stats", "c.db", "--json"]);
    serde_json::from_str::<serde_json::Value>(&stats).unwrap()["lifetime"]["misses"].clone()
}

/// `clear`, `delete`, `zero-stats`, `vacuum`, `import` and an evicting `set` with their
/// report going to /dev/full exited 2 with "cannot write to stdout: No space left on
/// device" alone, which reads as if nothing was done: a script that retried a delete
/// found its keys gone (exit 1). The line now says what was done before the report
/// failed.
#[test]
fn a_change_whose_report_cannot_be_written_says_it_was_made() {
    if !have_dev_full() {
        return;
    }
    let d = two_entries();
    let dump = d.ok(&["export", "c.db"]);
    std::fs::write(d.path("dump.jsonl"), &dump).unwrap();
    // A miss, for zero-stats to zero.
    assert_eq!(d.run(&["get", "c.db", "missing"]).code, 1);
    let big = "x".repeat(4000);
    let cases: [(&[&str], &str, Made); 6] = [
        (&["delete", "c.db", "k1"], "deleted 1 of 1 keys", |d| {
            keys(d) == "\"k2\""
        }),
        (
            &["zero-stats", "c.db"],
            "zeroed the lifetime counters",
            |d| misses(d) == 0,
        ),
        (&["clear", "c.db"], "cleared 1 entry", |d| {
            keys(d).is_empty()
        }),
        (&["vacuum", "c.db"], "vacuumed c.db", |d| keys(d).is_empty()),
        (
            &["import", "c.db", "-i", "dump.jsonl"],
            "imported 2 entries",
            |d| keys(d) == "\"k1\" \"k2\"",
        ),
        // The oldest entry makes room for the new one.
        (
            &["set", "c.db", "k3", &big, "--max-size", "4004"],
            "evicted 1 entry",
            |d| keys(d) == "\"k2\" \"k3\"",
        ),
    ];
    for (args, done, made) in cases {
        let (code, stderr) = into_dev_full(&d, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("backlite: c.db: "), "{args:?}: {stderr}");
        assert!(
            stderr.contains(done),
            "{args:?}: does not say {done:?}: {stderr}"
        );
        assert!(
            stderr.contains("No space left on device"),
            "{args:?}: {stderr}"
        );
        assert!(made(&d), "{args:?} did not do its change");
    }
}

/// `check --repair` that repaired the file and cannot write its report said only
/// "cannot write to stdout"; it says the file was repaired.
#[test]
fn a_repair_whose_report_cannot_be_written_says_it_was_made() {
    if !have_dev_full() {
        return;
    }
    let d = two_entries();
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch(
        "UPDATE entries SET state_count = -4 WHERE seq = (SELECT max(seq) FROM entries)",
    )
    .unwrap();
    drop(conn);
    assert_eq!(d.run(&["check", "c.db"]).code, 1);
    let (code, stderr) = into_dev_full(&d, &["check", "c.db", "--repair"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("backlite: c.db: repaired, but cannot write"),
        "{stderr}"
    );
    assert_eq!(d.run(&["check", "c.db"]).code, 0, "not repaired");
}
