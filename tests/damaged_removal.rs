//! A large value a read finds damaged at its end is removed without being read again
//! (issue 16: streaming reads in bounded library memory, a damaged value a miss that is
//! removed): the removal compares the entry's row with the one the read saw, so a
//! value set meanwhile by another writer is kept.

mod common;

use backlite::{Expiration, Options, Part, Storage, Streamed};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

const MIB: usize = 1 << 20;

/// Where the value is kept: a file of its own (threshold 1 MiB), or `blobs` (never in
/// a file).
fn options(in_file: bool) -> Options {
    let mut o = Options::new();
    o.set_file_threshold(in_file.then_some(MIB as u64)).unwrap();
    o
}

/// A folder of its own for a cache `c.db`, and the options of `options(in_file)`.
fn a_cache(in_file: bool) -> (tempfile::TempDir, std::path::PathBuf, Options) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    (dir, path, options(in_file))
}

/// Damages the last byte of the value under `k` in the closed cache at `path`.
fn damage_the_end(path: &Path, in_file: bool) {
    if in_file {
        let file = &common::value_files(path)[0];
        let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
        let at = common::last_value_byte(file);
        std::os::unix::fs::FileExt::write_all_at(&f, &[0xa5], at).unwrap();
    } else {
        common::damage_blob(path);
    }
}

/// The child's part of `a_damaged_large_value_is_removed_in_bounded_memory`, alone in
/// its process so that no other test's memory counts: a 64 MiB value, damaged at its
/// end, read through `get_chunks`; the peak RSS (VmHWM, reset first) grows by far less
/// than the value.
#[test]
fn child_reads_a_damaged_large_value() {
    let Ok(place) = std::env::var("BACKLITE_DAMAGED_CHILD") else {
        return; // run by its parent only
    };
    let in_file = place == "file";
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    {
        let s = Storage::open(&path, &options(in_file)).unwrap();
        s.set(b"k", &vec![0x5a; 64 * MIB], Expiration::Never)
            .unwrap();
    }
    damage_the_end(&path, in_file);
    let s = Arc::new(Storage::open(&path, &options(in_file)).unwrap());
    common::reset_peak_rss();
    let base = common::current_rss_kib();
    let mut seen = 0;
    if place == "reader" {
        // A blob pulled through a reader, 1 MiB at a time, to its damaged end.
        let mut r = s.open_reader(b"k").unwrap().expect("opened");
        let mut buf = vec![0; MIB];
        loop {
            match r.read_part(&mut buf).unwrap() {
                Part::Bytes(0) => panic!("a damaged value read as sound"),
                Part::Bytes(n) => seen += n,
                Part::Damaged => break,
            }
        }
    } else {
        let got = s
            .get_chunks(b"k", |c| {
                seen += c.len();
                true
            })
            .unwrap();
        // Chunks went to the visitor: it hears that they are to be dropped.
        assert_eq!(got, Some(Streamed::Damaged));
    }
    let grown = common::peak_rss_kib().saturating_sub(base);
    println!("{place}: {seen} bytes handed over, then damaged; RSS grew by {grown} KiB");
    assert!(!s.contains(b"k").unwrap(), "{place}: the entry is removed");
    assert_eq!(s.stats().unwrap().count, 0);
    assert!(grown < 16 * 1024, "{place}: grew by {grown} KiB");
}

#[test]
fn a_damaged_large_value_is_removed_in_bounded_memory() {
    for place in ["file", "blob", "reader"] {
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reads_a_damaged_large_value",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("BACKLITE_DAMAGED_CHILD", place)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{text}{}", String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "{place}: the child failed");
        assert!(text.contains("RSS grew by"), "{place}: the child ran");
    }
}

#[test]
fn a_damaged_value_set_again_while_it_was_read_is_kept() {
    for in_file in [true, false] {
        let (_dir, path, o) = a_cache(in_file);
        let s = Storage::open(&path, &o).unwrap();
        // Another writer, which sets the key while its damaged value is handed over:
        // first the very bytes the damaged value was set with, then others.
        let other = Storage::open(&path, &o).unwrap();
        s.set(b"k", &vec![1; 3 * MIB], Expiration::Never).unwrap();
        for again in [vec![1; 3 * MIB], vec![2; 3 * MIB]] {
            damage_the_end(&path, in_file);
            let mut set = Some(again.clone());
            let got = s
                .get_chunks(b"k", |_| {
                    if let Some(v) = set.take() {
                        other.set(b"k", &v, Expiration::Never).unwrap();
                    }
                    true
                })
                .unwrap();
            assert_eq!(got, Some(Streamed::Damaged), "in a file: {in_file}");
            assert!(set.is_none(), "the other writer set it");
            let kept = s.get(b"k").unwrap().map(|(v, _)| v);
            assert!(
                kept == Some(again),
                "in a file: {in_file}: the new value is kept"
            );
            assert_eq!(s.stats().unwrap().count, 1);
        }
    }
}

/// `contains` of a value damaged at its end (checked a chunk at a time, as
/// `get_chunks` reads it) is false, and removes it; `get_chunks` of one says so.
#[test]
fn contains_of_a_value_damaged_at_its_end_is_false() {
    for in_file in [true, false] {
        let (_dir, path, o) = a_cache(in_file);
        for read in ["contains", "get_chunks"] {
            Storage::open(&path, &o)
                .unwrap()
                .set(b"k", &vec![3; 3 * MIB], Expiration::Never)
                .unwrap();
            damage_the_end(&path, in_file);
            let s = Storage::open(&path, &o).unwrap();
            if read == "contains" {
                assert!(!s.contains(b"k").unwrap(), "in a file: {in_file}");
            } else {
                let got = s.get_chunks(b"k", |_| true).unwrap();
                assert_eq!(got, Some(Streamed::Damaged), "in a file: {in_file}");
            }
            assert_eq!(s.stats().unwrap().count, 0, "{read}, in a file: {in_file}");
        }
    }
}
