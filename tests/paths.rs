//! Paths that are not a plain file of the caller's: hard links, devices, FIFOs,
//! sockets, symbolic links planted in a shared folder, and files opened at the same
//! time as a busy one. (`file:` names are in tests/c/test_open.c: they are relative,
//! and only a process of its own may change directory.)

mod common;
use backlite::{ErrorKind, Options, Storage};
use common::*;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn open_err(path: &Path) -> backlite::Error {
    Storage::open(path, &Options::new())
        .err()
        .expect("open must fail")
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_second_name_of_a_file_open_here_works() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    let first = Storage::open(&a, &Options::new()).unwrap();
    set(&first, "from a", 1);
    std::fs::hard_link(&a, &b).unwrap();
    let second = Storage::open(&b, &Options::new()).unwrap();
    set(&second, "from b", 2);
    assert_eq!(get(&second, "from a"), Some(vec![b'v']));
    assert_eq!(get(&first, "from b"), Some(vec![b'v'; 2]));
    for i in 0..200 {
        let s = if i % 2 == 0 { &first } else { &second };
        set(s, &format!("k{i}"), 10);
    }
    assert_eq!(first.stats().unwrap().count, 202);
    assert_eq!(second.stats().unwrap().count, 202);
    assert!(first.check(false).unwrap().healthy());
    // One set of -wal / -shm files, named after the first name.
    assert!(!dir.path().join("b.db-wal").exists());
}

#[test]
fn a_path_with_a_nul_byte_is_an_invalid_argument_and_creates_nothing() {
    // No file name holds a NUL (C cannot even pass one); a Rust or Python caller can,
    // and got IO "cannot stat ...: file name contained an unexpected NUL byte", a
    // failure of the file system rather than of the argument.
    let dir = tempfile::tempdir().unwrap();
    for name in ["a\0b.db", "\0", "sub\0dir/c.db"] {
        let e = open_err(&dir.path().join(name));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{name:?}: {e}");
        assert!(e.to_string().contains("NUL"), "{e}");
    }
    assert!(listing(dir.path()).is_empty());
}

#[test]
fn a_file_with_two_names_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    set(&Storage::open(&a, &Options::new()).unwrap(), "k", 3);
    std::fs::hard_link(&a, &b).unwrap();
    let before = std::fs::read(&a).unwrap();
    for name in [&a, &b] {
        let e = open_err(name);
        assert_eq!(e.kind(), ErrorKind::Io);
        assert!(
            e.message().contains("more than one name") && e.message().contains("remove"),
            "{}",
            e.message()
        );
    }
    assert_eq!(std::fs::read(&a).unwrap(), before);
    assert_eq!(listing(dir.path()), ["a.db", "b.db"]);
    // With one name again, it opens.
    std::fs::remove_file(&b).unwrap();
    assert_eq!(
        get(&Storage::open(&a, &Options::new()).unwrap(), "k"),
        Some(vec![b'v'; 3])
    );
}

#[test]
fn an_empty_file_with_two_names_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
    std::fs::write(&a, b"").unwrap();
    std::fs::hard_link(&a, &b).unwrap();
    assert_eq!(open_err(&b).kind(), ErrorKind::Io);
    assert_eq!(std::fs::metadata(&a).unwrap().len(), 0);
    assert_eq!(listing(dir.path()), ["a.db", "b.db"]);
}

/// Opens `path` in a thread, so that an open that blocks fails the test instead of
/// hanging it.
fn open_err_within(path: &Path, limit: Duration) -> ErrorKind {
    let (tx, rx) = mpsc::channel();
    let owned = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(
            Storage::open(&owned, &Options::new())
                .err()
                .map(|e| e.kind()),
        );
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("opening {} blocked", path.display()))
        .expect("open must fail")
}

#[test]
fn fifos_sockets_and_devices_are_not_caches_and_nothing_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.unwrap().success(), "mkfifo failed");
    let socket = dir.path().join("socket");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let mut paths = vec![fifo, socket];
    let device = dir.path().join("null");
    // Only root may make a device node; /dev/null itself is looked at below.
    let mknod = std::process::Command::new("mknod")
        .args([device.as_os_str(), "c".as_ref(), "1".as_ref(), "3".as_ref()])
        .stderr(std::process::Stdio::null())
        .status();
    if mknod.is_ok_and(|s| s.success()) {
        paths.push(device);
    } else {
        eprintln!("not root: no device node made in a temporary folder");
    }
    let before = listing(dir.path());
    for path in &paths {
        assert_eq!(
            open_err_within(path, Duration::from_secs(20)),
            ErrorKind::NotACache,
            "{}",
            path.display()
        );
    }
    assert_eq!(listing(dir.path()), before);

    let journal = Path::new("/dev/null-journal");
    let had_journal = journal.exists();
    assert_eq!(
        open_err_within(Path::new("/dev/null"), Duration::from_secs(20)),
        ErrorKind::NotACache
    );
    if !had_journal {
        assert!(!journal.exists(), "/dev/null-journal was created");
    }
}

#[test]
fn a_link_to_a_missing_file_creates_nothing_where_it_points() {
    let shared = tempfile::tempdir().unwrap();
    let victim_dir = tempfile::tempdir().unwrap();
    let victim = victim_dir.path().join("victim.db");
    let planted = shared.path().join("cache.db");
    std::os::unix::fs::symlink(&victim, &planted).unwrap();
    assert_eq!(open_err(&planted).kind(), ErrorKind::NotACache);
    assert!(
        listing(victim_dir.path()).is_empty(),
        "a file was made through the link"
    );
    assert_eq!(listing(shared.path()), ["cache.db"]);
}

#[test]
fn a_link_to_another_users_file_leaves_it_untouched() {
    let shared = tempfile::tempdir().unwrap();
    let victim_dir = tempfile::tempdir().unwrap();
    let empty = victim_dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    let notes = victim_dir.path().join("notes.txt");
    std::fs::write(&notes, b"mine\n").unwrap();
    for (victim, bytes) in [(&empty, &b""[..]), (&notes, &b"mine\n"[..])] {
        let planted = shared.path().join("cache.db");
        let _ = std::fs::remove_file(&planted);
        std::os::unix::fs::symlink(victim, &planted).unwrap();
        assert_eq!(open_err(&planted).kind(), ErrorKind::NotACache);
        assert_eq!(std::fs::read(victim).unwrap(), bytes);
    }
    assert_eq!(listing(victim_dir.path()), ["empty", "notes.txt"]);
}

#[test]
fn a_link_to_a_cache_opens_it() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real.db");
    set(&Storage::open(&real, &Options::new()).unwrap(), "k", 2);
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let s = Storage::open(&link, &Options::new()).unwrap();
    assert_eq!(get(&s, "k"), Some(vec![b'v'; 2]));
}

/// The names created directly in `dir` (not inside its sub-folders) while `f` runs,
/// each with whether it is a folder.
fn created_in<R>(dir: &Path, f: impl FnOnce() -> R) -> (Vec<(String, bool)>, R) {
    use std::io::Read;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::FromRawFd;
    let c_dir = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
    // SAFETY: plain system calls on a valid C string; the descriptor is owned below.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    assert!(fd >= 0, "inotify_init1 failed");
    // SAFETY: as above.
    let watch = unsafe { libc::inotify_add_watch(fd, c_dir.as_ptr(), libc::IN_CREATE) };
    assert!(watch >= 0, "inotify_add_watch failed");
    // SAFETY: `fd` is a descriptor we own, closed once by the File.
    let mut events = unsafe { std::fs::File::from_raw_fd(fd) };
    let out = f();
    let mut buf = vec![0u8; 1 << 16];
    let n = events.read(&mut buf).unwrap_or(0);
    let mut created = Vec::new();
    let mut at = 0;
    let header = std::mem::size_of::<libc::inotify_event>();
    while at + header <= n {
        let mask = u32::from_ne_bytes(buf[at + 4..at + 8].try_into().unwrap());
        let len = u32::from_ne_bytes(buf[at + 12..at + 16].try_into().unwrap()) as usize;
        let name = &buf[at + header..at + header + len];
        let name = name.split(|&b| b == 0).next().unwrap();
        created.push((
            String::from_utf8_lossy(name).into_owned(),
            mask & libc::IN_ISDIR != 0,
        ));
        at += header + len;
    }
    (created, out)
}

#[test]
fn a_new_cache_is_built_in_a_private_folder_never_at_a_guessable_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.db");
    let (created, opened) = created_in(dir.path(), || Storage::open(&path, &Options::new()));
    let s = opened.unwrap();
    set(&s, "k", 1);
    for (name, is_dir) in &created {
        // SQLite makes the -wal and -shm beside the file once it is in place; anything
        // else made in the shared folder is a private folder (mkdir never follows a
        // planted link, and nobody else may enter it).
        let beside = ["c.db", "c.db-wal", "c.db-shm"].contains(&name.as_str());
        assert!(beside || *is_dir, "{name} was created in the shared folder");
    }
    assert!(created.iter().any(|(n, _)| n == "c.db"));
    drop(s);
    assert_eq!(listing(dir.path()), ["c.db"]);
}

#[test]
fn many_threads_creating_one_file_all_open_it() {
    // Creation links the new file into place and then removes its first name: for a
    // moment it has two names, which must not be mistaken for a hard-linked file.
    for round in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(6));
        let openers: Vec<_> = (0..6)
            .map(|i| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let s = Storage::open(&path, &Options::new())
                        .unwrap_or_else(|e| panic!("round {round}: {e}"));
                    set(&s, &format!("k{i}"), 1);
                    s
                })
            })
            .collect();
        let handles: Vec<Storage> = openers.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(handles[0].stats().unwrap().count, 6);
        drop(handles);
        assert_eq!(listing(dir.path()), ["c.db"]);
    }
}

#[test]
fn opening_a_file_does_not_wait_for_another_files_contended_open() {
    let dir = tempfile::tempdir().unwrap();
    let busy: PathBuf = dir.path().join("busy.db");
    drop(Storage::open(&busy, &Options::new()).unwrap());
    // Another process is writing to busy.db, and opening it with a new version tag
    // needs the write lock: that open waits out its busy timeout.
    let writer = rusqlite::Connection::open(&busy).unwrap();
    writer.execute_batch("BEGIN IMMEDIATE").unwrap();
    let contended = {
        let busy = busy.clone();
        std::thread::spawn(move || {
            let mut o = Options::new();
            o.set_busy_timeout(Duration::from_secs(3));
            o.set_version_tag("new");
            let started = Instant::now();
            let kind = Storage::open(&busy, &o).err().map(|e| e.kind());
            (kind, started.elapsed())
        })
    };
    // Give the contended open time to be waiting (it cannot finish before 3 s); the
    // check below holds however the two are ordered.
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let other = Storage::open(dir.path().join("other.db"), &Options::new()).unwrap();
    let took = started.elapsed();
    set(&other, "k", 1);
    assert!(
        took < Duration::from_secs(1),
        "opening an unrelated file took {took:?}"
    );
    assert!(!contended.is_finished(), "the contended open ended early");
    let (kind, waited) = contended.join().unwrap();
    assert_eq!(kind, Some(ErrorKind::Busy));
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    writer.execute_batch("COMMIT").unwrap();
}
