//! A reader of a large value kept in the `blobs` table opens its blob handle once: an
//! offset in a blob is found by walking its overflow pages from the start unless an
//! open handle has cached them, so a handle per read makes reading a value quadratic.

use crate::{Expiration, Options, Part, Storage};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

#[test]
fn a_reader_of_a_large_blob_opens_its_handle_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Options::new();
    o.set_file_threshold(None).unwrap();
    let s = Arc::new(Storage::open(dir.path().join("c.db"), &o).unwrap());
    let value: Vec<u8> = (0..3 << 20)
        .map(|i: usize| (i * 7 + (i >> 11)) as u8)
        .collect();
    s.set(b"k", &value, Expiration::Never).unwrap();
    let mut r = s.open_reader(b"k").unwrap().unwrap();
    let (mut out, mut buf) = (Vec::new(), vec![0u8; 10_000]);
    loop {
        match r.read_part(&mut buf).unwrap() {
            Part::Bytes(0) => break,
            Part::Bytes(n) => out.extend_from_slice(&buf[..n]),
            Part::Damaged => panic!("damaged"),
        }
    }
    assert!(out == value, "the value read back differs");
    // 315 reads of 10,000 bytes.
    assert_eq!(r.blob_opens.load(Relaxed), 1);
}
