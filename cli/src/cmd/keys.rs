//! `backlite keys FILE [--prefix P] [--limit N] [--sort size|age|hits] [--json]`.

use super::stats::{key_json, print};
use super::{key_arg, open, Failure, Outcome, OK};
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
}

impl Lister<'_> {
    fn row(&mut self, info: &KeyInfo) {
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
            let _ = print(self.file, &std::mem::take(&mut self.out));
        }
    }

    fn finish(mut self) -> Result<(), Failure> {
        if self.rows == 0 && !self.json {
            self.out.push_str("(no keys)\n");
        }
        print(self.file, &self.out)
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
    let storage = open(cli, file, false)?;
    let limit = limit.unwrap_or(usize::MAX);
    let mut lister = Lister {
        file,
        json,
        out: String::new(),
        rows: 0,
    };
    let mut best: Vec<KeyInfo> = Vec::new();
    // Unsorted, keys stream out in key order; sorted with a limit, only the best
    // `limit` are kept (trimmed as they come), so memory stays bounded either way.
    storage
        .key_infos(&prefix, |info| match sort {
            None => {
                if lister.rows < limit {
                    lister.row(&info);
                }
                lister.rows < limit
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
            lister.row(info);
        }
    }
    lister.finish()?;
    Ok(OK)
}
