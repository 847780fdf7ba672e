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
fn an_empty_file_is_not_a_cache_to_commands_that_do_not_store() {
    let d = Dir::new();
    std::fs::write(d.path("empty.db"), b"").unwrap();
    for args in [
        &["stats", "empty.db"][..],
        &["stats", "empty.db", "--json"],
        &["keys", "empty.db"],
        &["get", "empty.db", "k"],
        &["delete", "empty.db", "k"],
        &["clear", "empty.db"],
        &["zero-stats", "empty.db"],
        &["check", "empty.db"],
        &["check", "empty.db", "--repair"],
        &["vacuum", "empty.db"],
        &["export", "empty.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "empty.db");
        assert!(r.stderr.contains("not a BackLite cache"), "{}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            read(&d.path("empty.db")).unwrap().is_empty(),
            "{args:?} changed it"
        );
        for suffix in ["-wal", "-shm", "-journal", ".values"] {
            assert!(
                !d.path(&format!("empty.db{suffix}")).exists(),
                "{args:?} made {suffix}"
            );
        }
    }
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

#[test]
fn an_export_into_a_pipe_closed_early_stops_quietly() {
    let d = Dir::new();
    let dump: String = (0..4000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "x".repeat(100)))
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    for args in [
        &["export", "c.db"][..],
        &["keys", "c.db"],
        &["keys", "c.db", "--json"],
    ] {
        // `backlite export c.db | head -c 10`: the reader goes after 10 bytes, with
        // far more than a pipe's buffer still to come.
        let mut child = Command::new(common::bin())
            .args(args)
            .current_dir(d.tmp.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut head = [0u8; 10];
        child.stdout.take().unwrap().read_exact(&mut head).unwrap();
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
    }
}

#[test]
fn usage_errors_are_one_line_and_name_the_file_they_are_about() {
    let d = Dir::new();
    for (args, names) in [
        (&["set", "c.db", "k", "v", "--expire", "10min"][..], "c.db"),
        (&["set", "c.db", "k", "v", "--expire", "garbage"], "c.db"),
        (&["set", "c.db", "k", "v", "--max-size", "lots"], "c.db"),
        (&["stats", "c.db", "--max-size", "1e30 GiB"], "c.db"),
        (&["set", "c.db", "k", "v", "--policy", "random"], "c.db"),
        (&["stats", "c.db", "--bogus"], "--bogus"),
        (&["bogus", "c.db"], "bogus"),
        (&["keys", "c.db", "--sort", "colour"], "colour"),
        (&["keys", "c.db", "--limit", "-1"], "-1"),
        (&["stats"], "FILE"),
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, names);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(read(&d.path("c.db")).is_none(), "{args:?} made the file");
    }
    // Help and version are not errors.
    for args in [&["--help"][..], &["--version"], &["help", "keys"]] {
        let r = d.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty());
    }
}

#[test]
fn every_subcommand_has_help() {
    let d = Dir::new();
    for sub in [
        "stats",
        "keys",
        "get",
        "set",
        "delete",
        "clear",
        "zero-stats",
        "check",
        "vacuum",
        "export",
        "import",
    ] {
        let r = d.run(&[sub, "--help"]);
        assert_eq!(r.code, 0, "{sub}: {}", r.stderr);
        assert!(
            r.stdout.contains(&format!("backlite {sub}")),
            "{sub}: {}",
            r.stdout
        );
        // Every flag says what it does: on its line, or (clap's long form) on the next.
        let lines: Vec<&str> = r.stdout.lines().map(str::trim_start).collect();
        for (i, line) in lines.iter().enumerate() {
            let flag = line.starts_with('-')
                && line
                    .as_bytes()
                    .get(1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'-');
            if flag && !line.contains("  ") {
                let next = lines.get(i + 1).copied().unwrap_or("");
                assert!(
                    !next.is_empty() && !next.starts_with('-'),
                    "{sub}: undocumented flag: {line}"
                );
            }
        }
    }
}
