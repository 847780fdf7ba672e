//! The subcommands, and what they share: opening a file and reporting a failure.

mod check;
mod entries;
mod export;
mod import;
mod keys;
mod partial;
mod stats;

use crate::bytes::escape_path;
use crate::core::{Error, ErrorKind, EvictionPolicy, Options, Storage};
use crate::{Cli, Command};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// Exit code: the command did what was asked (the file is healthy).
pub const OK: u8 = 0;
/// Exit code: the file is damaged, or the key asked for is not there.
pub const DAMAGED_OR_MISSING: u8 = 1;
/// Exit code: bad usage, or the file cannot be opened, read or written.
pub const USAGE_OR_IO: u8 = 2;

/// Why a command failed: its exit code and one line for stderr, the message then the
/// remedy.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
    /// What to do about it, where the message does not say: ` (...)`.
    pub remedy: Option<&'static str>,
}

impl Failure {
    pub fn new(code: u8, file: &Path, cause: impl std::fmt::Display) -> Self {
        Failure {
            code,
            message: format!("{}: {cause}", escape_path(file)),
            remedy: None,
        }
    }

    /// The line for stderr.
    pub fn line(&self) -> String {
        format!("{}{}", self.message, self.remedy.unwrap_or_default())
    }

    /// A core error about `file`; the core's messages often name it already.
    pub fn core(file: &Path, e: &Error) -> Self {
        let code = if e.kind() == ErrorKind::Corrupt {
            DAMAGED_OR_MISSING
        } else {
            USAGE_OR_IO
        };
        // Named as every line names a file (escaped as keys are: a name's ESC sequence
        // is not run by the terminal, nor does its newline split the line).
        let shown = escape_path(file);
        // The core names some files by the absolute path it opened (the -wal and -shm
        // beside it too): the user gave this one. Either way as it was, unescaped.
        let mut message = e.message().to_string();
        let raw = file.display().to_string();
        if let Ok(absolute) = std::path::absolute(file) {
            let absolute = absolute.display().to_string();
            if absolute != raw {
                message = message.replace(&absolute, &shown);
            }
        }
        if raw != shown {
            message = message.replace(&raw, &shown);
        }
        let message = if message.contains(&shown) {
            message
        } else {
            format!("{shown}: {message}")
        };
        // SQLite's "database is locked" does not say by whom, nor that it was waited for,
        // and its "database disk image is malformed" not what to do.
        let remedy = match e.kind() {
            ErrorKind::Busy => Some(
                " (another process held the file's write lock for longer than this \
                 command waits: run it again once that process is done)",
            ),
            ErrorKind::Corrupt => {
                Some(" (the file is damaged: `backlite check` says what to do about it)")
            }
            _ => None,
        };
        Failure {
            code,
            message,
            remedy,
        }
    }
}

pub type Outcome = Result<u8, Failure>;

/// `1 entry`, `2 entries`.
pub fn entries(n: u64) -> String {
    if n == 1 {
        "1 entry".to_string()
    } else {
        format!("{n} entries")
    }
}

/// Opens the cache at `file`. Only commands that store entries may create it: the
/// others report a missing file rather than leave an empty cache behind.
pub fn open(cli: &Cli, file: &Path, create: bool) -> Result<Storage, Failure> {
    open_with(cli, file, create, None, None, Access::Write)
}

/// What a command does to the file, which decides what its open may do.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Only reads: a cache of an older schema is refused, not upgraded, and no orphan
    /// value file is removed.
    Read,
    /// Writes: an older schema is upgraded, and the open sweeps orphan value files.
    Write,
    /// `check --repair`: writes, but leaves the orphans to the check, which removes
    /// them and reports them (swept by its open, they were reported as none).
    Repair,
}

/// [`open`], with a busy timeout of the command's own instead of the library's, and a
/// version tag (which drops every entry of a file last opened with another one), for a
/// command of that `access`.
pub fn open_with(
    cli: &Cli,
    file: &Path,
    create: bool,
    busy_timeout: Option<Duration>,
    version_tag: Option<&str>,
    access: Access,
) -> Result<Storage, Failure> {
    if !create {
        if let Err(e) = std::fs::metadata(file) {
            let cause = if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".to_string()
            } else {
                e.to_string()
            };
            return Err(Failure::new(USAGE_OR_IO, file, cause));
        }
        // The library makes an empty file a cache (SQLite would too); a command that
        // was not asked to store anything leaves it as it found it.
        if std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() == 0) {
            return Err(Failure {
                code: USAGE_OR_IO,
                message: format!(
                    "{} is not a BackLite cache (an empty file); it was left untouched",
                    escape_path(file)
                ),
                remedy: None,
            });
        }
    }
    let (max_size, policy) = settings(cli, file, create)?;
    let mut options = Options::new();
    options
        .set_max_size(max_size)
        .map_err(|e| Failure::new(USAGE_OR_IO, file, e.message()))?;
    // The policy is for eviction, which only a command that stores does. Given to the
    // others it would create its index (first-in-first-out, least-frequently-used...):
    // a `stats` or `keys` would change the file, waiting out another process's write
    // lock to do it. They keep the library's default, which needs none.
    if create {
        options.set_eviction_policy(policy);
    }
    if let Some(timeout) = busy_timeout {
        options.set_busy_timeout(timeout);
    }
    if let Some(tag) = version_tag {
        options.set_version_tag(tag);
    }
    options.set_upgrade(access != Access::Read);
    // A command that only reads removes nothing either: the open's sweep would delete
    // orphan value files, which `check` is to report and `check --repair` to remove
    // (and it writes its place in the folder).
    options.set_sweep(access == Access::Write);
    // The library takes the exact name ":memory:" for a cache in memory, gone when the
    // command ends: here, as every other name, it is a file (the checks above read it
    // as one), so `set :memory: k v` does not report success for a value kept nowhere.
    let path = if file == Path::new(crate::core::MEMORY) {
        Path::new("./:memory:")
    } else {
        file
    };
    Storage::open(path, &options).map_err(|e| {
        let mut failure = Failure::core(file, &e);
        if e.kind() == ErrorKind::Incompatible {
            // The library refuses a schema newer than its own, and (upgrades off) one
            // older; the advice differs: a vacuum upgrades the older, not the newer.
            // Its message says which.
            failure.remedy = Some(if e.message().contains("written by a newer BackLite") {
                " (use a backlite as new as the program that wrote it)"
            } else {
                " (upgrade every program of the file together; a command that writes, such \
                 as vacuum, upgrades a cache of an older schema)"
            });
        }
        failure
    })
}

/// Opens the cache at `file` for a command that only reads it (stats, keys, get, export,
/// check without repair): as [`open_with`], but a cache of an older schema is refused,
/// not upgraded. The library upgrades such a file as it opens it, and a program of an
/// older library that has it open goes on writing the old layout (README: upgrade every
/// process of a file together), so a look at a cache must not be what upgrades it.
pub fn open_to_read(
    cli: &Cli,
    file: &Path,
    busy_timeout: Option<Duration>,
) -> Result<Storage, Failure> {
    open_with(cli, file, false, busy_timeout, None, Access::Read)
}

/// Where an `-o OUT` goes: `None` for stdout (no OUT, or `-`), else the path, which
/// must not be the cache itself or a file SQLite keeps beside it (writing there would
/// destroy the cache).
pub fn output_path<'a>(file: &Path, out: Option<&'a Path>) -> Result<Option<&'a Path>, Failure> {
    use std::os::unix::fs::MetadataExt;
    let Some(out) = out.filter(|p| p.as_os_str() != "-") else {
        return Ok(None);
    };
    let identity = |p: &Path| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    // Where a path that may not exist yet would be: its folder, resolved, and its name.
    let place = |p: &Path| {
        let folder = match p.parent() {
            Some(f) if !f.as_os_str().is_empty() => f,
            _ => Path::new("."),
        };
        Some((
            std::fs::canonicalize(folder).ok()?,
            p.file_name()?.to_owned(),
        ))
    };
    let target = identity(out);
    // Where OUT leads, if it is a link: a link that leads nowhere yet (to c.db-wal
    // before there is one, into c.db.values/) is written there.
    let leads_to = partial::resolve_links(out);
    // A link to the cache is the cache, and SQLite names the -wal and -shm, and the
    // library the folder of values, after the file the link leads to: given link.db,
    // an OUT of c.db-wal or c.db.values/... is refused as well.
    let resolved = std::fs::canonicalize(file).ok();
    let names = std::iter::once(file).chain(resolved.as_deref());
    for (base, suffix) in names
        .clone()
        .flat_map(|base| ["", "-wal", "-shm", "-journal"].map(|suffix| (base, suffix)))
    {
        let mut name = base.as_os_str().to_owned();
        name.push(suffix);
        let name = Path::new(&name);
        let same = match (target, identity(name)) {
            (Some(a), Some(b)) => a == b,
            // SQLite's own files come and go: by name, when there is none now.
            (_, None) => place(&leads_to).is_some_and(|o| place(name) == Some(o)),
            (None, Some(_)) => false,
        };
        if same {
            return Err(Failure::new(
                USAGE_OR_IO,
                file,
                format!(
                    "will not write the output to {}: it is the cache{}",
                    escape_path(out),
                    if suffix.is_empty() { "" } else { "'s own file" }
                ),
            ));
        }
    }
    // The folder of values beside the cache is the cache's too: an OUT there (through a
    // link to it or not) could be a value file, truncated as it is read or replaced.
    let folder = std::fs::canonicalize(out)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .or_else(|| place(&leads_to).map(|(folder, _)| folder));
    let folder = folder.and_then(|f| identity(&f));
    for base in names {
        let mut values = base.as_os_str().to_owned();
        values.push(".values");
        if folder.is_some() && folder == identity(Path::new(&values)) {
            return Err(Failure::new(
                USAGE_OR_IO,
                file,
                format!(
                    "will not write the output to {}: it is in the cache's folder of values",
                    escape_path(out)
                ),
            ));
        }
    }
    // A second name of a value file, outside the folder (`ln c.db.values/v2-... keep`):
    // an OUT of other names is written through to it, so its value would be replaced.
    if is_a_linked_value_file(out) {
        return Err(Failure::new(
            USAGE_OR_IO,
            file,
            format!(
                "will not write the output to {}: it is another name of a value file of a \
                 cache",
                escape_path(out)
            ),
        ));
    }
    // Another cache (`export a.db -o b.db`, import's direction mistaken): a dump or a
    // value written over it destroys it, under any program that has it open, and leaves
    // its log and folder of values to a file that is no longer it.
    if is_a_cache(out) {
        return Err(Failure::new(
            USAGE_OR_IO,
            file,
            format!(
                "will not write the output over {}: it is a BackLite cache (remove it first \
                 if that is what you want)",
                escape_path(out)
            ),
        ));
    }
    Ok(Some(out))
}

/// stdout, when it is a plain file, is held to the rules of an `-o OUT`: not the cache,
/// not a file of its own, not another cache. `backlite export c.db >> c.db` (or `1<>`)
/// wrote the dump into the cache it read, which was no cache after, and exited 0.
fn stdout_is_no_cache_file(file: &Path) -> Result<(), Failure> {
    let stdout = Path::new("/dev/stdout");
    if !std::fs::metadata(stdout).is_ok_and(|m| m.is_file()) {
        return Ok(());
    }
    output_path(file, Some(stdout))
        .map(|_| ())
        .map_err(|mut failure| {
            failure.message = failure.message.replace(&escape_path(stdout), "stdout");
            failure
        })
}

/// Whether `path` is a plain file that starts as a BackLite cache does: SQLite's header
/// with the core's application id, "BKLT" at offset 68 (core `schema::APPLICATION_ID`).
fn is_a_cache(path: &Path) -> bool {
    use std::io::Read;
    // Only a plain file is read: opening a FIFO would wait for a writer.
    if !std::fs::metadata(path).is_ok_and(|m| m.is_file()) {
        return false;
    }
    let mut header = [0u8; CACHE_HEADER];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| is_a_cache_header(&header))
}

/// How SQLite's files start.
pub const SQLITE_MAGIC: &[u8] = b"SQLite format 3\0";

/// How many bytes of a file's start [`is_a_cache_header`] reads.
pub const CACHE_HEADER: usize = 72;

/// Whether `header`, a file's first bytes, is a BackLite cache's: SQLite's header with
/// the core's application id at offset 68.
pub fn is_a_cache_header(header: &[u8]) -> bool {
    header.starts_with(SQLITE_MAGIC) && header.get(68..CACHE_HEADER) == Some(b"BKLT")
}

/// Whether `path` is a plain file of more than one name that holds a value as the
/// library writes one, its record's magic at its start (format 1) or 24 bytes from its
/// end (format 2; core `value_files`).
fn is_a_linked_value_file(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::MetadataExt;
    const RECORD: u64 = 24;
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || meta.nlink() < 2 || meta.len() < RECORD {
        return false;
    }
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let mut magic = [0u8; 8];
    let mut at = |offset: u64| {
        f.seek(SeekFrom::Start(offset))
            .and_then(|_| f.read_exact(&mut magic))
            .map(|()| magic)
            .ok()
    };
    at(0) == Some(*b"BKLTVAL1") || at(meta.len() - RECORD) == Some(*b"BKLTVAL2")
}

/// Where an `-i IN` comes from: `None` for stdin (no IN, or `-`), else the path.
pub fn input_path(input: Option<&Path>) -> Option<&Path> {
    input.filter(|p| p.as_os_str() != "-")
}

/// A key argument: as typed, or with `escape`'s escapes read.
pub fn key_arg(file: &Path, key: &OsStr, escaped: bool) -> Result<Vec<u8>, Failure> {
    if !escaped {
        // Keys are bytes: an argument that is not UTF-8 is taken as it is.
        return Ok(key.as_bytes().to_vec());
    }
    let text = key.to_str().ok_or_else(|| {
        Failure::new(
            USAGE_OR_IO,
            file,
            "a key given with -e is text (\\xNN for a byte); this one is not UTF-8",
        )
    })?;
    crate::bytes::unescape(text).map_err(|e| Failure::new(USAGE_OR_IO, file, e))
}

/// The library's default `max_size`, which `stats` compares with when no `--max-size`
/// is given.
const DEFAULT_MAX_SIZE: u64 = 1 << 30;

/// `--max-size` and `--policy`, read; a bad one is a usage error about `file`. Without
/// `--max-size`, a command that stores (`set`, `import`) evicts nothing: the cache's
/// own program may use any limit, and a default one below its size would delete every
/// entry above it.
fn settings(cli: &Cli, file: &Path, stores: bool) -> Result<(u64, EvictionPolicy), Failure> {
    let bad = |e: String| Failure::new(USAGE_OR_IO, file, e);
    let max_size = match &cli.max_size {
        Some(text) => crate::human::parse_size(text).map_err(bad)?,
        None if stores => i64::MAX as u64,
        None => DEFAULT_MAX_SIZE,
    };
    if max_size == 0 {
        return Err(bad(format!(
            "bad size {:?}: max_size must be between 1 and {} bytes",
            cli.max_size.as_deref().unwrap_or_default(),
            i64::MAX
        )));
    }
    let policy = crate::parse_policy(&cli.policy).map_err(bad)?;
    Ok((max_size, policy))
}

impl Command {
    /// The cache file the command is about.
    fn file(&self) -> &Path {
        match self {
            Command::Stats { file, .. }
            | Command::Keys { file, .. }
            | Command::Get { file, .. }
            | Command::Set { file, .. }
            | Command::Delete { file, .. }
            | Command::Clear { file }
            | Command::ZeroStats { file }
            | Command::Check { file, .. }
            | Command::Vacuum { file }
            | Command::Export { file, .. }
            | Command::Import { file, .. } => file,
        }
    }
}

pub fn run(cli: &Cli) -> Outcome {
    // Settings are read before anything else (a set reads its stdin first).
    settings(cli, cli.command.file(), false)?;
    stdout_is_no_cache_file(cli.command.file())?;
    match &cli.command {
        Command::Stats { file, json } => stats::run(cli, file, *json),
        Command::Keys {
            file,
            prefix,
            limit,
            sort,
            json,
            escaped,
        } => keys::run(cli, file, prefix.as_deref(), *limit, *sort, *json, *escaped),
        Command::Get {
            file,
            key,
            output,
            escaped,
        } => entries::get(cli, file, key, output.as_deref(), *escaped),
        Command::Set {
            file,
            key,
            value,
            expire,
            escaped,
        } => entries::set(
            cli,
            file,
            key,
            value.as_deref(),
            expire.as_deref(),
            *escaped,
        ),
        Command::Delete {
            file,
            keys,
            escaped,
        } => entries::delete(cli, file, keys, *escaped),
        Command::Clear { file } => entries::clear(cli, file),
        Command::ZeroStats { file } => stats::zero(cli, file),
        Command::Check { file, repair, json } => check::check(cli, file, *repair, *json),
        Command::Vacuum { file } => check::vacuum(cli, file),
        Command::Export { file, output } => export::run(cli, file, output.as_deref()),
        Command::Import {
            file,
            input,
            no_copy,
        } => import::run(cli, file, input.as_deref(), *no_copy),
    }
}
