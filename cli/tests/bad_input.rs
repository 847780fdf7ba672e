//! Bad input gets one line on stderr naming the file and the cause, exit code 2, and
//! leaves every file as it was.

mod common;

use common::{read, Dir};

#[test]
fn a_missing_file_is_reported_and_not_created() {
    let d = Dir::new();
    for args in [
        &["stats", "none.db"][..],
        &["keys", "none.db"],
        &["get", "none.db", "k"],
        &["delete", "none.db", "k"],
        &["clear", "none.db"],
        &["check", "none.db"],
        &["vacuum", "none.db"],
        &["export", "none.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}");
        assert_eq!(r.stderr, "backlite: none.db: no such file\n", "{args:?}");
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            read(&d.path("none.db")).is_none(),
            "{args:?} created the file"
        );
    }
}

#[test]
fn a_file_that_is_not_a_cache_is_left_byte_identical() {
    let d = Dir::new();
    let text = d.path("notes.txt");
    std::fs::write(&text, "not a cache, but precious\n".repeat(10)).unwrap();
    let other = d.path("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
            .unwrap();
    }
    for (path, name, why) in [
        (&text, "notes.txt", "not a SQLite database"),
        (
            &other,
            "other.sqlite",
            "a SQLite database of another program",
        ),
    ] {
        let before = read(path).unwrap();
        for args in [
            &["stats", name][..],
            &["set", name, "k", "v"],
            &["import", name],
            &["check", name, "--repair"],
            &["vacuum", name],
            &["clear", name],
        ] {
            let r = d.run(args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert_eq!(
                r.stderr,
                format!(
                    "backlite: {name} is not a BackLite cache ({why}); it was left untouched\n"
                ),
                "{args:?}"
            );
            assert_eq!(read(path).unwrap(), before, "{args:?} changed {name}");
            for suffix in ["-wal", "-shm", "-journal"] {
                assert!(read(&d.path(&format!("{name}{suffix}"))).is_none());
            }
        }
    }
}

#[test]
fn a_directory_is_an_io_error() {
    let d = Dir::new();
    std::fs::create_dir(d.path("dir.db")).unwrap();
    let r = d.run(&["stats", "dir.db"]);
    assert_eq!(r.code, 2);
    assert_eq!(
        r.stderr,
        "backlite: dir.db is a directory, not a cache file\n"
    );
}

#[test]
fn bad_durations_and_sizes_are_usage_errors() {
    let d = Dir::new();
    let r = d.run(&["set", "n.db", "k", "v", "--expire", "10 minutes"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .contains("bad duration \"10 minutes\": unknown unit \"minutes\""),
        "{}",
        r.stderr
    );
    let r = d.run(&["set", "n.db", "k", "v", "--expire", "10"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("a unit is missing"), "{}", r.stderr);
    let r = d.run(&["set", "n.db", "k", "v", "--max-size", "lots"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bad size \"lots\""), "{}", r.stderr);
    let r = d.run(&["stats"]);
    assert_eq!(r.code, 2);
    assert!(
        read(&d.path("n.db")).is_none(),
        "a usage error created the file"
    );
}

#[test]
fn a_bad_escape_in_a_key_is_a_usage_error() {
    let d = Dir::new();
    d.ok(&["set", "e.db", "k", "v"]);
    let r = d.run(&["get", "e.db", "-e", "k\\q"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with("backlite: e.db: bad escape \\q"),
        "{}",
        r.stderr
    );
}

/// The lines of a dump whose line `bad` (1-based) is `bad_line`.
fn dump_with(bad: usize, bad_line: &str) -> String {
    (1..=5)
        .map(|i| {
            if i == bad {
                format!("{bad_line}\n")
            } else {
                format!("{{\"key\":\"k{i}\",\"value\":\"v{i}\"}}\n")
            }
        })
        .collect()
}

#[test]
fn a_bad_json_line_is_reported_with_its_number_and_nothing_is_imported() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "kept", "old"]);
    d.ok(&["set", "c.db", "k1", "old"]);
    let cases = [
        (
            4,
            "{\"key\":\"k4\",",
            "not valid JSON at column 12: EOF while parsing a value",
        ),
        (3, "[1,2]", "not a JSON object"),
        (
            2,
            "{\"value\":\"v\"}",
            "\"key\" (or \"key_base64\") is missing",
        ),
        (
            5,
            "{\"key\":\"k\",\"value_base64\":\"!!\"}",
            "\"value_base64\" is not valid base64",
        ),
        (
            3,
            "{\"key\":\"k\",\"value\":\"v\",\"expires_at\":\"tomorrow\"}",
            "bad time \"tomorrow\"",
        ),
        (
            2,
            "{\"key\":\"k\",\"value\":\"v\",\"hits\":-1}",
            "\"hits\" must be a whole number >= 0",
        ),
        (
            4,
            "{\"key\":\"k\",\"value\":\"v\",\"colour\":\"red\"}",
            "unknown field \"colour\"",
        ),
    ];
    for (line, text, cause) in cases {
        let r = d.run_with_input(&["import", "c.db"], dump_with(line, text).as_bytes());
        assert_eq!(r.code, 2, "{text}");
        assert!(
            r.stderr
                .starts_with(&format!("backlite: c.db: line {line} of <stdin>: {cause}")),
            "{text}: {}",
            r.stderr
        );
        assert!(
            r.stderr.ends_with("; nothing was imported\n"),
            "{}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1);
        // The lines before the bad one were not kept, and nothing was replaced.
        assert_eq!(
            d.run(&["get", "c.db", "k2"]).code,
            1,
            "{text}: half imported"
        );
        assert_eq!(d.ok(&["get", "c.db", "k1"]), "old");
        assert_eq!(d.ok(&["get", "c.db", "kept"]), "old");
    }
}

/// A line that names a field twice is ambiguous: JSON parsers differ on which one
/// counts (serde_json, and so the import, silently took the last; `jq` does too, other
/// tools the first), so the import refuses it rather than store a value the line may
/// not mean. Also inside the header's `lifetime`.
#[test]
fn a_field_given_twice_on_a_line_is_refused_and_nothing_is_imported() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "kept", "old"]);
    let cases = [
        (2, r#"{"key":"k","value":"x","value":"y"}"#, "value"),
        (3, r#"{"key":"a","key":"b","value":"v"}"#, "key"),
        (4, r#"{"key":"k","value":"v","hits":1,"hits":2}"#, "hits"),
        (
            1,
            r#"{"backlite_export":1,"lifetime":{"hits":1,"hits":5}}"#,
            "hits",
        ),
    ];
    let lifetime = || {
        let stats = d.ok(&["stats", "c.db", "--json"]);
        serde_json::from_str::<serde_json::Value>(&stats).unwrap()["lifetime"].clone()
    };
    for (line, text, field) in cases {
        let before = lifetime();
        let r = d.run_with_input(&["import", "c.db"], dump_with(line, text).as_bytes());
        assert_eq!(lifetime(), before, "{text}: counters merged");
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        assert!(
            r.stderr.starts_with(&format!(
                "backlite: c.db: line {line} of <stdin>: not valid JSON at column "
            )) && r
                .stderr
                .contains(&format!("field \"{field}\" is given twice")),
            "{text}: {}",
            r.stderr
        );
        assert_eq!(r.stderr.lines().count(), 1);
        for k in ["k1", "k2", "k5", "k", "a", "b"] {
            assert_eq!(d.run(&["get", "c.db", k]).code, 1, "{text}: {k} imported");
        }
        assert_eq!(d.ok(&["get", "c.db", "kept"]), "old");
    }
}

#[test]
fn a_value_over_max_size_stops_the_import_at_its_line() {
    let d = Dir::new();
    let dump = format!(
        "{{\"key\":\"a\",\"value\":\"1\"}}\n{{\"key\":\"b\",\"value\":\"{}\"}}\n",
        "x".repeat(100)
    );
    let r = d.run_with_input(&["import", "m.db", "--max-size", "50"], dump.as_bytes());
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.starts_with(
            "backlite: m.db: line 2 of <stdin>: a value of 100 bytes is larger than max_size"
        ),
        "{}",
        r.stderr
    );
    // Nothing was imported: the file it was to create is not there.
    assert!(read(&d.path("m.db")).is_none());
}

#[test]
fn an_unreadable_import_input_names_it() {
    let d = Dir::new();
    let r = d.run(&["import", "c.db", "-i", "missing.jsonl"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr
            .starts_with("backlite: missing.jsonl: cannot open: "),
        "{}",
        r.stderr
    );
    assert!(read(&d.path("c.db")).is_none());
}

/// A dump with a key or value of a lone UTF-16 surrogate escape (`\udcff`: what Python's
/// json.dumps writes for a byte that is not UTF-8 in a file name it decoded with
/// surrogateescape) was refused with serde's words alone, "lone leading surrogate in
/// hex escape" or "unexpected end of hex escape", which say neither what is wrong with
/// the dump nor how to write such bytes. The line says both now; nothing is imported.
#[test]
fn a_lone_surrogate_escape_is_refused_with_the_way_to_write_such_bytes() {
    let d = Dir::new();
    for line in [
        r#"{"key":"\udcff","value":"x"}"#,
        r#"{"key":"k","value":"a\uD800"}"#,
        r#"{"key":"k","value":"\ud800\u0041"}"#,
    ] {
        let r = d.run_with_input(&["import", "c.db"], format!("{line}\n").as_bytes());
        assert_eq!(r.code, 2, "{line}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr.contains("surrogate") && r.stderr.contains("_base64"),
            "{line}: {}",
            r.stderr
        );
        assert!(read(&d.path("c.db")).is_none(), "{line}: made c.db");
    }
    // A hex escape cut short is not called a surrogate.
    let r = d.run_with_input(
        &["import", "c.db"],
        b"{\"key\":\"\\u12\",\"value\":\"x\"}\n",
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(!r.stderr.contains("_base64"), "{}", r.stderr);
}

/// `import new.db -i old.db`, export's direction mistaken, said only "line 1 of old.db:
/// not valid JSON at column 1: expected value". It says that old.db is a cache and how
/// to copy its entries; nothing is made or changed.
#[test]
fn an_import_from_a_cache_says_it_is_a_cache_not_a_dump() {
    let d = Dir::new();
    d.ok(&["set", "old.db", "k", "v"]);
    d.ok(&["set", "into.db", "k2", "v2"]);
    let old = read(&d.path("old.db"));
    for target in ["new.db", "into.db"] {
        let before = read(&d.path(target));
        let r = d.run(&["import", target, "-i", "old.db"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
        assert!(
            r.stderr
                .contains("old.db: it is a BackLite cache, not a dump")
                && r.stderr.contains(&format!(
                    "backlite export old.db | backlite import {target}"
                )),
            "{}",
            r.stderr
        );
        assert_eq!(read(&d.path(target)), before, "{target} changed");
        assert_eq!(read(&d.path("old.db")), old);
    }
}

/// `import new.db < old.db`, a cache on stdin, said "line 1 of <stdin>: not valid JSON at
/// column 1: expected value". It says that the input is a cache and how to copy its
/// entries, also for a cache whose header holds a line end (a page count of 10, so that
/// its first line is shorter than the header); nothing is made or changed.
#[test]
fn a_cache_on_stdin_is_said_to_be_a_cache_not_a_dump() {
    let d = Dir::new();
    d.ok(&["set", "into.db", "k2", "v2"]);
    let mut caches = vec![];
    // Values until the file has 10 pages of 4 KiB: the header's page count is then 0x0a.
    let mut n = 0;
    while caches.len() < 2 {
        d.ok(&["set", "old.db", &format!("k{n}"), &"v".repeat(500)]);
        d.ok(&["vacuum", "old.db"]);
        n += 1;
        let cache = read(&d.path("old.db")).unwrap();
        let newline = cache[..72].contains(&b'\n');
        if caches.is_empty() || (newline && caches.len() == 1) {
            caches.push(cache);
        }
        assert!(n < 200, "no cache of a header with a line end");
    }
    assert!(!caches[0][..72].contains(&b'\n'));
    for cache in &caches {
        for target in ["new.db", "into.db"] {
            let before = read(&d.path(target));
            let r = d.run_with_input(&["import", target], cache);
            assert_eq!(r.code, 2, "{}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
            assert!(
                r.stderr
                    .contains("<stdin>: it is a BackLite cache, not a dump")
                    && r.stderr
                        .contains(&format!("backlite export CACHE | backlite import {target}")),
                "{}",
                r.stderr
            );
            assert_eq!(read(&d.path(target)), before, "{target} changed");
        }
    }
    // Another SQLite database is said to be one.
    let mut other = caches[0].clone();
    other[68..72].copy_from_slice(&[0; 4]);
    let r = d.run_with_input(&["import", "new.db"], &other);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("<stdin>: it is an SQLite database, not a dump"),
        "{}",
        r.stderr
    );
    assert_eq!(read(&d.path("new.db")), None);
}

/// `backlite ARGS` started with its stdin and stdout closed (`<&- >&-`).
fn without_stdin_and_stdout(d: &Dir, args: &[&str]) -> (i32, String) {
    use std::os::unix::process::CommandExt;
    let mut command = d.command(args);
    command.stdout(std::process::Stdio::inherit());
    // SAFETY: close() is async-signal-safe, as a pre_exec hook must be.
    unsafe {
        command.pre_exec(|| {
            libc::close(0);
            libc::close(1);
            Ok(())
        });
    }
    let out = command.output().unwrap();
    (
        out.status.code().expect("exited, not killed"),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rust's runtime puts /dev/null where a program was started without stdin or stdout,
/// and its stdout takes a write that fails EBADF for one that succeeded: `get >&-`
/// counted a hit, delivered nothing and exited 0, `stats >&-` and `export >&-` said
/// nothing of their output gone, and `set <&-` stored an empty value.
#[test]
fn a_closed_stdout_or_stdin_is_an_error_and_no_hit_is_counted() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "hello"]);
    let hits = || {
        let stats: serde_json::Value =
            serde_json::from_str(&d.ok(&["stats", "c.db", "--json"])).unwrap();
        stats["lifetime"]["hits"].as_u64().unwrap()
    };
    assert_eq!(
        without_stdin_and_stdout(&d, &["get", "c.db", "k"]),
        (
            2,
            "backlite: c.db: cannot write to stdout: Bad file descriptor (os error 9)\n".into()
        )
    );
    assert_eq!(hits(), 0, "a value that went nowhere counted as a hit");
    for args in [
        &["stats", "c.db"][..],
        &["stats", "c.db", "--json"],
        &["keys", "c.db"],
        &["check", "c.db"],
        &["export", "c.db"],
        &["--version"],
    ] {
        let (code, stderr) = without_stdin_and_stdout(&d, args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("cannot write to stdout: Bad file descriptor"),
            "{args:?}: {stderr}"
        );
    }
    let (code, stderr) = without_stdin_and_stdout(&d, &["set", "c.db", "k"]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            2,
            "backlite: c.db: cannot read stdin: Bad file descriptor (os error 9)\n"
        )
    );
    let (code, stderr) = without_stdin_and_stdout(&d, &["import", "new.db"]);
    assert_eq!(
        (code, stderr.as_str()),
        (
            2,
            "backlite: new.db: cannot read <stdin>: Bad file descriptor (os error 9)\n"
        )
    );
    assert!(read(&d.path("new.db")).is_none());
    assert_eq!(d.ok(&["get", "c.db", "k"]), "hello");
}

/// stdout that is the cache, one of its files or another cache (`>> c.db`, `1<> c.db`)
/// is refused as an `-o OUT` there is, before anything is written: `export c.db 1<>
/// c.db` wrote the dump over the cache it read, exit 0, and c.db was no cache after.
#[test]
fn a_stdout_that_is_a_cache_file_is_refused() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    d.ok(&["set", "other.db", "k", "v"]);
    let before = read(&d.path("other.db"));
    let into = |name: &str, append: bool, args: &[&str]| {
        let stdout = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .append(append)
            .open(d.path(name))
            .unwrap();
        let out = d
            .command(args)
            .stdout(stdout)
            .stderr(std::process::Stdio::piped())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (name, append, args) in [
        ("c.db", false, &["export", "c.db"][..]),
        ("c.db", true, &["stats", "c.db"]),
        ("c.db", true, &["get", "c.db", "k"]),
        ("other.db", true, &["export", "c.db"]),
    ] {
        let (code, stderr) = into(name, append, args);
        assert_eq!(code, Some(2), "{args:?} into {name}: {stderr}");
        assert!(
            stderr.starts_with("backlite: c.db: will not write the output")
                && stderr.contains("stdout: it is"),
            "{args:?} into {name}: {stderr}"
        );
    }
    assert_eq!(read(&d.path("other.db")), before);
    assert_eq!(d.ok(&["get", "c.db", "k"]), "v");
    assert!(d
        .ok(&["check", "c.db"])
        .ends_with("result          healthy\n"));
}
