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
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
        {
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
    let mut best: Vec<KeyInfo> = Vec::new();
    // Unsorted, keys stream out in key order; sorted with a limit, only the best
    // `limit` are kept (trimmed as they come), so memory stays bounded either way.
    storage
        .key_infos(&prefix, |info| match sort {
            // The walk ends at the limit, or once stdout takes no more.
            None => {
                let go_on = lister.rows < limit && lister.row(&info);
                go_on && lister.rows < limit
            }
            Some(sort) => {
                best.push(info);
                if limit != usize::MAX && best.len() >= limit.saturating_mul(2).max(1024) {
                    best.sort_by(|a, b| order(sort, a, b));
                    best.truncate(limit);
                }
                true
            }
        })
        .map_err(|e| Failure::core(file, &e))?;
    if let Some(sort) = sort {
        best.sort_by(|a, b| order(sort, a, b));
        best.truncate(limit);
        for info in &best {
            if !lister.row(info) {
                break;
            }
        }
    }
    lister.finish(limit == 0)?;
    Ok(OK)
}
