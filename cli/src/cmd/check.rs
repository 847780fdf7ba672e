//! `backlite check FILE [--repair] [--json]` and `backlite vacuum FILE`: maintenance,
//! each a walk over the whole file.

use super::stats::{print, print_after, print_done};
use super::{open, Failure, Outcome, DAMAGED_OR_MISSING, OK};
use crate::bytes::{escape_path, with_file};
use crate::core::{CheckReport, ErrorKind};
use crate::human::format_size;
use crate::progress;
use crate::Cli;
use serde_json::json;
use std::fmt::Write;
use std::path::Path;

pub fn check(cli: &Cli, file: &Path, repair: bool, json: bool) -> Outcome {
    let opened = if repair {
        super::open_with(cli, file, false, None, None, super::Access::Repair)
    } else {
        super::open_to_read(cli, file, None)
    };
    let storage = match opened {
        Ok(storage) => storage,
        // A file too damaged to open (one cut short, its first pages garbage) is the
        // check's answer as much as one whose damage the walk finds: the report, not
        // only an error line, so that `check --json` gives JSON for it too.
        Err(failure) if failure.code == DAMAGED_OR_MISSING => {
            return unreadable(file, &failure.message, json)
        }
        Err(failure) => return Err(failure),
    };
    let spinner = progress::spinner(if repair {
        "checking and repairing"
    } else {
        "checking"
    });
    let report = storage.check(repair);
    spinner.finish_and_clear();
    let report = match report {
        Ok(report) => report,
        // SQLite could not read the file's structure: that is the check's answer (a
        // damaged file), not a failure to give one.
        Err(e) if e.kind() == ErrorKind::Corrupt => return unreadable(file, e.message(), json),
        Err(e) => return Err(Failure::core(file, &e)),
    };
    let out = if json {
        to_json(file, &report).to_string() + "\n"
    } else {
        to_text(file, &report)
    };
    if report.repaired {
        print_after(file, &out, "repaired")?;
    } else {
        print(file, &out)?;
    }
    Ok(if report.healthy() {
        OK
    } else {
        DAMAGED_OR_MISSING
    })
}

fn verdict(r: &CheckReport) -> &'static str {
    match (r.healthy(), r.repaired) {
        (true, true) => "repaired",
        (true, false) => "healthy",
        (false, _) if !r.integrity_ok => "damaged (delete the file: it is a cache)",
        (false, _) => "damaged (run `backlite check --repair`)",
    }
}

fn to_text(file: &Path, r: &CheckReport) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: String| {
        let _ = writeln!(out, "{label:<16}{value}");
    };
    line("file", escape_path(file));
    line(
        "integrity",
        if r.integrity_ok {
            "ok".to_string()
        } else {
            r.integrity_messages.join("; ")
        },
    );
    // What a repair did, after what it found: removed the damaged entries and the
    // orphans, and rewrote counters that were wrong.
    let removed = |n: u64| {
        if r.repaired && n > 0 {
            " (removed)"
        } else {
            ""
        }
    };
    line(
        "entries",
        format!(
            "{} checked, {} damaged{}",
            r.entries,
            r.damaged,
            removed(r.damaged)
        ),
    );
    line(
        "orphan values",
        format!("{}{}", r.orphan_values, removed(r.orphan_values)),
    );
    let counters_ok =
        r.recorded_count == r.actual_count && r.recorded_total_size == r.actual_total_size;
    // The entries checked: the counters count them all, damaged or not, and are set to
    // the sound ones' figures by a repair (which removes the others). "found 3 entries"
    // of 4 checked, one damaged, read as if the file's count of 4 were wrong.
    let found = if r.damaged == 0 {
        format!(
            "found {}, {}",
            super::entries(r.actual_count),
            format_size(r.actual_total_size)
        )
    } else {
        format!(
            "found {}: {} sound ({}), {} damaged",
            super::entries(r.entries),
            r.actual_count,
            format_size(r.actual_total_size),
            r.damaged
        )
    };
    let rewritten = match (r.repaired, r.damaged) {
        (false, _) => String::new(),
        (true, 0) => "; rewritten".to_string(),
        (true, _) => format!(
            "; rewritten to {}, {}",
            super::entries(r.actual_count),
            format_size(r.actual_total_size)
        ),
    };
    line(
        "counters",
        if r.counters_damaged() {
            format!("damaged; {found}{rewritten}")
        } else if counters_ok {
            format!(
                "ok ({}, {})",
                super::entries(r.actual_count),
                format_size(r.actual_total_size)
            )
        } else {
            format!(
                "recorded {}, {}; {found}{rewritten}",
                super::entries(r.recorded_count),
                format_size(r.recorded_total_size)
            )
        },
    );
    line("result", verdict(r).to_string());
    out
}

/// The report on a file SQLite cannot read (`why`), in text or JSON: exit code 1.
fn unreadable(file: &Path, why: &str, json: bool) -> Outcome {
    let out = if json {
        unreadable_json(file, why).to_string() + "\n"
    } else {
        unreadable_text(file, why)
    };
    print(file, &out)?;
    Ok(DAMAGED_OR_MISSING)
}

/// The report on a file SQLite cannot read: nothing was counted.
fn unreadable_text(file: &Path, why: &str) -> String {
    format!(
        "{:<16}{}\n{:<16}{why}\n{:<16}damaged (delete the file: it is a cache)\n",
        "file",
        escape_path(file),
        "integrity",
        "result"
    )
}

/// [`to_json`]'s fields, the figures that could not be counted null.
fn unreadable_json(file: &Path, why: &str) -> serde_json::Value {
    with_file(
        file,
        json!({
            "healthy": false,
            "repaired": false,
            "integrity_ok": false,
            "integrity_messages": [why],
            "entries": null,
            "damaged": null,
            "orphan_values": null,
            "recorded_count": null,
            "recorded_total_size": null,
            "actual_count": null,
            "actual_total_size": null,
        }),
    )
}

fn to_json(file: &Path, r: &CheckReport) -> serde_json::Value {
    // Damaged counters have no recorded figure: the report's u64::MAX (the C API's
    // marker) would read as 18446744073709551615 entries. Null, as for figures of a
    // file that could not be counted.
    let recorded = |n: u64| (!r.counters_damaged()).then_some(n);
    with_file(
        file,
        json!({
            "healthy": r.healthy(),
            "repaired": r.repaired,
            "integrity_ok": r.integrity_ok,
            "integrity_messages": r.integrity_messages,
            "entries": r.entries,
            "damaged": r.damaged,
            "orphan_values": r.orphan_values,
            "recorded_count": recorded(r.recorded_count),
            "recorded_total_size": recorded(r.recorded_total_size),
            "actual_count": r.actual_count,
            "actual_total_size": r.actual_total_size,
        }),
    )
}

pub fn vacuum(cli: &Cli, file: &Path) -> Outcome {
    let storage = open(cli, file, false)?;
    let before = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    let spinner = progress::spinner("vacuuming");
    let done = storage.vacuum();
    spinner.finish_and_clear();
    done.map_err(|e| {
        let mut failure = Failure::core(file, &e);
        // Rebuilt, but the log could not be truncated: no writer kept it, so the Busy
        // remedy (another process's write lock) would send the operator after the
        // wrong process. The rebuilt file is in the log until a checkpoint.
        if e.kind() == ErrorKind::Busy && e.message().contains("readers kept") {
            failure.remedy = Some(
                " (a process reading the file held its read, such as a `backlite export` \
                 into a slow pipe: the file is rebuilt, and its space comes back once that \
                 read ends and the log is checkpointed; run vacuum again then)",
            );
        }
        failure
    })?;
    let after = storage.inspect(&[]).map_err(|e| Failure::core(file, &e))?;
    print_done(
        file,
        &format!(
            "vacuumed {}: {} -> {} on disk (write-ahead log {} -> {})\n",
            escape_path(file),
            format_size(before.file_size),
            format_size(after.file_size),
            format_size(before.wal_size),
            format_size(after.wal_size),
        ),
    )?;
    Ok(OK)
}
