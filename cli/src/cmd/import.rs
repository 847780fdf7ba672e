//! `backlite import FILE [-i IN]`: reads what `export` writes, in one transaction, so
//! a bad line anywhere leaves the cache as it was. Entries replace those under the
//! same keys; others are kept (so imports merge). Already expired entries are skipped.

use super::export::FORMAT;
use super::stats::print;
use super::{open, Failure, Outcome, OK, USAGE_OR_IO};
use crate::bytes::take_json;
use crate::clock::parse_ms;
use crate::core::{Error, ErrorKind};
use crate::progress;
use crate::Cli;
use serde_json::{Map, Value};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

/// One entry line, decoded.
struct Line {
    key: Vec<u8>,
    value: Vec<u8>,
    expires_at_ms: Option<i64>,
    hits: u64,
}

/// What a line holds: an entry, or the header (or an empty line).
fn parse_line(text: &[u8]) -> Result<Option<Line>, String> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut object: Map<String, Value> = match serde_json::from_slice(text) {
        Ok(Value::Object(o)) => o,
        Ok(_) => return Err("not a JSON object".into()),
        Err(e) => {
            // serde counts lines within this one line: keep only the column.
            let text = e.to_string();
            let cause = text.split(" at line ").next().unwrap_or(&text);
            return Err(format!("not valid JSON at column {}: {cause}", e.column()));
        }
    };
    if let Some(format) = object.get("backlite_export") {
        if format.as_u64() != Some(FORMAT) {
            return Err(format!(
                "export format {format} is not one this build reads ({FORMAT})"
            ));
        }
        return Ok(None);
    }
    let key = take_json(&mut object, "key")?;
    let value = take_json(&mut object, "value")?;
    let expires_at_ms = match object.remove("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(t)) => Some(parse_ms(&t)?),
        Some(_) => return Err("\"expires_at\" must be a time string or null".into()),
    };
    let hits = match object.remove("hits") {
        None => 0,
        Some(v) => v.as_u64().ok_or("\"hits\" must be a whole number >= 0")?,
    };
    if let Some(unknown) = object.keys().next() {
        return Err(format!("unknown field \"{unknown}\""));
    }
    Ok(Some(Line {
        key,
        value,
        expires_at_ms,
        hits,
    }))
}

pub fn run(cli: &Cli, file: &Path, input: Option<&Path>) -> Outcome {
    let (source, shown, length): (Box<dyn Read>, String, Option<u64>) = match input {
        Some(path) => {
            let f = std::fs::File::open(path)
                .map_err(|e| Failure::new(USAGE_OR_IO, path, format!("cannot open: {e}")))?;
            let length = f.metadata().ok().filter(|m| m.is_file()).map(|m| m.len());
            (Box::new(f), path.display().to_string(), length)
        }
        None => (
            Box::new(std::io::stdin().lock()),
            "<stdin>".to_string(),
            None,
        ),
    };
    let storage = open(cli, file, true)?;
    let bar = match length {
        Some(n) => progress::bytes_bar(n, "importing"),
        None => progress::spinner("importing"),
    };
    let mut reader = BufReader::with_capacity(1 << 16, source);
    let mut line = Vec::new();
    let mut number = 0u64;
    let summary = storage.import(|importer| loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read {shown}: {e}")))?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        bar.inc(n as u64);
        let at_line = |why: String| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("line {number} of {shown}: {why}; nothing was imported"),
            )
        };
        let Some(entry) = parse_line(&line).map_err(at_line)? else {
            continue;
        };
        importer
            .put(&entry.key, &entry.value, entry.expires_at_ms, entry.hits)
            .map_err(|e| at_line(e.message().to_string()))?;
    });
    bar.finish_and_clear();
    let summary = summary.map_err(|e| Failure::core(file, &e))?;
    let mut note = format!(
        "imported {} into {}",
        super::entries(summary.entries),
        file.display()
    );
    if summary.skipped > 0 {
        note += &format!("; skipped {} already expired", summary.skipped);
    }
    if summary.evicted > 0 {
        note += &format!("; evicted {} to stay under max size", summary.evicted);
    }
    print(file, &(note + "\n"))?;
    Ok(OK)
}
