//! `backlite export FILE [-o OUT]`: one JSON object a line, after a header line.
//!
//! ```text
//! {"backlite_export":1,"exported_at":"2026-11-29T15:04:05.123Z","schema_version":2,
//!  "lifetime":{"hits":3,"misses":1,"evictions":0,"expirations":0,"since":"..."}}
//! {"key":"greeting","value":"hello","expires_at":"2026-11-29T16:04:05.123Z","hits":3,"set_at":"..."}
//! {"key_base64":"AP8=","value_base64":"AAEC","expires_at":null,"hits":0,"set_at":null}
//! ```
//!
//! (one line each). Keys and values are strings when they are UTF-8, base64
//! otherwise; `expires_at` and `set_at` are absolute UTC times (null: never, or not
//! known). The header's lifetime counters are added to the importing file's. Entries come least recently used first, so an
//! import keeps their order. `jq 'select(.key)'` skips the header.

use super::{Failure, Outcome, OK, USAGE_OR_IO};
use crate::clock::{format_ms, now_ms};
use crate::core::{Error, ErrorKind, ExportedEntry};
use crate::progress;
use crate::Cli;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::json;
use std::io::{BufWriter, Write};
use std::path::Path;

/// The format's version, in the header line.
pub const FORMAT: u64 = 1;

/// Writes one entry line (without its newline) straight into `out`: the fields of the
/// module's example, in the same (sorted) order. The value is escaped or base64-encoded
/// as it is written, so a large value costs no second copy of itself (a 128 MiB value
/// took 476 MiB when the line was built as a JSON object first).
pub fn write_entry(out: &mut impl Write, e: &ExportedEntry<'_>) -> std::io::Result<()> {
    let time = |ms: Option<i64>| json!(ms.map(format_ms));
    write!(
        out,
        "{{\"expires_at\":{},\"hits\":{},",
        time(e.expires_at_ms),
        e.hits
    )?;
    write_bytes(out, "key", e.key)?;
    write!(out, ",\"set_at\":{},", time(e.set_at_ms))?;
    write_bytes(out, "value", e.value)?;
    out.write_all(b"}")
}

/// `"name":"text"` when the bytes are UTF-8, else `"name_base64":"..."` (as
/// `bytes::put_json` decides).
fn write_bytes(out: &mut impl Write, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    match std::str::from_utf8(bytes) {
        Ok(text) => {
            write!(out, "\"{name}\":")?;
            // `From` gives back the write's own error, whose kind says whether it was a
            // closed pipe (`other` made every one of them a failure to report).
            serde_json::to_writer(&mut *out, text).map_err(std::io::Error::from)
        }
        Err(_) => {
            write!(out, "\"{name}_base64\":\"")?;
            let mut encoder = base64::write::EncoderWriter::new(&mut *out, &BASE64);
            encoder.write_all(bytes)?;
            encoder.finish()?.write_all(b"\"")
        }
    }
}

pub fn run(cli: &Cli, file: &Path, output: Option<&Path>) -> Outcome {
    let output = super::output_path(file, output)?;
    // A stdout the command was started without (`>&-`) is found out before the walk.
    let stdout = match output {
        None => Some(crate::stdio::stdout().map_err(|e| {
            Failure::new(USAGE_OR_IO, file, format!("cannot write to stdout: {e}"))
        })?),
        Some(_) => None,
    };
    let storage = super::open_to_read(cli, file, None)?;
    let info = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    let lifetime = storage
        .lifetime_stats()
        .map_err(|e| Failure::core(file, &e))?;
    // A signal that ends the export leaves OUT as it was, as a failure does: a Ctrl-C
    // left the dump written so far, which at a line's end imports as a whole one.
    let partial = output
        .map(|out| {
            super::partial::Partial::watch(out).map_err(|e| {
                Failure::new(USAGE_OR_IO, file, format!("cannot watch for Ctrl-C: {e}"))
            })
        })
        .transpose()?;
    let (sink, shown): (Box<dyn Write>, &Path) = match (output, &partial) {
        (Some(out), Some(partial)) => {
            let f = partial
                .create()
                .map_err(|e| Failure::new(USAGE_OR_IO, out, format!("cannot create: {e}")))?;
            (Box::new(f), out)
        }
        _ => (
            Box::new(stdout.expect("stdout without OUT")),
            Path::new("<stdout>"),
        ),
    };
    let mut sink = BufWriter::with_capacity(1 << 16, sink);
    // A reader that went away (`| head`) has all it wanted: stop quietly, as `keys`
    // does. Any other write error is reported, and the dump cut short goes (as a
    // failed `get -o OUT`'s copy does): cut at a line's end, it would import as a
    // whole dump of fewer entries.
    let fail = |failure| super::partial::failed(partial.as_ref(), failure);
    let write_failed = |e: std::io::Error| -> Outcome {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(OK)
        } else {
            Err(fail(Failure::new(
                USAGE_OR_IO,
                shown,
                format!("cannot write: {e}"),
            )))
        }
    };
    let header = json!({
        "backlite_export": FORMAT,
        "exported_at": format_ms(now_ms()),
        "schema_version": info.schema_version,
        // What the entries' program tagged them with: an import into a new file tags
        // it so, and one into a cache of another tag is refused.
        "version_tag": info.version_tag,
        "lifetime": super::stats::lifetime_json(&lifetime),
    });
    if let Err(e) = writeln!(sink, "{header}") {
        return write_failed(e);
    }
    // Damaged counters: no total to measure against (the export goes on).
    let bar = progress::bar(info.count.unwrap_or(0), "exporting", "entries");
    let mut io_error = None;
    let summary = storage.export(|entry| {
        bar.inc(1);
        write_entry(&mut sink, entry)
            .and_then(|()| sink.write_all(b"\n"))
            .map_err(|e| {
                let message = format!("cannot write: {e}");
                io_error = Some(e);
                Error::new(ErrorKind::Io, message)
            })
    });
    bar.finish_and_clear();
    let summary = match (summary, io_error) {
        (_, Some(e)) => return write_failed(e),
        (Err(e), None) => return Err(fail(Failure::core(file, &e))),
        (Ok(s), None) => s,
    };
    if let Err(e) = sink.flush() {
        return write_failed(e);
    }
    if let Some(partial) = &partial {
        if let Err(e) = partial.keep() {
            return Err(Failure::new(
                USAGE_OR_IO,
                shown,
                format!("cannot write: {e}"),
            ));
        }
    }
    let mut note = format!(
        "exported {} from {}",
        super::entries(summary.entries),
        crate::bytes::escape_path(file)
    );
    if summary.skipped > 0 {
        note += &format!(
            "; left out {} damaged entries (run `backlite check`)",
            summary.skipped
        );
    }
    eprintln!("{note}");
    // What could be read is out; that the file is damaged is exit code 1, as for check.
    Ok(if summary.skipped > 0 {
        super::DAMAGED_OR_MISSING
    } else {
        OK
    })
}
