//! `get -o OUT` and `export -o OUT` over a file that is there change what it holds, as
//! `> OUT` does, and nothing else about it: its other names, its owner and its group.

mod common;

use common::{copies_beside, Dir};
use std::os::unix::fs::{MetadataExt, PermissionsExt};

/// d with c.db holding `k` = "value", that the user nobody may read.
fn a_cache() -> Dir {
    let d = Dir::new();
    d.ok(&["set", "c.db", "k", "value"]);
    let open = |path: &str, mode: u32| {
        std::fs::set_permissions(d.path(path), std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(".", 0o777);
    open("c.db", 0o666);
    d
}

/// An OUT with a second name (a hard link, `ln dump.jsonl latest.jsonl`) was replaced
/// by a new file: the other name kept the old content, the link was broken. Written
/// through now, both names show the new output and are still one file.
#[test]
fn an_output_with_another_name_is_written_through_the_link() {
    let d = a_cache();
    for (args, expected) in [
        (&["get", "c.db", "k", "-o", "out.txt"][..], "value"),
        (&["export", "c.db", "-o", "out.txt"], "\"key\":\"k\""),
    ] {
        std::fs::write(d.path("out.txt"), "old").unwrap();
        let _ = std::fs::remove_file(d.path("other-name.txt"));
        std::fs::hard_link(d.path("out.txt"), d.path("other-name.txt")).unwrap();
        d.ok(args);
        let other = std::fs::read_to_string(d.path("other-name.txt")).unwrap();
        assert!(
            other.contains(expected),
            "{args:?}: the other name has {other:?}"
        );
        let (out, link) = (
            std::fs::metadata(d.path("out.txt")).unwrap(),
            std::fs::metadata(d.path("other-name.txt")).unwrap(),
        );
        assert_eq!((out.ino(), out.nlink()), (link.ino(), 2), "{args:?}");
        assert_eq!(copies_beside(&d, "out.txt"), Vec::<String>::new());
    }
}

/// Another user's OUT that all may write, in a folder all may write (not sticky), was
/// replaced by a file of the user who ran the command: root's `shared.log`, mode 0666,
/// became nobody's. Written through now, it stays root's, with its mode. (Run as root
/// only: the test needs two users.)
#[test]
fn an_output_of_another_user_keeps_its_owner() {
    if !common::as_root() {
        return;
    }
    let d = a_cache();
    for (args, expected) in [
        (&["get", "c.db", "k", "-o", "shared.log"][..], "value"),
        (&["export", "c.db", "-o", "shared.log"], "\"key\":\"k\""),
    ] {
        std::fs::write(d.path("shared.log"), "root's").unwrap();
        std::os::unix::fs::chown(d.path("shared.log"), Some(0), Some(0)).unwrap();
        let mode = std::fs::Permissions::from_mode(0o666);
        std::fs::set_permissions(d.path("shared.log"), mode).unwrap();
        let r = d.run_unprivileged(args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        let written = std::fs::read_to_string(d.path("shared.log")).unwrap();
        assert!(written.contains(expected), "{args:?}: {written:?}");
        let meta = std::fs::metadata(d.path("shared.log")).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid(), meta.permissions().mode() & 0o7777),
            (0, 0, 0o666),
            "{args:?}"
        );
        assert_eq!(copies_beside(&d, "shared.log"), Vec::<String>::new());
    }
}

/// An OUT with extended attributes (an ACL that lets the backup group read the nightly
/// dump, a label, a note) lost them: the new file renamed over it had none. Written
/// through now, OUT keeps them, as `> OUT` does.
#[test]
fn an_output_keeps_its_extended_attributes() {
    use std::os::unix::ffi::OsStrExt;
    let d = a_cache();
    let out = d.path("noted.txt");
    let path = std::ffi::CString::new(out.as_os_str().as_bytes()).unwrap();
    let (name, value) = (c"user.backlite-test", b"kept");
    for (args, expected) in [
        (&["get", "c.db", "k", "-o", "noted.txt"][..], "value"),
        (&["export", "c.db", "-o", "noted.txt"], "\"key\":\"k\""),
    ] {
        std::fs::write(&out, "old").unwrap();
        // SAFETY: both strings are NUL-terminated and the value's length is its own.
        let set = unsafe {
            libc::setxattr(
                path.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if set != 0 {
            eprintln!(
                "SKIPPED: no user extended attributes here: {}",
                std::io::Error::last_os_error()
            );
            return;
        }
        d.ok(args);
        let written = std::fs::read_to_string(&out).unwrap();
        assert!(written.contains(expected), "{args:?}: {written:?}");
        let mut read = [0u8; 16];
        // SAFETY: as above; `read` is a buffer of the length given.
        let len = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                read.as_mut_ptr().cast(),
                read.len(),
            )
        };
        assert_eq!(
            usize::try_from(len).ok().map(|n| &read[..n]),
            Some(&value[..]),
            "{args:?}: the attribute is gone ({})",
            std::io::Error::last_os_error()
        );
        assert_eq!(copies_beside(&d, "noted.txt"), Vec::<String>::new());
    }
}
