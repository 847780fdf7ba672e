//! What an operator who has read only the issue and the README tries: outputs aimed at
//! the cache itself, files that are not caches, `-` for stdin/stdout, closed pipes,
//! usage errors, sizes and durations at their edges, prefixes with LIKE's characters,
//! read-only files and files another process is writing.

mod common;

use common::{copies_beside, have_dev_full, into_dev_full, read, run_in, Dir};
use std::io::Read as _;
use std::process::{Command, Stdio};

/// One line on stderr, starting `backlite: ` and naming `name`.
fn one_line_naming(stderr: &str, name: &str) {
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.ends_with('\n'), "{stderr:?}");
    assert!(stderr.starts_with("backlite: "), "{stderr:?}");
    assert!(stderr.contains(name), "does not name {name}: {stderr:?}");
    // A message's text continued onto the next line of the source without a `\` keeps
    // that line's indent: "`backlite export`                  into a slow pipe".
    assert!(!stderr.contains("   "), "a run of spaces: {stderr:?}");
}

fn json_of(line: &str) -> serde_json::Value {
    serde_json::from_str(line.trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

#[test]
fn an_output_is_never_written_over_the_cache_or_its_log() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    for args in [
        &["export", "c.db", "-o", "c.db"][..],
        &["get", "c.db", "k", "-o", "c.db"],
        &["get", "c.db", "k", "-o", "./c.db"],
        &["export", "c.db", "-o", "c.db-wal"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
        assert_eq!(d.ok(&["get", "c.db", "k"]), "v", "{args:?}");
        assert_eq!(d.run(&["check", "c.db"]).code, 0, "{args:?}");
    }
    // A link to the cache under another name is the cache too.
    std::os::unix::fs::symlink("c.db", d.path("alias")).unwrap();
    let r = d.run(&["export", "c.db", "-o", "alias"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "c.db", "k"]), "v");
}

/// The folder of values beside the cache (`c.db.values/`) is the cache's too: a `get -o`
/// aimed at a value file there truncated it as the value was read, so the get itself
/// lost the entry (exit 1, "no live entry"), and one aimed at another entry's file
/// replaced that value with this one (a miss ever after); an export there did the same.
#[test]
fn an_output_is_never_written_into_the_cache_s_folder_of_values() {
    let d = Dir::new();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    for key in ["big", "big2"] {
        let r = d.run_with_input(&["set", "c.db", key, "-"], &big);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let mut names: Vec<String> = std::fs::read_dir(d.path("c.db.values"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().filter(|n| n.ends_with(".blv")).count() == 2,
        "{names:?}"
    );
    names.push("new.out".into());
    std::os::unix::fs::symlink("c.db.values", d.path("values")).unwrap();
    for name in &names {
        for out in [format!("c.db.values/{name}"), format!("values/{name}")] {
            for args in [
                &["get", "c.db", "big", "-o", out.as_str()][..],
                &["export", "c.db", "-o", out.as_str()],
            ] {
                let r = d.run(args);
                assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
                one_line_naming(&r.stderr, "c.db");
                for key in ["big", "big2"] {
                    let r = d.run(&["get", "c.db", key]);
                    assert!(
                        r.code == 0 && r.stdout_bytes == big,
                        "{args:?}: {key}: {}",
                        r.stderr
                    );
                }
            }
        }
    }
    assert!(!d.path("c.db.values/new.out").exists());
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// d with c.db holding "big", 300,000 bytes in a value file (given), and "small" = "v".
fn big_and_small() -> (Dir, Vec<u8>) {
    let d = Dir::new();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &big);
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["set", "c.db", "small", "v"]);
    (d, big)
}

/// A second name of a value file outside the folder of values (`ln
/// c.db.values/v2-....blv keep.blv`) is the cache's file too: an output aimed there is
/// refused, and every value stays. Since -o writes an OUT with other names through to
/// it, such an OUT would otherwise have its value replaced by another (damage that
/// `check` finds).
#[test]
fn an_output_is_never_written_through_a_second_name_of_a_value_file() {
    let (d, big) = big_and_small();
    std::fs::hard_link(a_value_file(&d, "c.db"), d.path("keep.blv")).unwrap();
    for args in [
        &["get", "c.db", "small", "-o", "keep.blv"][..],
        &["export", "c.db", "-o", "keep.blv"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "keep.blv");
        let r = d.run(&["get", "c.db", "big"]);
        assert!(
            r.code == 0 && r.stdout_bytes == big,
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// A value file in the folder of values of the cache `cache` in `d`.
fn a_value_file(d: &Dir, cache: &str) -> std::path::PathBuf {
    std::fs::read_dir(d.path(&format!("{cache}.values")))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().ends_with(".blv"))
        .expect("a value file")
}

/// c.db holding "big", a value of 600,000 bytes in a file of its own, whose byte `at`
/// was changed.
fn a_value_damaged_at(at: usize) -> Dir {
    let d = Dir::new();
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &vec![7u8; 600_000]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let file = a_value_file(&d, "c.db");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[at] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    d
}

/// A `get -o OUT` of a value found damaged after its first chunks were written (a value
/// file of 600 KB whose last byte was changed) removes OUT and says the value proved
/// damaged, as the README says; it kept the 256 KiB written, with "no live entry" (the
/// core answered a miss, not that the chunks handed over were to be dropped).
#[test]
fn a_get_of_a_value_found_damaged_part_way_removes_out() {
    // The value's last byte (its record follows).
    let d = a_value_damaged_at(600_000 - 1);
    let r = d.run(&["get", "c.db", "big", "-o", "out.bin"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(r.stderr.contains("proved damaged"), "{}", r.stderr);
    assert!(
        !d.path("out.bin").exists(),
        "a part of a damaged value was kept"
    );
    assert_eq!(d.run(&["get", "c.db", "big"]).code, 1); // the entry is gone
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// A link named as OUT is followed: the file it leads to is written as a plain OUT is
/// (beside it, then renamed over it), and the link stays. Written through in place, a
/// get of a value found damaged part-way left a part of it in the file the link led to
/// (made by the get where the link led nowhere, cut short where it led to the user's
/// file); a link into a folder not there failed only at the first chunk, its hit
/// counted; and an export to a link leading to c.db-wal, not there yet, wrote the dump
/// there, where SQLite removed it as the export closed the cache: exit 0, no dump.
#[test]
fn an_out_that_is_a_link_is_written_as_the_file_it_leads_to() {
    use std::os::unix::fs::symlink;
    let d = a_value_damaged_at(600_000 - 1);
    symlink("made", d.path("nowhere")).unwrap();
    let r = d.run(&["get", "c.db", "big", "-o", "nowhere"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("proved damaged"), "{}", r.stderr);
    assert!(
        !d.path("made").exists(),
        "a part of a damaged value was kept"
    );

    let d = a_value_damaged_at(600_000 - 1);
    std::fs::write(d.path("mine"), "mine").unwrap();
    symlink("mine", d.path("to-mine")).unwrap();
    let r = d.run(&["get", "c.db", "big", "-o", "to-mine"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(std::fs::read(d.path("mine")).unwrap(), b"mine");
    assert_eq!(copies_beside(&d, "mine"), Vec::<String>::new());
    d.ok(&["set", "c.db", "k", "hello"]);
    d.ok(&["get", "c.db", "k", "-o", "to-mine"]);
    assert_eq!(std::fs::read(d.path("mine")).unwrap(), b"hello");
    let link = std::fs::symlink_metadata(d.path("to-mine")).unwrap();
    assert!(link.file_type().is_symlink(), "the link was replaced");

    let hits = || {
        let stats: serde_json::Value =
            serde_json::from_str(&d.ok(&["stats", "c.db", "--json"])).unwrap();
        stats["lifetime"]["hits"].as_u64().unwrap()
    };
    let before = hits();
    symlink("nodir/x", d.path("astray")).unwrap();
    let r = d.run(&["get", "c.db", "k", "-o", "astray"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "astray");
    assert_eq!(hits(), before, "a value that went nowhere counted as a hit");

    // A link into /proc, whose last link's text is no path (`pipe:[123]`), is written
    // in place: followed, `-o /dev/stdout` into a pipe failed "No such file".
    for out in ["/dev/stdout", "/proc/self/fd/1"] {
        let r = d.run(&["get", "c.db", "k", "-o", out]);
        assert_eq!(
            (r.code, r.stdout.as_str()),
            (0, "hello"),
            "{out}: {}",
            r.stderr
        );
    }

    symlink("c.db-wal", d.path("wal")).unwrap();
    let r = d.run(&["export", "c.db", "-o", "wal"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("it is the cache's own file"),
        "{}",
        r.stderr
    );
}

/// An entry's hit count stops at the largest integer SQLite holds, as an import stores
/// a larger one: a hit on an entry imported with 9223372036854775807 hits (or more)
/// made its count a real, SQLite's sum past it, and the entry damaged; `check` then
/// found it so and the next get missed.
#[test]
fn a_hit_on_an_entry_at_the_largest_count_keeps_the_entry() {
    let d = Dir::new();
    let dump = "{\"backlite_export\":1}\n\
        {\"key\":\"most\",\"value\":\"v\",\"hits\":18446744073709551615}\n\
        {\"key\":\"near\",\"value\":\"w\",\"hits\":9223372036854775806}\n";
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    for _ in 0..2 {
        assert_eq!(d.ok(&["get", "c.db", "most"]), "v");
        assert_eq!(d.ok(&["get", "c.db", "near"]), "w");
    }
    let r = d.run(&["check", "c.db"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let hits: Vec<u64> = d
        .ok(&["keys", "c.db", "--json"])
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["hits"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(hits, [i64::MAX as u64; 2]);
}

/// A `get` whose value does not go out whole counts no hit: the entry keeps its hits
/// and the lifetime counters theirs. Written into /dev/full, to stdout or as OUT, or
/// into a pipe whose reader went away, it counted one, as if the value had been had.
#[test]
fn a_get_whose_value_does_not_go_out_counts_no_hit() {
    let d = Dir::new();
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &vec![7u8; 600_000]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["set", "c.db", "small", "v"]);
    let hits = || {
        let stats: serde_json::Value =
            serde_json::from_str(&d.ok(&["stats", "c.db", "--json"])).unwrap();
        let keys: Vec<u64> = d
            .ok(&["keys", "c.db", "--json"])
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["hits"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        (stats["lifetime"]["hits"].as_u64().unwrap(), keys)
    };
    if have_dev_full() {
        for key in ["big", "small"] {
            let (code, stderr) = into_dev_full(&d, &["get", "c.db", key]);
            assert_eq!(code, Some(2), "{stderr}");
            let r = d.run(&["get", "c.db", key, "-o", "/dev/full"]);
            assert_eq!(r.code, 2, "{}", r.stderr);
        }
        assert_eq!(hits(), (0, vec![0, 0]));
    }
    // A reader that takes 16 bytes and goes: the rest of the 600,000 find no reader.
    let mut child = d
        .command(["get", "c.db", "big"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(hits(), (0, vec![0, 0]));
    assert_eq!(d.ok(&["get", "c.db", "small"]), "v");
    assert_eq!(hits(), (1, vec![0, 1]));
}

/// A get that finds a value damaged while another process holds the write lock cannot
/// remove the entry (it gives the removal up rather than wait): it said "the entry was
/// removed" all the same, and the entry was still listed. It says now that it could
/// not, and what removes it.
#[test]
fn a_get_of_a_damaged_value_behind_a_lock_does_not_claim_its_removal() {
    let d = a_value_damaged_at(1000);
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = d.run(&["get", "c.db", "big"]);
    let listed = d.ok(&["keys", "c.db"]);
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(listed.contains("big"), "{listed}");
    assert!(
        r.stderr.contains("proved damaged")
            && r.stderr.contains("the entry could not be removed now")
            && !r.stderr.contains("was removed"),
        "{}",
        r.stderr
    );
    // Once the lock is gone, a get removes it, and says so.
    let r = d.run(&["get", "c.db", "big"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("the entry was removed"), "{}", r.stderr);
    assert_eq!(d.ok(&["keys", "c.db"]), "(no keys)\n");
}

/// A `get -o OUT` that fails part way drops what it wrote only from a plain file: a
/// FIFO, a device or a link named as OUT belongs to the user (run as root, the old
/// code removed `/dev/full` itself after a `get -o /dev/full`).
#[test]
fn a_get_that_fails_part_way_leaves_a_fifo_or_a_link_named_as_out_in_place() {
    use std::os::unix::fs::FileTypeExt;
    let d = Dir::new();
    // Kept in a file of its own, and far more than a pipe holds.
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &vec![7u8; 4 << 20]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let fifo = d.path("out.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // A reader that goes away after a few bytes: the next write is EPIPE.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || {
            let mut first = [0u8; 16];
            std::fs::File::open(&fifo)
                .unwrap()
                .read_exact(&mut first)
                .unwrap();
        })
    };
    let r = d.run(&["get", "c.db", "big", "-o", "out.fifo"]);
    reader.join().unwrap();
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "out.fifo");
    let kind = std::fs::symlink_metadata(&fifo).map(|m| m.file_type());
    assert!(kind.is_ok_and(|k| k.is_fifo()), "the FIFO is gone");

    let full = std::path::Path::new("/dev/full");
    if std::fs::metadata(full).is_ok_and(|m| m.file_type().is_char_device()) {
        std::os::unix::fs::symlink(full, d.path("full")).unwrap();
        let r = d.run(&["get", "c.db", "big", "-o", "full"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        one_line_naming(&r.stderr, "full");
        let kind = std::fs::symlink_metadata(d.path("full")).map(|m| m.file_type());
        assert!(kind.is_ok_and(|k| k.is_symlink()), "the link is gone");
    } else {
        eprintln!("SKIPPED the link to /dev/full: no such device here");
    }
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// A vacuumed cache of 2000 entries, as `damage` leaves it, and its bytes then.
fn a_damaged_cache(damage: impl FnOnce(&std::fs::File)) -> (Dir, Vec<u8>) {
    let d = Dir::new();
    let value = "v".repeat(300);
    let dump: String = (0..2000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{value}\"}}\n"))
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    d.ok(&["vacuum", "c.db"]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(d.path("c.db"))
        .unwrap();
    damage(&f);
    drop(f);
    let before = std::fs::read(d.path("c.db")).unwrap();
    (d, before)
}

/// `check` (and `check --repair`) of c.db reports it damaged beyond repair, exit 1, in
/// text and in JSON, and leaves it as it was.
fn check_reports_unreadable(d: &Dir, before: &[u8]) {
    let r = d.run(&["check", "c.db", "--json"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let report = json_of(&r.stdout);
    assert_eq!(report["file"], "c.db", "{report}");
    assert_eq!(report["healthy"], false, "{report}");
    assert_eq!(report["integrity_ok"], false, "{report}");
    assert!(
        report["integrity_messages"][0]
            .as_str()
            .is_some_and(|m| m.contains("malformed")),
        "{report}"
    );
    assert!(report["entries"].is_null(), "{report}");

    for args in [&["check", "c.db"][..], &["check", "c.db", "--repair"]] {
        let r = d.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        assert!(
            r.stdout.starts_with("file            c.db\n"),
            "{args:?}: {}",
            r.stdout
        );
        assert!(
            r.stdout
                .ends_with("result          damaged (delete the file: it is a cache)\n"),
            "{args:?}: {}",
            r.stdout
        );
    }
    assert_eq!(std::fs::read(d.path("c.db")).unwrap(), before);
}

/// A cache whose pages SQLite cannot read is a damaged file: `check` says so as its
/// report (exit 1), and `--json` is still one JSON object, with the figures it could
/// not count null. It printed only an error line before, so `check --json | jq` got
/// nothing.
#[test]
fn check_reports_a_file_sqlite_cannot_read_as_damaged_in_text_and_json() {
    use std::os::unix::fs::FileExt;
    // Garbage over pages of the table, past the header and the first pages.
    let (d, before) = a_damaged_cache(|f| f.write_all_at(&[0xde; 8192], 20 * 4096).unwrap());
    check_reports_unreadable(&d, &before);
}

/// An import that finds the file damaged as it stores a line fails as any command on a
/// damaged file does (exit 1, pointing to check), not as a bad line of the dump: it
/// said "line N of <stdin>: deleting an entry: database disk image is malformed", exit
/// 2, as if the dump were at fault.
#[test]
fn an_import_into_a_damaged_file_blames_the_file_not_the_line() {
    use std::os::unix::fs::FileExt;
    let (d, _) = a_damaged_cache(|f| f.write_all_at(&[0xde; 8192], 20 * 4096).unwrap());
    let dump: String = (0..2000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"new\"}}\n"))
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 1, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(
        !r.stderr.starts_with("backlite: c.db: line ")
            && r.stderr.contains("malformed (storing line ")
            && r.stderr.contains("nothing was imported")
            && r.stderr
                .ends_with("`backlite check` says what to do about it)\n"),
        "{}",
        r.stderr
    );
}

/// The same for a cache cut short (a copy interrupted, a disk that filled), which
/// cannot even be opened: check printed only the open's error line, so `check --json`
/// gave no JSON for it.
#[test]
fn check_reports_a_file_cut_short_as_damaged_in_text_and_json() {
    let (d, before) = a_damaged_cache(|f| f.set_len(100_000).unwrap());
    check_reports_unreadable(&d, &before);
}

/// The other commands, on a file SQLite finds damaged, fail with exit 1 and a line that
/// says the file is damaged and where to go from there: it was SQLite's "database disk
/// image is malformed" alone.
#[test]
fn commands_on_a_damaged_file_point_to_check() {
    let (d, before) = a_damaged_cache(|f| f.set_len(100_000).unwrap());
    for args in [
        &["stats", "c.db"][..],
        &["keys", "c.db"],
        &["get", "c.db", "k1"],
        &["export", "c.db"],
        &["clear", "c.db"],
        &["vacuum", "c.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 1, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
        assert!(
            r.stderr.contains("malformed")
                && r.stderr.ends_with(
                    " (the file is damaged: `backlite check` says what to do about it)\n"
                ),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert_eq!(std::fs::read(d.path("c.db")).unwrap(), before);
}

/// Characters a terminal shows as nothing, as a plain space, or that reorder or break
/// the line (zero-width space, byte order mark, no-break space, right-to-left
/// override, line separator) are escaped like control characters, so two keys never
/// look alike in `keys` and what it shows reads back with -e. `a\u{200b}` showed as
/// `a`, and `get -e` of what was shown missed.
#[test]
fn invisible_and_reordering_characters_in_keys_are_escaped_and_read_back() {
    let d = Dir::new();
    let keys = [
        ("a\u{200b}", r"a\xe2\x80\x8b"),
        ("\u{feff}b", r"\xef\xbb\xbfb"),
        ("c\u{a0}d", r"c\xc2\xa0d"),
        ("rlo\u{202e}txt.exe", r"rlo\xe2\x80\xaetxt.exe"),
        ("line\u{2028}sep", r"line\xe2\x80\xa8sep"),
        ("soft\u{ad}hyphen", r"soft\xc2\xadhyphen"),
    ];
    // Printable text stays as it is.
    let keys: Vec<_> = keys.into_iter().chain([("é✓ x", "é✓ x")]).collect();
    listed_as_shown_and_read_back(&d, &keys);
}

/// Sets each `(key, shown)` of `keys` in c.db (its value its index), and checks that
/// `keys` lists it as `shown`, which `get -e` reads back as the key.
fn listed_as_shown_and_read_back(d: &Dir, keys: &[(&str, &str)]) {
    for (i, (key, _)) in keys.iter().enumerate() {
        d.ok(&["set", "c.db", key, &i.to_string()]);
    }
    let listed = d.ok(&["keys", "c.db"]);
    for (i, (_, shown)) in keys.iter().enumerate() {
        assert!(
            listed.lines().any(|l| l.ends_with(&format!("  {shown}"))),
            "{shown} not in:\n{listed}"
        );
        assert_eq!(
            d.ok(&["get", "c.db", "-e", shown]),
            i.to_string(),
            "{shown}"
        );
    }
}

/// A space at either end of a key is escaped (`\x20`): at the end of a row it shows as
/// nothing, so `a ` was listed as `a`, and ` ` as the empty key, and `get` of what was
/// shown missed or read another key.
#[test]
fn spaces_at_the_ends_of_keys_are_escaped_and_read_back() {
    let d = Dir::new();
    let keys = [
        ("a", "a"),
        ("a ", r"a\x20"),
        (" a", r"\x20a"),
        (" ", r"\x20"),
        ("b c", "b c"),
    ];
    listed_as_shown_and_read_back(&d, &keys);
    let r = d.run(&["get", "c.db", "z "]);
    assert!(r.stderr.ends_with("under key z\\x20\n"), "{}", r.stderr);
}

/// Characters Unicode calls default-ignorable (a terminal draws them as nothing) that
/// are not format characters, and blanks that are not whitespace, are escaped too:
/// `a\u{34f}b` (combining grapheme joiner), `a\u{fe0f}b` (a variation selector) and
/// `a\u{e0100}b` showed as `ab`, and `a\u{3164}b` (Hangul filler) and `a\u{2800}b`
/// (Braille blank) as `a b`: keys that `get` of what was shown missed.
#[test]
fn default_ignorable_and_blank_characters_in_keys_are_escaped_and_read_back() {
    let d = Dir::new();
    let keys = [
        ("a\u{34f}b", r"a\xcd\x8fb"),
        ("a\u{115f}b", r"a\xe1\x85\x9fb"),
        ("a\u{17b4}b", r"a\xe1\x9e\xb4b"),
        ("a\u{180b}b", r"a\xe1\xa0\x8bb"),
        ("a\u{2065}b", r"a\xe2\x81\xa5b"),
        ("a\u{2800}b", r"a\xe2\xa0\x80b"),
        ("a\u{3164}b", r"a\xe3\x85\xa4b"),
        ("a\u{fe0f}b", r"a\xef\xb8\x8fb"),
        ("a\u{ffa0}b", r"a\xef\xbe\xa0b"),
        ("a\u{e0100}b", r"a\xf3\xa0\x84\x80b"),
    ];
    for (i, (key, _)) in keys.iter().enumerate() {
        d.ok(&["set", "c.db", key, &i.to_string()]);
    }
    // A combining mark that shows on its letter stays as it is.
    d.ok(&["set", "c.db", "e\u{301}", "accent"]);
    let listed = d.ok(&["keys", "c.db"]);
    for (i, (_, shown)) in keys.iter().enumerate() {
        assert!(
            listed.lines().any(|l| l.ends_with(&format!("  {shown}"))),
            "{shown} not in:\n{listed}"
        );
        assert_eq!(
            d.ok(&["get", "c.db", "-e", shown]),
            i.to_string(),
            "{shown}"
        );
    }
    assert!(
        listed.lines().any(|l| l.ends_with("  e\u{301}")),
        "{listed}"
    );
}

#[test]
fn an_empty_file_is_not_a_cache_to_commands_that_do_not_store() {
    let d = Dir::new();
    std::fs::write(d.path("empty.db"), b"").unwrap();
    for args in [
        &["stats", "empty.db"][..],
        &["stats", "empty.db", "--json"],
        &["keys", "empty.db"],
        &["get", "empty.db", "k"],
        &["delete", "empty.db", "k"],
        &["clear", "empty.db"],
        &["zero-stats", "empty.db"],
        &["check", "empty.db"],
        &["check", "empty.db", "--repair"],
        &["vacuum", "empty.db"],
        &["export", "empty.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "empty.db");
        assert!(r.stderr.contains("not a BackLite cache"), "{}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(
            read(&d.path("empty.db")).unwrap().is_empty(),
            "{args:?} changed it"
        );
        for suffix in ["-wal", "-shm", "-journal", ".values"] {
            assert!(
                !d.path(&format!("empty.db{suffix}")).exists(),
                "{args:?} made {suffix}"
            );
        }
    }
}

#[test]
fn devices_fifos_and_directories_are_refused_by_every_command_and_left_alone() {
    let d = Dir::new();
    let fifo = d.path("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    std::fs::create_dir(d.path("dir.db")).unwrap();
    for name in ["fifo", "/dev/null", "dir.db"] {
        for args in [
            &["stats", name][..],
            &["keys", name],
            &["get", name, "k"],
            &["set", name, "k", "v"],
            &["delete", name, "k"],
            &["clear", name],
            &["zero-stats", name],
            &["check", name],
            &["vacuum", name],
            &["export", name],
            &["import", name],
        ] {
            let r = d.run(args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            one_line_naming(&r.stderr, name);
        }
    }
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_symlink()
        .eq(&false));
    assert_eq!(std::fs::read_dir(d.path("dir.db")).unwrap().count(), 0);
    let names: Vec<_> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}

#[test]
fn a_dash_is_stdout_for_outputs_and_stdin_for_inputs() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "value"]);
    assert_eq!(d.ok(&["get", "c.db", "k", "-o", "-"]), "value");
    let dump = d.ok(&["export", "c.db", "-o", "-"]);
    assert_eq!(dump.lines().count(), 2, "{dump}");
    let r = d.run_with_input(&["import", "n.db", "-i", "-"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "n.db", "k"]), "value");
    assert!(!d.path("-").exists(), "a file named - was made");
}

#[test]
fn an_export_into_a_pipe_closed_early_stops_quietly() {
    let d = a_cache_to_export();
    for args in [
        &["export", "c.db"][..],
        &["keys", "c.db"],
        &["keys", "c.db", "--json"],
    ] {
        into_a_pipe_closed_early(&d, args);
    }
}

/// `backlite ARGS | head -c 10`, with far more than a pipe's buffer still to come when
/// the reader goes: the command stops quietly, exit 0.
fn into_a_pipe_closed_early(d: &Dir, args: &[&str]) {
    let mut child = d
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(!stderr.contains("Broken pipe"), "{args:?}: {stderr}");
}

/// The same when the reader goes while a large value is on its way out, text or not:
/// a text value is written by serde_json, whose error for the closed pipe was made
/// an error of kind `Other`, so `export | head -c 10` of values of 1 MiB said
/// "cannot write: Broken pipe" and exited 2.
#[test]
fn an_export_of_large_values_into_a_pipe_closed_early_stops_quietly() {
    use base64::Engine as _;
    let d = Dir::new();
    for (value, field) in [
        ("x".repeat(1 << 20), "value"),
        (
            base64::engine::general_purpose::STANDARD.encode(vec![0xffu8; 1 << 20]),
            "value_base64",
        ),
    ] {
        let cache = format!("{field}.db");
        let dump: String = (0..3)
            .map(|i| format!("{{\"key\":\"k{i}\",\"{field}\":\"{value}\"}}\n"))
            .collect();
        let r = d.run_with_input(&["import", &cache], dump.as_bytes());
        assert_eq!(r.code, 0, "{}", r.stderr);
        into_a_pipe_closed_early(&d, &["export", &cache]);
    }
}

/// `backlite args...` in d with a file size limit of 64 KiB (a full disk, as a write
/// sees it): its exit code and stderr.
fn run_with_64_kib_files(d: &Dir, args: &[&str]) -> (Option<i32>, String) {
    outcome(with_64_kib_files(d.command(args)))
}

/// `cmd` with a file size limit of 64 KiB, past which a write fails (EFBIG).
fn with_64_kib_files(mut cmd: Command) -> Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the child only calls the async-signal-safe
    // signal and setrlimit.
    unsafe {
        cmd.pre_exec(|| {
            // Past the limit a write fails with EFBIG instead of killing the process.
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 1 << 16,
                rlim_max: 1 << 16,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// The exit code and stderr of `cmd`.
fn outcome(mut cmd: Command) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// d with c.db holding 4,000 entries: a dump of about 500 KB.
fn a_cache_to_export() -> Dir {
    let d = Dir::new();
    let dump: String = (0..4000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "x".repeat(100)))
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    d
}

/// An `export -o OUT` that cannot write all of it (here a file size limit of 64 KiB:
/// a full disk) exits 2 and leaves no dump, as `get -o OUT` does: the dump cut short was
/// left behind, and one cut at a line's end imports as a whole dump with fewer entries.
#[test]
fn an_export_that_cannot_write_all_of_out_leaves_no_dump_behind() {
    let d = a_cache_to_export();
    let (code, stderr) = run_with_64_kib_files(&d, &["export", "c.db", "-o", "dump.jsonl"]);
    assert_eq!(code, Some(2), "{stderr}");
    one_line_naming(&stderr, "dump.jsonl");
    assert!(
        !d.path("dump.jsonl").exists(),
        "a dump cut short was left behind ({} bytes)",
        std::fs::metadata(d.path("dump.jsonl")).map_or(0, |m| m.len())
    );
    assert_eq!(copies_beside(&d, "dump.jsonl"), Vec::<String>::new());
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// d of [`a_cache_to_export`], whose cache the user nobody may read, with
/// `kept/dump.jsonl`, which nobody may write, in a folder `kept` where nobody may make a
/// file; `None` unless the tests run as root (the folder must be one that binds its user).
fn a_dump_in_a_folder_nobody_may_write() -> Option<Dir> {
    use std::os::unix::fs::PermissionsExt;
    if !common::as_root() {
        return None;
    }
    let d = a_cache_to_export();
    let set_mode = |path: &str, mode: u32| {
        std::fs::set_permissions(d.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(".", 0o777);
    set_mode("c.db", 0o666);
    std::fs::create_dir(d.path("kept")).unwrap();
    std::fs::write(d.path("kept/dump.jsonl"), "last night's").unwrap();
    set_mode("kept/dump.jsonl", 0o666);
    Some(d)
}

/// `export c.db -o kept/dump.jsonl` in d run as nobody, `limited` to files of 64 KiB
/// (a full disk): its exit code and stderr.
fn export_as_nobody(d: &Dir, limited: bool) -> (Option<i32>, String) {
    use std::os::unix::process::CommandExt;
    let mut cmd = d.command(["export", "c.db", "-o", "kept/dump.jsonl"]);
    if limited {
        cmd = with_64_kib_files(cmd);
    }
    cmd.uid(65534).gid(65534);
    outcome(cmd)
}

/// An OUT that must be written in place, a plain file in a folder where its user may
/// make no file, was left cut short when the export failed (a full disk): the help says
/// it is removed, but removing it needs the same folder. A dump cut at a line's end
/// imports as a whole dump of fewer entries. It is emptied now. (Run as root only: the
/// folder must be one that binds its user.)
#[test]
fn an_output_in_a_folder_its_user_cannot_write_is_not_left_cut_short() {
    let Some(d) = a_dump_in_a_folder_nobody_may_write() else {
        return;
    };
    let (code, stderr) = export_as_nobody(&d, true);
    assert_eq!(code, Some(2), "{stderr}");
    one_line_naming(&stderr, "dump.jsonl");
    let left = read(&d.path("kept/dump.jsonl")).unwrap();
    assert!(left.is_empty(), "left cut short: {} bytes", left.len());
}

/// An OUT with a second name (a hard link) in a folder where its user may make no file
/// is written in place, through every name, as `> OUT` writes it: no copy can be made
/// beside it. Whole, both names show the output; not whole (a full disk), both are
/// emptied, and the error said only "cannot write", though the help says a failed
/// output leaves OUT as it was: the line says now that OUT was written in place and
/// emptied. (Run as root only: the folder must be one that binds its user.)
#[test]
fn a_linked_output_in_a_folder_its_user_cannot_write_is_written_in_place_and_says_so() {
    use std::os::unix::fs::MetadataExt;
    let Some(d) = a_dump_in_a_folder_nobody_may_write() else {
        return;
    };
    std::fs::hard_link(d.path("kept/dump.jsonl"), d.path("kept/latest.jsonl")).unwrap();
    let one_file = || {
        let a = std::fs::metadata(d.path("kept/dump.jsonl")).unwrap();
        let b = std::fs::metadata(d.path("kept/latest.jsonl")).unwrap();
        assert_eq!(
            (a.ino(), a.nlink()),
            (b.ino(), 2),
            "the names are no longer one file"
        );
    };
    let (code, stderr) = export_as_nobody(&d, false);
    assert_eq!(code, Some(0), "{stderr}");
    one_file();
    let dump = read(&d.path("kept/latest.jsonl")).unwrap();
    assert!(dump.ends_with(b"}\n") && dump.len() > 1 << 16);
    let (code, stderr) = export_as_nobody(&d, true);
    assert_eq!(code, Some(2), "{stderr}");
    one_line_naming(&stderr, "dump.jsonl");
    assert!(
        stderr.contains("; kept/dump.jsonl was written in place and is emptied, not whole"),
        "{stderr}"
    );
    one_file();
    assert_eq!(read(&d.path("kept/latest.jsonl")).unwrap(), b"");
}

/// `export -o backup.jsonl` over last night's dump, on a disk that fills up, truncated
/// the old dump and then removed the part written: no backup at all. So did `get -o
/// OUT` of a value found damaged. OUT is now written beside and renamed over the old
/// file once whole; a failure leaves the old one byte for byte, and a success
/// replaces it with its permissions kept.
#[test]
fn an_output_that_fails_leaves_the_file_it_was_to_replace_as_it_was() {
    use std::os::unix::fs::PermissionsExt;
    let d = a_cache_to_export();
    let old = "{\"backlite_export\":1}\n{\"key\":\"old\",\"value\":\"precious\"}\n";
    std::fs::write(d.path("backup.jsonl"), old).unwrap();
    let mode = std::fs::Permissions::from_mode(0o640);
    std::fs::set_permissions(d.path("backup.jsonl"), mode).unwrap();
    let (code, stderr) = run_with_64_kib_files(&d, &["export", "c.db", "-o", "backup.jsonl"]);
    assert_eq!(code, Some(2), "{stderr}");
    one_line_naming(&stderr, "backup.jsonl");
    assert_eq!(
        std::fs::read_to_string(d.path("backup.jsonl"))
            .ok()
            .as_deref(),
        Some(old),
        "the earlier dump was lost"
    );
    assert_eq!(copies_beside(&d, "backup.jsonl"), Vec::<String>::new());

    // A damaged value's part is not kept, and the file it was to replace stays.
    let d = a_value_damaged_at(600_000 - 1);
    std::fs::write(d.path("out.bin"), "earlier").unwrap();
    let r = d.run(&["get", "c.db", "big", "-o", "out.bin"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        common::read(&d.path("out.bin")).as_deref(),
        Some(&b"earlier"[..])
    );
    assert_eq!(copies_beside(&d, "out.bin"), Vec::<String>::new());

    // Whole, the export replaces the old dump, with its permissions.
    let d = a_cache_to_export();
    std::fs::write(d.path("backup.jsonl"), old).unwrap();
    let mode = std::fs::Permissions::from_mode(0o640);
    std::fs::set_permissions(d.path("backup.jsonl"), mode).unwrap();
    d.ok(&["export", "c.db", "-o", "backup.jsonl"]);
    let meta = std::fs::metadata(d.path("backup.jsonl")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    let dump = std::fs::read_to_string(d.path("backup.jsonl")).unwrap();
    assert_eq!(dump.lines().count(), 4001, "{}", &dump[..200]);
    assert_eq!(copies_beside(&d, "backup.jsonl"), Vec::<String>::new());
}

/// The copy written beside OUT reached the disk only when the kernel chose: renamed over
/// OUT unsynced, a power cut just after left an empty or partial OUT where the old one
/// was on a file system that does not flush a file renamed over another (XFS). Seen
/// under strace: the copy is synced before it is renamed.
#[test]
fn an_output_is_on_the_disk_before_it_replaces_the_old_one() {
    let traced = std::process::Command::new("strace").arg("-V").output();
    if !traced.is_ok_and(|o| o.status.success()) {
        eprintln!("!! SKIPPED: strace is not installed (.ci/run installs it)");
        return;
    }
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    std::fs::write(d.path("backup.jsonl"), "last night's").unwrap();
    for args in [
        &["export", "c.db", "-o", "backup.jsonl"][..],
        &["get", "c.db", "k", "-o", "backup.jsonl"],
    ] {
        let out = std::process::Command::new("strace")
            .args([
                "-f",
                "-qq",
                "-e",
                "trace=fsync,fdatasync,rename,renameat,renameat2",
            ])
            .arg(common::bin())
            .args(args)
            .current_dir(d.path("."))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let trace = String::from_utf8_lossy(&out.stderr);
        let calls: Vec<&str> = trace
            .lines()
            .filter(|l| l.contains("sync(") || l.contains("rename"))
            .collect();
        let renamed = calls
            .iter()
            .position(|l| l.contains("rename") && l.contains("backup.jsonl\""))
            .unwrap_or_else(|| panic!("{args:?}: no rename over backup.jsonl in {calls:#?}"));
        assert!(
            calls[..renamed].iter().any(|l| l.contains("sync(")),
            "{args:?}: renamed over backup.jsonl unsynced: {calls:#?}"
        );
    }
}

/// An OUT its user may not write (made read-only, or another user's in a folder all may
/// write) was replaced all the same by `get -o OUT` and `export -o OUT`, exit 0: the
/// copy is written beside OUT and renamed over it, and a rename asks only the folder.
/// As `>` does, they now refuse it (Permission denied, exit 2) and leave it as it was.
#[test]
fn an_output_its_user_may_not_write_is_refused_not_replaced() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    let set_mode = |path: &str, mode: u32| {
        std::fs::set_permissions(d.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    let mut outs = vec!["read-only.txt"];
    if common::as_root() {
        // nobody may read the cache and make the files beside it, but owns no OUT.
        set_mode(".", 0o777);
        set_mode("c.db", 0o666);
        std::fs::write(d.path("root-s.txt"), "root's").unwrap();
        set_mode("root-s.txt", 0o644);
        outs.push("root-s.txt");
    }
    std::fs::write(d.path("read-only.txt"), "precious").unwrap();
    if common::as_root() {
        std::os::unix::fs::chown(d.path("read-only.txt"), Some(65534), Some(65534)).unwrap();
    }
    set_mode("read-only.txt", 0o444);
    for out in outs {
        let before = common::read(&d.path(out));
        for args in [
            &["get", "c.db", "k", "-o", out][..],
            &["export", "c.db", "-o", out],
        ] {
            let r = d.run_unprivileged(args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            one_line_naming(&r.stderr, out);
            assert!(r.stderr.contains("Permission denied"), "{}", r.stderr);
            assert_eq!(
                common::read(&d.path(out)),
                before,
                "{args:?} replaced {out}"
            );
            assert_eq!(copies_beside(&d, out), Vec::<String>::new());
        }
    }
}

/// In a sticky folder all may write (`/tmp`), `get -o OUT` and `export -o OUT` over
/// another user's file that they may write (as `> OUT` does) failed "Operation not
/// permitted", exit 2, after writing the whole output beside it: only the owner may
/// rename over a file there. They write it in place now. (Run as root only: the test
/// needs two users.)
#[test]
fn an_output_in_a_sticky_folder_owned_by_another_user_is_written() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !common::as_root() {
        return;
    }
    let d = a_cache_to_export();
    d.ok(&["set", "c.db", "k", "value"]);
    let set_mode = |path: &str, mode: u32| {
        std::fs::set_permissions(d.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(".", 0o1777);
    set_mode("c.db", 0o666);
    std::fs::write(d.path("shared.txt"), "root's").unwrap();
    set_mode("shared.txt", 0o666);
    let r = d.run_unprivileged(&["get", "c.db", "k", "-o", "shared.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(read(&d.path("shared.txt")).unwrap(), b"value");
    let r = d.run_unprivileged(&["export", "c.db", "-o", "shared.txt"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dump = std::fs::read_to_string(d.path("shared.txt")).unwrap();
    assert_eq!(dump.lines().count(), 4002);
    assert_eq!(copies_beside(&d, "shared.txt"), Vec::<String>::new());
    // Still root's, with its mode.
    let meta = std::fs::metadata(d.path("shared.txt")).unwrap();
    assert_eq!((meta.uid(), meta.permissions().mode() & 0o7777), (0, 0o666));
}

/// `get -o OUT` and `export -o OUT` with an OUT of a long name, valid (250 bytes; a file
/// system takes 255), failed "File name too long", exit 2, whether OUT was there or
/// not: the copy written beside it first was named after all of it, and more. So did a
/// shorter name that is not UTF-8, each of its bytes made three in that copy's name.
#[test]
fn an_output_of_a_long_name_is_written() {
    use std::os::unix::ffi::OsStrExt;
    let d = a_cache_to_export();
    d.ok(&["set", "c.db", "k", "value"]);
    let long = "é".repeat(125);
    let not_text = std::ffi::OsStr::from_bytes(&[0xff; 100]);
    let run = |args: &[&str], out: &std::ffi::OsStr| {
        let mut command = d.command(args.iter().map(std::ffi::OsStr::new).chain([out]));
        common::ended(&mut command.stderr(Stdio::piped()).spawn().unwrap())
    };
    for out in [std::ffi::OsStr::new(&long), not_text] {
        for there in [false, true] {
            if there {
                std::fs::write(d.tmp.path().join(out), "earlier").unwrap();
            }
            let (status, stderr) = run(&["get", "c.db", "k", "-o"], out);
            assert!(status.success(), "get, OUT there {there}: {stderr}");
            assert_eq!(common::read(&d.tmp.path().join(out)).unwrap(), b"value");
            let (status, stderr) = run(&["export", "c.db", "-o"], out);
            assert!(status.success(), "export, OUT there {there}: {stderr}");
            let dump = common::read(&d.tmp.path().join(out)).unwrap();
            assert_eq!(dump.split(|b| *b == b'\n').count(), 4003);
            // Nothing but the cache's files and OUT.
            let mut names: Vec<_> = std::fs::read_dir(d.tmp.path())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .filter(|n| !n.as_bytes().starts_with(b"c.db"))
                .collect();
            names.sort();
            assert_eq!(names, [out]);
            std::fs::remove_file(d.tmp.path().join(out)).unwrap();
        }
    }
}

/// `keys` writes its rows 64 KiB at a time; a write that failed in the middle was
/// dropped and the listing went on, so output that filled that buffer exactly at its
/// last row (171 keys of 343 bytes: a 43-byte header and rows of 383) went nowhere on a
/// full disk and the command still exited 0.
#[test]
fn keys_into_a_full_disk_fails_wherever_its_rows_end() {
    if !have_dev_full() {
        return;
    }
    let d = Dir::new();
    let dump: String = (0..171)
        .map(|i| {
            format!(
                "{{\"key\":\"k{i:03}{}\",\"value\":\"v\"}}\n",
                "x".repeat(339)
            )
        })
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        d.ok(&["keys", "c.db"]).len(),
        65536,
        "the rows no longer end at 64 KiB"
    );
    for args in [&["keys", "c.db"][..], &["keys", "c.db", "--sort", "size"]] {
        let (code, stderr) = into_dev_full(&d, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        one_line_naming(&stderr, "c.db");
        assert!(stderr.contains("No space left"), "{args:?}: {stderr}");
    }
}

#[test]
fn usage_errors_are_one_line_and_name_the_file_they_are_about() {
    let d = Dir::new();
    for (args, names) in [
        (&["set", "c.db", "k", "v", "--expire", "10min"][..], "c.db"),
        (&["set", "c.db", "k", "v", "--expire", "garbage"], "c.db"),
        (&["set", "c.db", "k", "v", "--max-size", "lots"], "c.db"),
        (&["stats", "c.db", "--max-size", "1e30 GiB"], "c.db"),
        (&["set", "c.db", "k", "v", "--policy", "random"], "c.db"),
        (&["stats", "c.db", "--bogus"], "--bogus"),
        (&["bogus", "c.db"], "bogus"),
        (&["keys", "c.db", "--sort", "colour"], "colour"),
        (&["keys", "c.db", "--limit", "-1"], "-1"),
        (&["stats"], "FILE"),
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, names);
        assert_eq!(r.stdout, "", "{args:?}");
        assert!(read(&d.path("c.db")).is_none(), "{args:?} made the file");
    }
    // Help and version are not errors.
    for args in [&["--help"][..], &["--version"], &["help", "keys"]] {
        let r = d.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty());
    }
}

#[test]
fn every_subcommand_has_help() {
    let d = Dir::new();
    for sub in [
        "stats",
        "keys",
        "get",
        "set",
        "delete",
        "clear",
        "zero-stats",
        "check",
        "vacuum",
        "export",
        "import",
    ] {
        let r = d.run(&[sub, "--help"]);
        assert_eq!(r.code, 0, "{sub}: {}", r.stderr);
        assert!(
            r.stdout.contains(&format!("backlite {sub}")),
            "{sub}: {}",
            r.stdout
        );
        // Every flag says what it does: on its line, or (clap's long form) on the next.
        // (A flag without help is padded to the column of the others' help: trimmed.)
        let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
        for (i, line) in lines.iter().enumerate() {
            let flag = line.starts_with('-')
                && line
                    .as_bytes()
                    .get(1)
                    .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'-');
            if flag && !line.contains("  ") {
                let next = lines.get(i + 1).copied().unwrap_or("");
                assert!(
                    !next.is_empty() && !next.starts_with('-'),
                    "{sub}: undocumented flag: {line}"
                );
            }
        }
    }
}

/// The `max_size` stats reports for `--max-size text`, or the failure's stderr.
fn max_size_of(d: &Dir, text: &str) -> Result<u64, String> {
    let r = d.run(&["stats", "c.db", "--json", &format!("--max-size={text}")]);
    if r.code != 0 {
        return Err(r.stderr);
    }
    Ok(json_of(&r.stdout)["max_size"].as_u64().unwrap())
}

#[test]
fn sizes_read_the_human_way_up_to_the_largest_and_no_further() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    assert_eq!(max_size_of(&d, "1.5 GiB"), Ok(3 << 29));
    assert_eq!(max_size_of(&d, "10 KB"), Ok(10_000));
    assert_eq!(max_size_of(&d, "10KiB"), Ok(10_240));
    assert_eq!(max_size_of(&d, "2 PiB"), Ok(2 << 50));
    assert_eq!(max_size_of(&d, "1e3"), Ok(1000));
    assert_eq!(max_size_of(&d, "1.5e3 KB"), Ok(1_500_000));
    // The largest, as the error for 0 names it, and to the byte beyond a float's 53
    // bits (read as a float, the first was 2^63, "too large", the second a byte short).
    assert_eq!(max_size_of(&d, "9223372036854775807"), Ok(i64::MAX as u64));
    assert_eq!(
        max_size_of(&d, "9007199254740993"),
        Ok(9_007_199_254_740_993)
    );
    // What stats writes, it reads back.
    let r = d.ok(&["stats", "c.db", "--max-size", "2 PiB"]);
    assert!(r.contains("of 2 PiB max"), "{r}");
    for (text, why) in [
        ("1e30 GiB", "too large"),
        ("99999999999 TiB", "too large"),
        ("8 EiB", "too large"),
        ("9223372036854775808", "too large"),
        ("0", "between 1 and"),
        ("-1", "bad size"),
        ("lots", "bad size"),
        ("NaN", "bad size"),
        ("inf", "bad size"),
    ] {
        let e = max_size_of(&d, text).unwrap_err();
        one_line_naming(&e, "c.db");
        assert!(e.contains(why), "{text}: {e}");
    }
}

/// The time left that `keys --json` shows for `key`.
fn expires_in(d: &Dir, key: &str) -> Option<serde_json::Value> {
    d.ok(&["keys", "c.db", "--json", "--prefix", key])
        .lines()
        .map(json_of)
        .find(|v| v["key"] == key)
        .map(|v| v["expires_in_ms"].clone())
}

#[test]
fn expiries_read_the_human_way_and_refuse_the_impossible() {
    let d = Dir::new();
    // The time left is read some time after the set: as much as that, not a fixed
    // second (a loaded machine took more between the two commands).
    let start = std::time::Instant::now();
    d.ok(&["set", "c.db", "ten", "v", "--expire", "10m"]);
    d.ok(&["set", "c.db", "frac", "v", "--expire", "1.5h"]);
    d.ok(&["set", "c.db", "never", "v", "--expire", "never"]);
    let ms = |k| expires_in(&d, k).unwrap().as_u64().unwrap();
    let (ten, frac) = (ms("ten"), ms("frac"));
    let since = start.elapsed().as_millis() as u64 + 1;
    assert!(
        (600_000_u64.saturating_sub(since)..=600_000).contains(&ten),
        "{ten} ({since} ms)"
    );
    assert!(
        (5_400_000_u64.saturating_sub(since)..=5_400_000).contains(&frac),
        "{frac} ({since} ms)"
    );
    assert_eq!(expires_in(&d, "never"), Some(serde_json::Value::Null));
    // 0 of any unit is 0: the library's "already expired", which stores nothing and
    // leaves no older value behind.
    d.ok(&["set", "c.db", "ten", "v", "--expire", "0"]);
    assert_eq!(expires_in(&d, "ten"), None);
    assert_eq!(d.run(&["get", "c.db", "ten"]).code, 1);
    for (text, why) in [
        ("-1", "negative"),
        ("-5m", "negative"),
        ("garbage", "bad duration"),
        ("10", "unit"),
        ("99999999999d", "too long"),
        ("1e30d", "too long"),
        ("1h30", "unit"),
    ] {
        let r = d.run(&["set", "c.db", "frac", "new", &format!("--expire={text}")]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
        assert!(r.stderr.contains(why), "{text}: {}", r.stderr);
    }
    assert_eq!(d.ok(&["get", "c.db", "frac"]), "v", "a refused set stored");
}

#[test]
fn a_fractional_expiry_is_the_lifetime_asked_for_to_the_millisecond_up() {
    // The library counts whole milliseconds. A fraction of one was cut off: 0.5ms
    // became 0, "already expired", so the set stored nothing and exited 0; and a
    // decimal that binary cannot hold lost its last millisecond (0.57s lived 569 ms).
    let d = Dir::new();
    let asked = [
        ("0.5ms", 1),
        ("0.0009s", 1),
        ("0.57s", 570),
        ("1.005s", 1005),
        ("4.35s", 4350),
        ("1.0001s", 1001),
        ("0.29m", 17_400),
    ];
    for (text, ms) in asked {
        // Each in a file of its own: a later set removes an entry already expired.
        let file = format!("{}.db", text.replace('.', "_"));
        d.ok(&["set", &file, text, "v", &format!("--expire={text}")]);
        let conn = rusqlite::Connection::open(d.path(&file)).unwrap();
        let lived: Option<i64> = conn
            .query_row(
                "SELECT expires_at - set_at FROM entries WHERE key = ?1",
                [text.as_bytes()],
                |r| r.get(0),
            )
            .ok();
        assert_eq!(lived, Some(ms), "--expire {text}");
    }
}

#[test]
fn zero_is_zero_however_written_and_a_tiny_lifetime_is_not_zero() {
    // `--expire 0` was taken and `0.0` refused ("a unit is missing"), though both are
    // the same number and zero needs no unit; and a lifetime too short for a
    // nanosecond (1e-12s) became 0, "already expired": stored nothing, exit 0.
    let d = Dir::new();
    for zero in ["0.0", "0.", ".0", "00.000", "0e3", "0s", "0.0ms"] {
        d.ok(&["set", "c.db", "k", "v"]);
        d.ok(&["set", "c.db", "k", "new", &format!("--expire={zero}")]);
        assert_eq!(expires_in(&d, "k"), None, "--expire {zero} stored");
        assert_eq!(d.run(&["get", "c.db", "k"]).code, 1, "--expire {zero}");
    }
    for (n, tiny) in ["1e-12s", "0.0000000001ms", "1e-300w"].iter().enumerate() {
        // Each in a file of its own: a later set removes an entry already expired.
        let file = format!("tiny{n}.db");
        d.ok(&["set", &file, "k", "v", &format!("--expire={tiny}")]);
        let conn = rusqlite::Connection::open(d.path(&file)).unwrap();
        let lived: Option<i64> = conn
            .query_row(
                "SELECT expires_at - set_at FROM entries WHERE key = ?1",
                [b"k"],
                |r| r.get(0),
            )
            .ok();
        assert_eq!(lived, Some(1), "--expire {tiny}");
    }
    // A number other than zero still needs its unit.
    for text in ["0.5", "1e-3", "0.0.0"] {
        let r = d.run(&["set", "c.db", "k", "v", &format!("--expire={text}")]);
        assert_eq!(r.code, 2, "{text}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
    }
}

#[test]
fn a_prefix_is_taken_literally_and_escapes_only_with_e() {
    let d = Dir::new();
    for key in ["a%b", "axb", "a_b", "a\\b", "a\\x41", "aA", "ab"] {
        d.ok(&["set", "c.db", key, "v"]);
    }
    let listed = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["keys", "c.db", "--json"];
        all.extend_from_slice(args);
        d.ok(&all)
            .lines()
            .map(|l| json_of(l)["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&["--prefix", "a%"]), ["a%b"]);
    assert_eq!(listed(&["--prefix", "a_"]), ["a_b"]);
    assert_eq!(listed(&["--prefix", "a\\"]), ["a\\b", "a\\x41"]);
    assert_eq!(listed(&["--prefix", "a\\x"]), ["a\\x41"]);
    assert_eq!(listed(&["-e", "--prefix", "a\\x41"]), ["aA"]);
    assert_eq!(listed(&["-e", "--prefix", "a\\\\"]), ["a\\b", "a\\x41"]);
    assert_eq!(listed(&["--prefix", ""]).len(), 7);
    assert_eq!(listed(&["--limit", "0"]), Vec::<String>::new());
    // No row asked for, none listed: "(no keys)" would say the cache has none (17f5afc).
    assert_eq!(d.ok(&["keys", "c.db", "--limit", "0"]), "");
    // Equal sizes: key order breaks the tie.
    assert_eq!(listed(&["--limit", "2", "--sort", "size"]), ["a%b", "aA"]);
    let r = d.run(&["keys", "c.db", "-e", "--prefix", "a\\q"]);
    assert_eq!(r.code, 2);
    one_line_naming(&r.stderr, "c.db");
}

#[test]
fn delete_of_keys_some_missing_deletes_the_rest_and_exits_1() {
    let d = Dir::new();
    for key in ["a", "b", "c"] {
        d.ok(&["set", "c.db", key, "v"]);
    }
    let r = d.run(&["delete", "c.db", "a", "nope", "c", "gone"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "deleted 2 of 4 keys (2 not found)\n");
    one_line_naming(&r.stderr, "c.db");
    assert!(
        r.stderr.contains("nope") && r.stderr.contains("gone"),
        "{}",
        r.stderr
    );
    assert_eq!(d.ok(&["keys", "c.db", "--json"]).lines().count(), 1);
    let r = d.run(&["delete", "c.db", "b"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
}

/// A set refused as too large removes the older value under its key (API.md: a later
/// get must not return it, stale), and its error says so: it said only "not stored",
/// which reads as if the cache were left as it was.
#[test]
fn a_set_too_large_says_the_older_value_is_gone() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "old"]);
    let big = "x".repeat(100);
    let r = d.run(&["set", "c.db", "k", &big, "--max-size", "50"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(
        r.stderr.contains("not stored")
            && r.stderr
                .contains("the older value under key k, if there was one, was removed"),
        "{}",
        r.stderr
    );
    assert_eq!(d.run(&["get", "c.db", "k"]).code, 1);
}

/// A cache named `:memory:` is a file like any other, as the other commands read it:
/// the library takes that exact name for a cache in memory, so `set :memory: k v`
/// exited 0 having stored the value nowhere (the get after it: "no such file").
#[test]
fn a_cache_named_memory_is_a_file() {
    let d = Dir::new();
    d.ok(&["set", ":memory:", "k", "v"]);
    assert!(d.path(":memory:").is_file());
    assert_eq!(d.ok(&["get", ":memory:", "k"]), "v");
    let r = d.run_with_input(
        &["import", ":memory:"],
        b"{\"key\":\"a\",\"value\":\"1\"}\n",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", ":memory:", "a"]), "1");
}

#[test]
fn import_times_must_be_real_dates() {
    let d = Dir::new();
    for (when, ok) in [
        ("2099-02-30T00:00:00Z", false),
        ("2099-04-31T00:00:00Z", false),
        ("2100-02-29T00:00:00Z", false),
        ("2096-02-29T00:00:00Z", true),
        ("2099-12-31T23:59:59.999Z", true),
    ] {
        let line = format!("{{\"key\":\"k\",\"value\":\"v\",\"expires_at\":\"{when}\"}}\n");
        let r = d.run_with_input(&["import", "c.db"], line.as_bytes());
        assert_eq!(r.code == 0, ok, "{when}: {}", r.stderr);
        if !ok {
            assert!(
                r.stderr.contains("line 1 of <stdin>: bad time"),
                "{}",
                r.stderr
            );
        }
    }
}

#[test]
fn a_large_value_kept_beside_the_cache_goes_through_every_command() {
    let (d, big) = big_and_small();
    assert!(d.path("c.db.values").is_dir());
    let r = d.run(&["get", "c.db", "big"]);
    assert_eq!((r.code, r.stdout_bytes == big), (0, true));
    d.ok(&["get", "c.db", "big", "-o", "big.out"]);
    assert!(read(&d.path("big.out")).unwrap() == big);
    let dump = d.ok(&["export", "c.db"]);
    let r = d.run_with_input(&["import", "n.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(d.run(&["get", "n.db", "big"]).stdout_bytes == big);
    assert_eq!(d.run(&["check", "n.db"]).code, 0);
    d.ok(&["vacuum", "n.db"]);
    assert!(d.run(&["get", "n.db", "big"]).stdout_bytes == big);
    let files = |db: &str| {
        std::fs::read_dir(d.path(&format!("{db}.values")))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".blv")
            })
            .count()
    };
    assert_eq!(files("n.db"), 1);
    d.ok(&["delete", "n.db", "big"]);
    assert_eq!(files("n.db"), 0);
    assert_eq!(d.run(&["check", "n.db"]).code, 0);
    // A damaged value file: check exits 1, get misses (1), repair fixes (0).
    let name = a_value_file(&d, "c.db");
    let mut bytes = std::fs::read(&name).unwrap();
    let at = bytes.len() - 10;
    bytes[at] ^= 0xff;
    std::fs::write(&name, bytes).unwrap();
    assert_eq!(d.run(&["check", "c.db"]).code, 1);
    let r = d.run(&["get", "c.db", "big"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stdout_bytes.len() < big.len(),
        "a damaged value was written whole"
    );
    d.ok(&["check", "c.db", "--repair"]);
    assert_eq!(d.run(&["check", "c.db"]).code, 0);
}

/// Runs `backlite args` as the unprivileged user `nobody` when the tests run as root
/// (root may write any file), else as ourselves.
fn run_unprivileged(d: &Dir, args: &[&str]) -> common::Run {
    use std::os::unix::process::CommandExt;
    let mut cmd = d.command(args);
    use std::os::unix::fs::MetadataExt;
    // Files the tests make belong to whoever runs them.
    if std::fs::metadata(d.tmp.path()).unwrap().uid() == 0 {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    common::Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stdout_bytes: out.stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The commands that only read c.db (a get of its key `a` aside, whose hit is given up
/// where it cannot be written).
const READS_OF_A: [&[&str]; 6] = [
    &["stats", "c.db"],
    &["stats", "c.db", "--json"],
    &["keys", "c.db"],
    &["get", "c.db", "a"],
    &["export", "c.db"],
    &["check", "c.db"],
];

#[test]
fn a_cache_file_without_write_permission_is_read_but_never_written() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1", "--expire", "1h"]);
    d.ok(&["set", "c.db", "b", "2"]);
    // Root owns the folder and file; nobody may read both and write neither, except
    // the folder, where SQLite needs its -shm.
    let root = d.tmp.path();
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::set_permissions(d.path("c.db"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let before = read(&d.path("c.db")).unwrap();
    for args in READS_OF_A {
        let r = run_unprivileged(&d, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(!r.stdout.is_empty(), "{args:?}");
    }
    for args in [
        &["set", "c.db", "k", "v"][..],
        &["delete", "c.db", "a"],
        &["clear", "c.db"],
        &["zero-stats", "c.db"],
    ] {
        let r = run_unprivileged(&d, args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
    }
    assert!(read(&d.path("c.db")).unwrap() == before, "the file changed");
}

/// The commands that only read leave a cache of an older schema as it is: the library
/// upgrades such a file as it opens it, and a program of an older BackLite using it
/// goes on writing the old layout, so `backlite stats` of a running program's cache
/// upgraded it under that program (user_version 5 became 6). They refuse it now; a
/// command that writes upgrades it.
#[test]
fn commands_that_only_read_never_upgrade_an_older_schema() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let version = |d: &Dir| -> i32 {
        let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
        conn.query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap()
    };
    // Schema 5 differs from 6 only in the format of new value files.
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("PRAGMA user_version = 5").unwrap();
    drop(conn);
    let before = read(&d.path("c.db")).unwrap();
    for args in READS_OF_A
        .into_iter()
        .chain([&["check", "c.db", "--json"][..]])
    {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        one_line_naming(&r.stderr, "c.db");
        assert!(r.stderr.contains("schema 5"), "{args:?}: {}", r.stderr);
    }
    assert!(read(&d.path("c.db")).unwrap() == before, "the file changed");
    assert_eq!(version(&d), 5);
    d.ok(&["vacuum", "c.db"]);
    assert_eq!(version(&d), 6);
    assert_eq!(d.ok(&["get", "c.db", "a"]), "1");
}

#[test]
fn reads_go_on_while_another_process_holds_the_write_lock() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    for args in [
        &["stats", "c.db"][..],
        &["keys", "c.db"],
        &["export", "c.db"],
        &["check", "c.db"],
    ] {
        let r = run_in(d.tmp.path(), args, b"");
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    // A get writes its hit as it ends: behind a lock held this long, it gives the hit
    // up rather than wait for the library's 5 s busy timeout (not a timing measure:
    // the bound is half of what waiting would take).
    let started = std::time::Instant::now();
    let r = run_in(d.tmp.path(), &["get", "c.db", "a"], b"");
    assert_eq!((r.code, r.stdout.as_str()), (0, "1"), "{}", r.stderr);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2500),
        "get waited {:?} for the write lock",
        started.elapsed()
    );
    conn.execute_batch("ROLLBACK").unwrap();
}

/// A command that writes, behind another process's write lock held past the library's
/// busy timeout, fails with exit 2 and a line that says so: it said only SQLite's
/// "database is locked", naming neither the cause nor what to do.
#[test]
fn a_write_behind_a_lock_held_too_long_says_so() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let r = d.run(&["set", "c.db", "b", "2"]);
    conn.execute_batch("ROLLBACK").unwrap();
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(
        r.stderr
            .contains("another process held the file's write lock"),
        "{}",
        r.stderr
    );
    assert_eq!(d.run(&["get", "c.db", "b"]).code, 1);
}

/// `--policy` is the eviction policy of `set` and `import` (its help says so): given to
/// a command that stores nothing, it created the policy's index all the same, so a
/// `stats` or `keys --policy least-frequently-used` changed the file, and behind another
/// process's write lock waited the library's 5 s busy timeout to do it.
#[test]
fn only_the_commands_that_store_take_the_policy_s_index() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let indexes = || json_of(&d.ok(&["stats", "c.db", "--json"]))["policy_indexes"].clone();
    assert_eq!(indexes(), serde_json::json!([]));
    for policy in [
        "least-frequently-used",
        "first-in-first-out",
        "last-in-first-out",
    ] {
        for (args, code) in [
            (&["stats", "c.db"][..], 0),
            (&["stats", "c.db", "--json"], 0),
            (&["keys", "c.db"], 0),
            (&["get", "c.db", "a"], 0),
            (&["export", "c.db"], 0),
            (&["check", "c.db"], 0),
            (&["check", "c.db", "--repair"], 0),
            (&["vacuum", "c.db"], 0),
            (&["zero-stats", "c.db"], 0),
            (&["delete", "c.db", "absent"], 1),
            (&["clear", "c.db"], 0),
        ] {
            let args: Vec<&str> = ["--policy", policy].iter().chain(args).copied().collect();
            let r = d.run(&args);
            assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
            assert_eq!(indexes(), serde_json::json!([]), "{args:?} made an index");
            d.ok(&["set", "c.db", "a", "1"]);
        }
        // A name that is no policy is still refused, whatever the command.
        let r = d.run(&["--policy", "random", "stats", "c.db"]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        one_line_naming(&r.stderr, "c.db");
    }
    // A set by a policy takes its index, as the help says.
    d.ok(&["--policy", "least-frequently-used", "set", "c.db", "b", "2"]);
    assert_eq!(indexes()[0]["name"], "entries_by_hits");
}

/// A cache `c.db` of two entries (a = "1", b = "22": 2 entries, 3 bytes) whose newest
/// row, the counters' home, `damage` (an UPDATE of entries, without WHERE) has edited.
fn two_entries_with_counters(damage: &str) -> Dir {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    d.ok(&["set", "c.db", "b", "22"]);
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch(&format!(
        "{damage} WHERE seq = (SELECT max(seq) FROM entries)"
    ))
    .unwrap();
    d
}

/// Counters damaged in the file (text, a real, negative, NULL beside the clock, absurdly
/// large): `stats` says so and how to repair, exit 1, as the library's stats are CORRUPT
/// and as a damaged lifetime counter already did. It printed a made-up count (0 entries
/// for -4 or NULL, of 2) or SQLite's type error with exit 2; export and vacuum, which
/// need no count, failed on the same type error. They go on, and a repair recounts.
#[test]
fn stats_of_damaged_counters_says_so_and_never_shows_a_made_up_figure() {
    for damage in [
        "UPDATE entries SET state_count = char(120)",
        "UPDATE entries SET state_total_size = 2.5",
        "UPDATE entries SET state_count = -4",
        "UPDATE entries SET state_count = NULL",
        "UPDATE entries SET state_total_size = 9223372036854775807",
    ] {
        let d = two_entries_with_counters(damage);
        for args in [&["stats", "c.db"][..], &["stats", "c.db", "--json"]] {
            let r = d.run(args);
            assert_eq!(r.code, 1, "{damage}: {args:?}: {}{}", r.stdout, r.stderr);
            assert_eq!(r.stdout, "", "{damage}: {args:?}");
            one_line_naming(&r.stderr, "c.db");
            assert!(
                r.stderr.contains("check --repair"),
                "{damage}: {}",
                r.stderr
            );
        }
        let dump = d.ok(&["export", "c.db"]);
        assert_eq!(dump.lines().count(), 3, "{damage}: {dump}");
        d.ok(&["vacuum", "c.db"]);
        assert_eq!(d.run(&["check", "c.db", "--repair"]).code, 0, "{damage}");
        let stats = json_of(&d.ok(&["stats", "c.db", "--json"]));
        assert_eq!(
            (&stats["entries"], &stats["total_size"]),
            (&2.into(), &3.into()),
            "{damage}"
        );
    }
}

/// `check --json` of a file whose counters are damaged gives them as null, as the figures
/// of a file it could not count: it gave the C report's marker, 18446744073709551615
/// entries and bytes recorded, which a monitor summing or comparing figures takes as
/// one.
#[test]
fn check_json_gives_damaged_counters_as_null() {
    let d = two_entries_with_counters("UPDATE entries SET state_count = -4");
    for (args, code) in [
        (&["check", "c.db", "--json"][..], 1),
        (&["check", "c.db", "--json", "--repair"], 0),
    ] {
        let r = d.run(args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        let report = json_of(&r.stdout);
        assert_eq!(
            report["recorded_count"],
            serde_json::Value::Null,
            "{report}"
        );
        assert_eq!(
            report["recorded_total_size"],
            serde_json::Value::Null,
            "{report}"
        );
        assert_eq!(
            (&report["actual_count"], &report["actual_total_size"]),
            (&2.into(), &3.into())
        );
        assert_eq!(report["repaired"], code == 0, "{report}");
    }
    let report = json_of(&d.ok(&["check", "c.db", "--json"]));
    assert_eq!(
        (&report["recorded_count"], &report["recorded_total_size"]),
        (&2.into(), &3.into())
    );
}

#[test]
fn progress_is_never_drawn_when_stderr_is_not_a_terminal() {
    let d = Dir::new();
    let dump: String = (0..20_000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "v".repeat(50)))
        .collect();
    std::fs::write(d.path("dump.jsonl"), &dump).unwrap();
    for (args, input) in [
        (&["import", "c.db"][..], dump.as_bytes()),
        (&["import", "f.db", "-i", "dump.jsonl"], b"".as_slice()),
        (&["check", "c.db"], b""),
        (&["check", "c.db", "--repair"], b""),
        (&["vacuum", "c.db"], b""),
        (&["export", "c.db", "-o", "out.jsonl"], b""),
    ] {
        let r = d.run_with_input(args, input);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(
            !r.stderr.contains(['\r', '\x1b']) && r.stderr.lines().count() <= 1,
            "{args:?} drew progress into a pipe: {:?}",
            r.stderr
        );
    }
}

#[test]
fn a_failed_import_into_a_new_file_leaves_no_file_behind() {
    let d = Dir::new();
    std::fs::create_dir(d.path("folder")).unwrap();
    let big: Vec<u8> = vec![7; 100_000];
    let big_line = format!(
        "{{\"key\":\"big\",\"value_base64\":\"{}\"}}\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &big)
    );
    for (args, input) in [
        (
            &["import", "new.db"][..],
            format!("{big_line}{{\"key\":\"a\","),
        ),
        (&["import", "new.db", "-i", "folder"], String::new()),
        (&["import", "new.db", "--max-size", "10"], big_line.clone()),
    ] {
        let r = d.run_with_input(args, input.as_bytes());
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "new.db");
        for suffix in ["", "-wal", "-shm", "-journal", ".values"] {
            assert!(
                !d.path(&format!("new.db{suffix}")).exists(),
                "{args:?} left new.db{suffix}"
            );
        }
    }
    // Into a file that was there, a failed import keeps it, and what it held.
    d.ok(&["set", "old.db", "k", "v"]);
    let r = d.run_with_input(&["import", "old.db"], format!("{big_line}[]\n").as_bytes());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "old.db", "k"]), "v");
    assert_eq!(d.run(&["get", "old.db", "big"]).code, 1);
    // And an empty file stays empty (the open had made it a cache of 36 KiB): no other
    // command makes an empty file a cache, and a failed import changes nothing.
    std::fs::write(d.path("empty.db"), b"").unwrap();
    let r = d.run_with_input(
        &["import", "empty.db"],
        format!("{big_line}[]\n").as_bytes(),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(read(&d.path("empty.db")).unwrap().len(), 0);
    for suffix in ["-wal", "-shm", "-journal", ".values"] {
        assert!(
            !d.path(&format!("empty.db{suffix}")).exists(),
            "left empty.db{suffix}"
        );
    }
}

#[test]
fn an_expiry_past_the_year_9999_survives_export_and_import() {
    let d = Dir::new();
    // 900 billion seconds: the year 30546. The C API allows deadlines up to i64::MAX ms.
    d.ok(&["set", "a.db", "far", "v", "--expire", "900000000000s"]);
    let line =
        "{\"key\":\"farthest\",\"value\":\"w\",\"expires_at\":\"292278994-08-17T07:12:55.807Z\"}\n";
    let r = d.run_with_input(&["import", "a.db"], line.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dump = d.ok(&["export", "a.db"]);
    let r = d.run_with_input(&["import", "b.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expiries = |file: &str| -> Vec<String> {
        d.ok(&["export", file])
            .lines()
            .skip(1)
            .map(|l| json_of(l)["expires_at"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(expiries("a.db"), expiries("b.db"));
    assert!(
        expiries("b.db")[0].starts_with("30546-"),
        "{:?}",
        expiries("b.db")
    );
    assert_eq!(expiries("b.db")[1], "292278994-08-17T07:12:55.807Z");
}

#[test]
fn an_export_that_leaves_out_damaged_entries_exits_1() {
    let d = Dir::new();
    for key in ["a", "b", "c"] {
        d.ok(&["set", "c.db", key, "value"]);
    }
    {
        let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
        conn.execute(
            "UPDATE entries SET crc = crc + 1 WHERE key = CAST('b' AS BLOB)",
            [],
        )
        .unwrap();
    }
    let r = d.run(&["export", "c.db"]);
    // The sound entries are all there; the exit code says the file was damaged.
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout.lines().count(), 3, "{}", r.stdout);
    assert_eq!(
        r.stderr,
        "exported 2 entries from c.db; left out 1 damaged entries (run `backlite check`)\n"
    );
}

#[test]
fn a_cache_in_a_folder_that_cannot_be_written_is_named_as_given() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    std::fs::create_dir(d.path("ro")).unwrap();
    d.ok(&["set", "ro/c.db", "k", "v"]);
    // SQLite needs to make -wal and -shm beside the file: it cannot, so nothing opens.
    std::fs::set_permissions(d.tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(d.path("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let r = run_unprivileged(&d, &["stats", "ro/c.db"]);
    std::fs::set_permissions(d.path("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "ro/c.db");
    let absolute = d.tmp.path().display().to_string();
    assert!(!r.stderr.contains(&absolute), "{}", r.stderr);
}

#[test]
fn progress_is_drawn_on_a_terminal() {
    // util-linux `script` gives the command a terminal for stdin, stdout and stderr.
    if Command::new("script").arg("--version").output().is_err() {
        println!("SKIPPED: no `script` (util-linux) to give the command a terminal");
        return;
    }
    let d = Dir::new();
    let dump: String = (0..100_000)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "v".repeat(50)))
        .collect();
    std::fs::write(d.path("dump.jsonl"), &dump).unwrap();
    let command = format!("{} import c.db -i dump.jsonl", common::bin());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .current_dir(d.tmp.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    assert!(shown.contains("importing ["), "no progress bar: {shown:?}");
    assert!(
        shown.contains("imported 100000 entries into c.db"),
        "{shown:?}"
    );
}

#[test]
fn keys_and_values_that_are_not_utf8_are_taken_as_bytes_from_the_command_line() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = Dir::new();
    let run = |args: &[&OsStr]| {
        let out = d.command(args).output().unwrap();
        (
            out.status.code().unwrap(),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let os = |s: &str| OsStr::new(s).to_owned();
    let key = OsStr::from_bytes(b"k\xff\x01?").to_owned();
    let value = OsStr::from_bytes(b"v\xfe\x80").to_owned();
    let (code, _, stderr) = run(&[&os("set"), &os("c.db"), &key, &value]);
    assert_eq!(code, 0, "{stderr}");
    let (code, out, stderr) = run(&[&os("get"), &os("c.db"), &key]);
    assert_eq!(
        (code, out.as_slice()),
        (0, b"v\xfe\x80".as_slice()),
        "{stderr}"
    );
    // keys shows it escaped, and -e reads that back.
    let listed = d.ok(&["keys", "c.db", "--json"]);
    assert!(listed.contains("\"key_base64\""), "{listed}");
    let shown = d.ok(&["keys", "c.db"]);
    assert!(shown.contains("k\\xff\\x01?"), "{shown}");
    assert_eq!(
        d.run(&["get", "c.db", "-e", "k\\xff\\x01?"]).stdout_bytes,
        b"v\xfe\x80"
    );
    let (code, out, _) = run(&[
        &os("keys"),
        &os("c.db"),
        &os("--prefix"),
        OsStr::from_bytes(b"k\xff"),
    ]);
    assert_eq!(code, 0);
    assert!(String::from_utf8_lossy(&out).contains("k\\xff"));
    // With -e a key is text with escapes: raw bytes there are a usage error.
    let (code, _, stderr) = run(&[&os("get"), &os("c.db"), &os("-e"), &key]);
    assert_eq!(code, 2);
    one_line_naming(&stderr, "c.db");
    let (code, _, stderr) = run(&[&os("delete"), &os("c.db"), &key]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(d.ok(&["keys", "c.db"]), "(no keys)\n");
}

/// The README's promise for `--json` (the contract a script piping to jq relies on):
/// JSON on stdout whenever the file could be read, and on an error (exit 2) nothing on
/// stdout, only the one line on stderr. Both halves: a cache gives JSON, and a missing
/// file, a file that is not a cache, an empty file and a bad `--max-size` give none.
#[test]
fn json_output_is_json_on_success_and_nothing_on_an_error() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "v"]);
    std::fs::write(d.path("text.txt"), "not a cache\n").unwrap();
    std::fs::write(d.path("empty.db"), "").unwrap();
    for command in ["stats", "check", "keys"] {
        let r = d.run(&[command, "c.db", "--json"]);
        assert_eq!(r.code, 0, "{command}: {}", r.stderr);
        for line in r.stdout.lines() {
            json_of(line);
        }
        assert!(!r.stdout.is_empty(), "{command} --json printed nothing");
        for (file, extra) in [
            ("missing.db", None),
            ("text.txt", None),
            ("empty.db", None),
            ("c.db", Some("--max-size=lots")),
        ] {
            let mut args = vec![command, file, "--json"];
            args.extend(extra);
            let r = d.run(&args);
            assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
            assert_eq!(r.stdout, "", "{args:?} wrote to stdout on an error");
            one_line_naming(&r.stderr, file);
        }
    }
}

/// The version tag is the program's text, shown by `stats` like a key: a tag holding a
/// newline or a terminal escape printed them as they were (a line of its own that
/// looked like another field, an ESC sequence run by the terminal). It is escaped as
/// keys are; `--json` keeps it as it is.
#[test]
fn stats_escapes_a_version_tag_as_it_escapes_keys() {
    let d = Dir::new();
    let tag = "v1\nentries              999\u{1b}[2J";
    {
        let mut options = backlite_core::Options::new();
        options.set_version_tag(tag);
        backlite_core::Storage::open(d.path("c.db"), &options).unwrap();
    }
    let text = d.ok(&["stats", "c.db"]);
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("version tag")
                && l.ends_with(r"v1\nentries              999\x1b[2J")),
        "{text}"
    );
    assert_eq!(
        text.lines().filter(|l| l.starts_with("entries")).count(),
        1,
        "{text}"
    );
    let json = json_of(&d.ok(&["stats", "c.db", "--json"]));
    assert_eq!(json["version_tag"], tag);
}

/// A cache of `tag` at `name` in `d` holding `key` = "theirs", as its program makes it.
fn tagged_cache(d: &Dir, name: &str, tag: &str, key: &[u8]) {
    let mut options = backlite_core::Options::new();
    options.set_version_tag(tag);
    let storage = backlite_core::Storage::open(d.path(name), &options).unwrap();
    storage
        .set(key, b"theirs", backlite_core::Expiration::Never)
        .unwrap();
}

/// The version tag says which program's format the entries are in: a round trip
/// through export and import kept the entries and lost the tag, so the copy's program,
/// opening it with a newer tag, adopted it and read the old entries as its own (the
/// drop the tag exists for never came). The dump's header carries the tag; an import
/// that creates the cache tags it so, and one into a cache of another tag is refused.
#[test]
fn a_version_tag_goes_through_export_and_import() {
    let d = Dir::new();
    tagged_cache(&d, "c.db", "format-1", b"k");
    let dump = d.ok(&["export", "c.db"]);
    assert_eq!(
        json_of(dump.lines().next().unwrap())["version_tag"],
        "format-1"
    );
    let r = d.run_with_input(&["import", "copy.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Before: null, and its program opening it with format-2 read k as its own.
    assert_eq!(
        json_of(&d.ok(&["stats", "copy.db", "--json"]))["version_tag"],
        "format-1"
    );
    {
        let mut options = backlite_core::Options::new();
        options.set_version_tag("format-2");
        let copy = backlite_core::Storage::open(d.path("copy.db"), &options).unwrap();
        assert!(
            copy.get(b"k").unwrap().is_none(),
            "format-1's entry read as format-2's"
        );
    }

    // Into a cache of another tag: refused, that cache as it was.
    tagged_cache(&d, "other.db", "format-2", b"mine");
    let r = d.run_with_input(&["import", "other.db"], dump.as_bytes());
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "other.db");
    assert!(
        r.stderr.contains("format-1") && r.stderr.contains("format-2"),
        "{}",
        r.stderr
    );
    let keys = d.ok(&["keys", "other.db", "--json"]);
    assert_eq!(keys.lines().count(), 1, "{keys}");
    assert_eq!(json_of(&keys)["key"], "mine");

    // Into a cache of the same tag, or of none (as before): imported, its tag as it was.
    tagged_cache(&d, "same.db", "format-1", b"mine");
    assert_eq!(
        d.run_with_input(&["import", "same.db"], dump.as_bytes())
            .code,
        0
    );
    d.ok(&["set", "plain.db", "mine", "x"]);
    assert_eq!(
        d.run_with_input(&["import", "plain.db"], dump.as_bytes())
            .code,
        0
    );
    assert_eq!(
        json_of(&d.ok(&["stats", "plain.db", "--json"]))["version_tag"],
        serde_json::Value::Null
    );
    // A tag that is not text is a bad header line.
    let r = d.run_with_input(
        &["import", "bad.db"],
        b"{\"backlite_export\":1,\"version_tag\":5}\n",
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("line 1"), "{}", r.stderr);
    assert!(!d.path("bad.db").exists());
}

/// Dumps put end to end: a header further on is held to the same rule as the first.
#[test]
fn a_second_header_of_another_version_tag_is_refused() {
    let d = Dir::new();
    tagged_cache(&d, "one.db", "format-1", b"a");
    tagged_cache(&d, "two.db", "format-2", b"b");
    let both = d.ok(&["export", "one.db"]) + &d.ok(&["export", "two.db"]);
    let r = d.run_with_input(&["import", "new.db"], both.as_bytes());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("line 3 of <stdin>"), "{}", r.stderr);
    assert!(!d.path("new.db").exists());
}

/// `--help` and `--version` print what was asked for to stdout; one that takes none of
/// it (a full disk) is a failure, as for every other command's output: clap's own exit
/// ignored the write error, and `backlite --help > /dev/full` exited 0.
#[test]
fn help_and_version_into_a_full_disk_fail() {
    if !have_dev_full() {
        return;
    }
    let d = Dir::new();
    for args in [
        &["--help"][..],
        &["--version"],
        &["keys", "--help"],
        &["help"],
    ] {
        let (code, stderr) = into_dev_full(&d, args);
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains("No space left"), "{args:?}: {stderr}");
        // Into a pipe, as ever: all of it, exit 0.
        let r = d.run(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        assert!(r.stdout.contains("backlite"), "{args:?}: {}", r.stdout);
    }
}

/// A cache's file name is shown in the reports of `stats` and `check`, one field a
/// line: a name holding a newline printed a line of its own ("entries 999" under the
/// real one), and an ESC sequence in it was run by the terminal. It is escaped as keys
/// and the version tag are; `--json` keeps it as it is.
#[test]
fn a_file_name_in_a_report_is_escaped_as_keys_are() {
    let d = Dir::new();
    let name = "c\nentries              999\u{1b}[2J.db";
    d.ok(&["set", name, "k", "v"]);
    for args in [&["stats", name][..], &["check", name]] {
        let text = d.ok(args);
        assert!(!text.contains('\u{1b}'), "{args:?}: {text:?}");
        let file_line = text.lines().next().unwrap();
        assert!(
            file_line.starts_with("file")
                && file_line.ends_with(r"c\nentries              999\x1b[2J.db"),
            "{args:?}: {text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("entries              999")),
            "{args:?}: {text}"
        );
    }
    let json = json_of(&d.ok(&["stats", name, "--json"]));
    assert_eq!(json["file"], name);
}

/// A cache whose name is not UTF-8 is named in `--json` as keys are: `file` when the
/// name is UTF-8, else `file_base64` with its exact bytes. `file` held the name with
/// each bad byte replaced by U+FFFD, a name no script could open again (nor tell from
/// another cache's whose bytes differ there).
#[test]
fn a_file_name_that_is_not_utf8_is_given_exactly_in_json() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = Dir::new();
    let name = OsStr::from_bytes(b"c\xff\xfe.db");
    let run = |args: &[&OsStr]| d.command(args).output().unwrap();
    let os = OsStr::new;
    assert!(run(&[os("set"), name, os("k"), os("v")]).status.success());
    for command in ["stats", "check"] {
        let out = run(&[os(command), name, os("--json")]);
        assert!(out.status.success(), "{command}");
        let json = json_of(&String::from_utf8(out.stdout).expect("JSON is UTF-8"));
        assert_eq!(json.get("file"), None, "{command}: {json}");
        let encoded = json["file_base64"]
            .as_str()
            .unwrap_or_else(|| panic!("{json}"));
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, encoded).unwrap();
        assert_eq!(bytes, b"c\xff\xfe.db", "{command}");
    }
    // A file SQLite cannot read: check's report of it names it the same way.
    let (d, _) = a_damaged_cache(|f| f.set_len(100_000).unwrap());
    let damaged = OsStr::from_bytes(b"d\xff.db");
    std::fs::rename(d.path("c.db"), d.tmp.path().join(damaged)).unwrap();
    let out = d
        .command([os("check"), damaged, os("--json")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let json = json_of(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(json["healthy"], false, "{json}");
    assert_eq!(json["file_base64"], "ZP8uZGI=", "{json}");
    assert_eq!(json.get("file"), None, "{json}");
}

/// A key named twice in one `delete` was deleted, then not found: "deleted 1 of 2 keys
/// (1 not found)", exit 1, as if a key the user asked about had been missing. Each key
/// is one question, however many times it is named (with -e too, where two spellings
/// read as the same bytes).
#[test]
fn a_key_named_twice_in_a_delete_is_deleted_once_and_not_missing() {
    let d = Dir::new();
    for key in ["a", "b"] {
        d.ok(&["set", "c.db", key, "v"]);
    }
    let r = d.run(&["delete", "c.db", "a", "a"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(r.stdout, "deleted 1 of 1 keys (0 not found)\n");
    let r = d.run(&["delete", "c.db", "-e", "b", "\\x62", "nope", "nope"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stdout, "deleted 1 of 2 keys (1 not found)\n");
    one_line_naming(&r.stderr, "c.db");
    assert_eq!(r.stderr.matches("nope").count(), 1, "{}", r.stderr);
    assert_eq!(d.ok(&["keys", "c.db"]), "(no keys)\n");
}

/// `set --max-size` evicts other entries to make room, as `import --max-size` does;
/// import says how many ("evicted 2 to stay under max size"), set said nothing, so an
/// operator storing one value learned only later that others were gone.
#[test]
fn a_set_that_evicts_says_how_many_entries_it_evicted() {
    let d = Dir::new();
    for key in ["a", "b", "c"] {
        d.ok(&["set", "c.db", key, "1234"]);
    }
    let r = d.run(&["set", "c.db", "d", "12345678", "--max-size", "13"]);
    assert_eq!((r.code, r.stderr.as_str()), (0, ""));
    assert_eq!(
        r.stdout,
        "evicted 2 entries to stay under max size (13 B)\n"
    );
    assert_eq!(d.ok(&["keys", "c.db", "--json"]).lines().count(), 2);
    // A set that evicts nothing still prints nothing.
    let r = d.run(&["set", "c.db", "e", "1", "--max-size", "13"]);
    assert_eq!((r.code, r.stdout.as_str(), r.stderr.as_str()), (0, "", ""));
}

/// How many value files (`*.blv`) the folder of values beside `cache` holds.
fn value_files(d: &Dir, cache: &str) -> usize {
    std::fs::read_dir(d.path(&format!("{cache}.values")))
        .map(|dir| {
            dir.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".blv"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// `backlite import cache` fed `lines` large values and left waiting for more (its
/// stdin open), once it has stored them all (their files are written), then sent
/// `signal`: its exit status and stderr. `ignore_hup`: started as `nohup` starts it.
fn import_stopped_by(
    d: &Dir,
    cache: &str,
    signal: i32,
    ignore_hup: bool,
) -> (std::process::ExitStatus, String) {
    use std::io::Write as _;
    use std::os::unix::process::CommandExt;
    let before = value_files(d, cache);
    // Read straight from the pipe, so that the import waits for its input inside its
    // transaction: the state a signal is to find it in (a plain file's import reads
    // there too, at the disk's pace).
    let mut command = d.command(["import", cache, "--no-copy"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if ignore_hup {
        // As nohup starts it.
        // SAFETY: signal() is async-signal-safe, as a pre_exec hook must be.
        unsafe {
            command.pre_exec(|| {
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    let value = "v".repeat(100_000);
    for i in 0..20 {
        writeln!(input, "{{\"key\":\"big{i}\",\"value\":\"{value}\"}}").unwrap();
    }
    input.flush().unwrap();
    // Waits for the state (every value's file written), not for a time.
    common::wait_until("the import never stored its lines", || {
        value_files(d, cache) >= before + 20
    });
    // SAFETY: kill sends a signal to our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    if ignore_hup {
        // The import goes on: the end of its input ends it.
        writeln!(input, "{{\"key\":\"last\",\"value\":\"v\"}}").unwrap();
        drop(input);
    } else {
        // Its input stays open: the signal alone ends it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{cache}: the import went on after signal {signal}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        drop(input);
    }
    common::ended(&mut child)
}

/// Ctrl-C (or a kill, or a closed terminal) during an import ended the process on the
/// spot: SQLite rolled the transaction back, but the files of the values it had stored
/// stayed in the folder of values (2 MB here; 40 MB for half of a 90 MB dump),
/// uncounted orphans until a sweep an hour later, and an import into a new file left
/// that file behind, an empty cache, where a failed import leaves none. The import now
/// stops between lines, undoes itself as a failed one does, says so, and then dies of
/// the signal (a shell's loop sees the Ctrl-C). A signal the import was started with
/// ignored (nohup's SIGHUP) stays ignored.
#[test]
fn an_import_stopped_by_ctrl_c_leaves_the_cache_as_it_was_and_no_new_file() {
    use std::os::unix::process::ExitStatusExt;
    let d = Dir::new();
    d.ok(&["set", "old.db", "keep", "v"]);
    for (cache, signal) in [
        ("old.db", libc::SIGINT),
        ("new.db", libc::SIGINT),
        ("old.db", libc::SIGTERM),
        ("new.db", libc::SIGHUP),
    ] {
        let (status, stderr) = import_stopped_by(&d, cache, signal, false);
        assert_eq!(
            status.signal(),
            Some(signal),
            "{cache}: {status:?} {stderr}"
        );
        assert_eq!(
            value_files(&d, cache),
            0,
            "{cache}: value files left behind"
        );
        one_line_naming(&stderr, cache);
        assert!(stderr.contains("nothing was imported"), "{stderr}");
    }
    assert_eq!(d.ok(&["get", "old.db", "keep"]), "v");
    assert_eq!(d.ok(&["keys", "old.db", "--json"]).lines().count(), 1);
    assert!(d
        .ok(&["check", "old.db"])
        .ends_with("result          healthy\n"));
    for suffix in ["", "-wal", "-shm", "-journal", ".values"] {
        assert!(
            !d.path(&format!("new.db{suffix}")).exists(),
            "left new.db{suffix}"
        );
    }
    // Under nohup, a hangup does not stop it.
    let (status, stderr) = import_stopped_by(&d, "old.db", libc::SIGHUP, true);
    assert_eq!(status.code(), Some(0), "{status:?} {stderr}");
    assert_eq!(d.ok(&["keys", "old.db", "--json"]).lines().count(), 22);
}

/// A failed import into a file that was not there removes the file it made, but a
/// program may have opened that cache meanwhile (an import can take minutes): removing
/// the file under it made its later sets go to a file no longer there, reported stored
/// and then lost. The import leaves a cache that another process has open.
#[test]
fn a_failed_import_leaves_a_new_file_that_a_program_opened_meanwhile() {
    use std::io::Write as _;
    let d = Dir::new();
    // Straight from the pipe: the import is in its transaction, the file made, while
    // it waits for the rest of its input.
    let mut child = d
        .command(["import", "new.db", "--no-copy"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let value = "v".repeat(100_000);
    writeln!(input, "{{\"key\":\"big\",\"value\":\"{value}\"}}").unwrap();
    input.flush().unwrap();
    // The import has begun storing once its value's file is written.
    common::wait_until("the import never stored its line", || {
        value_files(&d, "new.db") >= 1
    });
    let program = backlite_core::Storage::open(d.path("new.db"), &backlite_core::Options::new())
        .expect("a program opens the cache being imported into");
    writeln!(input, "not a line of a dump").unwrap();
    drop(input);
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    one_line_naming(&stderr, "new.db");
    assert!(
        stderr.contains("line 2") && stderr.contains("new.db was left in place"),
        "{stderr}"
    );
    program
        .set(b"k", b"stored", backlite_core::Expiration::Never)
        .unwrap();
    assert_eq!(d.ok(&["get", "new.db", "k"]), "stored");
    drop(program);
    assert_eq!(d.ok(&["keys", "new.db", "--json"]).lines().count(), 1);
}

/// The commands that only read (`stats`, `keys`, `export`, `check` without `--repair`)
/// removed orphan value files: the library's open sweeps the folder of values for
/// files no entry names that are over an hour old. So `check` reported "orphan values
/// 0", healthy, having deleted them itself, where its help says only `--repair`
/// removes them; and a look at a cache deleted files. Now they are left to `check
/// --repair` (and to the programs of the cache, whose opens still sweep).
#[test]
fn commands_that_only_read_leave_orphan_value_files_to_check_repair() {
    let d = Dir::new();
    let big = "v".repeat(100_000);
    d.ok(&["set", "c.db", "big", &big]);
    let orphan = d.path("c.db.values/v2-0123456789abcdef0123456789abcdef.blv");
    std::fs::copy(a_value_file(&d, "c.db"), &orphan).unwrap();
    let three_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 3600);
    std::fs::File::options()
        .write(true)
        .open(&orphan)
        .unwrap()
        .set_modified(three_hours_ago)
        .unwrap();
    let listing = || {
        let mut names: Vec<_> = std::fs::read_dir(d.path("c.db.values"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = listing();
    for args in [
        &["stats", "c.db"][..],
        &["stats", "c.db", "--json"],
        &["keys", "c.db"],
        &["export", "c.db"],
        &["get", "c.db", "big"],
    ] {
        d.ok(args);
        assert_eq!(listing(), before, "{args:?} changed the folder of values");
    }
    let r = d.run(&["check", "c.db"]);
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(r.stdout.contains("orphan values   1\n"), "{}", r.stdout);
    assert_eq!(listing(), before, "check changed the folder of values");
    assert!(orphan.exists());
    // --repair reports the orphan it removes: its own open swept it first, and the
    // report said "orphan values 0", "healthy", "repaired": false.
    let r = d.run(&["check", "c.db", "--repair", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let report = json_of(&r.stdout);
    assert_eq!(report["orphan_values"], 1, "{report}");
    assert_eq!(report["repaired"], true, "{report}");
    assert!(!orphan.exists());
    assert_eq!(d.ok(&["get", "c.db", "big"]), big);
    assert!(d
        .ok(&["check", "c.db"])
        .contains("result          healthy\n"));
}

/// Every line that names a file shows it as `stats` and `check` do (escaped as keys
/// are): the error lines on stderr and the notes of delete, vacuum, zero-stats,
/// import and export printed it as it was, so an ESC sequence in a file's name was run
/// by the operator's terminal, a newline split the one line, and a byte that is not
/// UTF-8 became U+FFFD.
#[test]
fn every_line_naming_a_file_escapes_its_name() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let d = Dir::new();
    let name = OsStr::from_bytes(b"c\x1b[2J\n\xff.db");
    let shown = r"c\x1b[2J\n\xff.db";
    let run = |args: &[&OsStr], input: &[u8]| {
        let mut child = d
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), input).unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap(),
            String::from_utf8(out.stdout).expect("UTF-8"),
            String::from_utf8(out.stderr).expect("UTF-8"),
        )
    };
    let os = OsStr::new;
    let dump = b"{\"key\":\"k\",\"value\":\"v\"}\n";
    for (args, input, code) in [
        (&[os("import"), name][..], &dump[..], 0),
        (&[os("get"), name, os("nope")], b"", 1),
        (&[os("delete"), name, os("nope")], b"", 1),
        (
            &[
                os("set"),
                name,
                os("k"),
                os("v"),
                os("--expire"),
                os("1min"),
            ],
            b"",
            2,
        ),
        (&[os("export"), name, os("-o"), os("dump.jsonl")], b"", 0),
        (&[os("vacuum"), name], b"", 0),
        (&[os("zero-stats"), name], b"", 0),
        (&[os("import"), name], b"not json\n", 2),
        (&[os("keys"), os("missing\x1b.db")], b"", 2),
    ] {
        let (got, stdout, stderr) = run(args, input);
        assert_eq!(got, code, "{args:?}: {stderr}");
        for text in [&stdout, &stderr] {
            assert!(
                !text.contains('\u{1b}') && !text.contains('\u{fffd}'),
                "{args:?}: {text:?}"
            );
            assert!(
                text.lines().all(|l| !l.starts_with("\u{ff}.db")),
                "{args:?}: {text:?}"
            );
        }
        let said = format!("{stdout}{stderr}");
        assert!(
            said.contains(shown) || said.contains(r"missing\x1b.db"),
            "{args:?}: {said:?}"
        );
    }
}

/// An input with no line at all is no dump (an export writes at least its header, even
/// of an empty cache), and an import of it into a file that is not there made an empty
/// cache and said "imported 0 entries", exit 0: in `backlite export old.db | backlite
/// import new.db`, an export that failed (a wrong name) wrote nothing, and the
/// pipeline's status, the import's, said all went well, with a new, empty cache to
/// show for it. Into a file that is not a cache yet, such an input is refused; into a
/// cache, it imports nothing, as before.
#[test]
fn an_import_of_no_dump_at_all_makes_no_cache() {
    let d = Dir::new();
    std::fs::write(d.path("empty.db"), b"").unwrap();
    std::fs::write(d.path("nothing.jsonl"), b"").unwrap();
    for args in [
        &["import", "new.db"][..],
        &["import", "new.db", "-i", "nothing.jsonl"],
        &["import", "empty.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, args[1]);
        assert!(r.stderr.contains("nothing was imported"), "{}", r.stderr);
        assert_eq!(r.stdout, "");
    }
    for suffix in ["", "-wal", "-shm", ".values"] {
        assert!(
            !d.path(&format!("new.db{suffix}")).exists(),
            "new.db{suffix}"
        );
    }
    assert_eq!(read(&d.path("empty.db")).unwrap().len(), 0);
    // A header alone is a dump of no entries: it makes the cache.
    let r = d.run_with_input(&["import", "new.db"], b"{\"backlite_export\":1}\n");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["keys", "new.db"]), "(no keys)\n");
    // Into a cache, no input imports nothing.
    d.ok(&["set", "c.db", "k", "v"]);
    assert_eq!(d.ok(&["import", "c.db"]), "imported 0 entries into c.db\n");
    assert_eq!(d.ok(&["get", "c.db", "k"]), "v");
}

/// A cache written by a newer BackLite is refused by every command, the file untouched,
/// with advice that fits: the commands that only read said "(upgrade every program of
/// the file together; a command that writes, such as vacuum, upgrades a cache of an
/// older schema)", advice for an older schema, and the vacuum it pointed to fails the
/// same way. What helps is a backlite as new as the program that wrote the file.
#[test]
fn a_cache_of_a_newer_schema_is_refused_with_advice_that_fits() {
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("PRAGMA user_version = 99").unwrap();
    drop(conn);
    let before = read(&d.path("c.db")).unwrap();
    for args in READS_OF_A.into_iter().chain([
        &["check", "c.db", "--json"][..],
        &["check", "c.db", "--repair"],
        &["vacuum", "c.db"],
        &["set", "c.db", "b", "2"],
        &["delete", "c.db", "a"],
        &["clear", "c.db"],
    ]) {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert_eq!(r.stdout, "", "{args:?}");
        one_line_naming(&r.stderr, "c.db");
        assert!(
            r.stderr.contains("newer BackLite (schema 99")
                && !r.stderr.contains("vacuum")
                && r.stderr.contains("a backlite as new as"),
            "{args:?}: {}",
            r.stderr
        );
    }
    assert!(read(&d.path("c.db")).unwrap() == before, "the file changed");
}

/// `backlite ARGS` (writing to `out`) sent `signal` once `out` holds some of its output
/// but not all of it (`whole` bytes): its exit status and stderr. The command is frozen
/// (SIGSTOP) as soon as `out` is seen written to, and tried again should it have
/// finished by then.
fn stopped_while_writing(
    d: &Dir,
    args: &[&str],
    out: &str,
    whole: u64,
    signal: i32,
) -> (std::process::ExitStatus, String) {
    // OUT as it is before each run (made again if a run replaced it).
    let before = common::read(&d.path(out));
    // What is written so far: the copy written beside OUT, or OUT itself (written in
    // place) if it was not there.
    let size = || {
        let mut names = copies_beside(d, out);
        if before.is_none() {
            names.push(out.to_string());
        }
        names
            .iter()
            .map(|name| std::fs::metadata(d.path(name)).map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0)
    };
    for _ in 0..20 {
        match &before {
            Some(bytes) => std::fs::write(d.path(out), bytes).unwrap(),
            None => {
                let _ = std::fs::remove_file(d.path(out));
            }
        }
        let mut child = d
            .command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        while size() == 0 && child.try_wait().unwrap().is_none() {
            std::thread::yield_now();
        }
        // SAFETY: kill sends a signal to our own child, which has not been waited for.
        unsafe { libc::kill(pid, libc::SIGSTOP) };
        let written = size();
        if child.try_wait().unwrap().is_some() || written >= whole {
            // It finished first: try again.
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
            let _ = child.wait();
            continue;
        }
        // SAFETY: as above.
        unsafe {
            libc::kill(pid, signal);
            libc::kill(pid, libc::SIGCONT);
        }
        return common::ended(&mut child);
    }
    panic!("{args:?} finished every time before it could be stopped");
}

/// Ctrl-C (or a kill, or a closed terminal) during `export -o OUT` or `get -o OUT`
/// ended the process on the spot and left the part of OUT written so far, while a
/// failed export or get removes it: a dump cut at a line's end imports as a whole dump
/// of fewer entries. The signal now removes what was written, an OUT that was there
/// before stays as it was, and the command still dies of the signal.
#[test]
fn an_output_stopped_by_ctrl_c_is_removed() {
    use std::os::unix::process::ExitStatusExt;
    let d = Dir::new();
    let value = "v".repeat(1 << 20);
    let dump: String = (0..40)
        .map(|i| format!("{{\"key\":\"k{i}\",\"value\":\"{value}\"}}\n"))
        .collect();
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let whole = d.ok(&["export", "c.db"]).len() as u64;
    let big: Vec<u8> = (0..(40u32 << 20)).map(|i| (i % 251) as u8).collect();
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &big);
    assert_eq!(r.code, 0, "{}", r.stderr);
    for (args, whole, signal, earlier) in [
        (
            &["export", "c.db", "-o", "out"][..],
            whole,
            libc::SIGINT,
            None,
        ),
        (&["export", "c.db", "-o", "out"], whole, libc::SIGTERM, None),
        (
            &["get", "c.db", "big", "-o", "out"],
            big.len() as u64,
            libc::SIGHUP,
            None,
        ),
        (
            &["export", "c.db", "-o", "out"],
            whole,
            libc::SIGINT,
            Some(&b"last night's dump"[..]),
        ),
    ] {
        let _ = std::fs::remove_file(d.path("out"));
        if let Some(bytes) = earlier {
            std::fs::write(d.path("out"), bytes).unwrap();
        }
        let (status, stderr) = stopped_while_writing(&d, args, "out", whole, signal);
        assert_eq!(
            status.signal(),
            Some(signal),
            "{args:?}: {status:?} {stderr}"
        );
        assert_eq!(
            common::read(&d.path("out")).as_deref(),
            earlier,
            "{args:?}: the partial OUT was left, or the earlier one lost"
        );
        assert_eq!(copies_beside(&d, "out"), Vec::<String>::new(), "{args:?}");
        one_line_naming(&stderr, "out");
    }
    assert_eq!(d.ok(&["get", "c.db", "k1"]).len(), value.len());
}

/// Whether a thread of process `pid` waits in a read of its stdin (Linux's
/// /proc/PID/task/TID/syscall: the read system call, 0, on descriptor 0).
fn reads_stdin(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        std::fs::read_to_string(task.path().join("syscall")).is_ok_and(|s| s.starts_with("0 0x0 "))
    })
}

/// A failed import into a file that was not there removes the file, but whether it was
/// there was decided before the dump's first line came, which over a pipe (an export
/// on another host, a slow decompression) can be long after: a program that made the
/// cache meanwhile, stored into it and closed it had its file removed by the failed
/// import, entries and all. A file that holds entries once the import is undone is
/// never removed.
#[test]
fn a_failed_import_keeps_a_cache_made_while_it_waited_for_its_dump() {
    use std::io::Write as _;
    let d = Dir::new();
    let mut child = d
        .command(["import", "new.db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waits for the state (the import waits for its first line), not for a time.
    common::wait_until("the import never read its input", || {
        reads_stdin(child.id())
    });
    // Another process makes the cache, stores into it and is done with it.
    d.ok(&["set", "new.db", "k", "stored"]);
    let mut input = child.stdin.take().unwrap();
    writeln!(input, "{{\"key\":\"a\",\"value\":\"1\"}}\nnot json").unwrap();
    drop(input);
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    one_line_naming(&stderr, "new.db");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(d.ok(&["get", "new.db", "k"]), "stored");
    assert_eq!(d.ok(&["keys", "new.db", "--json"]).lines().count(), 1);
}

/// An OUT is refused when it is one of the cache's own files, but these were named
/// after FILE as given: given a link to the cache (link.db -> c.db), whose -wal and
/// -shm SQLite, and whose folder of values the library, name after the file the link
/// leads to, `get link.db big -o c.db.values/<its file>` exited 0 having truncated the
/// value file as it read it (the entry lost), and `export link.db -o c.db-wal` wrote
/// the dump over the log of the cache it was reading. They are the cache's files under
/// either name.
#[test]
fn an_output_is_never_written_into_the_files_of_a_cache_named_through_a_link() {
    let d = Dir::new();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &big);
    assert_eq!(r.code, 0, "{}", r.stderr);
    std::os::unix::fs::symlink("c.db", d.path("link.db")).unwrap();
    std::fs::create_dir(d.path("sub")).unwrap();
    std::os::unix::fs::symlink("../c.db", d.path("sub/c.db")).unwrap();
    let value_file = a_value_file(&d, "c.db");
    let value_file = format!(
        "c.db.values/{}",
        value_file.file_name().unwrap().to_str().unwrap()
    );
    for file in ["link.db", "sub/c.db"] {
        for out in [
            value_file.as_str(),
            "c.db.values/new",
            "c.db-wal",
            "c.db-shm",
        ] {
            for args in [
                &["get", file, "big", "-o", out][..],
                &["export", file, "-o", out],
            ] {
                let r = d.run(args);
                assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
                one_line_naming(&r.stderr, file);
                let r = d.run(&["get", "c.db", "big"]);
                assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
                assert!(r.stdout_bytes == big, "{args:?}: the value changed");
            }
        }
    }
    assert!(d
        .ok(&["check", "c.db"])
        .ends_with("result          healthy\n"));
}

/// `export a.db -o b.db` (import's direction mistaken) or `get a.db k -o b.db` wrote
/// the dump or the value over b.db, another BackLite cache, exit 0: its entries gone,
/// under any program that had it open, its log and folder of values left to a file no
/// longer a cache. An OUT that is a BackLite cache is refused (remove it first); any
/// other file, a plain SQLite database too, is still written over as asked.
#[test]
fn an_output_is_never_written_over_another_cache() {
    let d = Dir::new();
    d.ok(&["set", "a.db", "k", "v"]);
    d.ok(&["set", "b.db", "k2", "kept"]);
    for args in [
        &["export", "a.db", "-o", "b.db"][..],
        &["get", "a.db", "k", "-o", "b.db"],
        &["get", "a.db", "k", "-o", "./b.db"],
    ] {
        let r = d.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        one_line_naming(&r.stderr, "b.db");
        assert!(r.stderr.contains("BackLite cache"), "{}", r.stderr);
        assert_eq!(d.ok(&["get", "b.db", "k2"]), "kept", "{args:?}");
    }
    let plain = rusqlite::Connection::open(d.path("plain.sqlite")).unwrap();
    plain.execute_batch("create table t(x)").unwrap();
    drop(plain);
    d.ok(&["get", "a.db", "k", "-o", "plain.sqlite"]);
    assert_eq!(read(&d.path("plain.sqlite")).unwrap(), b"v");
}

/// `backlite stats` run by a user who may read the cache but not its folder of values
/// (0700, its program's user's) showed "value files 0 B", and `values_size` 0 in
/// `--json`, for a folder holding every large value: the library counts a folder it
/// cannot look into as none. The figure is unknown: said so in text, null in JSON.
#[test]
fn stats_of_a_folder_of_values_it_cannot_look_into_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    let big = vec![7u8; 300_000];
    let r = d.run_with_input(&["set", "c.db", "big", "-"], &big);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let as_root = common::as_root();
    // Root looks into any folder: as another user (nobody), who may read and write the
    // cache (and make its -shm beside it) but not its folder of values.
    let run = |args: &[&str]| d.run_unprivileged(args);
    let set_mode = |path: &str, mode: u32| {
        std::fs::set_permissions(d.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    if as_root {
        set_mode(".", 0o777);
        set_mode("c.db", 0o666);
    } else {
        set_mode("c.db.values", 0o000);
    }
    let r = run(&["stats", "c.db"]);
    if !as_root {
        set_mode("c.db.values", 0o700);
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    let disk = r.stdout.lines().find(|l| l.starts_with("on disk")).unwrap();
    assert!(
        disk.contains("value files unknown: cannot look into c.db.values"),
        "{disk}"
    );
    if !as_root {
        set_mode("c.db.values", 0o000);
    }
    let r = run(&["stats", "c.db", "--json"]);
    if !as_root {
        set_mode("c.db.values", 0o700);
    }
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(json_of(&r.stdout)["values_size"], serde_json::Value::Null);
    // Its own user sees the figure.
    let v = json_of(&d.ok(&["stats", "c.db", "--json"]));
    assert!(v["values_size"].as_u64().unwrap() >= 300_000, "{v}");
}

/// A dump that went through an editor or a tool that marks UTF-8 text with a byte order
/// mark (Notepad, PowerShell's `Set-Content -Encoding utf8`) was refused at line 1 ("not
/// valid JSON at column 1"), though its lines are the export's. RFC 8259 lets a reader
/// ignore the mark, and no JSON starts with it, so it is ignored at the start of a line
/// (of the input, or of a dump put after another, `cat a.jsonl b.jsonl`): the header's
/// version tag is read through it too. Inside a value it is a character like any other.
#[test]
fn a_dump_starting_with_a_byte_order_mark_imports() {
    const BOM: &str = "\u{feff}";
    let d = Dir::new();
    tagged_cache(&d, "c.db", "format-1", b"k");
    let r = d.run_with_input(&["set", "c.db", "bom", "-"], BOM.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let dump = d.ok(&["export", "c.db"]);
    let marked = format!("{BOM}{dump}");
    let r = d.run_with_input(&["import", "copy.db"], marked.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "copy.db", "k"]), "theirs");
    assert_eq!(d.ok(&["get", "copy.db", "bom"]), BOM);
    assert_eq!(
        json_of(&d.ok(&["stats", "copy.db", "--json"]))["version_tag"],
        "format-1"
    );
    // From a file with -i, and with CRLF line ends as such tools write them.
    std::fs::write(d.path("marked.jsonl"), marked.replace('\n', "\r\n")).unwrap();
    let r = d.run(&["import", "copy2.db", "-i", "marked.jsonl"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(d.ok(&["get", "copy2.db", "bom"]), BOM);
    // Two marked dumps end to end: the same two keys, two entries.
    let twice = format!("{marked}{marked}");
    let r = d.run_with_input(&["import", "copy3.db"], twice.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.is_empty() && r.stdout.contains("imported 2 entries"),
        "{r:?}",
        r = (&r.stdout, &r.stderr)
    );
    // A mark that is not at a line's start is still bad JSON, named by its line.
    let inside = format!("{dump} {BOM}{{\"key\":\"x\",\"value\":\"y\"}}\n");
    let r = d.run_with_input(&["import", "copy4.db"], inside.as_bytes());
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("line 4 of <stdin>"), "{}", r.stderr);
}

/// Whether a thread of `pid` is blocked in a write(2) to its stdout: in that system
/// call, asleep in the kernel's pipe_write (anon_pipe_write since Linux 6.13) waiting
/// for room, which comes only once the pipe is read.
fn blocked_writing_stdout(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|task| {
        let read = |name| std::fs::read_to_string(task.path().join(name)).unwrap_or_default();
        read("syscall").starts_with("1 0x1 ") && read("wchan").ends_with("pipe_write")
    })
}

/// Waits for the state (`child` blocked writing its stdout into a pipe nobody reads),
/// not for a time.
fn blocked_on_its_output(child: &std::process::Child) {
    common::wait_until("it never blocked on its output", || {
        blocked_writing_stdout(child.id())
    });
}

/// `backlite keys cache.db | less`, the pager left open: keys wrote its rows from
/// inside one read of the file, so while the pager took no more it held that read, and
/// the running program's write-ahead log could not be checkpointed (it grows with every
/// write until the pager quits; a vacuum failed, "readers kept the write-ahead log from
/// being truncated"). The keys are read a page at a time, each page in a read of its
/// own, and written with none held; every key is still listed once, in order.
#[test]
fn keys_into_a_reader_that_waits_holds_no_read_of_the_file() {
    let d = Dir::new();
    let keys: Vec<String> = (0..6000)
        .map(|i| format!("key{i:05}-{}", "x".repeat(90)))
        .collect();
    let mut dump = String::from("{\"backlite_export\":1}\n");
    for k in &keys {
        dump += &format!("{{\"key\":\"{k}\",\"value\":\"v\"}}\n");
    }
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    // A listing of about 850 KiB, into a pipe nobody reads yet.
    let mut child = d
        .command(["keys", "c.db", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    blocked_on_its_output(&child);
    // The program of the cache goes on writing, and its log is checkpointed.
    {
        let storage =
            backlite_core::Storage::open(d.path("c.db"), &backlite_core::Options::new()).unwrap();
        storage
            .set(b"written meanwhile", b"v", backlite_core::Expiration::Never)
            .unwrap();
    }
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .unwrap();
    drop(conn);
    let log = std::fs::metadata(d.path("c.db-wal")).unwrap().len();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_eq!(
        (busy, log),
        (0, 0),
        "a reader blocked on its output kept the log from being checkpointed"
    );
    let listed: Vec<String> = stdout
        .lines()
        .map(|l| json_of(l)["key"].as_str().unwrap().to_string())
        .filter(|k| k != "written meanwhile")
        .collect();
    assert_eq!(listed, keys);
}

/// A vacuum beside a read that does not end (`backlite export cache.db | ssh ...` on a
/// slow link) rebuilds the file into the write-ahead log and cannot truncate it: it
/// fails, but its line said "another process held the file's write lock for longer than
/// this command waits", which no process did, sending the operator after a writer. It
/// now names what kept it: a process reading the file, and that the space comes back
/// once that read ends.
/// (The line it gave for that had a run of 18 spaces twice over, which `one_line_naming`
/// now refuses.)
#[test]
fn a_vacuum_kept_from_truncating_the_log_by_a_reader_says_so() {
    let d = Dir::new();
    let mut dump = String::from("{\"backlite_export\":1}\n");
    for i in 0..3000 {
        dump += &format!("{{\"key\":\"k{i}\",\"value\":\"{}\"}}\n", "v".repeat(200));
    }
    let r = d.run_with_input(&["import", "c.db"], dump.as_bytes());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut export = d
        .command(["export", "c.db"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    blocked_on_its_output(&export);
    let r = d.run(&["vacuum", "c.db"]);
    let mut rest = Vec::new();
    export
        .stdout
        .take()
        .unwrap()
        .read_to_end(&mut rest)
        .unwrap();
    assert_eq!(export.wait().unwrap().code(), Some(0));
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "c.db");
    assert!(!r.stderr.contains("write lock"), "{}", r.stderr);
    assert!(r.stderr.contains("reading the file"), "{}", r.stderr);
    // Once the read is over, a vacuum gives the space back.
    let r = d.run(&["vacuum", "c.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

/// An import is one transaction, which holds the cache's write lock: read from a pipe
/// that is slow to come (`ssh host backlite export c.db | backlite import c.db`, a slow
/// decompression), it held that lock for as long as the pipe took, and every write of
/// the cache's running program failed BUSY once its busy timeout ran out. An input that
/// is not a plain file is now copied beside the cache first: the cache is not locked
/// while the input comes, and the import is still all or nothing.
#[test]
fn an_import_from_a_slow_pipe_does_not_lock_the_cache_while_it_waits() {
    use std::io::Write as _;
    let d = Dir::new();
    d.ok(&["set", "c.db", "old", "v"]);
    let mut child = d
        .command(["import", "c.db"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    writeln!(
        input,
        "{{\"backlite_export\":1}}\n{{\"key\":\"a\",\"value\":\"1\"}}"
    )
    .unwrap();
    input.flush().unwrap();
    // Waits for the state (the import waits for more of its input), not for a time.
    common::wait_until("the import never read its input", || {
        reads_stdin(child.id())
    });
    // The cache's program writes meanwhile, waiting for no lock.
    let mut options = backlite_core::Options::new();
    options.set_busy_timeout(std::time::Duration::ZERO);
    let program = backlite_core::Storage::open(d.path("c.db"), &options).unwrap();
    let written = program.set(b"meanwhile", b"v", backlite_core::Expiration::Never);
    drop(program);
    writeln!(input, "{{\"key\":\"b\",\"value\":\"2\"}}").unwrap();
    drop(input);
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.code(), Some(0), "{stderr}");
    written.expect("the program's write waited for the import's lock");
    for key in ["old", "meanwhile", "a", "b"] {
        d.ok(&["get", "c.db", key]);
    }
    // The copy was an unnamed file: nothing is left beside the cache.
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(d.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(), ["c.db"]);

    // Ctrl-C while the input comes stops it before the cache is touched, and the
    // process ends of it; into a new file, none is made.
    use std::os::unix::process::ExitStatusExt;
    for cache in ["c.db", "new.db"] {
        let mut child = d
            .command(["import", cache])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        writeln!(
            input,
            "{{\"key\":\"c\",\"value\":\"{}\"}}",
            "v".repeat(100_000)
        )
        .unwrap();
        input.flush().unwrap();
        common::wait_until("the import never read its input", || {
            reads_stdin(child.id())
        });
        // SAFETY: kill sends a signal to our own child, which has not been waited for.
        assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
        let (status, stderr) = common::ended(&mut child);
        drop(input);
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?} {stderr}");
        one_line_naming(&stderr, cache);
        assert!(stderr.contains("nothing was imported"), "{stderr}");
        assert_eq!(names(), ["c.db"]);
    }
    assert_eq!(d.ok(&["keys", "c.db", "--json"]).lines().count(), 4);
    // A copy that cannot be made (neither beside the cache nor in the temporary
    // folder) is said as such, with the way round it.
    let mut child = d
        .command(["import", "nowhere/c.db"])
        .env("TMPDIR", d.path("nowhere"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    one_line_naming(&stderr, "nowhere/c.db");
    assert!(
        stderr.contains("cannot copy the input into nowhere") && stderr.contains("--no-copy"),
        "{stderr}"
    );
    assert_eq!(names(), ["c.db"]);
    // Into a folder it cannot make the copy in, it copies into the temporary folder.
    let r = d.run_with_input(&["import", "nowhere/c.db"], b"{\"backlite_export\":1}\n");
    assert_eq!(r.code, 2, "{}", r.stderr);
    one_line_naming(&r.stderr, "nowhere/c.db");
    assert!(!r.stderr.contains("copy"), "{}", r.stderr);
}

/// A signal that came once an import had read its whole dump, as it stored the entries
/// (here waiting for the write lock another process holds), was taken and ignored: the
/// import went on and exited 0, as if no Ctrl-C had been pressed. The import is whole
/// then (one transaction); the command now says so and ends of the signal, as a set
/// does. (A signal before the end of the dump stops it, nothing imported, as
/// an_import_stopped_by_ctrl_c_leaves_the_cache_as_it_was_and_no_new_file pins: the
/// value files seen below may come just before that end, and then the line says so.)
#[test]
fn an_import_signalled_while_it_stores_ends_of_the_signal_once_whole() {
    use std::os::unix::process::ExitStatusExt;
    let d = Dir::new();
    d.ok(&["set", "c.db", "keep", "v"]);
    let value = "v".repeat(100_000);
    let dump: String = (0..3)
        .map(|i| format!("{{\"key\":\"big{i}\",\"value\":\"{value}\"}}\n"))
        .collect();
    std::fs::write(d.path("dump.jsonl"), dump).unwrap();
    let conn = rusqlite::Connection::open(d.path("c.db")).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let mut child = d
        .command(["import", "c.db", "-i", "dump.jsonl"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Waits for the state (every value's file written whole, before the lock), not a
    // time.
    let whole = || {
        std::fs::read_dir(d.path("c.db.values"))
            .map(|dir| {
                dir.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".blv"))
                    .filter(|e| e.metadata().is_ok_and(|m| m.len() > 100_000))
                    .count()
            })
            .unwrap_or(0)
    };
    common::wait_until("the import never wrote its values", || whole() == 3);
    // SAFETY: kill sends a signal to our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    conn.execute_batch("ROLLBACK").unwrap();
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {stderr}");
    one_line_naming(&stderr, "c.db");
    let keys = d.ok(&["keys", "c.db", "--json"]).lines().count();
    if stderr.contains("nothing was imported") {
        assert_eq!((stdout.as_str(), keys), ("", 1), "{stderr}");
    } else {
        assert_eq!(
            stderr,
            "backlite: c.db: SIGTERM received while storing the entries: stopped once the \
             import was whole\n"
        );
        assert_eq!(
            (stdout.as_str(), keys),
            ("imported 3 entries into c.db\n", 4)
        );
    }
    assert!(d
        .ok(&["check", "c.db"])
        .ends_with("result          healthy\n"));
}

/// Ctrl-C (or SIGTERM, or a closed terminal) while `set` wrote a large value killed it
/// on the spot: the value's file, cut short, stayed in the folder of values with no
/// entry naming it (47 MB of a 400 MB value), an orphan that `check` reports as damage
/// a minute later and the library removes only an hour after. A write that cannot stop
/// half-way now finishes first; then the command says so and ends of the signal.
#[test]
fn a_set_stopped_by_ctrl_c_leaves_no_part_of_its_value_behind() {
    use std::io::Write as _;
    use std::os::unix::process::ExitStatusExt;
    let d = Dir::new();
    d.ok(&["set", "c.db", "a", "1"]);
    let value = vec![b'v'; 64 << 20];
    let mut child = d
        .command(["set", "c.db", "big", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(&value).unwrap();
    drop(input);
    // Waits for the state (its value's file begun), not for a time.
    common::wait_until("the set never began its value's file", || {
        value_files(&d, "c.db") != 0
    });
    // SAFETY: kill sends a signal to our own child, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let (status, stderr) = common::ended(&mut child);
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?} {stderr}");
    one_line_naming(&stderr, "c.db");
    // The value is stored whole, its file the only one; nothing is orphaned.
    let r = d.run(&["get", "c.db", "big"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout_bytes == value,
        "the value stored is not the one set"
    );
    assert_eq!(value_files(&d, "c.db"), 1);
    assert!(d
        .ok(&["check", "c.db"])
        .ends_with("result          healthy\n"));
}

/// `stats` is a summary of the file: a key of 100,000 bytes at either end of the
/// access order took two lines of 100,000 characters each. Its text shows such a key's
/// start, cut at a character, and says how long the key is; `--json` and `keys` still
/// give it whole.
#[test]
fn stats_shows_the_start_of_a_huge_key_and_its_length() {
    let d = Dir::new();
    let huge = "K".repeat(100_000);
    let accented = "é".repeat(40_000);
    d.ok(&["set", "c.db", &huge, "v"]);
    d.ok(&["set", "c.db", &accented, "w"]);
    let text = d.ok(&["stats", "c.db"]);
    assert!(text.len() < 2000, "{} bytes", text.len());
    let line = |label: &str| {
        text.lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label}: {text}"))
            .to_string()
    };
    let oldest = line("least recently used");
    assert!(oldest.contains("KKKKKKKKKK"), "{oldest}");
    assert!(oldest.contains("100000 bytes"), "{oldest}");
    assert!(oldest.contains("1 B"), "{oldest}");
    let newest = line("most recently used");
    assert!(newest.contains("éééééééééé"), "{newest}");
    assert!(newest.contains("80000 bytes"), "{newest}");
    assert!(!newest.contains("\\x"), "cut inside a character: {newest}");
    let json = json_of(&d.ok(&["stats", "c.db", "--json"]));
    assert_eq!(json["least_recently_used"]["key"], huge.as_str());
    assert_eq!(json["most_recently_used"]["key"], accented.as_str());
    // A short key is shown whole, with nothing added.
    d.ok(&["set", "c.db", "short", "x"]);
    let text = d.ok(&["stats", "c.db"]);
    assert!(
        text.contains("most recently used   short (1 B, set "),
        "{text}"
    );
}

/// With a file threshold (the default), 38a8b49 made an import keep every entry aside
/// in a private SQLite database before its transaction, in the temporary folder: a dump
/// of small values larger than the room there (a small tmpfs /tmp) failed "disk is
/// full", though the cache's own disk had room for it, and nothing else of the import
/// needed the temporary folder. The entries go beside the cache now, as the copy of an
/// input that is not a plain file does. Needs root to mount the tmpfs (as CI runs);
/// skipped loudly otherwise.
#[test]
fn an_import_larger_than_the_temporary_folder_imports() {
    use std::io::Write as _;
    let d = Dir::new();
    let small_tmp = d.path("tmp");
    std::fs::create_dir(&small_tmp).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small_tmp)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED an_import_larger_than_the_temporary_folder_imports: cannot mount a tmpfs (not root?)");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(small_tmp.clone());
    // 12 MB of small values: more than the tmpfs and than what an import keeps in memory.
    const N: usize = 40_000;
    let mut dump = std::io::BufWriter::new(std::fs::File::create(d.path("dump.jsonl")).unwrap());
    writeln!(dump, "{{\"backlite_export\":1}}").unwrap();
    for i in 0..N {
        let value = format!("{i:08}").repeat(36);
        writeln!(dump, "{{\"key\":\"k{i}\",\"value\":\"{value}\"}}").unwrap();
    }
    drop(dump);
    let out = d
        .command(["import", "c.db", "-i", "dump.jsonl"])
        .env("TMPDIR", &small_tmp)
        .env("SQLITE_TMPDIR", &small_tmp)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("imported {N} entries into c.db\n")
    );
    for i in [0, N / 2, N - 1] {
        assert_eq!(
            d.ok(&["get", "c.db", &format!("k{i}")]),
            format!("{i:08}").repeat(36)
        );
    }
    // Nothing is left in the cache's folder but the cache.
    let mut names: Vec<String> = std::fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !["tmp", "dump.jsonl"].contains(&n.as_str()))
        .collect();
    names.sort();
    assert_eq!(names, ["c.db"]);
}
