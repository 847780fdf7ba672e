//! Each subcommand on a real file, its text and JSON output compared with a snapshot
//! (times normalised: see `common::normalise`).

mod common;

use common::{json_normalised, normalise, Dir};
use serde_json::json;

/// A file with a text key that expires in 2h and was read twice, a large value, a
/// binary key, a key that expires in 3 days, and one lookup that missed.
fn sample() -> Dir {
    let d = Dir::new();
    d.ok(&["set", "s.db", "greeting", "hello", "--expire", "2h"]);
    d.ok(&["set", "s.db", "big", &"x".repeat(1000)]);
    let r = d.run_with_input(&["set", "s.db", "-e", "bin\\x00\\xff", "-"], &[1, 2]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["set", "s.db", "later", "v", "--expire", "3d"]);
    assert_eq!(d.ok(&["get", "s.db", "greeting"]), "hello");
    assert_eq!(d.ok(&["get", "s.db", "greeting"]), "hello");
    assert_eq!(d.run(&["get", "s.db", "nope"]).code, 1);
    d
}

#[test]
fn stats_shows_size_disk_schema_expiries_as_text() {
    let d = sample();
    let expected = "\
file                 s.db
entries              4
size                 1008 B of 1 GiB max  [..............................] 0.0%
on disk              36 KiB (database 36 KiB, write-ahead log 0 B, value files 0 B)
schema version       6
version tag          (none)
policy indexes       none (least/most-recently-used need none)
least recently used  big (1000 B, set <s> ago)
most recently used   greeting (5 B, set <s> ago)
expiring             0 within 1h, 1 within 1d
hit ratio            66.7% (2 hits, 1 misses)
evictions            0
expirations          0
counting since       <time>
";
    assert_eq!(normalise(&d.ok(&["stats", "s.db"])), expected);
}

#[test]
fn stats_json_has_every_figure() {
    let d = sample();
    let out = d.ok(&["stats", "s.db", "--json"]);
    assert_eq!(out.lines().count(), 1, "one JSON object: {out}");
    let v = json_normalised(&out, &["age_ms", "expires_in_ms", "since"]);
    let size = std::fs::metadata(d.path("s.db")).unwrap().len();
    assert_eq!(
        v,
        json!({
            "file": "s.db",
            "entries": 4,
            "expired_not_removed": 0,
            "total_size": 1008,
            "max_size": 1073741824u64,
            "file_size": size,
            "wal_size": 0,
            "values_size": 0,
            "schema_version": 6,
            "version_tag": null,
            "policy_indexes": [],
            "least_recently_used": {"key": "big", "size": 1000, "hits": 0, "age_ms": "<n>", "expires_in_ms": null},
            "most_recently_used": {"key": "greeting", "size": 5, "hits": 2, "age_ms": "<n>", "expires_in_ms": "<n>"},
            "expiring_within_1h": 0,
            "expiring_within_1d": 1,
            "lifetime": {"hits": 2, "misses": 1, "evictions": 0, "expirations": 0, "since": "<n>"},
            "hit_ratio": 2.0 / 3.0,
        })
    );
}

#[test]
fn stats_counts_the_value_files_beside_the_file_on_disk() {
    let d = Dir::new();
    // Above the default file threshold (64 KiB): a file of 128 KiB with its header.
    let value = vec![7u8; 128 * 1024 - 24];
    let r = d.run_with_input(&["set", "s.db", "big", "-"], &value);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Not ours: never counted.
    std::fs::write(d.path("s.db.values/notes.txt"), vec![1u8; 5000]).unwrap();
    let v: serde_json::Value = serde_json::from_str(&d.ok(&["stats", "s.db", "--json"])).unwrap();
    assert_eq!(v["values_size"], 128 * 1024);
    let text = d.ok(&["stats", "s.db"]);
    let on_disk = text.lines().find(|l| l.starts_with("on disk")).unwrap();
    assert!(on_disk.ends_with(", value files 128 KiB)"), "{on_disk}");
}

#[test]
fn stats_names_the_policy_indexes_present() {
    let d = sample();
    d.ok(&["set", "s.db", "k", "v", "--policy", "least-frequently-used"]);
    let out = d.ok(&["stats", "s.db"]);
    assert!(
        out.contains("policy indexes       entries_by_hits (least-frequently-used)\n"),
        "{out}"
    );
}

/// A file holding more than the `--max-size` asked about (its program's limit is larger,
/// or was lowered since) shows its real share of that limit: it showed 100.0%, as if
/// exactly full, however far over it was.
#[test]
fn stats_shows_a_size_over_the_limit_as_its_real_share() {
    let d = Dir::new();
    d.ok(&["set", "s.db", "a", "0123456789"]);
    d.ok(&["set", "s.db", "b", "0123456789"]);
    let size_line = |max: &str| {
        let out = d.ok(&["--max-size", max, "stats", "s.db"]);
        out.lines()
            .find(|l| l.starts_with("size"))
            .unwrap()
            .to_string()
    };
    let full = format!("[{}]", "#".repeat(30));
    assert_eq!(
        size_line("5"),
        format!("size                 20 B of 5 B max  {full} 400.0%")
    );
    assert_eq!(
        size_line("20"),
        format!("size                 20 B of 20 B max  {full} 100.0%")
    );
    assert_eq!(
        size_line("40"),
        format!(
            "size                 20 B of 40 B max  [{}{}] 50.0%",
            "#".repeat(15),
            ".".repeat(15)
        )
    );
}

#[test]
fn keys_lists_size_age_time_left_and_hits_with_escapes() {
    let d = sample();
    let expected = r"      SIZE      AGE     LEFT     HITS  KEY
    1000 B      <s>    never        0  big
       2 B      <s>    never        0  bin\x00\xff
       5 B      <s>    1h59m        2  greeting
       1 B      <s>    2d23h        0  later
";
    assert_eq!(normalise(&d.ok(&["keys", "s.db"])), expected);
}

#[test]
fn keys_json_is_one_object_a_line_with_base64_for_binary_keys() {
    let d = sample();
    let out = d.ok(&["keys", "s.db", "--json"]);
    let lines: Vec<_> = out
        .lines()
        .map(|l| json_normalised(l, &["age_ms", "expires_in_ms"]))
        .collect();
    assert_eq!(
        lines,
        [
            json!({"key": "big", "size": 1000, "hits": 0, "age_ms": "<n>", "expires_in_ms": null}),
            json!({"key_base64": "YmluAP8=", "size": 2, "hits": 0, "age_ms": "<n>", "expires_in_ms": null}),
            json!({"key": "greeting", "size": 5, "hits": 2, "age_ms": "<n>", "expires_in_ms": "<n>"}),
            json!({"key": "later", "size": 1, "hits": 0, "age_ms": "<n>", "expires_in_ms": "<n>"}),
        ]
    );
}

#[test]
fn keys_filters_by_prefix_sorts_and_limits() {
    let d = sample();
    let keys_of = |args: &[&str]| -> Vec<String> {
        d.ok(args)
            .lines()
            .skip(1)
            .map(|l| l.rsplit("  ").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        keys_of(&["keys", "s.db", "--prefix", "b"]),
        ["big", "bin\\x00\\xff"]
    );
    assert_eq!(
        keys_of(&["keys", "s.db", "-e", "--prefix", "bin\\x00"]),
        ["bin\\x00\\xff"]
    );
    assert_eq!(keys_of(&["keys", "s.db", "--limit", "1"]), ["big"]);
    assert_eq!(
        keys_of(&["keys", "s.db", "--sort", "size"]),
        ["big", "greeting", "bin\\x00\\xff", "later"]
    );
    assert_eq!(
        keys_of(&["keys", "s.db", "--sort", "hits", "--limit", "1"]),
        ["greeting"]
    );
    assert_eq!(d.ok(&["keys", "s.db", "--prefix", "zz"]), "(no keys)\n");
    assert_eq!(d.ok(&["keys", "s.db", "--prefix", "zz", "--json"]), "");
    // Asked for none, it lists none: the cache is not empty.
    assert_eq!(d.ok(&["keys", "s.db", "--limit", "0"]), "");
    assert_eq!(
        d.ok(&["keys", "s.db", "--sort", "size", "--limit", "0"]),
        ""
    );
}

#[test]
fn get_writes_the_bytes_to_stdout_or_a_file() {
    let d = sample();
    let r = d.run(&["get", "s.db", "-e", "bin\\x00\\xff"]);
    assert_eq!((r.code, r.stdout_bytes), (0, vec![1, 2]));
    d.ok(&["get", "s.db", "big", "-o", "big.out"]);
    assert_eq!(
        std::fs::read(d.path("big.out")).unwrap(),
        "x".repeat(1000).as_bytes()
    );
}

#[test]
fn get_of_a_missing_key_exits_1_naming_file_and_key() {
    let d = sample();
    let r = d.run(&["get", "s.db", "nope"]);
    assert_eq!(r.code, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "backlite: s.db: no live entry under key nope\n");
}

/// `get -o OUT` with an OUT it cannot write (a folder that is not there, a folder, a
/// name only a folder can have, a path through a file, a file its user may not write)
/// failed, exit 2, after its lookup had counted a hit (in
/// the file's lifetime counters and the entry's, which moves it up the eviction order),
/// though the value went nowhere. It fails before the lookup now, counting nothing.
#[test]
fn a_get_whose_out_cannot_be_written_counts_no_hit() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    std::fs::create_dir(d.path("folder")).unwrap();
    std::fs::write(d.path("read-only.txt"), "precious").unwrap();
    std::fs::set_permissions(d.path("read-only.txt"), PermissionsExt::from_mode(0o444)).unwrap();
    std::fs::write(d.path("file"), "").unwrap();
    let mut outs = vec!["nodir/x", "folder", "x/", "x/.", "file/", "file/y"];
    if common::as_root() {
        // nobody may read the cache, but not write read-only.txt (root's).
        std::fs::set_permissions(d.path("."), PermissionsExt::from_mode(0o777)).unwrap();
        std::fs::set_permissions(d.path("c.db"), PermissionsExt::from_mode(0o666)).unwrap();
    }
    outs.push("read-only.txt");
    let hits = || {
        let stats: serde_json::Value =
            serde_json::from_str(&d.ok(&["stats", "c.db", "--json"])).unwrap();
        let keys: serde_json::Value =
            serde_json::from_str(&d.ok(&["keys", "c.db", "--json"])).unwrap();
        (stats["lifetime"]["hits"].clone(), keys["hits"].clone())
    };
    for out in outs {
        let r = if out == "read-only.txt" {
            d.run_unprivileged(&["get", "c.db", "k", "-o", out])
        } else {
            d.run(&["get", "c.db", "k", "-o", out])
        };
        assert_eq!(r.code, 2, "{out}: {}", r.stderr);
        assert!(r.stderr.contains("cannot write"), "{}", r.stderr);
        assert_eq!(hits(), (json!(0), json!(0)), "{out}: a hit was counted");
    }
    assert_eq!(common::read(&d.path("read-only.txt")).unwrap(), b"precious");
    assert!(!d.path("nodir").exists());
    // The get that can write OUT counts its hit.
    d.ok(&["get", "c.db", "k", "-o", "out.txt"]);
    assert_eq!(hits(), (json!(1), json!(1)));
}

#[test]
fn set_reads_stdin_and_takes_an_expiry() {
    let d = Dir::new();
    let r = d.run_with_input(&["set", "n.db", "k"], b"from stdin");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "n.db", "k"]), "from stdin");
    d.ok(&["set", "n.db", "t", "v", "--expire", "1h30m"]);
    d.ok(&["set", "n.db", "gone", "v", "--expire", "0s"]);
    assert_eq!(
        normalise(&d.ok(&["keys", "n.db"])),
        r"      SIZE      AGE     LEFT     HITS  KEY
      10 B      <s>    never        1  k
       1 B      <s>    1h29m        0  t
"
    );
}

#[test]
fn delete_reports_what_it_found() {
    let d = sample();
    let r = d.run(&["delete", "s.db", "big", "nope", "later"]);
    assert_eq!(r.stdout, "deleted 2 of 3 keys (1 not found)\n");
    // A key not found is exit code 1, as for get.
    assert_eq!(r.code, 1);
    assert_eq!(r.stderr, "backlite: s.db: no live entry under key nope\n");
    assert_eq!(d.run(&["get", "s.db", "big"]).code, 1);
}

#[test]
fn clear_removes_every_entry() {
    let d = sample();
    assert_eq!(d.ok(&["clear", "s.db"]), "cleared 4 entries\n");
    assert_eq!(d.ok(&["keys", "s.db"]), "(no keys)\n");
}

#[test]
fn check_of_a_healthy_file_exits_0() {
    let d = sample();
    let expected = "\
file            s.db
integrity       ok
entries         4 checked, 0 damaged
orphan values   0
counters        ok (4 entries, 1008 B)
result          healthy
";
    assert_eq!(d.ok(&["check", "s.db"]), expected);
    let v = json_normalised(&d.ok(&["check", "s.db", "--json"]), &[]);
    assert_eq!(
        v,
        json!({
            "file": "s.db", "healthy": true, "repaired": false, "integrity_ok": true,
            "integrity_messages": [], "entries": 4, "damaged": 0, "orphan_values": 0,
            "recorded_count": 4, "recorded_total_size": 1008,
            "actual_count": 4, "actual_total_size": 1008,
        })
    );
}

#[test]
fn check_finds_a_damaged_value_exits_1_and_repair_fixes_it() {
    let d = sample();
    {
        let conn = rusqlite::Connection::open(d.path("s.db")).unwrap();
        conn.execute(
            "UPDATE entries SET crc = crc + 1 WHERE key = CAST('big' AS BLOB)",
            [],
        )
        .unwrap();
    }
    let r = d.run(&["check", "s.db"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "\
file            s.db
integrity       ok
entries         4 checked, 1 damaged
orphan values   0
counters        recorded 4 entries, 1008 B; found 4 entries: 3 sound (8 B), 1 damaged
result          damaged (run `backlite check --repair`)
"
    );
    let r = d.run(&["check", "s.db", "--repair", "--json"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    let v = json_normalised(&r.stdout, &[]);
    assert_eq!(
        (v["repaired"].clone(), v["damaged"].clone()),
        (json!(true), json!(1))
    );
    assert_eq!(d.run(&["check", "s.db"]).code, 0);
    assert_eq!(d.run(&["get", "s.db", "big"]).code, 1);
}

/// `check --repair` says on each line what it did: the damaged entries and orphans
/// removed, the counters rewritten (to the sound entries' figures). It gave the
/// check's findings alone, "result repaired" below them; and where the file counted
/// all 4 entries, one damaged, its counters line said "found 3 entries".
#[test]
fn check_repair_says_what_it_removed_and_rewrote() {
    let d = sample();
    let edit = |sql: &str| {
        let conn = rusqlite::Connection::open(d.path("s.db")).unwrap();
        conn.execute(sql, []).unwrap();
    };
    edit("UPDATE entries SET crc = crc + 1 WHERE key = CAST('big' AS BLOB)");
    let r = d.run(&["check", "s.db", "--repair"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "\
file            s.db
integrity       ok
entries         4 checked, 1 damaged (removed)
orphan values   0
counters        recorded 4 entries, 1008 B; found 4 entries: 3 sound (8 B), 1 damaged; \
rewritten to 3 entries, 8 B
result          repaired
"
    );
    edit("UPDATE entries SET state_count = state_count + 5");
    let r = d.run(&["check", "s.db", "--repair"]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    assert_eq!(
        r.stdout,
        "\
file            s.db
integrity       ok
entries         3 checked, 0 damaged
orphan values   0
counters        recorded 8 entries, 8 B; found 3 entries, 8 B; rewritten
result          repaired
"
    );
    assert_eq!(
        d.ok(&["check", "s.db"]),
        "\
file            s.db
integrity       ok
entries         3 checked, 0 damaged
orphan values   0
counters        ok (3 entries, 8 B)
result          healthy
"
    );
}

#[test]
fn vacuum_gives_space_back() {
    let d = Dir::new();
    let value = "v".repeat(4000);
    for i in 0..200 {
        d.ok(&["set", "v.db", &format!("k{i}"), &value]);
    }
    d.ok(&["clear", "v.db"]);
    let before = std::fs::metadata(d.path("v.db")).unwrap().len();
    let out = d.ok(&["vacuum", "v.db"]);
    let after = std::fs::metadata(d.path("v.db")).unwrap().len();
    assert!(after < before / 4, "{before} -> {after}: {out}");
    assert!(out.starts_with("vacuumed v.db: "), "{out}");
}

#[test]
fn export_writes_a_header_then_one_entry_a_line() {
    let d = sample();
    let r = d.run(&["export", "s.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "exported 4 entries from s.db\n");
    let lines: Vec<_> = r.stdout.lines().map(|l| json_normalised(l, &[])).collect();
    let big = "x".repeat(1000);
    assert_eq!(lines.len(), 5, "{}", r.stdout);
    assert_eq!(lines[0]["backlite_export"], json!(1));
    assert_eq!(lines[0]["schema_version"], json!(6));
    assert_eq!(
        json_normalised(&lines[0]["lifetime"].to_string(), &["since"]),
        json!({"hits": 2, "misses": 1, "evictions": 0, "expirations": 0, "since": "<n>"})
    );
    // Least recently used first: the order of sets, with the hit key last.
    assert_eq!(
        normalise(&r.stdout.lines().skip(1).collect::<Vec<_>>().join("\n")),
        format!(
            "\
{{\"expires_at\":null,\"hits\":0,\"key\":\"big\",\"set_at\":\"<time>\",\"value\":\"{big}\"}}
{{\"expires_at\":null,\"hits\":0,\"key_base64\":\"YmluAP8=\",\"set_at\":\"<time>\",\"value\":\"\\u0001\\u0002\"}}
{{\"expires_at\":\"<time>\",\"hits\":0,\"key\":\"later\",\"set_at\":\"<time>\",\"value\":\"v\"}}
{{\"expires_at\":\"<time>\",\"hits\":2,\"key\":\"greeting\",\"set_at\":\"<time>\",\"value\":\"hello\"}}"
        )
    );
}

#[test]
fn import_merges_and_reports() {
    let d = sample();
    let dump = "\
{\"key\":\"new\",\"value\":\"n\",\"hits\":5}
{\"key\":\"big\",\"value_base64\":\"AAE=\",\"expires_at\":null}

{\"key\":\"old\",\"value\":\"o\",\"expires_at\":\"2001-01-01T00:00:00Z\"}
";
    let r = d.run_with_input(&["import", "s.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "imported 2 entries into s.db; skipped 1 already expired\n"
    );
    assert_eq!(d.run(&["get", "s.db", "big"]).stdout_bytes, [0, 1]);
    assert_eq!(d.ok(&["get", "s.db", "greeting"]), "hello");
    let keys = normalise(&d.ok(&["keys", "s.db", "--prefix", "new"]));
    assert!(keys.ends_with("        5  new\n"), "{keys}");
}

/// A key that comes twice in a dump (dumps put end to end, `cat a.jsonl b.jsonl`) is
/// one entry: the count is of the entries the import leaves, not of its lines.
#[test]
fn import_counts_a_key_given_twice_once() {
    let d = sample();
    let dump = "\
{\"key\":\"k\",\"value\":\"1\"}
{\"key\":\"k\",\"value\":\"2\"}
{\"key\":\"greeting\",\"value\":\"3\"}
{\"key\":\"greeting\",\"value\":\"4\"}
{\"key\":\"gone\",\"value\":\"5\"}
{\"key\":\"gone\",\"value\":\"6\",\"expires_at\":\"2001-01-01T00:00:00Z\"}
";
    let before = d.ok(&["keys", "s.db"]).lines().count();
    let r = d.run_with_input(&["import", "s.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "imported 2 entries into s.db; skipped 1 already expired\n"
    );
    assert_eq!(d.ok(&["get", "s.db", "k"]), "2");
    assert_eq!(d.ok(&["get", "s.db", "greeting"]), "4");
    assert_eq!(d.run(&["get", "s.db", "gone"]).code, 1);
    // One new key (k); greeting was there before.
    assert_eq!(d.ok(&["keys", "s.db"]).lines().count(), before + 1);
}

#[test]
fn import_evicts_down_to_max_size() {
    let d = Dir::new();
    let dump: String = (0..10)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "v".repeat(100)))
        .collect();
    let r = d.run_with_input(&["import", "m.db", "--max-size", "512"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "imported 10 entries into m.db; evicted 5 to stay under max size\n"
    );
    // Least recently used go first: the first lines of the dump.
    assert_eq!(d.run(&["get", "m.db", "k4"]).code, 1);
    assert_eq!(d.run(&["get", "m.db", "k5"]).code, 0);
}

/// `max_size` belongs to each opener: without `--max-size`, `set` and `import` evict
/// nothing, however large the cache (a default limit below its size would delete every
/// entry above it: one `set` on a 10 GiB cache would have deleted 9 GiB).
#[test]
fn set_and_import_evict_nothing_without_max_size() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1234"]);
    d.ok(&["set", "c.db", "b", "1234"]);
    // A cache of 3 GiB, as far as the size counter says, without writing 3 GiB.
    {
        let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
        conn.execute(
            "UPDATE entries SET state_total_size = state_total_size + (3 << 30) \
             WHERE state_total_size IS NOT NULL",
            [],
        )
        .unwrap();
    }
    d.ok(&["set", "c.db", "c", "1234"]);
    let r = d.run_with_input(&["import", "c.db"], b"{\"key\":\"d\",\"value\":\"1234\"}\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stdout, "imported 1 entry into c.db\n");
    for key in ["a", "b", "c", "d"] {
        assert_eq!(d.ok(&["get", "c.db", key]), "1234", "{key} was evicted");
    }
    // With a limit given, it is the limit.
    d.ok(&["set", "c.db", "e", "1234", "--max-size", "8"]);
    assert_eq!(d.run(&["get", "c.db", "a"]).code, 1);
}

#[test]
fn zero_stats_starts_the_lifetime_counters_again() {
    let d = sample();
    assert_eq!(
        d.ok(&["zero-stats", "s.db"]),
        "zeroed the lifetime counters of s.db\n"
    );
    let v = json_normalised(&d.ok(&["stats", "s.db", "--json"]), &["since"]);
    assert_eq!(
        v["lifetime"],
        json!({"hits": 0, "misses": 0, "evictions": 0, "expirations": 0, "since": "<n>"})
    );
    assert_eq!(v["hit_ratio"], json!(null));
    d.ok(&["get", "s.db", "greeting"]);
    let out = normalise(&d.ok(&["stats", "s.db"]));
    assert!(
        out.contains("hit ratio            100.0% (1 hits, 0 misses)\n"),
        "{out}"
    );
}

#[test]
fn lifetime_counters_add_up_every_process_evictions_and_expirations() {
    let d = Dir::new();
    // Each `backlite` run is a process of its own: its hits and misses reach the
    // file when it closes.
    d.ok(&["set", "c.db", "a", "1234", "--max-size", "8"]);
    d.ok(&["set", "c.db", "b", "1234", "--max-size", "8"]);
    d.ok(&["set", "c.db", "c", "1234", "--max-size", "8"]); // evicts a
    d.ok(&["set", "c.db", "soon", "x", "--expire", "1ms"]);
    std::thread::sleep(std::time::Duration::from_millis(5));
    d.ok(&["set", "c.db", "d", "1"]); // removes the expired entry
    for key in ["b", "c", "c"] {
        d.ok(&["get", "c.db", key]);
    }
    assert_eq!(d.run(&["get", "c.db", "a"]).code, 1);
    let v = json_normalised(&d.ok(&["stats", "c.db", "--json"]), &["since"]);
    assert_eq!(
        v["lifetime"],
        json!({"hits": 3, "misses": 1, "evictions": 1, "expirations": 1, "since": "<n>"})
    );
    assert_eq!(v["hit_ratio"], json!(0.75));
}
