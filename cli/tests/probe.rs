//! What an operator who has read only the issue and the README tries: outputs aimed at
//! the cache itself, files that are not caches, `-` for stdin/stdout, closed pipes,
//! usage errors, sizes and durations at their edges, prefixes with LIKE's characters,
//! read-only files and files another process is writing.

mod common;

use common::{read, run_in, Dir};
use std::io::Read as _;
use std::process::{Command, Stdio};

/// One line on stderr, starting `backlite: ` and naming `name`.
fn one_line_naming(stderr: &str, name: &str) {
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(stderr.starts_with("backlite: "), "{stderr:?}");
    assert!(stderr.contains(name), "does not name {name}: {stderr:?}");
}

fn json_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn an_output_is_never_written_over_the_cache_or_its_log() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    for args in [
        &["export", "c.db", "-o", "c.db"][..],
        &["get", "c.db", "k", "-o", "c.db"],
        &["get", "c.db", "k", "-o", "./c.db"],
        &["export", "c.db", "-o", "c.db-wal"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
        assert_eq!(d.ok(&["get", "c.db", "k"]), "v", "{args:?}");
        assert_eq!(d.run(&["check", "c.db"]).code, 0, "{args:?}");
    }
    // A link to the cache under another name is the cache too.
    std::os::unix::fs::symlink("c.db", d.path("alias")).unwrap();
    let r = d.run(&["export", "c.db", "-o", "alias"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "c.db", "k"]), "v");
}

#[test]
fn a_dash_is_stdout_for_outputs_and_stdin_for_inputs() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "value"]);
    assert_eq!(d.ok(&["get", "c.db", "k", "-o", "-"]), "value");
    let dump = d.ok(&["export", "c.db", "-o", "-"]);
    assert_eq!(dump.lines().count(), 2, "{dump}");
    let r = d.run_with_input(&["import", "n.db", "-i", "-"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "n.db", "k"]), "value");
    assert!(!d.path("-").exists(), "a file named - was made");
}
