//! A look-up whose snapshot names a value file that a set replaces and removes before
//! the look-up opens it reads the row again, and the new value: never a spurious miss
//! (a set unlinks the replaced file as soon as its row has committed, and a reader's
//! snapshot may be older than that commit).

use super::value_files_in;
use crate::{Expiration, Options, Storage, Streamed};
use std::sync::Arc;

#[test]
fn a_value_file_replaced_while_a_get_opens_it_is_read_from_the_new_row() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut o = Options::new();
    o.set_file_threshold(Some(1000)).unwrap();
    let s = Storage::open(&path, &o).unwrap();
    // Another handle on the file: the writer that replaces the value.
    let other = Arc::new(Storage::open(&path, &o).unwrap());
    s.set(b"k", &[1; 2000], Expiration::Never).unwrap();
    // After the look-up read the row naming the current file, before it opens it:
    // the other handle sets `value`, which commits its row and unlinks that file.
    let replace_with = |value: u8| {
        let other = other.clone();
        let hook: Box<dyn FnOnce() + Send> = Box::new(move || {
            other.set(b"k", &[value; 2000], Expiration::Never).unwrap();
        });
        *crate::sync::lock(&s.before_file_read) = Some(hook);
    };

    replace_with(2);
    let got = s.get(b"k").unwrap().map(|(v, _)| v);
    assert!(s.before_file_read.lock().unwrap().is_none(), "the set ran");
    let len = got.as_ref().map(Vec::len);
    assert!(
        got == Some(vec![2; 2000]),
        "get: the new value, not a miss ({len:?})"
    );

    replace_with(3);
    let mut streamed = Vec::new();
    let done = s.get_chunks(b"k", |c| {
        streamed.extend_from_slice(c);
        true
    });
    assert_eq!(done.unwrap(), Some(Streamed::Done(None)));
    assert_eq!(
        streamed,
        vec![3; 2000],
        "streaming: the new value, whole, once"
    );

    replace_with(4);
    assert!(s.contains(b"k").unwrap(), "contains");

    let stats = s.stats().unwrap();
    assert_eq!((stats.hits, stats.misses), (2, 0));
    // Nothing was taken for damage: one file, the newest value's.
    assert_eq!(value_files_in(dir.path()), 1);
    assert_eq!(s.get(b"k").unwrap().unwrap().0, vec![4; 2000]);
}

#[test]
fn a_value_file_missing_from_the_row_read_again_is_still_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let mut o = Options::new();
    o.set_file_threshold(Some(1000)).unwrap();
    let s = Storage::open(&path, &o).unwrap();
    s.set(b"k", &[1; 2000], Expiration::Never).unwrap();
    // Removed behind BackLite's back, and no new row: the retry finds the same name.
    let folder = dir.path().join("c.db.values");
    let hook: Box<dyn FnOnce() + Send> = Box::new(move || {
        for e in std::fs::read_dir(&folder).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "blv") {
                std::fs::remove_file(p).unwrap();
            }
        }
    });
    *crate::sync::lock(&s.before_file_read) = Some(hook);
    assert_eq!(s.get(b"k").unwrap(), None);
    assert!(!s.contains(b"k").unwrap(), "the damaged entry was removed");
}
