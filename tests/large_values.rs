//! Values over `MAX_VALUE_SIZE` (SQLite's limit on one value, less room for its row)
//! are too large whatever `max_size` says when values are never kept in files, on the
//! lease path too. The C test
//! tests/c/test_large_values.c covers set, set_many and cached_call through the C ABI.
//! The values are real gigabyte buffers, zeroed by the allocator and never written, so
//! they cost no memory unless something reads or copies them.

use backlite::{
    Entry, ErrorKind, Expiration, Lease, LeaseOutcome, Options, Storage, MAX_KEY_SIZE,
    MAX_VALUE_SIZE,
};
use std::sync::Arc;
use std::time::Duration;

/// The value: one byte over SQLite's 1,000,000,000-byte limit.
const OVER: usize = 1_000_000_001;

fn open() -> (tempfile::TempDir, Arc<Storage>) {
    let dir = tempfile::tempdir().unwrap();
    // With a file threshold (the default), such a value would go to a file.
    let mut o = Options::new();
    o.set_file_threshold(None).unwrap();
    let s = Storage::open(dir.path().join("c.db"), &o).unwrap();
    (dir, Arc::new(s))
}

#[test]
fn an_exclusive_call_returns_a_value_over_the_limit_without_storing_it() {
    let (_dir, s) = open();
    let v = s
        .cached_call_exclusive(b"k", Expiration::Never, Duration::from_secs(5), || {
            Ok(vec![0; OVER])
        })
        .unwrap();
    assert_eq!(v.len(), OVER);
    assert!(!s.contains(b"k").unwrap());
}

#[test]
fn a_lease_fulfilled_with_a_value_over_the_limit_is_too_large_and_frees_the_key() {
    let (_dir, s) = open();
    let LeaseOutcome::Acquired(lease) =
        Lease::try_acquire(&s, b"k", Duration::from_secs(60)).unwrap()
    else {
        panic!("the key is free")
    };
    let err = lease
        .fulfill(&vec![0; MAX_VALUE_SIZE as usize + 1], Expiration::Never)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(matches!(
        Lease::try_acquire(&s, b"k", Duration::from_secs(60)).unwrap(),
        LeaseOutcome::Acquired(_)
    ));
}

#[test]
fn a_key_over_the_limit_is_an_invalid_argument_for_every_call() {
    let (_dir, s) = open();
    s.set(b"other", b"stays", Expiration::Never).unwrap();
    let key = vec![0; MAX_KEY_SIZE as usize + 1];
    let invalid = |r: backlite::Result<()>| {
        let err = r.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
    };
    invalid(s.set(&key, b"v", Expiration::Never));
    invalid(s.set_many(&[Entry {
        key: &key,
        value: b"v",
        expiration: Expiration::Never,
    }]));
    invalid(s.get(&key).map(drop));
    invalid(s.contains(&key).map(drop));
    invalid(s.delete(&key).map(drop));
    invalid(
        s.cached_call(&key, Expiration::Never, None, || unreachable!())
            .map(drop),
    );
    invalid(Lease::try_acquire(&s, &key, Duration::from_secs(1)).map(drop));
    assert_eq!(s.stats().unwrap().count, 1);
}

/// An import (`backlite import`) of a value over the limit fails as a set does, with
/// TOO_LARGE and nothing imported, whatever `max_size` says.
#[test]
fn an_import_of_a_value_over_the_limit_is_too_large_and_imports_nothing() {
    let (_dir, s) = open();
    let over = vec![0; MAX_VALUE_SIZE as usize + 1];
    let err = s
        .import(
            |i| {
                i.put(b"before", b"small", None, 0, None)?;
                i.put(b"k", &over, None, 0, None)
            },
            |e, _| e,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TooLarge, "{err}");
    assert!(!s.contains(b"before").unwrap());
}
