//! The entries table, and `blobs` where large values live: every statement that reads
//! or writes them, each written once (the tables themselves are created and migrated
//! in schema.rs, with the rest of the file format). A value lives in its entry's row
//! up to [`INLINE_MAX`] bytes, else in `blobs`, so that moving a row for a hit never
//! copies a large value, or from the file threshold on in a file its row names in
//! `file` (value_files.rs); the join that finds a value wherever it lives is
//! `value_join!`, and each statement that needs it takes it from there.

use crate::entry;
use crate::eviction::EvictionPolicy;
use rusqlite::Row;
use std::sync::OnceLock;

/// Values up to this size live in their entry's row. Larger ones go to `blobs`, so
/// that moving a row for a hit never copies a large value.
pub(crate) const INLINE_MAX: usize = 256;

/// The value of an entry, wherever it lives. Used after `FROM entries`.
macro_rules! value_join {
    () => {
        " LEFT JOIN blobs ON blobs.id = entries.value_id"
    };
}

/// An entry's value, inline or in `blobs`; NULL for a value kept in a file.
macro_rules! value {
    () => {
        "coalesce(entries.value, blobs.value)"
    };
}

/// The length of an entry's value as the database holds it: a value kept in a file
/// (value_files.rs) has the length its row says, checked when the file is read.
macro_rules! value_length {
    () => {
        "coalesce(length(entries.value), \
         CASE WHEN entries.file IS NULL THEN length(blobs.value) ELSE entries.size END)"
    };
}

/// `value_length!` with no join: a value stored apart is measured by a subquery that
/// only runs for its row. Opening a cursor on `blobs` for every row cost a set's
/// look-up of its key, and an eviction's of its victim, about 1,000 instructions.
macro_rules! stored_length {
    () => {
        "coalesce(length(entries.value), CASE WHEN entries.file IS NULL THEN \
         (SELECT length(value) FROM blobs WHERE id = entries.value_id) ELSE entries.size END)"
    };
}

/// The columns of a [`RowRef`] (see [`row_ref`]), after `FROM entries` with no join.
macro_rules! row_ref_columns {
    () => {
        concat!(
            "entries.seq, entries.value_id, entries.size, ",
            stored_length!(),
            ", entries.file"
        )
    };
}

/// Live: no deadline, or one still ahead of `?1`.
macro_rules! live {
    () => {
        "(entries.expires_at IS NULL OR entries.expires_at > ?1)"
    };
}

/// `(seq, value_id, size, file)` of an entry: what removing it needs. In a damaged
/// row, a `value_id` that is not an integer, or a `size` that is not the length of the
/// value, is `None`. `file`: the name of the file its value is kept in, if any.
pub(crate) type RowRef = (i64, Option<i64>, Option<i64>, Option<String>);

/// Reads a `RowRef` from the columns `row_ref_columns!` starting at `at`, trusting
/// only `seq` (the rowid, always an integer). The length is
/// `coalesce(length(entries.value), length(blobs.value))`: `length` of a column reads
/// no large value, where `length(coalesce(..))` would read it whole.
pub(crate) fn row_ref(r: &Row<'_>, at: usize) -> rusqlite::Result<RowRef> {
    Ok((
        r.get(at)?,
        entry::int(r.get_ref(at + 1)?),
        entry::size(r.get_ref(at + 2)?, r.get_ref(at + 3)?),
        match r.get_ref(at + 4)? {
            rusqlite::types::ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            _ => None,
        },
    ))
}

// Reading one entry.

/// What a get reads of an entry: `crc, size, expires_at, value, value_id, file, key`
/// (`entry::locate`). `value` is the row's own, or a value stored apart of at most
/// 32 KiB, read by a subquery that only runs for such a row: a join of
/// `blobs` cost every get about 1,000 instructions, and a second statement for a value
/// stored apart about 1,600. A larger value stored apart (`value` NULL) is read
/// straight into the caller's memory (blob_read.rs); a value kept in a file, from the
/// file the row names.
///
/// A view of each connection's own (TEMP: nothing is written to the file), so that
/// [`LOOKUP`] is short: rusqlite's statement cache copies, hashes and compares the
/// text on every get (statements cannot be kept per read connection without unsafe
/// code: a rusqlite `Statement` is not `Send`). SQLite flattens the view: the plan is
/// that of the query written out (`tests::query_plans`). Its one-letter columns are
/// `crc, size, expires_at, value, value_id, file`, in that order.
pub(crate) const LOOKUP_VIEW: &str =
    "CREATE TEMP VIEW IF NOT EXISTS lookup (c, s, e, v, i, f, n, key) AS \
    SELECT crc, size, expires_at, coalesce(value, (SELECT value FROM blobs \
    WHERE id = value_id AND size <= 32768)), value_id, file, created, key FROM entries";

/// The [`LOOKUP_VIEW`] row of the entry under `?1`, without its key, `value_id` and
/// `file`; `n`, the entry's `created`, names the entry a hit was made on (access.rs).
/// `value_id` and `file` matter only for a row that holds no value, and are read then
/// by [`STORED_APART`]: the two columns cost every get about 200 instructions.
pub(crate) const LOOKUP: &str = "SELECT c,s,e,v,n FROM lookup WHERE key=?1";

/// `LOOKUP` for a handle with a version tag: the file's tag too, in the row's snapshot.
pub(crate) const LOOKUP_TAGGED: &str =
    "SELECT c,s,e,v,n,(SELECT version_tag FROM state) FROM lookup WHERE key=?1";

/// Where the entry under `?1` keeps a value its row does not hold: `value_id, file`.
pub(crate) const STORED_APART: &str = "SELECT value_id, file FROM entries WHERE key = ?1";

/// Whether `blobs` row `?1` holds a BLOB (a damaged row may hold any type; a blob
/// handle would read TEXT as well). No row: no result.
pub(crate) const STORED_IS_BLOB: &str = "SELECT typeof(value) = 'blob' FROM blobs WHERE id = ?1";

/// The `RowRef` columns, then `crc, expires_at, value` of the entry under `?1`
/// (a lookup inside a write, which may remove the entry).
pub(crate) const READ_FOR_WRITE: &str = concat!(
    "SELECT ",
    row_ref_columns!(),
    ", entries.crc, entries.expires_at, ",
    value!(),
    " FROM entries",
    value_join!(),
    " WHERE entries.key = ?1"
);

/// The `RowRef` of the entry under `?1`.
pub(crate) const ROW_REF_BY_KEY: &str = concat!(
    "SELECT ",
    row_ref_columns!(),
    " FROM entries WHERE entries.key = ?1"
);

/// The columns that tell one version of an entry's row from another, as stored (a
/// damaged row's may have any type): `created`, the clock's tick of its set, which no
/// other row is ever given, and where its value is (`value_id`, `file`), its `size` and
/// `crc`. See [`Seen`].
macro_rules! seen_columns {
    () => {
        "entries.created, entries.value_id, entries.size, entries.crc, entries.file"
    };
}

/// The [`Seen`] of the entry under `?1`.
pub(crate) const SEEN_BY_KEY: &str = concat!(
    "SELECT ",
    seen_columns!(),
    " FROM entries WHERE entries.key = ?1"
);

/// The `RowRef` of the entry under `?1`, then its [`Seen`] columns.
pub(crate) const ROW_REF_SEEN_BY_KEY: &str = concat!(
    "SELECT ",
    row_ref_columns!(),
    ", ",
    seen_columns!(),
    " FROM entries WHERE entries.key = ?1"
);

/// An entry's row as a look-up saw it ([`seen_columns!`], from `at`): a row that
/// still reads the same is the row that look-up read, so a value it found damaged can
/// be removed without reading the value again, and a row set since (another value,
/// even the same bytes) is never taken for it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Seen([rusqlite::types::Value; 5]);

impl Seen {
    pub(crate) fn read(r: &Row<'_>, at: usize) -> rusqlite::Result<Seen> {
        use rusqlite::types::{Value, ValueRef};
        let col = |i: usize| {
            r.get_ref(at + i).map(|v| match v {
                ValueRef::Null => Value::Null,
                ValueRef::Integer(i) => Value::Integer(i),
                ValueRef::Real(f) => Value::Real(f),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            })
        };
        Ok(Seen([col(0)?, col(1)?, col(2)?, col(3)?, col(4)?]))
    }
}

// The file's counters (counters.rs): `clock, count, total_size, hits, misses,
// evictions, expirations`, kept in the newest entry row (the highest `seq`: the row
// the last insert wrote, on the page every insert dirties), or in `state` when that
// row holds none (an empty table, or a file not written since its upgrade to schema 4).

/// After `FROM state`: the newest entry row, as `newest` (NULLs in an empty table).
/// `max(seq)` is the last rowid: one descent of the table's b-tree.
macro_rules! newest_join {
    () => {
        " LEFT JOIN entries AS newest ON newest.seq = (SELECT max(seq) FROM entries)"
    };
}

/// Counter `$c` from the newest row, or from `state` when that row holds no clock
/// (after `newest_join!`). Chosen by row, not by value: a NULL counter beside a clock
/// is damage, which the write refuses, not a reason to read the one `state` kept long
/// ago.
macro_rules! newest_or_state {
    ($c:literal) => {
        concat!(
            "iif(newest.state_clock IS NULL, state.",
            $c,
            ", newest.state_",
            $c,
            ")"
        )
    };
}

/// `clock, count, total_size` from the newest row or `state` (after `newest_join!`).
/// `state`'s clock stands only if it is not behind the newest row (a file not written
/// since its upgrade to schema 4); if it is, that row lost its clock: damage (NULL).
macro_rules! clock_count_size {
    () => {
        concat!(
            "iif(newest.state_clock IS NULL, \
             iif(newest.seq > state.clock, NULL, state.clock), newest.state_clock)",
            ", ",
            newest_or_state!("count"),
            ", ",
            newest_or_state!("total_size")
        )
    };
}

/// `hits, misses, evictions, expirations` from the newest row or `state`.
macro_rules! lifetime_columns {
    () => {
        concat!(
            newest_or_state!("hits"),
            ", ",
            newest_or_state!("misses"),
            ", ",
            newest_or_state!("evictions"),
            ", ",
            newest_or_state!("expirations")
        )
    };
}

/// The file's state, `clock, count, total_size` (remote/fill.rs).
pub(crate) const FILE_STATE: &str = concat!(
    "SELECT ",
    clock_count_size!(),
    " FROM state",
    newest_join!(),
    " WHERE state.id = 0"
);

/// The lifetime counters and `stats_since` (lifetime.rs).
pub(crate) const LIFETIME: &str = concat!(
    "SELECT ",
    lifetime_columns!(),
    ", state.stats_since FROM state",
    newest_join!(),
    " WHERE state.id = 0"
);

/// Writes the counters `?1..?7` into the newest entry row; it changes no row when the
/// table is empty, and then `WRITE_STATE_COUNTERS` writes them.
pub(crate) const WRITE_NEWEST_COUNTERS: &str = "UPDATE entries SET state_clock = ?1, \
    state_count = ?2, state_total_size = ?3, state_hits = ?4, state_misses = ?5, \
    state_evictions = ?6, state_expirations = ?7 WHERE seq = (SELECT max(seq) FROM entries)";

/// Puts back the `state` row if it is gone (removed behind BackLite's back): counters
/// at zero, for `counters::repair` to write, no version tag, lifetime counters counting
/// from now.
pub(crate) const RESTORE_STATE: &str = "INSERT INTO state (id, clock, count, total_size, \
    stats_since) SELECT 0, 0, 0, 0, CAST(unixepoch('subsec') * 1000 AS INTEGER) \
    WHERE NOT EXISTS (SELECT 1 FROM state WHERE id = 0)";

/// Writes the counters `?1..?7` into `state`.
pub(crate) const WRITE_STATE_COUNTERS: &str = "UPDATE state SET clock = ?1, count = ?2, \
    total_size = ?3, hits = ?4, misses = ?5, evictions = ?6, expirations = ?7 WHERE id = 0";

/// The highest clock any row records (each row keeps the counters of its insert, and
/// `state` those of its time), 0 if none: a lower bound for a damaged clock. O(entries).
/// (A clock at or above `counters::SOUND_BELOW`, 2^62, is damage, not a tick.)
pub(crate) const HIGHEST_TICK: &str = "SELECT max(\
    coalesce((SELECT max(state_clock) FROM entries WHERE typeof(state_clock) = 'integer' \
    AND state_clock < 4611686018427387904), 0), \
    coalesce((SELECT clock FROM state WHERE id = 0 AND typeof(clock) = 'integer' \
    AND clock < 4611686018427387904), 0))";

/// The earliest deadline in the file, from the partial expiry index's first entry.
macro_rules! earliest_deadline {
    () => {
        "(SELECT min(expires_at) FROM entries WHERE expires_at IS NOT NULL)"
    };
}

/// The earliest deadline in the file (after a purge).
pub(crate) const EARLIEST_DEADLINE: &str = concat!("SELECT ", earliest_deadline!());

/// At the start of a write: the seven counters, the earliest deadline, and the
/// `RowRef` of the entry under `?1` (the one a set replaces; NULLs if none).
pub(crate) const LOAD_WITH_KEY: &str = concat!(
    "SELECT ",
    clock_count_size!(),
    ", ",
    lifetime_columns!(),
    ", ",
    earliest_deadline!(),
    ", ",
    row_ref_columns!(),
    " FROM state",
    newest_join!(),
    " LEFT JOIN entries ON entries.key = ?1 WHERE state.id = 0"
);

/// `LOAD_WITH_KEY` without a key.
pub(crate) const LOAD: &str = concat!(
    "SELECT ",
    clock_count_size!(),
    ", ",
    lifetime_columns!(),
    ", ",
    earliest_deadline!(),
    ", NULL, NULL, NULL, NULL, NULL FROM state",
    newest_join!(),
    " WHERE state.id = 0"
);

/// `LOAD_WITH_KEY` in the common case, where the newest entry row holds the counters:
/// that row is the table's last (one step to it, where `newest_join!` seeks `max(seq)`
/// and then the row, and reads `state` besides: 3k instructions of a set's 45k). No
/// row (an empty table), or a NULL clock in it (not written since the upgrade to
/// schema 4): `LOAD_WITH_KEY` reads them instead.
pub(crate) const LOAD_NEWEST_WITH_KEY: &str = concat!(
    "SELECT n.state_clock, n.state_count, n.state_total_size, n.state_hits, n.state_misses, ",
    "n.state_evictions, n.state_expirations, ",
    earliest_deadline!(),
    ", ",
    row_ref_columns!(),
    " FROM entries AS n LEFT JOIN entries ON entries.key = ?1",
    " ORDER BY n.seq DESC LIMIT 1"
);

/// `LOAD_NEWEST_WITH_KEY` without a key.
pub(crate) const LOAD_NEWEST: &str = concat!(
    "SELECT state_clock, state_count, state_total_size, state_hits, state_misses, ",
    "state_evictions, state_expirations, ",
    earliest_deadline!(),
    ", NULL, NULL, NULL, NULL, NULL FROM entries ORDER BY seq DESC LIMIT 1"
);

/// The file's `clock`, `count` and `total_size`, and the count and size of the entries
/// due at `?1`, through the expiry index: O(due entries).
/// A damaged size (text, real, negative or absurd) counts as nothing: summing it would
/// make the result a real number or overflow.
pub(crate) const LIVE_COUNTERS: &str = concat!(
    "SELECT ",
    clock_count_size!(),
    ", d.n, d.size FROM state",
    newest_join!(),
    ", (SELECT count(*) AS n, coalesce(sum(CASE WHEN typeof(size) = 'integer' \
     AND size BETWEEN 0 AND 281474976710656 THEN size END), 0) AS size \
     FROM entries WHERE expires_at <= ?1) d WHERE state.id = 0"
);

/// `count(*)` and the sum of each size that is its value's length (a damaged row's
/// size is unknown): what the counters should say. O(entries).
pub(crate) const RECOUNT: &str = concat!(
    "SELECT count(*), coalesce(sum(CASE WHEN typeof(size) = 'integer' \
     AND size = ",
    value_length!(),
    " THEN size END), 0) FROM entries",
    value_join!()
);

// Writing.

/// Stores a value apart; its rowid goes into the entry's `value_id`.
pub(crate) const INSERT_BLOB: &str = "INSERT INTO blobs (value) VALUES (?1)";

/// The names of every value file the rows refer to (`clear` removes them after its
/// commit).
pub(crate) const FILES: &str = "SELECT file FROM entries WHERE file IS NOT NULL";

/// Whether a row names the file `?1` (an orphan sweep's test), through
/// `entries_by_file`.
pub(crate) const NAMES_FILE: &str = "SELECT 1 FROM entries WHERE file = ?1";

/// A new entry: `key, value_id, size, crc, seq (= created), expires_at, inline value,
/// set_at`, then the file's counters as they stand with it (the newest row holds them:
/// see `newest_join!`): the clock, which is the row's tick `?5`, then `?9..?14`; then
/// what `$file` adds.
macro_rules! insert_entry {
    ($file_column:literal, $file_value:literal) => {
        concat!(
            "INSERT INTO entries \
             (seq, key, value_id, size, crc, created, hits, expires_at, value, set_at, \
             state_clock, state_count, state_total_size, state_hits, state_misses, \
             state_evictions, state_expirations",
            $file_column,
            ") VALUES (?5, ?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?5, ?9, ?10, ?11, ?12, ?13, ?14",
            $file_value,
            ")"
        )
    };
}
pub(crate) const INSERT_ENTRY: &str = insert_entry!("", "");

/// `INSERT_ENTRY` only if `?1` has no entry (else nothing is written).
pub(crate) const INSERT_ENTRY_IF_NEW: &str =
    concat!(insert_entry!("", ""), " ON CONFLICT (key) DO NOTHING");

/// `INSERT_ENTRY` of a value kept in the file named `?15`. A statement of its own:
/// binding a NULL name on every other insert cost a small set about 190 instructions
/// (the longer text hashed by the statement cache, one more bind).
pub(crate) const INSERT_FILE_ENTRY: &str = insert_entry!(", file", ", ?15");

/// The start of `INSERT_NEW_ENTRY` and `insert_new_entries`.
macro_rules! insert_new_into {
    () => {
        "INSERT INTO entries \
         (seq, key, value_id, size, crc, created, hits, expires_at, value, set_at) VALUES "
    };
}

/// `INSERT_ENTRY` of an inline value (`key, size, crc, seq, expires_at, value,
/// set_at`) without the counters (a batch writes them once, at its end), only if `?1`
/// has no entry (else nothing is written).
pub(crate) const INSERT_NEW_ENTRY: &str = concat!(
    insert_new_into!(),
    "(?4, ?1, NULL, ?2, ?3, ?4, 0, ?5, ?6, ?7) ON CONFLICT (key) DO NOTHING"
);

/// How many rows `insert_new_entries` inserts at once: a batch goes in runs of the
/// first size, then of the second, the rest (under 10) one at a time. One statement
/// run shares its cursors, seeks and reset between its rows, and each run opens a
/// statement journal (a multi-row INSERT with an explicit rowid may abort halfway)
/// that copies the pages it first touches: SQLite spends 8.2k instructions a row in
/// runs of 16, 11.7k one at a time; a `set_many` of 1,000 costs 7,760 instructions an
/// item in runs of 16, 7,460 in runs of 40 or 50, more in runs of 125 (bench/README.md,
/// "set_many").
pub(crate) const NEW_ENTRIES_AT_ONCE: [usize; 2] = [50, 10];

/// `INSERT_NEW_ENTRY` of `NEW_ENTRIES_AT_ONCE[size]` rows, the parameters of row `i` at
/// `7 * i + 1..=7 * i + 7`; a row whose key has an entry (or an earlier row of the
/// same run) is not written. Made once per process.
pub(crate) fn insert_new_entries(size: usize) -> &'static str {
    static SQL: OnceLock<[String; 2]> = OnceLock::new();
    let sql = SQL.get_or_init(|| NEW_ENTRIES_AT_ONCE.map(insert_new_rows));
    &sql[size]
}

fn insert_new_rows(n: usize) -> String {
    let rows: Vec<String> = (0..n)
        .map(|i| {
            let p = |n: usize| 7 * i + n;
            format!(
                "(?{}, ?{}, NULL, ?{}, ?{}, ?{}, 0, ?{}, ?{}, ?{})",
                p(4),
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7)
            )
        })
        .collect();
    format!(
        "{}{} ON CONFLICT (key) DO NOTHING",
        insert_new_into!(),
        rows.join(", ")
    )
}

/// The `seq` of the entry under `?1`.
pub(crate) const SEQ_BY_KEY: &str = "SELECT seq FROM entries WHERE key = ?1";

/// Adds `?1` hits to the entry under `?3` and moves it to tick `?2` of the access
/// order, unless it was created after that tick, or is not the entry created at `?4`
/// that the hits were made on (NULL: unknown); never back: a later access another
/// process wrote first (a hit of its own, ticked after this one) keeps its place. The
/// count stops at the largest integer SQLite holds (as an import stores a larger one):
/// past it SQLite's sum is a real, a column of the wrong type, and the entry damaged.
pub(crate) const WRITE_HITS: &str = "UPDATE entries SET \
    hits = min(hits, 9223372036854775807 - ?1) + ?1, \
    seq = max(seq, ?2) WHERE key = ?3 AND created < ?2 AND (?4 IS NULL OR created = ?4)";

/// An imported entry's hits `?1` and time of set `?3` (if known), by `seq` `?2`.
pub(crate) const SET_IMPORTED: &str =
    "UPDATE entries SET hits = ?1, set_at = coalesce(?3, set_at) WHERE seq = ?2";

/// The key of the entry whose `seq` is `?1`.
pub(crate) const KEY_BY_SEQ: &str = "SELECT key FROM entries WHERE seq = ?1";

/// Removes an entry by `seq`.
pub(crate) const DELETE_ENTRY: &str = "DELETE FROM entries WHERE seq = ?1";

/// Removes a value stored apart, by id.
pub(crate) const DELETE_BLOB: &str = "DELETE FROM blobs WHERE id = ?1";

/// Removes every entry and value.
macro_rules! clear {
    () => {
        "DELETE FROM entries; DELETE FROM blobs;"
    };
}
pub(crate) const CLEAR: &str = clear!();

/// `CLEAR`, and the counters with it (a new version tag): the clock and the lifetime
/// counters move to `state` first, since the rows that held them go. The clock ticks,
/// so that the file's state changes even when it held no entry: the values read through
/// from the remote and waiting in memory are valid only in the state they were read in
/// (remote/fill.rs), and belong to the old tag.
pub(crate) const CLEAR_WITH_COUNTERS: &str = concat!(
    "UPDATE state SET (clock, hits, misses, evictions, expirations) = (SELECT ",
    "coalesce(newest.state_clock, state.clock) + 1, ",
    lifetime_columns!(),
    " FROM state",
    newest_join!(),
    " WHERE state.id = 0) WHERE id = 0; ",
    clear!(),
    " UPDATE state SET count = 0, total_size = 0;"
);

/// The `RowRef` of every entry due at `?1`, through the partial expiry index.
pub(crate) const DUE: &str = concat!(
    "SELECT ",
    row_ref_columns!(),
    " FROM entries WHERE expires_at <= ?1"
);

// Eviction: each policy's next victim, and the index that finds it in O(log n).

macro_rules! victim {
    ($order:literal, $also:expr) => {
        concat!(
            "SELECT ",
            row_ref_columns!(),
            $also,
            " FROM entries ORDER BY ",
            $order,
            " LIMIT 1"
        )
    };
}

/// `victim!` in `$policy`'s order: the table's own (`seq`, the access order, which
/// serves LRU and MRU) or `policy_index`'s index.
macro_rules! victim_of {
    ($policy:expr, $also:expr) => {
        match $policy {
            EvictionPolicy::LeastRecentlyUsed => victim!("seq ASC", $also),
            EvictionPolicy::MostRecentlyUsed => victim!("seq DESC", $also),
            EvictionPolicy::LeastFrequentlyUsed => victim!("hits ASC, seq ASC", $also),
            EvictionPolicy::FirstInFirstOut => victim!("created ASC", $also),
            EvictionPolicy::LastInFirstOut => victim!("created DESC", $also),
        }
    };
}

/// Selects the `RowRef` of `policy`'s next victim.
pub(crate) fn victim(policy: EvictionPolicy) -> &'static str {
    victim_of!(policy, "")
}

/// `victim`, then whether the key `?1` has an entry (live, expired or damaged; through
/// the key's index alone): the look-up an evicting set of a new key needs when it
/// deletes its victim before it inserts, asked in the victim's statement, where a
/// statement of its own cost about 4k instructions.
pub(crate) fn victim_beside_key(policy: EvictionPolicy) -> &'static str {
    victim_of!(
        policy,
        ", EXISTS (SELECT 1 FROM entries AS other WHERE other.key = ?1)"
    )
}

/// The name of the index `policy` needs, and the statement that creates it; `None`
/// for the policies the table's own order serves. Created on first open with the
/// policy, so a file only pays on every write for the orders that are actually used.
pub(crate) fn policy_index(policy: EvictionPolicy) -> Option<(&'static str, &'static str)> {
    match policy {
        EvictionPolicy::LeastRecentlyUsed | EvictionPolicy::MostRecentlyUsed => None,
        EvictionPolicy::LeastFrequentlyUsed => Some((
            "entries_by_hits",
            "CREATE INDEX IF NOT EXISTS entries_by_hits ON entries(hits, seq)",
        )),
        EvictionPolicy::FirstInFirstOut | EvictionPolicy::LastInFirstOut => Some((
            "entries_by_creation",
            "CREATE INDEX IF NOT EXISTS entries_by_creation ON entries(created)",
        )),
    }
}

/// The names of the indexes on the entries table.
pub(crate) const INDEX_NAMES: &str = "SELECT name FROM sqlite_master \
    WHERE type = 'index' AND tbl_name = 'entries' ORDER BY name";

// Listing and reading for operators (inspect, export, check): read-only, and the
// whole table or a range of it by nature.

/// The newest `seq`, at or past the tick of every entry's set: an entry set later was
/// created after it. NULL for an empty table.
pub(crate) const NEWEST_SEQ: &str = "SELECT max(seq) FROM entries";

/// A page of live keys (`?2`: now) from `?1` on, in key order, at most `?3`, of the
/// entries set at or before tick `?4` (`+created`: never through `entries_by_creation`,
/// which would sort the rest of the table for each page).
pub(crate) const KEYS_FROM: &str = "SELECT key FROM entries WHERE key >= ?1 \
    AND (expires_at IS NULL OR expires_at > ?2) AND +created <= ?4 ORDER BY key LIMIT ?3";

/// `KEYS_FROM`, after `?1`.
pub(crate) const KEYS_AFTER: &str = "SELECT key FROM entries WHERE key > ?1 \
    AND (expires_at IS NULL OR expires_at > ?2) AND +created <= ?4 ORDER BY key LIMIT ?3";

/// Whether `?1` is still listed by `KEYS_FROM` (live at `?2`, set by `?3`): looked up
/// again before a key is shown once the visitor wrote (`Storage::keys`).
pub(crate) const KEY_STILL_LISTED: &str = "SELECT 1 FROM entries WHERE key = ?1 \
    AND (expires_at IS NULL OR expires_at > ?2) AND +created <= ?3";

/// `count`, `total_size` and `version_tag` as the file records them, and the count
/// and size of the entries due at `?1`.
pub(crate) const COUNTERS_AND_DUE: &str = concat!(
    "SELECT ",
    newest_or_state!("count"),
    ", ",
    newest_or_state!("total_size"),
    ", state.version_tag, \
     (SELECT count(*) FROM entries WHERE expires_at <= ?1), \
     (SELECT coalesce(sum(size), 0) FROM entries WHERE expires_at <= ?1) FROM state",
    newest_join!(),
    " WHERE state.id = 0"
);

/// How many entries expire after `?1` and by `?2`.
pub(crate) const EXPIRING_BETWEEN: &str =
    "SELECT count(*) FROM entries WHERE expires_at > ?1 AND expires_at <= ?2";

/// The columns `inspect::key_info` reads: `key, size, hits, expires_at, set_at,
/// value_id, created`, whether the inline value is NULL, the value's length, `crc`,
/// the value's type and whether a file holds it: all that tells a damaged row but the checksum, read without
/// reading the value (`length` and `typeof` of a column read only its header).
macro_rules! key_info_columns {
    () => {
        concat!(
            "entries.key, entries.size, entries.hits, entries.expires_at, entries.set_at, \
             entries.value_id, entries.created, entries.value IS NULL, ",
            value_length!(),
            ", entries.crc, CASE WHEN entries.file IS NOT NULL THEN 'blob' \
             WHEN entries.value IS NULL THEN typeof(blobs.value) \
             ELSE typeof(entries.value) END, entries.file IS NOT NULL"
        )
    };
}

/// The key-info columns of live entries (`?2`: now) whose key is `>= ?1` and `< ?3`,
/// in key order.
pub(crate) const KEY_INFOS_IN: &str = concat!(
    "SELECT ",
    key_info_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE entries.key >= ?1 AND entries.key < ?3 \
     AND (entries.expires_at IS NULL OR entries.expires_at > ?2) ORDER BY entries.key"
);

/// `KEY_INFOS_IN` with no upper bound.
pub(crate) const KEY_INFOS_FROM: &str = concat!(
    "SELECT ",
    key_info_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE entries.key >= ?1 \
     AND (entries.expires_at IS NULL OR entries.expires_at > ?2) ORDER BY entries.key"
);

/// The key-info columns of live entries (`?1`: now), least recently used first.
pub(crate) const KEY_INFOS_OLDEST_FIRST: &str = concat!(
    "SELECT ",
    key_info_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE ",
    live!(),
    " ORDER BY entries.seq ASC"
);

/// The key-info columns of live entries (`?1`: now), most recently used first.
pub(crate) const KEY_INFOS_NEWEST_FIRST: &str = concat!(
    "SELECT ",
    key_info_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE ",
    live!(),
    " ORDER BY entries.seq DESC"
);

/// Every column of an entry, as check and export read them: `seq, key, value_id,
/// created, hits, inline value, crc, size, expires_at, value, set_at, file` (`value`
/// is NULL for a value kept in `file`).
macro_rules! whole_row_columns {
    () => {
        concat!(
            "entries.seq, entries.key, entries.value_id, entries.created, entries.hits, \
             entries.value, entries.crc, entries.size, entries.expires_at, ",
            value!(),
            ", entries.set_at, entries.file"
        )
    };
}

/// Every live entry (`?1`: now) in access order, for export: the whole-row columns.
pub(crate) const EXPORT: &str = concat!(
    "SELECT ",
    whole_row_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE ",
    live!(),
    " ORDER BY entries.seq"
);

/// Every entry not due at `?1`, for check: the whole-row columns.
pub(crate) const EXAMINE: &str = concat!(
    "SELECT ",
    whole_row_columns!(),
    " FROM entries",
    value_join!(),
    " WHERE entries.expires_at IS NULL OR NOT entries.expires_at <= ?1"
);

/// Values no entry refers to.
macro_rules! orphans {
    () => {
        "FROM blobs WHERE id NOT IN (SELECT value_id FROM entries WHERE value_id IS NOT NULL)"
    };
}

/// How many values no entry refers to.
pub(crate) const COUNT_ORPHANS: &str = concat!("SELECT count(*) ", orphans!());

/// Removes the values no entry refers to.
pub(crate) const DELETE_ORPHANS: &str = concat!("DELETE ", orphans!());
