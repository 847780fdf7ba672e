//! The `-o OUT` of `get` and `export` while it is written. A plain file (or a new
//! one) is written as a new file beside OUT and renamed over it once whole, so that a
//! command that fails or is stopped (Ctrl-C, a kill, a closed terminal) leaves OUT as
//! it was: a nightly `export -o backup.jsonl` that hits a full disk truncated and then
//! removed the last good dump. A plain file that a rename would make another file
//! (one with a second name, a hard link; one whose owner or group the new file cannot
//! take; one with extended attributes, such as an ACL, which a new file has not;
//! another user's in /tmp, which only its owner may rename over) is written
//! beside as well, then copied into OUT once whole, as `> OUT` writes it. A link named
//! as OUT is followed, and the file it leads to (there or not) is OUT: replaced, the
//! link stays. A FIFO or a device is written in place (a rename would replace it), as is
//! a plain file in a folder where no file can be made beside it; such an OUT, when a
//! plain file, is removed if not whole (a dump cut at a line's end imports as a whole
//! dump of fewer entries), or emptied where it cannot be removed.

use crate::bytes::escape_path;
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

/// OUT, watched for a signal to stop from [`Partial::watch`] on.
pub struct Partial {
    /// OUT as the user named it, for messages.
    out: PathBuf,
    /// The file OUT names: where the links OUT is (through any number) lead, there or
    /// not, for OUT that is a link; else OUT.
    target: PathBuf,
    /// The copy being written and not yet whole: what a signal or a failure removes.
    /// Held by the signal's handler until the process dies, so that no copy is made
    /// after it looked.
    unfinished: Arc<Mutex<Option<Copy>>>,
}

/// Where the output goes while it is written.
enum Copy {
    /// A new file beside OUT, renamed over it once whole.
    Beside(PathBuf),
    /// A new file beside OUT, copied into it once whole (then removed).
    Through(PathBuf),
    /// OUT itself.
    InPlace(PathBuf),
    /// OUT itself, opened by [`Partial::prepare`] and not written yet (`made`: by that
    /// open, where it was not there).
    Opened { out: PathBuf, made: bool },
}

impl Copy {
    /// Removes the output not whole, and says what became of OUT.
    fn remove(&self) -> &'static str {
        match self {
            Copy::Opened { out, made } => {
                if *made {
                    let _ = std::fs::remove_file(out);
                }
                "not written, left as it was"
            }
            Copy::Beside(temporary) | Copy::Through(temporary) => {
                let _ = std::fs::remove_file(temporary);
                "not written, left as it was"
            }
            // A FIFO, a device or a link the user named as OUT is theirs, not a partial
            // copy (a failed `get -o /dev/full` run as root removed the device).
            Copy::InPlace(out) => {
                if !std::fs::symlink_metadata(out).is_ok_and(|m| m.file_type().is_file()) {
                    "not whole"
                } else if std::fs::remove_file(out).is_ok() {
                    "removed, not whole"
                // Written in place because its folder may not be written, which removing
                // it needs too: emptied, it is no dump cut at a line's end.
                } else if OpenOptions::new()
                    .write(true)
                    .open(out)
                    .and_then(|f| f.set_len(0))
                    .is_ok()
                {
                    "emptied, not whole"
                } else {
                    "left cut short"
                }
            }
        }
    }
}

fn lock(unfinished: &Mutex<Option<Copy>>) -> MutexGuard<'_, Option<Copy>> {
    unfinished
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Partial {
    /// From now on, a signal to stop ends the command, removing the copy being written
    /// (OUT as it was before stays).
    pub fn watch(path: &Path) -> std::io::Result<Self> {
        let unfinished = Arc::new(Mutex::new(None));
        let held = Arc::clone(&unfinished);
        let out = path.to_path_buf();
        crate::interrupt::on_stop(move |signal| {
            let copy = lock(&held);
            let Some(copy) = &*copy else {
                crate::interrupt::die_of(signal)
            };
            let what = copy.remove();
            eprintln!(
                "backlite: {}: {what} ({} received)",
                escape_path(&out),
                crate::interrupt::name(signal)
            );
            crate::interrupt::die_of(signal)
        })?;
        Ok(Partial {
            out: path.to_path_buf(),
            target: resolve_links(path),
            unfinished,
        })
    }

    /// Opens the copy to write: from now on a signal or [`Partial::discard`] removes it.
    pub fn create(&self) -> std::io::Result<File> {
        let prepared = self.prepare()?;
        self.start(prepared)
    }

    /// Opens what the output is to be written to, leaving what OUT holds as it is: so
    /// that a command finds out that it cannot write OUT (a folder not there, a file
    /// its user may not write) before it reads what it is to write (a `get`'s lookup
    /// counts a hit). A plain OUT (or one not there) is written beside (see the
    /// module's comment), or else opened in place without truncating it; `None` for
    /// another (a FIFO, a device, a link), opened by [`Partial::start`] only: opening a
    /// FIFO waits for its reader, and a device's open may act (a tape's rewinds).
    /// [`Partial::discard`], a signal or a drop leaves OUT as it was.
    pub fn prepare(&self) -> std::io::Result<Option<File>> {
        let mut unfinished = lock(&self.unfinished);
        // A folder (or a link to one) is no output, as its open at the start would say;
        // nor is a name only a folder can have (`x/`, `x/.`, `..`), which the copy
        // beside, named after its last name, would be written for (`.x.…`) and then
        // fail to be renamed to.
        let name_ends_it = self
            .out
            .file_name()
            .is_some_and(|name| self.out.as_os_str().as_bytes().ends_with(name.as_bytes()));
        if !name_ends_it || std::fs::metadata(&self.out).is_ok_and(|m| m.is_dir()) {
            return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
        }
        // Not there is a plain file to make; any other failure to look (a folder on the
        // way that is a file, or that its user may not search) is the open's as well.
        // A link is followed to the file it leads to, which is written as a plain OUT
        // is (beside it, then renamed over it, the link kept): written in place, one
        // that led nowhere was made there whether or not the value came whole, and
        // one into a folder not there failed at the first chunk, its hit counted.
        let existing = match std::fs::symlink_metadata(&self.target) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            // Still a link: one into /proc or a descriptor's (`/dev/stdout`), written in
            // place as a FIFO is; or a loop, or one too long to follow, which fails
            // here as its open would.
            Ok(m) if m.file_type().is_symlink() => {
                return std::fs::metadata(&self.target).map(|_| None)
            }
            existing => existing,
        };
        if existing.as_ref().is_ok_and(|m| !m.file_type().is_file()) {
            return Ok(None);
        }
        // A rename asks only the folder: an OUT its user may not write (made read-only,
        // another user's in a folder all may write) is refused as a write to it is, not
        // replaced. Opened without truncating, it is unchanged.
        let opened = match &existing {
            Ok(_) => Some(OpenOptions::new().write(true).open(&self.target)?),
            Err(_) => None,
        };
        if let Some((file, copy)) = beside(&self.target, existing.ok().as_ref())? {
            *unfinished = Some(copy);
            return Ok(Some(file));
        }
        let made = opened.is_none();
        let file = match opened {
            Some(file) => file,
            None => OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.target)?,
        };
        *unfinished = Some(Copy::Opened {
            out: self.target.clone(),
            made,
        });
        Ok(Some(file))
    }

    /// The output begins, into what [`Partial::prepare`] gave (OUT written in place is
    /// emptied now), or into OUT opened now: from here a signal or [`Partial::discard`]
    /// removes what was written.
    pub fn start(&self, prepared: Option<File>) -> std::io::Result<File> {
        let mut unfinished = lock(&self.unfinished);
        let file = match (prepared, &*unfinished) {
            (Some(file), Some(Copy::Opened { .. })) => {
                file.set_len(0)?;
                file
            }
            (Some(copy), _) => return Ok(copy),
            (None, _) => File::create(&self.target)?,
        };
        *unfinished = Some(Copy::InPlace(self.target.clone()));
        Ok(file)
    }

    /// The output is whole (written and flushed): it becomes OUT, and a signal from now
    /// on leaves it. An error (the rename failed) removes the copy.
    pub fn keep(&self) -> std::io::Result<()> {
        let mut unfinished = lock(&self.unfinished);
        let kept = match &*unfinished {
            Some(copy @ Copy::Beside(temporary)) => {
                // On the disk before its name is: a power cut just after the rename
                // left an empty OUT where the old one was, on a file system that does
                // not flush a file renamed over another (XFS; ext4 does).
                let synced = File::open(temporary).and_then(|f| f.sync_all());
                let renamed = synced.and_then(|()| std::fs::rename(temporary, &self.target));
                if renamed.is_err() {
                    let _ = copy.remove();
                }
                renamed
            }
            Some(Copy::Through(temporary)) => write_through(temporary, &self.target),
            _ => Ok(()),
        };
        *unfinished = None;
        kept
    }

    /// The output did not go out whole: its copy is removed (OUT as it was before stays).
    pub fn discard(&self) {
        let _ = self.abandon();
    }

    /// [`Partial::discard`], and `failure` made to say what became of OUT where it was
    /// written in place: a FIFO, a device, a link, or a plain file in a folder where no
    /// copy could be made beside it, whose other names (hard links) show what it holds,
    /// emptied then as well. The help says OUT is left as it was; such a one is not.
    pub fn fail(&self, mut failure: super::Failure) -> super::Failure {
        if let Some(what) = self.abandon() {
            failure.message += &format!(
                "; {} was written in place and is {what}",
                escape_path(&self.out)
            );
        }
        failure
    }

    /// Removes the copy; what became of OUT if it was written in place.
    fn abandon(&self) -> Option<&'static str> {
        let copy = lock(&self.unfinished).take()?;
        let what = copy.remove();
        matches!(copy, Copy::InPlace(_)).then_some(what)
    }
}

/// [`Partial::fail`] where there is an OUT (`partial`), else `failure` as it is.
pub fn failed(partial: Option<&Partial>, failure: super::Failure) -> super::Failure {
    match partial {
        Some(partial) => partial.fail(failure),
        None => failure,
    }
}

/// A command that ends without keeping its output (a `get` that missed, any failure)
/// leaves OUT as it was.
impl Drop for Partial {
    fn drop(&mut self) {
        self.discard();
    }
}

/// Where `path` leads through the links it is (as many as the system follows, 40), as
/// an open would find it: the last path, whether there is a file there or not. `path`
/// itself when it is no link; a link that cannot be read (or one hop too many) is
/// where it stops, and its open says why.
///
/// A link into /proc (`/dev/stdout`, `/dev/fd/3`), or one whose text does not lead
/// where the system's open goes (a descriptor's link, `pipe:[123]`), is where it stops
/// too: such an OUT is written in place, as it was before links were followed (`-o
/// /dev/stdout` into a pipe failed "No such file or directory").
pub fn resolve_links(path: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    let mut at = path.to_path_buf();
    for _ in 0..40 {
        if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            break;
        }
        let Ok(leads_to) = std::fs::read_link(&at) else {
            break;
        };
        // A relative link is read from the folder the link is in.
        let next = match at.parent() {
            Some(folder) if leads_to.is_relative() => folder.join(leads_to),
            _ => leads_to,
        };
        let opened = identity(&at);
        if next.starts_with("/proc") || (opened.is_some() && identity(&next) != opened) {
            break;
        }
        at = next;
    }
    at
}

/// Copies the whole output written at `temporary` into OUT, which stays the file it
/// is, and removes it. Failing part-way, OUT is left empty (a dump cut at a line's end
/// imports as a whole one of fewer entries) and the copy stays, named in the error.
fn write_through(temporary: &Path, out: &Path) -> std::io::Result<()> {
    let opened = File::open(temporary)
        .and_then(|from| Ok((from, OpenOptions::new().write(true).open(out)?)));
    let (mut from, mut to) = match opened {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_file(temporary);
            return Err(e);
        }
    };
    let copied = to
        .set_len(0)
        .and_then(|()| std::io::copy(&mut from, &mut to))
        .and_then(|_| to.sync_all());
    if let Err(e) = copied {
        let _ = to.set_len(0);
        return Err(std::io::Error::new(
            e.kind(),
            format!(
                "{e}; {} is left empty, the whole output is in {}",
                escape_path(out),
                escape_path(temporary)
            ),
        ));
    }
    let _ = std::fs::remove_file(temporary);
    Ok(())
}

/// A new file in OUT's folder, with the permissions (and, where allowed, the owner) of
/// the file it is to replace, and how it becomes OUT: renamed over it, or copied into
/// it when a rename would make OUT another file (see the module's comment); `None` when
/// no file may be made there (a folder the user cannot write, a read-only file system).
/// Any other failure (a full disk) is the command's: writing OUT in place would fail as
/// well, and lose it.
fn beside(
    out: &Path,
    replaced: Option<&std::fs::Metadata>,
) -> std::io::Result<Option<(File, Copy)>> {
    let folder = match out.parent() {
        Some(f) if !f.as_os_str().is_empty() => f,
        _ => Path::new("."),
    };
    let Some(name) = out.file_name() else {
        return Ok(None);
    };
    let mode = replaced.map_or(0o666, |m| m.permissions().mode() & 0o7777);
    for attempt in 0..100u32 {
        let temporary = folder.join(temporary_name(name, attempt));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_CLOEXEC)
            .open(&temporary)
        {
            Ok(file) => {
                let Some(m) = replaced else {
                    return Ok(Some((file, Copy::Beside(temporary))));
                };
                // The mode given to open went through the umask: set it exactly.
                let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
                // Root replacing a user's file keeps it theirs; others cannot.
                let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
                let same_owner = file
                    .metadata()
                    .is_ok_and(|t| (t.uid(), t.gid()) == (m.uid(), m.gid()));
                if same_owner && m.nlink() == 1 && !has_xattrs(out) && may_replace(folder, m) {
                    return Ok(Some((file, Copy::Beside(temporary))));
                }
                // Only this process needs the copy it will write into OUT.
                let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
                return Ok(Some((file, Copy::Through(temporary))));
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => continue,
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EACCES | libc::EPERM | libc::EROFS)
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// Whether the file at `path` has extended attributes (an ACL is one), or they cannot
/// be listed: a file renamed over it has none of them. A security label (SELinux's, on
/// every file there) does not count: the new file gets one of its own.
fn has_xattrs(path: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return true;
    };
    let mut names: Vec<u8> = Vec::new();
    loop {
        // SAFETY: `path` is NUL-terminated and `names` is a buffer of the size given
        // (empty: a size of 0 asks only for the size, and nothing is written).
        let size =
            unsafe { libc::llistxattr(path.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
        match usize::try_from(size) {
            Ok(0) => return false,
            Ok(n) if n <= names.len() => {
                return names[..n]
                    .split(|b| *b == 0)
                    .any(|name| !name.is_empty() && !name.starts_with(b"security."))
            }
            // Asked for the size, or they grew meanwhile: again with room for them.
            Ok(n) => names.resize(n, 0),
            Err(_) => {
                let e = std::io::Error::last_os_error().raw_os_error();
                if e == Some(libc::ERANGE) {
                    names.clear();
                    continue;
                }
                // A file system without them has none to lose.
                return e != Some(libc::ENOTSUP);
            }
        }
    }
}

/// Whether this process may rename a file over the one of `replaced` in `folder`. In a
/// sticky folder (`/tmp`) only the file's owner, the folder's or root may: another
/// user's file there that all may write (which `>` writes) is written through, not
/// refused at the rename, after the whole output was written beside it.
fn may_replace(folder: &Path, replaced: &std::fs::Metadata) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    std::fs::metadata(folder).map_or(true, |f| {
        f.mode() & libc::S_ISVTX == 0 || me == 0 || me == replaced.uid() || me == f.uid()
    })
}

/// The longest name a file system takes (Linux's NAME_MAX, for ext4, XFS, Btrfs, tmpfs).
const NAME_MAX: usize = 255;

/// The name of the copy beside OUT (named `name`): hidden, and named after OUT and this
/// process, so that one left by a crash says what it was. OUT's name is cut (at a
/// character's end when it is text) to leave room for the rest: whole, an OUT of a long
/// name that is valid (250 bytes) failed "File name too long".
fn temporary_name(name: &OsStr, attempt: u32) -> OsString {
    let tail = format!(".{}-{attempt}.backlite-tmp", std::process::id());
    let bytes = name.as_bytes();
    let mut end = bytes.len().min(NAME_MAX - 1 - tail.len());
    if let Ok(text) = std::str::from_utf8(bytes) {
        while !text.is_char_boundary(end) {
            end -= 1;
        }
    }
    let mut temporary = OsString::from(".");
    temporary.push(OsStr::from_bytes(&bytes[..end]));
    temporary.push(tail);
    temporary
}
