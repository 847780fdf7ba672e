//! "Machines" as child processes of a test binary: each runs the binary's `child` test
//! (which reads its role from BACKLITE_REMOTE_CHILD) with its own local file, the
//! shared remote's URL and a file that counts the computes of the whole test.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};

pub struct Machines {
    url: String,
    dir: PathBuf,
    /// One byte is appended per compute, by whichever child computes.
    pub counter: PathBuf,
}

impl Machines {
    /// Machines sharing the remote at `url`, with their files in `dir`.
    pub fn new(url: &str, dir: &Path) -> Machines {
        Machines {
            url: url.to_string(),
            dir: dir.to_path_buf(),
            counter: dir.join("computes"),
        }
    }

    /// Runs `role` in a new process with the local file `file` and `extra` variables.
    pub fn spawn(&self, role: &str, file: &str, extra: &[(&str, &str)]) -> Child {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["--exact", "child", "--nocapture", "--test-threads=1"])
            .env("BACKLITE_REMOTE_CHILD", role)
            .env("URL", &self.url)
            .env("FILE", self.dir.join(file))
            .env("COUNTER", &self.counter);
        for (k, v) in extra {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap()
    }

    /// Runs `role` and waits for it; true if it succeeded.
    pub fn run(&self, role: &str, file: &str) -> bool {
        self.spawn(role, file, &[]).wait().unwrap().success()
    }

    /// Runs `n` children of `role` at once, on two files in turn; true if all succeeded.
    pub fn run_on_two_files(&self, role: &str, n: usize) -> bool {
        let kids: Vec<Child> = (0..n)
            .map(|i| self.spawn(role, if i % 2 == 0 { "x.db" } else { "y.db" }, &[]))
            .collect();
        // Every child is waited for, also after one failed.
        let ok: Vec<bool> = kids
            .into_iter()
            .map(|mut k| k.wait().unwrap().success())
            .collect();
        ok.into_iter().all(|ok| ok)
    }

    /// How many computes the children ran.
    pub fn computes(&self) -> usize {
        std::fs::read(&self.counter).map_or(0, |c| c.len())
    }
}
