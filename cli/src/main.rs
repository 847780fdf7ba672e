//! `backlite`: look into a BackLite cache file, check it, and move it, from the shell.
//!
//! Exit codes: 0 success (a healthy file), 1 a damaged file (or a key not found),
//! 2 a usage or I/O error (also when a change was made but its report could not be
//! written: the line says what was done). Every error is one line on stderr naming the
//! file.

mod bytes;
mod clock;
mod cmd;
mod core;
mod human;
mod interrupt;
mod progress;
mod stdio;
mod strict_json;

use crate::core::EvictionPolicy;
use clap::{Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "backlite",
    version,
    about = "Look into, check, export and import BackLite cache files",
    after_help = "Exit codes: 0 success (healthy), 1 damaged file or key not found, 2 usage or I/O \
                  error (a change whose report could not be written was made: its line says so)."
)]
pub struct Cli {
    /// The size limit that `set` and `import` evict down to. It is a property of each
    /// opener, not of the file: give the one your program uses. Without it they evict
    /// nothing, and `stats` compares with the library's default, 1 GiB.
    // Read when the command runs, so that a bad one is reported naming the file.
    // No default for `set` and `import`: a limit the cache was not made with would
    // delete every entry above it.
    #[arg(long, global = true, value_name = "SIZE")]
    pub max_size: Option<String>,
    /// The eviction policy of `set` and `import` (its index is created if missing).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        default_value = "least-recently-used"
    )]
    pub policy: String,
    #[command(subcommand)]
    pub command: Command,
}

pub fn parse_policy(name: &str) -> Result<EvictionPolicy, String> {
    name.parse()
        .map_err(|e: crate::core::Error| e.message().to_string())
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SortBy {
    /// Largest value first.
    Size,
    /// Oldest set first.
    Age,
    /// Most hits first.
    Hits,
}

#[derive(Subcommand)]
pub enum Command {
    /// Entries, size, disk use, schema, expiries and lifetime hit ratio.
    Stats {
        file: PathBuf,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Live keys with size, age, time left and hits (text keys escaped: \n \\ \xNN).
    Keys {
        file: PathBuf,
        /// Only keys that start with this, byte for byte (`%`, `_` and `\` are plain
        /// characters; with -e, read with the escapes that keys shows).
        #[arg(long)]
        prefix: Option<OsString>,
        /// At most this many keys.
        #[arg(long, value_name = "N")]
        limit: Option<usize>,
        #[arg(long, value_enum)]
        sort: Option<SortBy>,
        /// One JSON object a line instead of a table.
        #[arg(long)]
        json: bool,
        /// The prefix is written with escapes (\n \\ \xNN), as `keys` shows keys.
        #[arg(short = 'e', long)]
        escaped: bool,
    },
    /// Writes the value under KEY to stdout (or OUT).
    Get {
        file: PathBuf,
        key: OsString,
        /// Write the value to OUT instead of stdout (`-`: stdout); OUT is made only on
        /// a hit, and left as it was if the value does not go out whole; but not one
        /// written in place (a FIFO, a device; in a folder its user may not write, a
        /// plain file, through all its names), as the error then says (a plain file
        /// is emptied). A link is followed: OUT is the file it leads to.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
        /// KEY is written with escapes (\n \\ \xNN), as `keys` shows it.
        #[arg(short = 'e', long)]
        escaped: bool,
    },
    /// Stores VALUE (or stdin, for `-` or no VALUE) under KEY.
    Set {
        file: PathBuf,
        key: OsString,
        value: Option<OsString>,
        /// Time to live (10m, 1h30m, 2d) or `never` (the default); 0 stores nothing
        /// (the entry is already expired) and removes what was there.
        #[arg(long, value_name = "DURATION")]
        expire: Option<String>,
        /// KEY is written with escapes (\n \\ \xNN), as `keys` shows it.
        #[arg(short = 'e', long)]
        escaped: bool,
    },
    /// Removes the entries under the KEYs.
    Delete {
        file: PathBuf,
        #[arg(required = true)]
        keys: Vec<OsString>,
        /// The KEYs are written with escapes (\n \\ \xNN), as `keys` shows them.
        #[arg(short = 'e', long)]
        escaped: bool,
    },
    /// Removes every entry.
    Clear { file: PathBuf },
    /// Sets the lifetime counters (hits, misses, evictions, expirations) to zero.
    ZeroStats { file: PathBuf },
    /// Verifies SQLite's integrity, every value's checksum and the counters.
    Check {
        file: PathBuf,
        /// Also remove damaged entries and orphan values and fix the counters.
        #[arg(long)]
        repair: bool,
        /// One JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Rebuilds the file to give free space back, and truncates the write-ahead log.
    Vacuum { file: PathBuf },
    /// Writes every live entry as one JSON object a line (to stdout or OUT).
    Export {
        file: PathBuf,
        /// Write the dump to OUT instead of stdout (`-`: stdout); left as it was if the
        /// export fails; but not one written in place (a FIFO, a device; in a folder
        /// its user may not write, a plain file, through all its names), as the error
        /// then says (a plain file is emptied). A link is followed: OUT is the file it
        /// leads to.
        #[arg(short = 'o', long = "output", value_name = "OUT")]
        output: Option<PathBuf>,
    },
    /// Reads what `export` writes (from stdin or IN), all or nothing.
    Import {
        file: PathBuf,
        /// Read the dump from IN instead of stdin (`-`: stdin).
        #[arg(short = 'i', long = "input", value_name = "IN")]
        input: Option<PathBuf>,
        /// Read an input that is not a plain file (a pipe) straight into the import,
        /// without copying it beside the cache first: no disk space for the copy, but
        /// the cache's write lock is held (its program's writes wait) while it comes.
        #[arg(long)]
        no_copy: bool,
    },
}

/// What `--expire` asks for.
#[derive(Clone, Copy, Debug)]
pub enum Ttl {
    Never,
    After(std::time::Duration),
}

pub fn parse_expire(text: &str) -> Result<Ttl, String> {
    if text == "never" {
        return Ok(Ttl::Never);
    }
    // The library keeps whole milliseconds and cuts a fraction off, so 0.5ms would be
    // 0, its "already expired", which stores nothing: a lifetime is rounded up to the
    // next millisecond instead, at least as long as asked and never nothing.
    human::parse_duration(text).map(|d| {
        let ms = d.as_nanos().div_ceil(1_000_000);
        Ttl::After(std::time::Duration::from_millis(
            u64::try_from(ms).unwrap_or(u64::MAX),
        ))
    })
}

/// clap's usage error as one line: its message, its tips and the usage.
fn usage_error(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut paragraphs = text.split("\n\n").map(|p| {
        p.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    });
    let mut line = paragraphs.next().unwrap_or_default();
    line = line.strip_prefix("error: ").unwrap_or(&line).to_string();
    for p in paragraphs {
        if let Some(tip) = p.strip_prefix("tip: ") {
            line += &format!(" ({tip})");
        } else if let Some(usage) = p.strip_prefix("Usage: ") {
            line += &format!("; usage: {usage}");
        }
    }
    line
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                // What was asked for goes to stdout; one that takes none of it (a full
                // disk) is a failure, as for every other output (clap's exit ignores it).
                // Started with stdout closed, clap's print would go to /dev/null.
                return match crate::stdio::stdout().map(drop).and_then(|()| e.print()) {
                    Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => {
                        eprintln!("backlite: cannot write to stdout: {err}");
                        ExitCode::from(cmd::USAGE_OR_IO)
                    }
                    _ => ExitCode::SUCCESS,
                };
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                e.exit();
            }
            eprintln!("backlite: {}", usage_error(&e));
            return ExitCode::from(cmd::USAGE_OR_IO);
        }
    };
    match cmd::run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("backlite: {}", failure.line().replace('\n', " "));
            ExitCode::from(failure.code)
        }
    }
}
