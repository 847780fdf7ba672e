//! Import, check and export stream: their peak memory does not grow with the file;
//! nor does `get`'s with the value.
//! The 1M-entry run takes minutes in a debug build, so it is ignored there and run in
//! release by tests/run_all.sh (`cargo test --release -p backlite-cli --test large --
//! --ignored --nocapture`); the same code runs on 20k entries in every `cargo test`.

mod common;

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Peak resident memory allowed to any of the three commands: a fraction of the 1M
/// dump (~100 MB) and of the file (~100 MB).
const PEAK_RSS_LIMIT_KB: i64 = 64 * 1024;

/// Runs `backlite args` with stdin/stdout from/to files; gives (exit code, peak RSS
/// in KiB, wall time), the RSS from the kernel's accounting of this one child.
fn measure(dir: &Path, args: &[&str], stdin: Option<&Path>, stdout: &Path) -> (i32, i64, Duration) {
    let start = Instant::now();
    // Reaped by wait4 below, which std does not see: that call gives its rusage.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(common::bin())
        .args(args)
        .current_dir(dir)
        .stdin(match stdin {
            Some(p) => Stdio::from(std::fs::File::open(p).unwrap()),
            None => Stdio::null(),
        })
        .stdout(Stdio::from(std::fs::File::create(stdout).unwrap()))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; the pid is our own child,
    // which std has not waited for.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    let elapsed = start.elapsed();
    assert!(libc::WIFEXITED(status), "backlite {args:?} was killed");
    (libc::WEXITSTATUS(status), usage.ru_maxrss, elapsed)
}

fn write_dump(path: &Path, n: u64) {
    let mut out = BufWriter::new(std::fs::File::create(path).unwrap());
    writeln!(out, "{{\"backlite_export\":1}}").unwrap();
    for i in 0..n {
        let expires = if i % 3 == 0 {
            "\"2099-01-01T00:00:00.000Z\""
        } else {
            "null"
        };
        writeln!(
            out,
            "{{\"key\":\"key-{i:07}\",\"value\":\"{}\",\"hits\":{},\"expires_at\":{expires}}}",
            format!("v{i:07}").repeat(4),
            i % 7
        )
        .unwrap();
    }
    out.flush().unwrap();
}

fn import_check_export_in_bounded_memory(n: u64) {
    let d = common::Dir::new();
    let dump = d.path("dump.jsonl");
    write_dump(&dump, n);
    let dir = d.tmp.path();
    let sink = d.path("stdout.txt");

    let (code, import_kb, import_t) = measure(dir, &["import", "big.db"], Some(&dump), &sink);
    assert_eq!(code, 0, "import");
    let (code, check_kb, check_t) = measure(dir, &["check", "big.db"], None, &sink);
    assert_eq!(code, 0, "check");
    let report = std::fs::read_to_string(&sink).unwrap();
    assert!(
        report.contains(&format!("{n} checked, 0 damaged")),
        "{report}"
    );
    let out = d.path("out.jsonl");
    let (code, export_kb, export_t) = measure(dir, &["export", "big.db"], None, &out);
    assert_eq!(code, 0, "export");

    // The same entries come back, in the order they went in.
    let original = std::fs::read_to_string(&dump).unwrap();
    let exported = std::fs::read_to_string(&out).unwrap();
    assert_eq!(exported.lines().count() as u64, n + 1);
    let strip = |line: &str| -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("expires_at");
        o.remove("set_at");
        v
    };
    for (a, b) in original.lines().zip(exported.lines()).skip(1).step_by(997) {
        assert_eq!(strip(a), strip(b));
    }

    let file_mb = std::fs::metadata(d.path("big.db")).unwrap().len() as f64 / 1e6;
    let dump_mb = std::fs::metadata(&dump).unwrap().len() as f64 / 1e6;
    println!("{n} entries: file {file_mb:.0} MB, dump {dump_mb:.0} MB");
    println!("{:<8}{:>12}{:>14}", "command", "time", "peak RSS");
    for (name, t, kb) in [
        ("import", import_t, import_kb),
        ("check", check_t, check_kb),
        ("export", export_t, export_kb),
    ] {
        println!(
            "{name:<8}{:>10.1} s{:>10.1} MiB",
            t.as_secs_f64(),
            kb as f64 / 1024.0
        );
        assert!(
            kb < PEAK_RSS_LIMIT_KB,
            "{name} of {n} entries peaked at {kb} KiB (limit {PEAK_RSS_LIMIT_KB})"
        );
    }
}

#[test]
fn import_check_export_of_20k_entries_stream() {
    import_check_export_in_bounded_memory(20_000);
}

#[test]
#[ignore = "minutes in a debug build: run_all.sh runs it in release"]
fn import_check_export_of_1m_entries_stay_in_bounded_memory() {
    import_check_export_in_bounded_memory(1_000_000);
}

/// A value kept in a file of its own goes out of `get` in chunks as it is read: peak
/// memory stays far below the value's size, to stdout and to `-o OUT` alike (the old
/// `get` held the whole value: 262 MiB of RSS for a 256 MiB value).
#[test]
#[ignore = "a 128 MiB value: run_all.sh runs it in release"]
fn get_export_and_import_of_a_128_mib_value_stay_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let size: u64 = 128 << 20;
    let value = d.join("value");
    {
        let mut out = BufWriter::new(std::fs::File::create(&value).unwrap());
        for i in 0..size / 4096 {
            out.write_all(&[(i % 251) as u8; 4096]).unwrap();
        }
        out.flush().unwrap();
    }
    let (code, _, _) = measure(
        d,
        &["set", "c.db", "big", "-"],
        Some(&value),
        &d.join("set.out"),
    );
    assert_eq!(code, 0);
    // A child's peak RSS counts what this process had resident when it forked, and the
    // other test here forks too: nothing large is ever held in this process.
    let outputs = [
        (&["get", "c.db", "big"][..], "stdout"),
        (&["get", "c.db", "big", "-o", "big.out"], "big.out"),
    ];
    for (i, (args, _)) in outputs.iter().enumerate() {
        let stdout = d.join(if i == 0 { "stdout" } else { "stdout-unused" });
        let (code, rss_kb, took) = measure(d, args, None, &stdout);
        println!("backlite {args:?}: peak RSS {rss_kb} KiB, {took:?}");
        assert_eq!(code, 0, "{args:?}");
        assert!(
            rss_kb < 32 * 1024,
            "{args:?}: peak RSS {rss_kb} KiB for a 128 MiB value"
        );
    }
    // Export holds the value once (the core reads a value file whole) and encodes it
    // into the output as it writes: below 1.5 times the value (3.7 times before).
    let (code, rss_kb, took) = measure(
        d,
        &["export", "c.db", "-o", "dump.jsonl"],
        None,
        &d.join("stdout-unused"),
    );
    println!("backlite export: peak RSS {rss_kb} KiB, {took:?}");
    assert_eq!(code, 0);
    assert!(
        rss_kb < (size as i64 / 1024) * 3 / 2,
        "export: peak RSS {rss_kb} KiB for a 128 MiB value"
    );
    // Import reads the line, and serde_json makes a string of the base64 in it (each
    // 4/3 of the value); the line goes before the value is decoded: below 3 times the
    // value (3.7 times when the line was kept).
    let (code, rss_kb, took) = measure(
        d,
        &["import", "n.db", "-i", "dump.jsonl"],
        None,
        &d.join("stdout-unused"),
    );
    println!("backlite import: peak RSS {rss_kb} KiB, {took:?}");
    assert_eq!(code, 0);
    assert!(
        rss_kb < (size as i64 / 1024) * 3,
        "import: peak RSS {rss_kb} KiB for a 128 MiB value"
    );
    let (code, _, _) = measure(
        d,
        &["get", "n.db", "big", "-o", "imported.out"],
        None,
        &d.join("stdout-unused"),
    );
    assert_eq!(code, 0);
    for written in ["stdout", "big.out", "imported.out"] {
        assert!(
            same_bytes(&value, &d.join(written)),
            "{written}: the bytes differ"
        );
    }
}

/// Whether two files hold the same bytes, read a MiB at a time.
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (mut a, mut b) = (
        std::io::BufReader::new(std::fs::File::open(a).unwrap()),
        std::io::BufReader::new(std::fs::File::open(b).unwrap()),
    );
    let (mut x, mut y) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = a.read(&mut x).unwrap();
        if n == 0 {
            return b.read(&mut y).unwrap() == 0;
        }
        if b.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}
