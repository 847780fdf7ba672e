//! `get`, `set`, `delete` and `clear`: single entries from the shell.

use super::partial::{failed, Partial};
use super::stats::print_done;
use super::{
    key_arg, open, open_to_read, output_path, Failure, Outcome, DAMAGED_OR_MISSING, OK, USAGE_OR_IO,
};
use crate::bytes::escape;
use crate::core::{ErrorKind, Expiration, Streamed};
use crate::{Cli, Ttl};
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::Duration;

/// How long `get` waits for another process's write lock. Its hit (a hint for the
/// eviction order, written as it ends) and a damaged value's removal are given up
/// after that: behind a long write (an import, a vacuum) the library's 5 s busy
/// timeout would hold an operator's `get` for 5 s after its value was out. Reads
/// never wait for a writer.
const GET_LOCK_WAIT: Duration = Duration::from_millis(200);

pub fn get(cli: &Cli, file: &Path, key: &OsStr, output: Option<&Path>, escaped: bool) -> Outcome {
    let key = key_arg(file, key, escaped)?;
    let output = output_path(file, output)?;
    // A signal that ends the get leaves OUT as it was, as a failure to write it does.
    let partial = output
        .map(|out| {
            Partial::watch(out).map_err(|e| {
                Failure::new(USAGE_OR_IO, file, format!("cannot watch for Ctrl-C: {e}"))
            })
        })
        .transpose()?;
    // Nor is a value looked up for a stdout the command was started without (`>&-`),
    // whose first write fails.
    let mut stdout = match output {
        None => Some(crate::stdio::stdout().map_err(|e| {
            Failure::new(USAGE_OR_IO, file, format!("cannot write to stdout: {e}"))
        })?),
        Some(_) => None,
    };
    let storage = open_to_read(cli, file, Some(GET_LOCK_WAIT))?;
    // OUT that cannot be written (its folder not there, a file its user may not write)
    // is found out before the lookup, which counts a hit and reads the value: found
    // at the first chunk, the get failed with the hit counted and the entry's place in
    // the eviction order moved up, as if the value had been had.
    let mut prepared = match (&partial, output) {
        (Some(partial), Some(out)) => partial
            .prepare()
            .map_err(|e| Failure::new(USAGE_OR_IO, out, format!("cannot write: {e}")))?,
        _ => None,
    };
    // The value goes out in chunks as it is read (a value kept in a file of its own
    // may be as large as the disk), to OUT (written at the first chunk, so that a miss
    // leaves it as it was) or stdout.
    let mut sink: Option<Box<dyn Write>> = None;
    let mut write = |chunk: &[u8]| -> std::io::Result<()> {
        let out = match &mut sink {
            Some(out) => out,
            None => sink.insert(match &partial {
                Some(partial) => Box::new(partial.start(prepared.take())?),
                None => Box::new(stdout.take().expect("stdout without OUT")),
            }),
        };
        out.write_all(chunk)?;
        out.flush()
    };
    let mut io_error = None;
    // A value that does not go out whole (a write error, a reader gone) counts no hit.
    let streamed = storage
        .deliver_chunks(&key, |chunk| {
            let written = write(chunk);
            let ok = written.is_ok();
            io_error = written.err();
            ok
        })
        .map_err(|e| Failure::core(file, &e))?;
    let io_error = match streamed {
        None => {
            return Err(Failure::new(
                DAMAGED_OR_MISSING,
                file,
                format!("no live entry under key {}", escape(&key)),
            ))
        }
        Some(Streamed::Damaged) => {
            // What was written of it is not kept.
            // The library removes the entry as it finds it damaged, but behind another
            // process's write lock (held past GET_LOCK_WAIT) it gives that up: say which.
            let mut still_there = false;
            let _ = storage.key_infos(&key, |info| {
                still_there |= info.key == key;
                !still_there
            });
            let fate = if still_there {
                "the entry could not be removed now (another process holds the file's write \
                 lock): `backlite check --repair` removes it"
            } else {
                "the entry was removed"
            };
            return Err(failed(
                partial.as_ref(),
                Failure::new(
                    DAMAGED_OR_MISSING,
                    file,
                    format!(
                        "the value under key {} proved damaged as it was read; {fate}",
                        escape(&key)
                    ),
                ),
            ));
        }
        // An empty value has no chunk: OUT is made now.
        Some(Streamed::Done(_)) => write(&[]).err(),
        Some(Streamed::Stopped) => io_error,
    };
    match (io_error, output) {
        (None, _) => match partial.as_ref().map(Partial::keep) {
            Some(Err(e)) => Err(Failure::new(
                USAGE_OR_IO,
                output.unwrap_or(file),
                format!("cannot write: {e}"),
            )),
            _ => Ok(OK),
        },
        // A reader that went away (`| head`) has what it wanted.
        (Some(e), None) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(OK),
        (Some(e), None) => Err(Failure::new(
            USAGE_OR_IO,
            file,
            format!("cannot write to stdout: {e}"),
        )),
        // What was written of a value that did not go out whole is not kept.
        (Some(e), Some(path)) => {
            let failure = Failure::new(USAGE_OR_IO, path, format!("cannot write: {e}"));
            Err(failed(partial.as_ref(), failure))
        }
    }
}

/// All of stdin: the value of `set FILE KEY` and `set FILE KEY -`.
fn stdin(file: &Path) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    crate::stdio::stdin()
        .and_then(|stdin| stdin.lock().read_to_end(&mut buf))
        .map_err(|e| Failure::new(USAGE_OR_IO, file, format!("cannot read stdin: {e}")))?;
    Ok(buf)
}

pub fn set(
    cli: &Cli,
    file: &Path,
    key: &OsStr,
    value: Option<&OsStr>,
    expire: Option<&str>,
    escaped: bool,
) -> Outcome {
    let key = key_arg(file, key, escaped)?;
    let expire = expire
        .map(crate::parse_expire)
        .transpose()
        .map_err(|e| Failure::new(USAGE_OR_IO, file, e))?;
    let value = match value {
        None => stdin(file)?,
        Some(dash) if dash == "-" => stdin(file)?,
        // Values are bytes: an argument that is not UTF-8 is taken as it is.
        Some(bytes) => bytes.as_bytes().to_vec(),
    };
    let expiration = match expire {
        Some(Ttl::After(d)) => Expiration::After(d),
        Some(Ttl::Never) | None => Expiration::Never,
    };
    // From here a signal lets the write finish, then ends the command (see Deferred).
    let deferred = defer(file)?;
    let outcome = store(cli, file, &key, &value, expiration);
    deferred.end(file, outcome.as_ref().err());
    outcome
}

/// Holds off Ctrl-C for a command's write (`interrupt::Deferred`).
fn defer(file: &Path) -> Result<crate::interrupt::Deferred, Failure> {
    crate::interrupt::defer()
        .map_err(|e| Failure::new(USAGE_OR_IO, file, format!("cannot watch for Ctrl-C: {e}")))
}

/// `set`'s write.
fn store(cli: &Cli, file: &Path, key: &[u8], value: &[u8], expiration: Expiration) -> Outcome {
    let storage = open(cli, file, true)?;
    storage.set(key, value, expiration).map_err(|e| {
        let mut failure = Failure::core(file, &e);
        // The library removes the older value of a key whose new one is refused as too
        // large (a later get must not return it, stale): "not stored" alone reads as if
        // the cache were left as it was.
        if e.kind() == ErrorKind::TooLarge {
            failure.message += &format!(
                "; the older value under key {}, if there was one, was removed",
                escape(key)
            );
        }
        failure
    })?;
    // Making room deleted other entries (only with --max-size: without it nothing is
    // evicted): say so, as import does, or they would be found gone later with no
    // word of why. A set that evicts nothing stays silent. The count is this handle's,
    // so this set's alone.
    let evicted = storage.stats().map_or(0, |s| s.evictions);
    if evicted > 0 {
        print_done(
            file,
            &format!(
                "evicted {} to stay under max size ({})\n",
                super::entries(evicted),
                crate::human::format_size(storage.max_size())
            ),
        )?;
    }
    Ok(OK)
}

pub fn delete(cli: &Cli, file: &Path, keys: &[OsString], escaped: bool) -> Outcome {
    let mut keys = keys
        .iter()
        .map(|k| key_arg(file, k, escaped))
        .collect::<Result<Vec<_>, _>>()?;
    // A key named twice (or spelt two ways with -e) is one key to delete: its second
    // delete would find it gone and report it missing, exit 1, though it was there.
    let mut seen = std::collections::HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
    let deferred = defer(file)?;
    let outcome = delete_keys(cli, file, &keys);
    deferred.end(file, outcome.as_ref().err());
    outcome
}

/// `delete`'s write.
fn delete_keys(cli: &Cli, file: &Path, keys: &[Vec<u8>]) -> Outcome {
    let storage = open(cli, file, false)?;
    let mut missing = Vec::new();
    for key in keys {
        if !storage.delete(key).map_err(|e| Failure::core(file, &e))? {
            missing.push(escape(key));
        }
    }
    print_done(
        file,
        &format!(
            "deleted {} of {} keys ({} not found)\n",
            keys.len() - missing.len(),
            keys.len(),
            missing.len()
        ),
    )?;
    // Like `get` (and `rm`): a key that was not there is exit code 1, the others are
    // deleted all the same.
    if missing.is_empty() {
        return Ok(OK);
    }
    Err(Failure::new(
        DAMAGED_OR_MISSING,
        file,
        format!("no live entry under key {}", missing.join(", ")),
    ))
}

pub fn clear(cli: &Cli, file: &Path) -> Outcome {
    let deferred = defer(file)?;
    let outcome = clear_all(cli, file);
    deferred.end(file, outcome.as_ref().err());
    outcome
}

/// `clear`'s write.
fn clear_all(cli: &Cli, file: &Path) -> Outcome {
    let storage = open(cli, file, false)?;
    let before = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    storage.clear().map_err(|e| Failure::core(file, &e))?;
    // Counters damaged: the clear above was refused (CORRUPT), so this is not reached.
    print_done(
        file,
        &format!("cleared {}\n", super::entries(before.count.unwrap_or(0))),
    )?;
    Ok(OK)
}
