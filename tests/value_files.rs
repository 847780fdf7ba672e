//! Values at or above the file threshold live in files of their own in
//! `<cache>.values/` (issue 16, item 2): they read back whole, into the caller's
//! memory and in chunks; the size limit counts them; every way a row goes removes its
//! file after the commit; a file lost or cut short behind BackLite's back is a miss
//! and its row goes; `check` finds orphans and leaves anything not BackLite's alone.
//! tests/c/test_value_files.c covers the C ABI.

mod common;

use backlite::{Expiration, Options, Storage, Streamed};
use common::value_files;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::time::Duration;

const THRESHOLD: u64 = 4096;

fn options() -> Options {
    let mut o = Options::new();
    o.set_file_threshold(Some(THRESHOLD)).unwrap();
    o
}

fn open_with(o: &Options) -> (tempfile::TempDir, PathBuf, Storage) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let s = Storage::open(&path, o).unwrap();
    (dir, path, s)
}

fn folder(cache: &Path) -> PathBuf {
    let mut name = cache.as_os_str().to_os_string();
    name.push(".values");
    PathBuf::from(name)
}

fn value(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

#[test]
fn a_value_above_the_threshold_lives_in_a_file_and_reads_back_every_way() {
    let (_dir, path, s) = open_with(&options());
    let small = value(THRESHOLD as usize - 1, 1);
    let large = value(3 * 256 * 1024 + 17, 2);
    s.set(b"small", &small, Expiration::Never).unwrap();
    assert!(
        value_files(&path).is_empty(),
        "below the threshold: in the database"
    );
    s.set(b"large", &large, Expiration::Never).unwrap();
    assert_eq!(value_files(&path).len(), 1);

    assert_eq!(s.get(b"small").unwrap().unwrap().0, small);
    assert_eq!(s.get(b"large").unwrap().unwrap().0, large);
    let (into, _) = s
        .get_into(b"large", |n| Ok(vec![MaybeUninit::<u8>::uninit(); n]))
        .unwrap()
        .unwrap();
    let into: Vec<u8> = into.iter().map(|b| unsafe { b.assume_init() }).collect();
    assert_eq!(into, large);
    let mut chunks = Vec::new();
    let mut n = 0;
    let done = s
        .get_chunks(b"large", |c| {
            n += 1;
            chunks.extend_from_slice(c);
            true
        })
        .unwrap();
    assert!(matches!(done, Some(Streamed::Done(None))), "{done:?}");
    assert!(chunks == large);
    assert!(n >= 4, "handed over in chunks, {n}");
    assert!(s.contains(b"large").unwrap());

    let stats = s.stats().unwrap();
    assert_eq!(stats.count, 2);
    assert_eq!(stats.total_size, (small.len() + large.len()) as u64);
    assert!(s.check(false).unwrap().healthy());

    // Reopened, and by another handle with no threshold: the row still names the file.
    drop(s);
    let s = Storage::open(&path, &Options::new()).unwrap();
    assert_eq!(s.get(b"large").unwrap().unwrap().0, large);
    let mut exported = Vec::new();
    s.export(|e| {
        exported.push((e.key.to_vec(), e.value.to_vec()));
        Ok(())
    })
    .unwrap();
    assert!(exported.contains(&(b"large".to_vec(), large.clone())));
}

#[test]
fn delete_overwrite_expiry_eviction_and_clear_remove_the_files() {
    let now = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(1_800_000_000_000));
    let clock = now.clone();
    let mut o = options();
    o.set_max_size(100_000).unwrap();
    o.set_clock(std::sync::Arc::new(move || {
        clock.load(std::sync::atomic::Ordering::SeqCst)
    }));
    let (_dir, path, s) = open_with(&o);
    let v = value(30_000, 3);

    s.set(b"a", &v, Expiration::Never).unwrap();
    let first = value_files(&path);
    assert_eq!(first.len(), 1);
    s.set(b"a", &value(30_000, 4), Expiration::Never).unwrap();
    let second = value_files(&path);
    assert_eq!(second.len(), 1, "an overwrite removes the older file");
    assert_ne!(first, second);
    assert!(s.delete(b"a").unwrap());
    assert!(value_files(&path).is_empty(), "delete");

    s.set(b"e", &v, Expiration::After(Duration::from_secs(1)))
        .unwrap();
    now.fetch_add(2000, std::sync::atomic::Ordering::SeqCst);
    s.set(b"small", b"x", Expiration::Never).unwrap();
    assert!(value_files(&path).is_empty(), "expiry");

    for k in 0..3u8 {
        s.set(&[k], &v, Expiration::Never).unwrap();
    }
    assert_eq!(value_files(&path).len(), 3);
    s.set(b"fourth", &v, Expiration::Never).unwrap();
    // "small" (least recently used), then the first large value, make room.
    assert_eq!(s.stats().unwrap().evictions, 2);
    assert_eq!(value_files(&path).len(), 3, "eviction");
    assert_eq!(s.stats().unwrap().total_size, 3 * 30_000);

    s.clear().unwrap();
    assert!(value_files(&path).is_empty(), "clear");
    s.vacuum().unwrap();
}

#[test]
fn a_file_lost_or_cut_short_is_a_miss_and_its_row_goes() {
    let (_dir, path, s) = open_with(&options());
    let v = value(50_000, 5);
    s.set(b"gone", &v, Expiration::Never).unwrap();
    std::fs::remove_file(&value_files(&path)[0]).unwrap();
    assert_eq!(s.get(b"gone").unwrap(), None);
    assert_eq!(s.stats().unwrap().count, 0, "the row went with the miss");

    s.set(b"cut", &v, Expiration::Never).unwrap();
    let f = value_files(&path)[0].clone();
    let file = std::fs::OpenOptions::new().write(true).open(&f).unwrap();
    file.set_len(1000).unwrap();
    drop(file);
    let report = s.check(false).unwrap();
    assert_eq!(report.damaged, 1, "check finds it");
    let mut got = Vec::new();
    assert_eq!(
        s.get_chunks(b"cut", |c| {
            got.extend_from_slice(c);
            true
        })
        .unwrap(),
        None
    );
    assert!(got.is_empty());
    assert_eq!(s.stats().unwrap().count, 0);

    // Flipped bytes of the right length: the CRC says so.
    s.set(b"flipped", &v, Expiration::Never).unwrap();
    let f = value_files(&path)[0].clone();
    let mut bytes = std::fs::read(&f).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&f, &bytes).unwrap();
    assert_eq!(s.get(b"flipped").unwrap(), None);
    assert!(s.check(false).unwrap().healthy());
}

#[test]
fn check_removes_orphans_and_nothing_else_is_touched() {
    let (_dir, path, s) = open_with(&options());
    let v = value(20_000, 6);
    s.set(b"kept", &v, Expiration::Never).unwrap();
    let dir = folder(&path);
    // An orphan of ours (a copy under another name of ours), and foreign files.
    let orphan = dir.join(format!("v-{}.blv", "ab".repeat(16)));
    let temp = dir.join(format!("t-{}.tmp", "cd".repeat(16)));
    std::fs::copy(&value_files(&path)[0], &orphan).unwrap();
    std::fs::write(&temp, b"half").unwrap();
    let foreign = ["notes.txt", "v-1234.blv", "V-ABAB.BLV", "t-x.tmp"];
    for f in foreign {
        std::fs::write(dir.join(f), b"mine").unwrap();
    }

    let report = s.check(true).unwrap();
    assert!(report.repaired);
    assert_eq!(report.orphan_values, 2);
    assert!(!orphan.exists() && !temp.exists());
    for f in foreign {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), b"mine", "{f}");
    }
    assert_eq!(s.get(b"kept").unwrap().unwrap().0, v);
    assert!(s.check(false).unwrap().healthy());

    s.clear().unwrap();
    s.check(true).unwrap();
    for f in foreign {
        assert_eq!(std::fs::read(dir.join(f)).unwrap(), b"mine", "{f}");
    }
    assert!(dir.join("BACKLITE-VALUES").exists());
}

#[test]
fn the_threshold_is_checked() {
    let mut o = Options::new();
    assert_eq!(o.file_threshold(), Some(64 * 1024), "64 KiB, by default");
    // The default: a value of 64 KiB goes to a file, one byte less stays in the row.
    let (_dir, path, s) = open_with(&o);
    s.set(b"below", &value(64 * 1024 - 1, 6), Expiration::Never)
        .unwrap();
    assert!(value_files(&path).is_empty());
    s.set(b"at", &value(64 * 1024, 6), Expiration::Never)
        .unwrap();
    assert_eq!(value_files(&path).len(), 1);
    assert!(o.set_file_threshold(Some(0)).is_err());
    assert!(o.set_file_threshold(Some(1)).is_ok());
    assert!(o.set_file_threshold(None).is_ok());
    // Never: no folder appears.
    let (_dir, path, s) = open_with(&o);
    s.set(b"k", &value(1 << 20, 7), Expiration::Never).unwrap();
    assert!(!folder(&path).exists());
}

#[test]
fn vacuum_removes_orphan_files_and_nothing_else() {
    let (_dir, path, s) = open_with(&options());
    let v = value(20_000, 9);
    s.set(b"kept", &v, Expiration::Never).unwrap();
    let dir = folder(&path);
    let orphan = dir.join(format!("v-{}.blv", "ef".repeat(16)));
    std::fs::copy(&value_files(&path)[0], &orphan).unwrap();
    std::fs::write(dir.join("mine.txt"), b"mine").unwrap();
    s.vacuum().unwrap();
    assert!(!orphan.exists(), "the orphan went");
    assert_eq!(std::fs::read(dir.join("mine.txt")).unwrap(), b"mine");
    assert_eq!(value_files(&path).len(), 1);
    assert_eq!(s.get(b"kept").unwrap().unwrap().0, v);
}

/// Rewrites a cache of schema 5 into schema 4, as 0.2 (schema 4) kept values in files:
/// an entry's `value_id` names a `blobs` row with an empty value and the file's name.
const TO_SCHEMA_4: &str = "
    INSERT INTO blobs (value, file) SELECT x'', file FROM entries WHERE file IS NOT NULL;
    UPDATE entries SET value_id = (SELECT id FROM blobs WHERE blobs.file = entries.file)
        WHERE file IS NOT NULL;
    DROP INDEX entries_by_file;
    ALTER TABLE entries DROP COLUMN file;
    CREATE INDEX blobs_by_file ON blobs(file) WHERE file IS NOT NULL;
    PRAGMA user_version = 4;";

/// Rewrites every value file of the closed cache at `path` as schema 3 to 5 wrote it
/// (format 1: `v-<32 hex>.blv`, its record before the value), renamed in its row too.
fn to_format_1(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    for file in value_files(path) {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let hex = name
            .strip_prefix("v2-")
            .unwrap()
            .strip_suffix(".blv")
            .unwrap();
        let bytes = std::fs::read(&file).unwrap();
        let (value, record) = bytes.split_at(bytes.len() - common::VALUE_RECORD_LEN as usize);
        assert_eq!(&record[..8], b"BKLTVAL2");
        let mut old = b"BKLTVAL1".to_vec();
        old.extend_from_slice(&record[8..]);
        old.extend_from_slice(value);
        let renamed = format!("v-{hex}.blv");
        std::fs::write(file.with_file_name(&renamed), &old).unwrap();
        std::fs::remove_file(&file).unwrap();
        let sql = "UPDATE entries SET file = ?1 WHERE file = ?2";
        assert_eq!(db.execute(sql, [&renamed, &name]).unwrap(), 1);
    }
}

/// A cache of schema 5, whose value files hold their record first (format 1), opens as
/// schema 6: its files are read where they are, every way, with none rewritten; new
/// values get files of format 2; a delete, an overwrite and check still remove the old
/// files, and an old file no row names is an orphan that check removes.
#[test]
fn a_schema_5_file_with_values_in_files_of_format_1_is_upgraded() {
    const { assert!(backlite::SCHEMA_VERSION >= 6) };
    let (_dir, path, s) = open_with(&options());
    let (a, b) = (
        value(THRESHOLD as usize * 70, 1),
        value(THRESHOLD as usize, 2),
    );
    s.set(b"a", &a, Expiration::Never).unwrap();
    s.set(b"b", &b, Expiration::Never).unwrap();
    s.set(b"c", &b, Expiration::Never).unwrap();
    drop(s);
    to_format_1(&path);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 5")
        .unwrap();
    let old = value_files(&path);
    assert_eq!(old.len(), 3);
    assert!(old
        .iter()
        .all(|f| f.file_name().unwrap().to_str().unwrap().starts_with("v-")));
    // An orphan of format 1, as a set killed after writing its file would leave.
    let orphan = folder(&path).join(format!("v-{}.blv", "cd".repeat(16)));
    std::fs::copy(&old[0], &orphan).unwrap();

    let s = std::sync::Arc::new(Storage::open(&path, &options()).unwrap());
    assert_eq!(schema_version(&path), 6);
    let report = s.check(true).unwrap();
    assert_eq!(
        (report.actual_count, report.orphan_values),
        (3, 1),
        "{report:?}"
    );
    assert!(!orphan.exists(), "the orphan of format 1 is removed");
    assert_eq!(s.get(b"a").unwrap().unwrap().0, a);
    let mut streamed = Vec::new();
    let read = s.get_chunks(b"a", |c| {
        streamed.extend_from_slice(c);
        true
    });
    assert!(matches!(read.unwrap(), Some(Streamed::Done(_))));
    assert!(streamed == a);
    let mut r = s.open_reader(b"a").unwrap().unwrap();
    let mut pulled = Vec::new();
    std::io::Read::read_to_end(&mut r, &mut pulled).unwrap();
    assert!(pulled == a);
    drop(r);
    let (into, _) = s
        .get_into(b"b", |n| Ok(vec![MaybeUninit::<u8>::uninit(); n]))
        .unwrap()
        .unwrap();
    let into: Vec<u8> = into.iter().map(|x| unsafe { x.assume_init() }).collect();
    assert_eq!(into, b);
    assert_eq!(value_files(&path), old, "nothing rewritten");
    // An overwrite writes format 2 and removes the old file; so does a delete.
    s.set(b"b", &a, Expiration::Never).unwrap();
    assert!(s.delete(b"c").unwrap());
    let now = value_files(&path);
    let names: Vec<_> = now
        .iter()
        .map(|f| f.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert_eq!(
        names.iter().filter(|n| n.starts_with("v2-")).count(),
        1,
        "{names:?}"
    );
    assert_eq!(s.get(b"b").unwrap().unwrap().0, a);
    assert!(s.check(false).unwrap().healthy());
}

fn schema_version(path: &Path) -> i32 {
    rusqlite::Connection::open(path)
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// A file of schema 4 whose values are kept in files opens as schema 5 (the file
/// names move into the entry rows, their `blobs` rows go), reads back every value,
/// passes check, and a delete after the upgrade still removes the file it names.
#[test]
fn a_schema_4_file_with_values_in_files_is_upgraded() {
    const { assert!(backlite::SCHEMA_VERSION >= 5) };
    let (_dir, path, s) = open_with(&options());
    let (small, apart) = (b"inline".to_vec(), value(1000, 3));
    let (large, expiring) = (
        value(THRESHOLD as usize * 3, 4),
        value(THRESHOLD as usize, 5),
    );
    s.set(b"small", &small, Expiration::Never).unwrap();
    s.set(b"apart", &apart, Expiration::Never).unwrap();
    s.set(b"large", &large, Expiration::Never).unwrap();
    s.set(
        b"expiring",
        &expiring,
        Expiration::After(Duration::from_secs(3600)),
    )
    .unwrap();
    let before = s.stats().unwrap();
    drop(s);
    to_format_1(&path);
    let files = value_files(&path);
    assert_eq!(files.len(), 2);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(TO_SCHEMA_4)
        .unwrap();
    assert_eq!(schema_version(&path), 4);

    let s = Storage::open(&path, &options()).unwrap();
    assert_eq!(schema_version(&path), backlite::SCHEMA_VERSION);
    let report = s.check(false).unwrap();
    assert!(report.healthy(), "{report:?}");
    assert_eq!(report.actual_count, 4);
    let after = s.stats().unwrap();
    assert_eq!(
        (after.count, after.total_size),
        (before.count, before.total_size)
    );
    assert_eq!(s.get(b"small").unwrap().unwrap().0, small);
    assert_eq!(s.get(b"apart").unwrap().unwrap().0, apart);
    assert_eq!(s.get(b"large").unwrap().unwrap().0, large);
    let (got, left) = s.get(b"expiring").unwrap().unwrap();
    assert_eq!(got, expiring);
    assert!(left.is_some());
    assert_eq!(value_files(&path), files, "the files stay where they were");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        let in_blobs: i64 = conn
            .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(
            in_blobs, 1,
            "only the value stored apart keeps its blobs row"
        );
    }
    assert!(s.delete(b"large").unwrap());
    assert_eq!(value_files(&path).len(), 1);
    s.set(b"expiring", b"now small", Expiration::Never).unwrap();
    assert!(value_files(&path).is_empty());
    assert!(s.check(false).unwrap().healthy());
}

/// An export reads the file in one snapshot; a writer elsewhere (here a second handle,
/// as another process would) that overwrites or deletes an entry meanwhile removes its
/// file after its commit. That entry is no damage: the key's value now is exported in
/// its place, and a key deleted meanwhile is left out. Every such entry was counted
/// damaged and left out (an export beside a writer of large values lost most keys and
/// exited 1).
#[test]
fn an_export_beside_a_writer_of_large_values_finds_no_damage() {
    let (_dir, path, s) = open_with(&options());
    for k in 0..6u8 {
        let key = format!("k{k}");
        s.set(key.as_bytes(), &value(10_000, k), Expiration::Never)
            .unwrap();
    }
    let other = Storage::open(&path, &options()).unwrap();
    let mut first = true;
    let mut seen = Vec::new();
    let summary = s
        .export(|e| {
            if first {
                first = false;
                for k in 1..6u8 {
                    let key = format!("k{k}");
                    let v = value(20_000, 100 + k);
                    other.set(key.as_bytes(), &v, Expiration::Never).unwrap();
                }
                assert!(other.delete(b"k5").unwrap());
            }
            seen.push((e.key.to_vec(), e.value.to_vec()));
            Ok(())
        })
        .unwrap();
    assert_eq!((summary.entries, summary.skipped), (5, 0));
    assert_eq!(seen[0], (b"k0".to_vec(), value(10_000, 0)));
    for k in 1..5u8 {
        let want = (format!("k{k}").into_bytes(), value(20_000, 100 + k));
        assert_eq!(seen[k as usize], want, "k{k}: its value now");
    }
    // A file removed behind BackLite's back, its row unchanged, is still damage.
    let names: Vec<_> = std::fs::read_dir(folder(&path))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "blv"))
        .collect();
    std::fs::remove_file(&names[0]).unwrap();
    let summary = s.export(|_| Ok(())).unwrap();
    assert_eq!((summary.entries, summary.skipped), (4, 1));
}

/// A row of a value kept in a file whose size was damaged past any memory (2^62) is
/// left out of an export and counted, as any damaged entry is; the export goes on.
#[test]
fn an_export_leaves_out_a_file_value_whose_size_is_damaged_past_any_memory() {
    let (_dir, path, s) = open_with(&options());
    let v = value(50_000, 7);
    s.set(b"k", &v, Expiration::Never).unwrap();
    s.set(b"other", &v, Expiration::Never).unwrap();
    drop(s);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE entries SET size = 4611686018427387904 WHERE key = CAST('k' AS BLOB)",
            [],
        )
        .unwrap();
    let s = Storage::open(&path, &options()).unwrap();
    let mut keys = Vec::new();
    let summary = s
        .export(|e| {
            assert_eq!(e.value, &v[..]);
            keys.push(e.key.to_vec());
            Ok(())
        })
        .unwrap();
    assert_eq!(keys, vec![b"other".to_vec()]);
    assert_eq!((summary.entries, summary.skipped), (1, 1), "{summary:?}");
}

/// A file written inside a write transaction (an import, a batch, a lease's fulfil) is
/// unlocked once written, so that a batch of thousands does not run out of file
/// descriptors, and no row names it until the transaction commits. An import of a large
/// dump may run for hours: the sweep of an open meanwhile (of any handle, in any
/// process) found its first files an hour old, unlocked and named by no committed row,
/// and removed them as orphans, so the import committed entries whose files were gone:
/// every one a miss. No file of a transaction still open is taken, however old.
#[test]
fn the_sweep_on_open_takes_no_file_of_a_write_still_open_however_old() {
    let (_dir, path, s) = open_with(&options());
    let v = value(50_000, 3);
    let mut opened = Vec::new();
    s.import(
        |i| {
            for round in 0..3 {
                let key = format!("k{round}");
                i.put(key.as_bytes(), &v, None, 0, None)?;
                // Written two hours ago, as the first files of a long import are.
                let long_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
                for f in value_files(&path) {
                    let file = std::fs::File::options().write(true).open(&f).unwrap();
                    file.set_modified(long_ago).unwrap();
                }
                // Another handle opened meanwhile sweeps the folder.
                let mut o = options();
                o.set_busy_timeout(Duration::from_millis(100));
                opened.push(Storage::open(&path, &o)?);
                assert_eq!(value_files(&path).len(), round + 1, "round {round}");
            }
            Ok(())
        },
        |e, _| e,
    )
    .unwrap();
    for round in 0..3 {
        let key = format!("k{round}");
        assert_eq!(
            s.get(key.as_bytes()).unwrap().map(|(got, _)| got == v),
            Some(true),
            "{key}"
        );
    }
    let report = s.check(false).unwrap();
    assert!(report.healthy(), "{report:?}");
    drop(opened);
}

/// `inspect` reported `values_size` 0 for a folder of values it may not look into, one
/// holding every large value (and failed outright instead when the storage had used
/// the folder before): the figure is unknown, `None`, and every other figure is
/// still given. As root, who looks into any folder, the folder and what it holds are
/// given to another user, whose folder BackLite does not use.
#[test]
fn inspect_of_a_folder_of_values_it_cannot_look_into_says_unknown() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path, s) = open_with(&options());
    let large = value(300_000, 3);
    s.set(b"large", &large, Expiration::Never).unwrap();
    let before = s.inspect(&[]).unwrap();
    assert!(
        before.values_size.unwrap() >= large.len() as u64,
        "{before:?}"
    );
    let values = folder(&path);
    // SAFETY: geteuid has no preconditions and cannot fail.
    let as_root = unsafe { libc::geteuid() } == 0;
    let hide = |hidden: bool| {
        if as_root {
            let owner = if hidden { 65534 } else { 0 };
            for item in std::fs::read_dir(&values).unwrap() {
                std::os::unix::fs::lchown(item.unwrap().path(), Some(owner), Some(owner)).unwrap();
            }
            std::os::unix::fs::lchown(&values, Some(owner), Some(owner)).unwrap();
        } else {
            let mode = if hidden { 0o000 } else { 0o700 };
            std::fs::set_permissions(&values, std::fs::Permissions::from_mode(mode)).unwrap();
        }
    };
    hide(true);
    let used = s.inspect(&[]);
    let fresh = Storage::open(&path, &options()).unwrap();
    let unused = fresh.inspect(&[]);
    hide(false);
    for info in [used, unused] {
        let info = info.unwrap();
        assert_eq!(info.values_size, None, "{info:?}");
        assert_eq!(info.count, Some(1));
        assert_eq!(info.total_size, before.total_size);
    }
}

/// An import keeps its entries aside until its transaction: in memory for the first
/// few MiB, then in an unnamed file. Past that point every entry still comes back as
/// given, in order: small and large values, a key given twice either way round, an
/// entry already due, hits, deadlines and times of set; and no file is left that no
/// row names.
#[test]
fn an_import_past_what_it_keeps_in_memory_stores_every_entry_as_given() {
    let (_dir, path, s) = open_with(&options());
    s.set(b"gone", b"old", Expiration::Never).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let later = now + 3_600_000;
    const N: usize = 30_000;
    let small = |i: usize| format!("{i:08}").repeat(50).into_bytes();
    let big = |i: usize| value(THRESHOLD as usize + i % 7, i as u8);
    let is_big = |i: usize| i % 5_000 == 7;
    let summary = s
        .import(
            |im| {
                im.put(b"twice", &big(1), None, 0, None)?;
                im.put(b"twice2", b"first", None, 0, None)?;
                for i in 0..N {
                    let key = format!("k{i}");
                    let v = if is_big(i) { big(i) } else { small(i) };
                    let expires = (i % 3 == 0).then_some(later);
                    let set_at = (i % 4 == 0).then_some(now - 1_000_000 - i as i64);
                    im.put(key.as_bytes(), &v, expires, (i % 11) as u64, set_at)?;
                }
                im.put(b"gone", b"due", Some(now - 1_000), 0, None)?;
                im.put(b"twice", b"second", None, 0, None)?;
                im.put(b"twice2", &big(2), None, 0, None)?;
                Ok(())
            },
            |e, _| e,
        )
        .unwrap();
    assert_eq!(
        (summary.entries, summary.skipped),
        (N as u64 + 2, 1),
        "{summary:?}"
    );
    // Before any get, which adds hits of its own.
    let mut seen = 0;
    s.key_infos(b"k", |k| {
        let i: usize = std::str::from_utf8(&k.key[1..]).unwrap().parse().unwrap();
        assert_eq!(k.hits, (i % 11) as u64, "k{i}");
        let age = k.age.unwrap();
        assert_eq!(
            age >= Duration::from_secs(1_000),
            i % 4 == 0,
            "k{i}: {age:?}"
        );
        assert_eq!(k.expires_in.is_some(), i % 3 == 0, "k{i}");
        seen += 1;
        true
    })
    .unwrap();
    assert_eq!(seen, N);
    for i in 0..N {
        let (v, _) = s.get(format!("k{i}").as_bytes()).unwrap().unwrap();
        let want = if is_big(i) { big(i) } else { small(i) };
        assert!(v == want, "k{i}");
    }
    assert_eq!(s.get(b"gone").unwrap(), None);
    assert_eq!(s.get(b"twice").unwrap().unwrap().0, b"second");
    assert_eq!(s.get(b"twice2").unwrap().unwrap().0, big(2));
    // The large values' files, and twice2's; not the one of twice replaced.
    let large = (0..N).filter(|&i| is_big(i)).count() + 1;
    assert_eq!(value_files(&path).len(), large);
    let report = s.check(false).unwrap();
    assert!(report.healthy(), "{report:?}");
}

/// An import wrote its value files inside its write transaction, so every other writer
/// (a set of a small value by another process) waited for those bytes, and failed BUSY
/// once its busy timeout ran out: a large import locked its cache's program out for as
/// long as it took to write its files. A set writes its file before taking the write
/// lock; an import now does too, and stays all or nothing: a failed one leaves none of
/// its files behind.
#[test]
fn other_writers_wait_for_no_import_s_value_file() {
    let (_dir, path, s) = open_with(&options());
    // Another process's writer: takes the file's write lock, or fails BUSY.
    let other = rusqlite::Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_millis(100)).unwrap();
    let write_lock_free = || {
        other
            .execute_batch("BEGIN IMMEDIATE; ROLLBACK;")
            .map_err(|e| e.to_string())
    };
    let big = value(200_000, 5);
    let summary = s
        .import(
            |i| {
                i.put(b"big", &big, None, 3, None)?;
                i.put(b"small", b"v", None, 0, None)?;
                assert_eq!(value_files(&path).len(), 1);
                assert_eq!(write_lock_free(), Ok(()), "after the first file");
                // Not visible before the import commits.
                assert_eq!(s.get(b"big")?, None);
                i.put(b"big2", &big, None, 0, None)?;
                assert_eq!(write_lock_free(), Ok(()), "after the second file");
                Ok(())
            },
            |e, _| e,
        )
        .unwrap();
    assert_eq!((summary.entries, summary.skipped), (3, 0), "{summary:?}");
    let mut hits = Vec::new();
    s.key_infos(b"big", |k| {
        hits.push((k.key, k.hits));
        true
    })
    .unwrap();
    hits.sort();
    assert_eq!(hits, vec![(b"big".to_vec(), 3), (b"big2".to_vec(), 0)]);
    for key in [&b"big"[..], b"big2"] {
        assert_eq!(s.get(key).unwrap().map(|(v, _)| v == big), Some(true));
    }
    assert_eq!(s.get(b"small").unwrap().unwrap().0, b"v");
    assert_eq!(value_files(&path).len(), 2);

    let failed = s.import(
        |i| {
            i.put(b"big3", &big, None, 0, None)?;
            assert_eq!(value_files(&path).len(), 3);
            Err(backlite::Error::new(
                backlite::ErrorKind::Io,
                "the dump was cut",
            ))
        },
        |e, _| e,
    );
    assert!(failed.is_err(), "{failed:?}");
    assert_eq!(
        value_files(&path).len(),
        2,
        "the failed import's file was left"
    );
    assert_eq!(s.get(b"big3").unwrap(), None);
    let report = s.check(false).unwrap();
    assert!(report.healthy(), "{report:?}");
}
