//! `backlite stats FILE [--json]`: how full the cache is and how it has been used.

use super::{open, open_to_read, Failure, Outcome, DAMAGED_OR_MISSING, OK, USAGE_OR_IO};
use crate::bytes::{escape, escape_path, escape_start, put_json, with_file};
use crate::clock::format_ms;
use crate::core::{FileInfo, KeyInfo, LifetimeStats};
use crate::human::{format_duration, format_size};
use crate::Cli;
use serde_json::{json, Map, Value};
use std::fmt::Write;
use std::path::Path;
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);
const BAR_WIDTH: usize = 30;

pub fn run(cli: &Cli, file: &Path, json: bool) -> Outcome {
    let storage = open_to_read(cli, file, None)?;
    let info = storage
        .inspect(&[HOUR, DAY])
        .map_err(|e| Failure::core(file, &e))?;
    // Counters that are not sound integers have no figure to show (the library's stats
    // are CORRUPT then); what does is the damage and its remedy, as for the lifetime
    // counters below.
    let (Some(count), Some(total_size)) = (info.count, info.total_size) else {
        return Err(Failure::new(
            DAMAGED_OR_MISSING,
            file,
            "the cache's counters are damaged (not a non-negative integer, or absurdly \
             large): run `backlite check --repair FILE` to recount them",
        ));
    };
    let lifetime = storage
        .lifetime_stats()
        .map_err(|e| Failure::core(file, &e))?;
    let max_size = storage.max_size();
    let out = if json {
        to_json(file, &info, (count, total_size), max_size, &lifetime).to_string() + "\n"
    } else {
        to_text(file, &info, (count, total_size), max_size, &lifetime)
    };
    print(file, &out)?;
    Ok(OK)
}

/// Why the library could not count the value files of the cache at `file`, when this
/// user may not look into its folder: an operator who is not the cache's program's
/// user may read the file but not its folder (0700).
fn values_hidden(file: &Path) -> Option<String> {
    // Beside the file a link leads to, where the library keeps it.
    let mut folder = std::fs::canonicalize(file)
        .unwrap_or_else(|_| file.to_path_buf())
        .into_os_string();
    folder.push(".values");
    let folder = Path::new(&folder);
    if !std::fs::symlink_metadata(folder).is_ok_and(|m| m.is_dir()) {
        return None;
    }
    // Named after the file as the user named it.
    let mut shown = file.as_os_str().to_owned();
    shown.push(".values");
    match std::fs::read_dir(folder) {
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(format!(
            "cannot look into {}: {e}",
            crate::bytes::escape_path(Path::new(&shown))
        )),
        _ => None,
    }
}

/// `backlite zero-stats FILE`.
pub fn zero(cli: &Cli, file: &Path) -> Outcome {
    let storage = open(cli, file, false)?;
    storage.zero_stats().map_err(|e| Failure::core(file, &e))?;
    print_done(
        file,
        &format!("zeroed the lifetime counters of {}\n", escape_path(file)),
    )?;
    Ok(OK)
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth a message.
pub fn print(file: &Path, text: &str) -> Result<(), Failure> {
    write_stdout(text)
        .map_err(|e| Failure::new(USAGE_OR_IO, file, format!("cannot write to stdout: {e}")))
}

/// Writes the one-line report of a change made to the cache, as [`print`]. Failing, it
/// is still exit 2, as any output that fails, and the line says the change was made:
/// "cannot write to stdout" alone read as if nothing was done, and a script that ran a
/// delete again found its keys gone.
pub fn print_done(file: &Path, report: &str) -> Result<(), Failure> {
    print_after(file, report, report.trim_end())
}

/// Writes the report of a change, as [`print_done`]; `done` says in a few words what
/// was done, for a report of many lines.
pub fn print_after(file: &Path, report: &str, done: &str) -> Result<(), Failure> {
    write_stdout(report).map_err(|e| {
        Failure::new(
            USAGE_OR_IO,
            file,
            format!("{done}, but cannot write that to stdout: {e}"),
        )
    })
}

/// `text` to stdout, flushed; a closed pipe is no error.
fn write_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut stdout = crate::stdio::stdout()?;
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

fn within(info: &FileInfo, window: Duration) -> u64 {
    info.expiring_within
        .iter()
        .find(|(w, _)| *w == window)
        .map_or(0, |(_, n)| *n)
}

/// `[=====>      ]  12.5%`. A file fuller than the `--max-size` asked about (its program
/// used a larger limit, or lowered it since) fills the bar and shows its real share,
/// `2400.0%`: the next set there evicts down to the limit.
fn bar(used: u64, max: u64) -> String {
    let ratio = if max == 0 {
        0.0
    } else {
        used as f64 / max as f64
    };
    let filled = (ratio.min(1.0) * BAR_WIDTH as f64).round() as usize;
    format!(
        "[{}{}] {:.1}%",
        "#".repeat(filled),
        ".".repeat(BAR_WIDTH - filled),
        ratio * 100.0
    )
}

/// How much of a key a line of `stats` shows: a summary, whose keys may be of any
/// length (a 100,000-byte key took a line of that many characters).
const KEY_SHOWN: usize = 64;

fn entry_text(entry: &Option<KeyInfo>) -> String {
    match entry {
        None => "-".to_string(),
        Some(e) => {
            let (key, cut) = escape_start(&e.key, KEY_SHOWN);
            let mut s = if cut {
                format!("{key}… (a key of {} bytes; ", e.key.len())
            } else {
                format!("{key} (")
            };
            s += &format_size(e.size);
            if let Some(age) = e.age {
                let _ = write!(s, ", set {} ago", format_duration(age));
            }
            s + ")"
        }
    }
}

fn ratio_text(l: &LifetimeStats) -> String {
    match l.hit_ratio() {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "-".to_string(),
    }
}

/// `(count, total_size)`: `info`'s, known to be sound.
fn to_text(
    file: &Path,
    info: &FileInfo,
    (count, total_size): (u64, u64),
    max_size: u64,
    l: &LifetimeStats,
) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<21}{value}");
    };
    line("file", escape_path(file));
    let mut entries = count.to_string();
    if info.expired_waiting > 0 {
        let _ = write!(
            entries,
            " (and {} expired, not yet removed)",
            info.expired_waiting
        );
    }
    line("entries", entries);
    line(
        "size",
        format!(
            "{} of {} max  {}",
            format_size(total_size),
            format_size(max_size),
            bar(total_size, max_size)
        ),
    );
    line(
        "on disk",
        match info.values_size {
            // Not a figure of 0 B: unknown, and the total only a lower bound.
            None => format!(
                "at least {} (database {}, write-ahead log {}, value files unknown{})",
                format_size(info.file_size + info.wal_size),
                format_size(info.file_size),
                format_size(info.wal_size),
                values_hidden(file).map_or_else(String::new, |why| format!(": {why}")),
            ),
            Some(values_size) => format!(
                "{} (database {}, write-ahead log {}, value files {})",
                format_size(info.file_size + info.wal_size + values_size),
                format_size(info.file_size),
                format_size(info.wal_size),
                format_size(values_size)
            ),
        },
    );
    line("schema version", info.schema_version.to_string());
    line(
        "version tag",
        // The program's text: escaped as keys are, so that a newline or a terminal
        // escape in it is seen, not obeyed.
        info.version_tag
            .as_deref()
            .map_or_else(|| "(none)".into(), |tag| escape(tag.as_bytes())),
    );
    let indexes = if info.policy_indexes.is_empty() {
        "none (least/most-recently-used need none)".to_string()
    } else {
        info.policy_indexes
            .iter()
            .map(|i| {
                let policies: Vec<&str> = i.policies.iter().map(|p| p.name()).collect();
                format!("{} ({})", i.name, policies.join(", "))
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    line("policy indexes", indexes);
    line("least recently used", entry_text(&info.least_recently_used));
    line("most recently used", entry_text(&info.most_recently_used));
    line(
        "expiring",
        format!(
            "{} within 1h, {} within 1d",
            within(info, HOUR),
            within(info, DAY)
        ),
    );
    line(
        "hit ratio",
        format!("{} ({} hits, {} misses)", ratio_text(l), l.hits, l.misses),
    );
    line("evictions", l.evictions.to_string());
    line("expirations", l.expirations.to_string());
    line("counting since", format_ms(l.since_ms));
    out
}

pub fn lifetime_json(l: &LifetimeStats) -> Value {
    json!({
        "hits": l.hits,
        "misses": l.misses,
        "evictions": l.evictions,
        "expirations": l.expirations,
        "since": format_ms(l.since_ms),
    })
}

pub fn key_json(e: &KeyInfo) -> Value {
    let mut object = Map::new();
    put_json(&mut object, "key", &e.key);
    object.insert("size".into(), json!(e.size));
    object.insert("hits".into(), json!(e.hits));
    object.insert("age_ms".into(), json!(e.age.map(|d| d.as_millis() as u64)));
    object.insert(
        "expires_in_ms".into(),
        json!(e.expires_in.map(|d| d.as_millis() as u64)),
    );
    Value::Object(object)
}

fn to_json(
    file: &Path,
    info: &FileInfo,
    (count, total_size): (u64, u64),
    max_size: u64,
    l: &LifetimeStats,
) -> Value {
    with_file(
        file,
        json!({
            "entries": count,
            "expired_not_removed": info.expired_waiting,
            "total_size": total_size,
            "max_size": max_size,
            "file_size": info.file_size,
            "wal_size": info.wal_size,
            "values_size": info.values_size,
            "schema_version": info.schema_version,
            "version_tag": info.version_tag,
            "policy_indexes": info.policy_indexes.iter().map(|i| json!({
                "name": i.name,
                "policies": i.policies.iter().map(|p| p.name()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "least_recently_used": info.least_recently_used.as_ref().map(key_json),
            "most_recently_used": info.most_recently_used.as_ref().map(key_json),
            "expiring_within_1h": within(info, HOUR),
            "expiring_within_1d": within(info, DAY),
            "lifetime": lifetime_json(l),
            "hit_ratio": l.hit_ratio(),
        }),
    )
}
