//! `backlite import FILE [-i IN]`: reads what `export` writes, in one transaction, so
//! a bad line anywhere leaves the cache as it was (and a cache it was to create, not
//! there at all). Entries replace those under the same keys; others are kept (so
//! imports merge). Already expired entries are skipped.

use super::export::FORMAT;
use super::stats::print_done;
use super::{open_with, Access, Failure, Outcome, OK, USAGE_OR_IO};
use crate::bytes::{escape, escape_path, take_json};
use crate::clock::parse_ms;
use crate::core::{Error, ErrorKind, LifetimeStats};
use crate::progress;
use crate::strict_json::Strict;
use crate::Cli;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};

/// One entry line, decoded.
struct Entry {
    key: Vec<u8>,
    value: Vec<u8>,
    expires_at_ms: Option<i64>,
    hits: u64,
    set_at_ms: Option<i64>,
}

/// What a line holds.
enum Line {
    Entry(Entry),
    /// The header, with the exporting file's lifetime counters and version tag if it
    /// had them.
    Header(Option<LifetimeStats>, Option<String>),
    Empty,
}

/// A time field: absent or null is `None`.
fn time_field(object: &mut Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    match object.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(t)) => parse_ms(&t).map(Some),
        Some(_) => Err(format!("\"{name}\" must be a time string or null")),
    }
}

/// A count field: absent is 0.
fn count_field(object: &mut Map<String, Value>, name: &str) -> Result<u64, String> {
    match object.remove(name) {
        None => Ok(0),
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("\"{name}\" must be a whole number >= 0")),
    }
}

fn no_other_field(object: &Map<String, Value>) -> Result<(), String> {
    match object.keys().next() {
        Some(unknown) => Err(format!("unknown field \"{unknown}\"")),
        None => Ok(()),
    }
}

fn parse_header(object: &mut Map<String, Value>) -> Result<Line, String> {
    let format = object.remove("backlite_export").unwrap_or_default();
    if format.as_u64() != Some(FORMAT) {
        return Err(format!(
            "export format {format} is not one this build reads ({FORMAT})"
        ));
    }
    let lifetime = match object.remove("lifetime") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut l)) => {
            let counters = LifetimeStats {
                hits: count_field(&mut l, "hits")?,
                misses: count_field(&mut l, "misses")?,
                evictions: count_field(&mut l, "evictions")?,
                expirations: count_field(&mut l, "expirations")?,
                since_ms: time_field(&mut l, "since")?.unwrap_or(i64::MAX),
            };
            no_other_field(&l).map_err(|e| format!("in \"lifetime\": {e}"))?;
            Some(counters)
        }
        Some(_) => return Err("\"lifetime\" must be an object".into()),
    };
    let tag = match object.remove("version_tag") {
        None | Some(Value::Null) => None,
        Some(Value::String(tag)) => Some(tag),
        Some(_) => return Err("\"version_tag\" must be a string or null".into()),
    };
    // The header's other fields describe the export; they need nothing here.
    Ok(Line::Header(lifetime, tag))
}

/// A line's JSON text: without its line end, and without a UTF-8 byte order mark at
/// its start, which editors and tools on Windows (Notepad, PowerShell's `Set-Content
/// -Encoding utf8`) put before a file's first line. RFC 8259 lets a reader ignore it,
/// and no JSON text starts with it, so nothing is misread: at the start of any line,
/// as a dump marked so may follow another (`cat a.jsonl b.jsonl`).
fn json_text(line: &[u8]) -> &[u8] {
    let text = line.strip_suffix(b"\n").unwrap_or(line);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    text.strip_prefix("\u{feff}".as_bytes()).unwrap_or(text)
}

/// The version tag a dump's header names, if `line` is such a header (whatever else is
/// wrong with it is said when the line is read as a line).
fn header_tag(line: &[u8]) -> Option<String> {
    let text = json_text(line);
    match serde_json::from_slice::<Value>(text).ok()? {
        Value::Object(mut o) if o.contains_key("backlite_export") => {
            match o.remove("version_tag") {
                Some(Value::String(tag)) => Some(tag),
                _ => None,
            }
        }
        _ => None,
    }
}

/// A line longer than this is not kept once parsed: its buffer goes before its value is
/// decoded, so that a large value is not held three times over (line, string, bytes).
const LARGE_LINE: usize = 1 << 20;

/// Whether `text` holds a `\uD800`-`\uDFFF` escape before `column` (serde's, from 1):
/// half of a UTF-16 pair, which Python's json.dumps writes for a byte that is not UTF-8
/// in a string decoded with surrogateescape.
fn surrogate_escape_before(text: &[u8], column: usize) -> bool {
    text[..column.min(text.len())].windows(4).any(|w| {
        w[..2] == *b"\\u"
            && w[2].eq_ignore_ascii_case(&b'd')
            && matches!(w[3].to_ascii_lowercase(), b'8'..=b'9' | b'a'..=b'f')
    })
}

/// What a line holds: an entry, the header, or nothing. A large line's buffer is freed
/// once parsed.
fn parse_line(line: &mut Vec<u8>) -> Result<Line, String> {
    let text = json_text(line);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(Line::Empty);
    }
    // A field named twice is refused (see strict_json), not the last one taken.
    let mut object: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(Strict(Value::Object(o))) => o,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => {
            // serde counts lines within this one line: keep only the column.
            let message = e.to_string();
            let cause = message.split(" at line ").next().unwrap_or(&message);
            let mut why = format!("not valid JSON at column {}: {cause}", e.column());
            if cause.contains("hex escape") && surrogate_escape_before(text, e.column()) {
                why += " (a lone surrogate escape, \\uD800-\\uDFFF, is half of a UTF-16 \
                        pair, no character: bytes that are not UTF-8 go as key_base64 or \
                        value_base64)";
            }
            return Err(why);
        }
    };
    if line.capacity() > LARGE_LINE {
        *line = Vec::new();
    }
    if object.contains_key("backlite_export") {
        return parse_header(&mut object);
    }
    let entry = Entry {
        key: take_json(&mut object, "key")?,
        value: take_json(&mut object, "value")?,
        expires_at_ms: time_field(&mut object, "expires_at")?,
        hits: count_field(&mut object, "hits")?,
        set_at_ms: time_field(&mut object, "set_at")?,
    };
    no_other_field(&object)?;
    Ok(Line::Entry(entry))
}

/// What the import waits for: the line it asked for (empty at the end of the dump), a
/// failure to read it, or a signal to stop.
enum Next {
    Line(Vec<u8>),
    Failed(std::io::Error),
    Stop(i32),
}

/// The dump's lines, one at a time, read on a thread of their own so that a signal to
/// stop (Ctrl-C) is seen while a read waits (on a terminal, a pipe whose writer is
/// slow): the import then stops there and undoes itself. A line is read only once
/// asked for, so no more of the dump is in memory than before.
struct Lines {
    ask: mpsc::Sender<Vec<u8>>,
    next: mpsc::Receiver<Next>,
    /// The signal that came, 0 while none did (see `interrupt::on_stop`).
    came: Arc<AtomicUsize>,
    /// The signal that stopped the import, once one did.
    stopped: Option<i32>,
}

impl Lines {
    /// With `spool_in`, the whole of `source` is first copied into an unnamed file in
    /// that folder (see [`spool`]), and the lines are read from the copy.
    fn new(source: Box<dyn Read + Send>, spool_in: Option<PathBuf>) -> std::io::Result<Self> {
        let (ask, asked) = mpsc::channel::<Vec<u8>>();
        let (answer, next) = mpsc::channel();
        let stop = answer.clone();
        let came = crate::interrupt::on_stop(move |signal| {
            let _ = stop.send(Next::Stop(signal));
        })?;
        std::thread::spawn(move || {
            let source = match spool_in {
                None => Ok(source),
                Some(folder) => spool(source, &folder),
            };
            let source = match source {
                Ok(source) => source,
                Err(e) => {
                    if asked.recv().is_ok() {
                        let _ = answer.send(Next::Failed(e));
                    }
                    return;
                }
            };
            let mut reader = BufReader::with_capacity(1 << 16, source);
            for mut line in asked {
                line.clear();
                let read = match reader.read_until(b'\n', &mut line) {
                    Ok(_) => Next::Line(line),
                    Err(e) => Next::Failed(e),
                };
                if answer.send(read).is_err() {
                    return;
                }
            }
        });
        Ok(Lines {
            ask,
            next,
            came,
            stopped: None,
        })
    }

    /// The signal that stopped the import or came since its last line was read (while
    /// its entries were stored), if one did.
    fn signal(&self) -> Option<i32> {
        self.stopped.or(match self.came.load(SeqCst) {
            0 => None,
            came => Some(came as i32),
        })
    }

    /// Reads the next line into `line` (its buffer reused): its length, 0 at the end.
    /// `Err(None)`: a signal came to stop the import (see `stopped`).
    fn read(&mut self, line: &mut Vec<u8>) -> Result<usize, Option<std::io::Error>> {
        if self.stopped.is_some() || self.ask.send(std::mem::take(line)).is_err() {
            return Err(None);
        }
        match self.next.recv() {
            // A signal that came as the line was read stops the import as well: the
            // end of the dump may be its writer's end, by the same Ctrl-C.
            Ok(Next::Line(_)) | Ok(Next::Stop(_)) if self.came.load(SeqCst) != 0 => {
                self.stopped = Some(self.came.load(SeqCst) as i32);
                Err(None)
            }
            Ok(Next::Line(read)) => {
                *line = read;
                Ok(line.len())
            }
            Ok(Next::Failed(e)) => Err(Some(e)),
            Ok(Next::Stop(signal)) => {
                self.stopped = Some(signal);
                Err(None)
            }
            Err(_) => Err(None),
        }
    }
}

/// The whole of `source`, copied into an unnamed file in `folder` (gone once closed,
/// however the process ends), to read it from there. An import is one transaction,
/// which holds the cache's write lock from its first line to its last: read from a pipe
/// (`ssh host backlite export c.db | backlite import c.db`, a slow decompression) it
/// held that lock for as long as the pipe took, and every write of the running
/// program failed BUSY once its busy timeout ran out. Copied first, the input is read
/// at the disk's pace inside the transaction. The cache's folder, since that disk is
/// to hold the entries anyway (a temporary folder may be a small tmpfs), else the
/// temporary folder.
fn spool(mut source: Box<dyn Read + Send>, folder: &Path) -> std::io::Result<Box<dyn Read + Send>> {
    use std::io::{Seek, SeekFrom};
    let kept = |cause: std::io::Error| {
        let folder = escape_path(folder);
        std::io::Error::new(cause.kind(), NotCopied { folder, cause })
    };
    // In a folder this user may not make a file in (the cache and its -wal writable,
    // the folder not), the copy goes to the temporary folder.
    let mut copy = tempfile::tempfile_in(folder)
        .or_else(|_| tempfile::tempfile())
        .map_err(kept)?;
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let n = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        std::io::Write::write_all(&mut copy, &buffer[..n]).map_err(kept)?;
    }
    copy.seek(SeekFrom::Start(0)).map_err(kept)?;
    Ok(Box::new(copy))
}

/// The copy of [`spool`] could not be made (no room beside the cache, a folder this
/// user may not write): said as such, not as a failure to read the input.
#[derive(Debug)]
struct NotCopied {
    folder: String,
    cause: std::io::Error,
}

impl std::fmt::Display for NotCopied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "cannot copy the input into {} or the temporary folder first (an input that is not \
             a plain file is copied, so that the cache is not locked while it comes; --no-copy \
             reads it straight in): {}",
            self.folder, self.cause
        )
    }
}

impl std::error::Error for NotCopied {}

/// The length of `fd` if it is a plain file (read at the disk's pace); `None` for a
/// pipe, a terminal or a socket, whose writer may take any time.
fn plain_file_length(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    let file = std::fs::File::from(fd.try_clone_to_owned().ok()?);
    file.metadata()
        .ok()
        .filter(|m| m.is_file())
        .map(|m| m.len())
}

/// A failed import's end: `failure`, or when a signal stopped it, its line and then the
/// death the signal would have caused, now that the import is undone.
fn stop_or_fail(stopped: Option<i32>, mut failure: Failure) -> Outcome {
    let Some(signal) = stopped else {
        return Err(failure);
    };
    failure.message += &format!(" ({} received)", crate::interrupt::name(signal));
    eprintln!("backlite: {}", failure.line().replace('\n', " "));
    crate::interrupt::die_of(signal)
}

/// What [`not_a_dump`] says an input is.
const CACHE: &str = "a BackLite cache";
const DATABASE: &str = "an SQLite database";

/// The failure of an import whose input (`shown`) is a cache (`kind`) or another SQLite
/// database rather than a dump, with how to copy a cache's entries (`source`: its name
/// for the command to give).
fn not_a_dump(file: &Path, shown: &str, kind: &str, source: &str) -> Failure {
    let mut why =
        format!("will not import {shown}: it is {kind}, not a dump; nothing was imported");
    if kind == CACHE {
        why += &format!(
            " (to copy its entries: backlite export {source} | backlite import {})",
            escape_path(file)
        );
    }
    Failure::new(USAGE_OR_IO, file, why)
}

/// `no_copy`: an input that is not a plain file is read straight into the transaction.
pub fn run(cli: &Cli, file: &Path, input: Option<&Path>, no_copy: bool) -> Outcome {
    use std::os::fd::AsFd;
    let (source, shown, length): (Box<dyn Read + Send>, String, Option<u64>) =
        match super::input_path(input) {
            Some(path) => {
                // `import new.db -i old.db` (export's direction mistaken) read the cache
                // as a dump: "line 1: not valid JSON at column 1", which says nothing of it.
                if super::is_a_cache(path) {
                    let shown = escape_path(path);
                    return Err(not_a_dump(file, &shown, CACHE, &shown));
                }
                let f = std::fs::File::open(path)
                    .map_err(|e| Failure::new(USAGE_OR_IO, path, format!("cannot open: {e}")))?;
                let length = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
                (Box::new(f), escape_path(path), length)
            }
            None => {
                let stdin = crate::stdio::stdin().map_err(|e| {
                    Failure::new(USAGE_OR_IO, file, format!("cannot read <stdin>: {e}"))
                })?;
                let length = plain_file_length(stdin.as_fd());
                (Box::new(stdin), "<stdin>".to_string(), length)
            }
        };
    // An input that is not a plain file is copied beside the cache first (see spool),
    // unless asked not to (no room for the copy).
    let spool_in = (length.is_none() && !no_copy).then(|| match file.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let mut lines = Lines::new(source, spool_in)
        .map_err(|e| Failure::new(USAGE_OR_IO, file, format!("cannot watch for Ctrl-C: {e}")))?;
    // A failed import into a file that was not there leaves no file behind either.
    let sidecar = |suffix: &str| {
        let mut name = file.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name)
    };
    let made_here = |p: &Path| std::fs::symlink_metadata(p).is_err();
    // The first line is read before the cache is opened: a header naming a version tag
    // (the tag of the program whose entries these are) makes a cache this import
    // creates one of that tag, and refuses a cache of another tag, whose program would
    // read these entries as its own.
    let mut line = Vec::new();
    let read_failed = |e: Option<std::io::Error>| match e {
        Some(e) if e.get_ref().is_some_and(|e| e.is::<NotCopied>()) => {
            format!("{e}; nothing was imported")
        }
        Some(e) => format!("cannot read {shown}: {e}"),
        None => "stopped before its first line; nothing was imported".to_string(),
    };
    let first = match lines.read(&mut line) {
        Ok(n) => n,
        Err(e) => {
            let failure = Failure::new(USAGE_OR_IO, file, read_failed(e));
            return stop_or_fail(lines.stopped, failure);
        }
    };
    // A cache piped in (`backlite import new.db < old.db`) is no dump either; said so,
    // not "line 1: not valid JSON at column 1". Its header may hold a line end (a page
    // count of 10): the lines up to its 72nd byte are read to tell.
    if line.starts_with(super::SQLITE_MAGIC) {
        let mut header = std::mem::take(&mut line);
        while header.len() < super::CACHE_HEADER && matches!(lines.read(&mut line), Ok(1..)) {
            header.extend_from_slice(&line);
        }
        let kind = if super::is_a_cache_header(&header) {
            CACHE
        } else {
            DATABASE
        };
        return stop_or_fail(lines.stopped, not_a_dump(file, &shown, kind, "CACHE"));
    }
    let dump_tag = header_tag(&line);
    // Whether the file is there is asked only now, as the cache is opened: the first
    // line may come long after the import began (a pipe from another host), and a
    // program may have made the cache meanwhile.
    let new_file = made_here(file);
    let new_values = made_here(&sidecar(".values"));
    let empty = std::fs::metadata(file).is_ok_and(|m| m.is_file() && m.len() == 0);
    // No line at all is no dump: an export writes at least its header. It is what a
    // failed export leaves in `backlite export ... | backlite import new.db`, whose
    // status is the import's: making the cache from it would say all went well. Into
    // a cache it imports nothing, as a dump of no entries would.
    if first == 0 && (new_file || empty) {
        return Err(Failure::new(
            USAGE_OR_IO,
            file,
            format!(
                "{shown} is empty, not a dump (an export writes at least its header line); \
                 nothing was imported, and no cache was made"
            ),
        ));
    }
    let tag_for_new = dump_tag.as_deref().filter(|_| new_file || empty);
    let storage = open_with(cli, file, true, None, tag_for_new, Access::Write)?;
    let cache_tag = match tag_for_new {
        Some(tag) => Some(tag.to_string()),
        None => {
            storage
                .inspect(&[])
                .map_err(|e| Failure::core(file, &e))?
                .version_tag
        }
    };
    // Whose entries a header's are: another tag's than the cache's are refused.
    let other_tag = |dump: &str| {
        cache_tag.as_deref().filter(|t| *t != dump).map(|t| {
            format!(
                "the dump's entries are of version tag {}, this cache's are of {}",
                escape(dump.as_bytes()),
                escape(t.as_bytes())
            )
        })
    };
    if let Some(why) = dump_tag.as_deref().and_then(other_tag) {
        return Err(Failure::new(
            USAGE_OR_IO,
            file,
            format!("{why}; nothing was imported"),
        ));
    }
    let bar = match length {
        Some(n) => progress::bytes_bar(n, "importing"),
        None => progress::spinner("importing"),
    };
    let mut number = 0u64;
    let mut pending = Some(first);
    let at_line = |number: u64, why: &str| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("line {number} of {shown}: {why}; nothing was imported"),
        )
    };
    // A value refused is the line's fault; the file's own failures (read-only, a full
    // disk, damage) keep their kind, for the exit code and the remedy, and are not
    // blamed on the line (the core stores the lines once all are read, and hands such
    // a failure back with the line's number).
    let storing = |e: Error, number: u64| match e.kind() {
        ErrorKind::InvalidArgument | ErrorKind::TooLarge => at_line(number, e.message()),
        kind => Error::new(
            kind,
            format!(
                "{} (storing line {number} of {shown}); nothing was imported",
                e.message()
            ),
        ),
    };
    let summary = storage.import(
        |importer| loop {
            let n = match pending.take() {
                Some(n) => n,
                None => lines.read(&mut line).map_err(|e| match e {
                    Some(e) => Error::new(ErrorKind::Io, read_failed(Some(e))),
                    None => Error::new(
                        ErrorKind::Io,
                        format!(
                            "stopped at line {} of {shown}; nothing was imported",
                            number + 1
                        ),
                    ),
                })?,
            };
            if n == 0 {
                return Ok(());
            }
            number += 1;
            bar.inc(n as u64);
            importer.at(number);
            let on_line = |why: String| at_line(number, &why);
            match parse_line(&mut line).map_err(on_line)? {
                Line::Entry(e) => importer
                    .put(&e.key, &e.value, e.expires_at_ms, e.hits, e.set_at_ms)
                    .map_err(|e| storing(e, number))?,
                Line::Header(counters, tag) => {
                    // A header further on (dumps put end to end) is held to the same rule.
                    if let Some(why) = tag.as_deref().and_then(other_tag) {
                        return Err(on_line(why));
                    }
                    if let Some(counters) = counters {
                        importer
                            .merge_lifetime(&counters)
                            .map_err(|e| storing(e, number))?;
                    }
                }
                Line::Empty => {}
            }
        },
        storing,
    );
    bar.finish_and_clear();
    let summary = match summary {
        Ok(summary) => summary,
        Err(e) => {
            let mut failure = Failure::core(file, &e);
            // Undone, the import left no entry: one there is another process's, stored
            // between the look above and the open (or behind the import's back), and
            // the file that holds it is not removed nor cut back.
            let others = storage.inspect(&[]).map_or(true, |i| i.count != Some(0));
            drop(storage);
            // A file that was not there is not left behind, and an empty one is left
            // empty (the open made it a cache), as a failed import leaves a cache as
            // it was; unless another process opened the cache meanwhile (an import
            // can take minutes): removed or cut back under it, its later sets would go
            // to a file no longer there, reported stored and lost. SQLite removes the
            // write-ahead log as the last connection to the file closes, so one still
            // there once ours closed is another's.
            let in_use = (new_file || empty) && (others || sidecar("-wal").exists());
            if in_use {
                failure.message += &format!(
                    "; {} was left in place: {}",
                    escape_path(file),
                    if others {
                        "it holds another process's entries"
                    } else {
                        "another process has it open"
                    }
                );
            }
            if (new_file || empty) && !in_use {
                let suffixes: &[&str] = if new_file {
                    &["", "-wal", "-shm", "-journal"]
                } else {
                    let _ = std::fs::OpenOptions::new()
                        .write(true)
                        .open(file)
                        .and_then(|f| f.set_len(0));
                    &["-wal", "-shm", "-journal"]
                };
                for suffix in suffixes {
                    let _ = std::fs::remove_file(sidecar(suffix));
                }
                if new_values {
                    let _ = std::fs::remove_dir_all(sidecar(".values"));
                }
            }
            return stop_or_fail(lines.signal(), failure);
        }
    };
    let mut note = format!(
        "imported {} into {}",
        super::entries(summary.entries),
        escape_path(file)
    );
    if summary.skipped > 0 {
        note += &format!("; skipped {} already expired", summary.skipped);
    }
    if summary.evicted > 0 {
        note += &format!("; evicted {} to stay under max size", summary.evicted);
    }
    let reported = print_done(file, &(note + "\n"));
    // A signal that came once the whole dump was read, as its entries were stored: the
    // import is whole (one transaction), and the command then ends of it, as a set or a
    // delete does; it exited 0, as if no Ctrl-C had been pressed.
    if let Some(signal) = lines.signal() {
        if let Err(failure) = &reported {
            eprintln!("backlite: {}", failure.line().replace('\n', " "));
        }
        eprintln!(
            "backlite: {}: {} received while storing the entries: stopped once the import \
             was whole",
            escape_path(file),
            crate::interrupt::name(signal)
        );
        crate::interrupt::die_of(signal)
    }
    reported?;
    Ok(OK)
}
