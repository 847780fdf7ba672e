//! `backlite keys FILE [--prefix P] [--limit N] [--sort size|age|hits] [--json]`.

use super::stats::key_json;
use super::{key_arg, open_to_read, Failure, Outcome, OK, USAGE_OR_IO};
use crate::bytes::escape;
use crate::core::KeyInfo;
use crate::human::{format_duration, format_size};
use crate::{Cli, SortBy};
use std::cmp::Ordering;
use std::fmt::Write;
use std::path::Path;

/// Output is flushed to stdout whenever this much is waiting.
const FLUSH_AT: usize = 1 << 16;

/// The order of `--sort`; keys break ties.
fn order(sort: SortBy, a: &KeyInfo, b: &KeyInfo) -> Ordering {
    let first = match sort {
        SortBy::Size => b.size.cmp(&a.size),
        SortBy::Hits => b.hits.cmp(&a.hits),
        SortBy::Age => b.age.cmp(&a.age),
    };
    first.then_with(|| a.key.cmp(&b.key))
}

/// Rows read from the file at a time, unsorted: at most this many, and no more once
/// their keys add up to PAGE_BYTES.
const PAGE_ROWS: usize = 1024;
const PAGE_BYTES: usize = 1 << 20;

/// Lists the keys in key order as they come, up to `limit`, a page at a time: each page
/// is read in a read transaction of its own, and written with none held. Written from
/// inside one read (`keys cache.db | less`, the pager left open), the listing held it
/// as long as its reader took no more, and the running program's write-ahead log could
/// not be checkpointed meanwhile (it grew with every write). Pages join at the last key
/// listed, so every key there from start to end is listed once, in order.
fn list_in_key_order(
    storage: &crate::core::Storage,
    file: &Path,
    prefix: &[u8],
    limit: usize,
    lister: &mut Lister<'_>,
) -> Result<(), Failure> {
    let mut after: Option<Vec<u8>> = None;
    while lister.rows < limit {
        let wanted = PAGE_ROWS.min(limit - lister.rows);
        let (mut page, mut bytes, mut full) = (Vec::new(), 0, false);
        storage
            .key_infos_after(prefix, after.as_deref(), |info| {
                bytes += info.key.len();
                page.push(info);
                full = page.len() >= wanted || bytes >= PAGE_BYTES;
                !full
            })
            .map_err(|e| Failure::core(file, &e))?;
        after = page.last().map(|info| info.key.clone());
        for info in &page {
            // Once stdout takes no more, the listing ends.
            if !lister.row(info) {
                return Ok(());
            }
        }
        // A walk that did not stop at a full page ran out of keys.
        if !full {
            break;
        }
    }
    Ok(())
}

/// Writes rows as they come, the table's header before the first.
struct Lister<'a> {
    file: &'a Path,
    json: bool,
    out: String,
    rows: usize,
    /// Set once stdout took no more: the reader went away (`| head`, `None` inside),
    /// or a write failed (the failure to report).
    stopped: Option<Option<Failure>>,
}

impl Lister<'_> {
    /// Adds a row; false once stdout takes no more, so the walk stops there.
    fn row(&mut self, info: &KeyInfo) -> bool {
        if self.stopped.is_some() {
            return false;
        }
        self.rows += 1;
        if self.json {
            self.out.push_str(&key_json(info).to_string());
            self.out.push('\n');
        } else {
            if self.rows == 1 {
                let _ = writeln!(
                    self.out,
                    "{:>10}  {:>7}  {:>7}  {:>7}  KEY",
                    "SIZE", "AGE", "LEFT", "HITS"
                );
            }
            let age = info.age.map_or("-".to_string(), format_duration);
            let left = info.expires_in.map_or("never".to_string(), format_duration);
            let _ = writeln!(
                self.out,
                "{:>10}  {:>7}  {:>7}  {:>7}  {}",
                format_size(info.size),
                age,
                left,
                info.hits,
                escape(&info.key)
            );
        }
        if self.out.len() >= FLUSH_AT {
            return self.flush();
        }
        true
    }

    /// Writes out what is waiting. A write that fails ends the listing: a closed pipe
    /// quietly, anything else (a full disk) as the command's failure, never with the
    /// rows after it written and exit 0.
    fn flush(&mut self) -> bool {
        use std::io::Write;
        let text = std::mem::take(&mut self.out);
        let written = crate::stdio::stdout().and_then(|mut stdout| {
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
        });
        match written {
            Ok(()) => true,
            Err(e) => {
                self.stopped = Some((e.kind() != std::io::ErrorKind::BrokenPipe).then(|| {
                    Failure::new(
                        USAGE_OR_IO,
                        self.file,
                        format!("cannot write to stdout: {e}"),
                    )
                }));
                false
            }
        }
    }

    /// `asked_none`: `--limit 0`, where no row says nothing of the cache's keys.
    fn finish(mut self, asked_none: bool) -> Result<(), Failure> {
        if self.stopped.is_none() {
            if self.rows == 0 && !self.json && !asked_none {
                self.out.push_str("(no keys)\n");
            }
            self.flush();
        }
        match self.stopped {
            Some(Some(failure)) => Err(failure),
            _ => Ok(()),
        }
    }
}

pub fn run(
    cli: &Cli,
    file: &Path,
    prefix: Option<&std::ffi::OsStr>,
    limit: Option<usize>,
    sort: Option<SortBy>,
    json: bool,
    escaped: bool,
) -> Outcome {
    let prefix = key_arg(file, prefix.unwrap_or_default(), escaped)?;
    let storage = open_to_read(cli, file, None)?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut lister = Lister {
        file,
        json,
        out: String::new(),
        rows: 0,
        stopped: None,
    };
    let Some(sort) = sort else {
        list_in_key_order(&storage, file, &prefix, limit, &mut lister)?;
        lister.finish(limit == 0)?;
        return Ok(OK);
    };
    // Sorted with a limit, only the best `limit` are kept (trimmed as they come), so
    // memory stays bounded; nothing is written until the walk is over.
    let mut best: Vec<KeyInfo> = Vec::new();
    storage
        .key_infos(&prefix, |info| {
            best.push(info);
            if limit != usize::MAX && best.len() >= limit.saturating_mul(2).max(1024) {
                best.sort_by(|a, b| order(sort, a, b));
                best.truncate(limit);
            }
            true
        })
        .map_err(|e| Failure::core(file, &e))?;
    best.sort_by(|a, b| order(sort, a, b));
    best.truncate(limit);
    for info in &best {
        if !lister.row(info) {
            break;
        }
    }
    lister.finish(limit == 0)?;
    Ok(OK)
}
