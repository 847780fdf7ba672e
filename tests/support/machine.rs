//! A "machine" of the remote tier's tests: a cache file of its own in the test's
//! folder, opened with options that name the shared remote, and what a test reads
//! from it.

#![allow(dead_code)]

use backlite::{Options, Storage};
use std::time::Duration;

/// Options with the remote at `url` and a timeout of one second: generous, so that a
/// loaded CI machine does not turn a slow answer into a miss.
pub fn remote_options(url: &str) -> Options {
    let mut o = Options::new();
    o.set_remote(Some(url)).unwrap();
    o.set_remote_timeout(Duration::from_secs(1)).unwrap();
    o
}

/// Opens `name` in `dir` with `o`.
pub fn machine(dir: &tempfile::TempDir, name: &str, o: &Options) -> Storage {
    Storage::open(dir.path().join(name), o).unwrap()
}

/// The value under `key`, or None on a miss.
pub fn get(s: &Storage, key: &[u8]) -> Option<Vec<u8>> {
    s.get(key).unwrap().map(|(v, _)| v)
}
