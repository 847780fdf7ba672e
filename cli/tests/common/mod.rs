//! Runs the `backlite` binary as a user would, and makes its output comparable.
#![allow(dead_code)] // Each test file uses a part.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stdout_bytes: Vec<u8>,
    pub stderr: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_backlite")
}

/// Runs `backlite args...` in `dir` with `stdin` as its input.
pub fn run_in(dir: &Path, args: &[&str], stdin: &[u8]) -> Run {
    let mut child = Command::new(bin())
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the backlite binary runs");
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    Run {
        code: out.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stdout_bytes: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A temporary folder for one test, with `run` relative to it.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    pub fn run(&self, args: &[&str]) -> Run {
        run_in(self.tmp.path(), args, b"")
    }

    pub fn run_with_input(&self, args: &[&str], stdin: &[u8]) -> Run {
        run_in(self.tmp.path(), args, stdin)
    }

    /// `backlite args...` in this folder, to spawn as the test needs: stdin empty
    /// (`/dev/null`), stdout and stderr as the test sets them, and Ctrl-C, SIGTERM and
    /// SIGHUP ending the process as from a terminal (a test may run where they are
    /// ignored, as in a shell's background job, and that is inherited).
    pub fn command<S: AsRef<std::ffi::OsStr>>(&self, args: impl IntoIterator<Item = S>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut command = Command::new(bin());
        command
            .args(args)
            .current_dir(self.tmp.path())
            .stdin(Stdio::null());
        // SAFETY: signal() is async-signal-safe, as a pre_exec hook must be.
        unsafe {
            command.pre_exec(|| {
                for s in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                    libc::signal(s, libc::SIG_DFL);
                }
                Ok(())
            });
        }
        command
    }

    /// `backlite args...` in this folder as a user whom permissions bind: this one, or
    /// when the tests run as root (who may read and write anything), nobody (65534),
    /// with no groups. Such a test gives nobody the folder and files it needs.
    pub fn run_unprivileged(&self, args: &[&str]) -> Run {
        if !as_root() {
            return self.run(args);
        }
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .unwrap();
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stdout_bytes: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed, and gives its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "backlite {args:?} failed: {}", r.stderr);
        r.stdout
    }
}

/// The copies of OUT a command writes beside it before they become OUT, left in d.
pub fn copies_beside(d: &Dir, out: &str) -> Vec<String> {
    let prefix = format!(".{out}.");
    std::fs::read_dir(d.path("."))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// Whether this machine has /dev/full (a device every write to fails with ENOSPC).
pub fn have_dev_full() -> bool {
    use std::os::unix::fs::FileTypeExt;
    let here = std::fs::metadata("/dev/full").is_ok_and(|m| m.file_type().is_char_device());
    if !here {
        eprintln!("SKIPPED: no /dev/full here");
    }
    here
}

/// Runs the command in `d` with its stdout on /dev/full: its exit code and stderr.
pub fn into_dev_full(d: &Dir, args: &[&str]) -> (Option<i32>, String) {
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full");
    let out = d
        .command(args)
        .stdout(full.unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code(), stderr)
}

/// Whether the tests run as root.
pub fn as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Durations under an hour without hours (`850ms`, `3s`, `1m5s`: ages) depend on how
/// fast the test runs: each becomes `<s>`, right-aligned in the same columns.
/// Absolute times become `<time>`. (Tests use expiries of hours or days, whose
/// minutes are stable.)
pub fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        out.push_str(&normalise_line(line));
    }
    out
}

fn is_timestamp(s: &[u8]) -> bool {
    let template = b"0000-00-00T00:00:00.000Z";
    s.len() >= template.len()
        && template.iter().zip(s).all(|(t, c)| {
            if *t == b'0' {
                c.is_ascii_digit()
            } else {
                t == c
            }
        })
}

/// The length of `(\d+m)?\d+(ms|s)` at the start of `b`, ending a word.
fn short_duration(b: &[u8]) -> Option<usize> {
    let digits = |at: usize| b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
    let word_ends = |at: usize| at >= b.len() || !b[at].is_ascii_alphanumeric();
    let mut at = digits(0);
    if at > 0 && b.get(at) == Some(&b'm') && b.get(at + 1).is_some_and(u8::is_ascii_digit) {
        at += 1 + digits(at + 1);
    }
    if at == 0 {
        return None;
    }
    if b[at..].starts_with(b"ms") && word_ends(at + 2) {
        Some(at + 2)
    } else if b[at..].starts_with(b"s") && word_ends(at + 1) {
        Some(at + 1)
    } else {
        None
    }
}

fn normalise_line(line: &str) -> String {
    let b = line.as_bytes();
    let mut out: Vec<u8> = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if is_timestamp(&b[i..]) {
            out.extend_from_slice(b"<time>");
            i += 24;
            continue;
        }
        let at_word_start = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if at_word_start && b[i].is_ascii_digit() {
            if let Some(len) = short_duration(&b[i..]) {
                // In a table column (two spaces or more before it), take back the
                // spaces and right-align `<s>` in the same width.
                let spaces = out.iter().rev().take_while(|&&c| c == b' ').count();
                if spaces >= 2 {
                    out.truncate(out.len() - spaces);
                    let pad = (len + spaces).saturating_sub(3).max(1);
                    out.resize(out.len() + pad, b' ');
                }
                out.extend_from_slice(b"<s>");
                i += len;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Parses one JSON document and replaces the values of `volatile` fields (anywhere
/// in it) with `"<n>"` after checking that each is a number or null.
pub fn json_normalised(text: &str, volatile: &[&str]) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    fn walk(v: &mut serde_json::Value, volatile: &[&str]) {
        match v {
            serde_json::Value::Object(o) => {
                for (k, x) in o.iter_mut() {
                    if volatile.contains(&k.as_str()) {
                        assert!(x.is_number() || x.is_null() || x.is_string(), "{k}: {x}");
                        if !x.is_null() {
                            *x = serde_json::Value::String("<n>".into());
                        }
                    } else {
                        walk(x, volatile);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, volatile)),
            _ => {}
        }
    }
    walk(&mut v, volatile);
    v
}

/// A file's bytes, or `None` when it does not exist.
pub fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

/// Waits for a state of a child (not for a time), polling `state`; fails the test
/// naming `what` after two minutes, far past any state a test waits for.
pub fn wait_until(what: &str, mut state: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while !state() {
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// How a child whose stderr is piped ended, and what it wrote there.
pub fn ended(child: &mut std::process::Child) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr piped")
        .read_to_string(&mut stderr)
        .unwrap();
    (child.wait().unwrap(), stderr)
}
