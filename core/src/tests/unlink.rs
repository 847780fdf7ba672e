//! A write removes the files of the values it replaced or removed only once the
//! handle's writer is unlocked: other threads' writes never wait for an unlink.

use super::value_files_in;
use crate::{Expiration, Options, Storage};
use std::sync::atomic::Ordering::Relaxed;

#[test]
fn a_replaced_or_removed_value_file_is_unlinked_with_the_writer_free() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_file_threshold(Some(1000)).unwrap();
    let s = Storage::open(dir.path().join("c.db"), &o).unwrap();
    // Each way a write removes a file: a set's overwrite (written directly, by a value
    // in a file or in the database), a delete and a clear (through `write`).
    let ways: [(&dyn Fn(), usize); 4] = [
        (&|| s.set(b"k", &[2; 2000], Expiration::Never).unwrap(), 1),
        (&|| s.set(b"k", &[3; 100], Expiration::Never).unwrap(), 0),
        (&|| assert!(s.delete(b"k").unwrap()), 0),
        (&|| s.clear().unwrap(), 0),
    ];
    for (i, (way, left)) in ways.iter().enumerate() {
        s.set(b"k", &[4; 2000], Expiration::Never).unwrap();
        assert_eq!(value_files_in(dir.path()), 1);
        s.writer_free_at_unlink.store(false, Relaxed);
        way();
        assert_eq!(value_files_in(dir.path()), *left, "way {i}");
        assert!(
            s.writer_free_at_unlink.load(Relaxed),
            "way {i}: unlinked under the writer lock"
        );
    }
}
