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

use super::{open, Failure, Outcome, OK, USAGE_OR_IO};
use crate::bytes::put_json;
use crate::clock::{format_ms, now_ms};
use crate::core::{Error, ErrorKind, ExportedEntry};
use crate::progress;
use crate::Cli;
use serde_json::{json, Map, Value};
use std::io::{BufWriter, Write};
use std::path::Path;

/// The format's version, in the header line.
pub const FORMAT: u64 = 1;

pub fn entry_line(e: &ExportedEntry<'_>) -> String {
    let mut object = Map::new();
    put_json(&mut object, "key", e.key);
    put_json(&mut object, "value", e.value);
    object.insert("expires_at".into(), json!(e.expires_at_ms.map(format_ms)));
    object.insert("hits".into(), json!(e.hits));
    object.insert("set_at".into(), json!(e.set_at_ms.map(format_ms)));
    Value::Object(object).to_string()
}

pub fn run(cli: &Cli, file: &Path, output: Option<&Path>) -> Outcome {
    let output = super::output_path(file, output)?;
    let storage = open(cli, file, false)?;
    let info = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    let lifetime = storage
        .lifetime_stats()
        .map_err(|e| Failure::core(file, &e))?;
    let (sink, shown): (Box<dyn Write>, &Path) = match output {
        Some(out) => {
            let f = std::fs::File::create(out)
                .map_err(|e| Failure::new(USAGE_OR_IO, out, format!("cannot create: {e}")))?;
            (Box::new(f), out)
        }
        None => (Box::new(std::io::stdout().lock()), Path::new("<stdout>")),
    };
    let mut sink = BufWriter::with_capacity(1 << 16, sink);
    // A reader that went away (`| head`) has all it wanted: stop quietly, as `keys`
    // does. Any other write error is reported.
    let write_failed = |e: std::io::Error| -> Outcome {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Ok(OK)
        } else {
            Err(Failure::new(
                USAGE_OR_IO,
                shown,
                format!("cannot write: {e}"),
            ))
        }
    };
    let header = json!({
        "backlite_export": FORMAT,
        "exported_at": format_ms(now_ms()),
        "schema_version": info.schema_version,
        "lifetime": super::stats::lifetime_json(&lifetime),
    });
    if let Err(e) = writeln!(sink, "{header}") {
        return write_failed(e);
    }
    let bar = progress::bar(info.count, "exporting", "entries");
    let mut io_error = None;
    let summary = storage.export(|entry| {
        bar.inc(1);
        writeln!(sink, "{}", entry_line(entry)).map_err(|e| {
            let message = format!("cannot write: {e}");
            io_error = Some(e);
            Error::new(ErrorKind::Io, message)
        })
    });
    bar.finish_and_clear();
    let summary = match (summary, io_error) {
        (_, Some(e)) => return write_failed(e),
        (Err(e), None) => return Err(Failure::core(file, &e)),
        (Ok(s), None) => s,
    };
    if let Err(e) = sink.flush() {
        return write_failed(e);
    }
    let mut note = format!(
        "exported {} from {}",
        super::entries(summary.entries),
        file.display()
    );
    if summary.skipped > 0 {
        note += &format!(
            "; left out {} damaged entries (run `backlite check`)",
            summary.skipped
        );
    }
    eprintln!("{note}");
    Ok(OK)
}
