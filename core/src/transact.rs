//! The transaction runner: how every write reaches the file. A write runs in an
//! immediate transaction (so a busy file is waited out by SQLite's busy handler rather
//! than failing at upgrade), in this process's turn to write the file, after ticking
//! the buffered hits and purging the entries that are due; the hits a transaction took
//! from the shared buffer go back to it however the transaction ends. The hit writer,
//! a thread that writes a full buffer of hits, runs its transactions here too.

use crate::access::{Accesses, FLUSH_THRESHOLD};
use crate::counters::{self, Known};
use crate::error::{ErrorKind, Result, SqliteContext};
use crate::expiration::is_due;
use crate::fork;
use crate::pool::{self, Pool};
use crate::remote::fill::Fill;
use crate::shared::FileShared;
use crate::txn::{Tally, Txn};
use rusqlite::Connection;
use std::cell::Cell;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs `f` in a write transaction on `conn` (the handle's writer, locked by the
/// caller) once this process's turn to write the file is held; `now` is read once the
/// transaction has begun (see [`transact`]).
/// `pid`: this process (asked once per write: each ask is a system call).
/// `write_hits`: the buffered hits are written to their rows. `preload`: the key a set
/// will replace, looked up with the counters. `known`: what `conn` knows of the file
/// (see [`Known`]), updated by the write. `patience`: the busy timeout, for the turn.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_in_turn<R>(
    shared: &FileShared,
    conn: &Connection,
    known: &Cell<Option<Known>>,
    pid: u32,
    patience: Duration,
    now: impl FnOnce() -> i64,
    write_hits: bool,
    preload: Option<&[u8]>,
    f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
) -> Result<(R, Tally)> {
    let _turn = shared.writing_in(pid, patience).ok_or_else(turn_not_had)?;
    transact(shared, conn, known, pid, Some(now), write_hits, preload, f)
}

/// BUSY for a write whose turn another handle of this process held for the whole busy
/// timeout, as for another process's write lock (API.md: contention is waited out up to
/// the busy timeout, then BUSY).
pub(crate) fn turn_not_had() -> crate::Error {
    crate::Error::new(
        ErrorKind::Busy,
        "another handle of this process held the file's write lock for the whole busy timeout",
    )
}

/// Runs `f` in a write transaction only if that needs no waiting: not for the pool's
/// writer, nor another handle's turn, nor another process's write lock.
/// `None`: it would have had to wait, and nothing was done.
pub(crate) fn try_write<R>(
    pool: &Pool,
    shared: &FileShared,
    now: impl FnOnce() -> i64,
    f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
) -> Result<Option<(R, Tally)>> {
    pool.after_fork()?;
    let Some(conn) = pool.try_lock_writer() else {
        return Ok(None);
    };
    let Some(_turn) = shared.try_writing() else {
        return Ok(None);
    };
    let pid = std::process::id();
    let done = crate::interrupt::without_waiting(|| {
        transact(shared, &conn, &conn.known, pid, Some(now), false, None, f)
    });
    match done {
        Err(e) if e.kind() == ErrorKind::Busy => Ok(None),
        done => done.map(Some),
    }
}

/// The clock of a write that purges nothing (the hit writer's, a write at exit).
const NO_CLOCK: Option<fn() -> i64> = None;

/// Whether no write transaction is open on the file, in any process, at this instant:
/// the write lock could be taken (and is let go at once). False whenever that cannot
/// be told without waiting (this handle's writer or this process's turn taken, another
/// connection's write lock, a file that cannot be written). Writes nothing.
pub(crate) fn no_write_open(pool: &Pool, shared: &FileShared) -> bool {
    if pool.after_fork().is_err() {
        return false;
    }
    let Some(conn) = pool.try_lock_writer() else {
        return false;
    };
    let Some(_turn) = shared.try_writing() else {
        return false;
    };
    if !conn.is_autocommit() {
        return false;
    }
    crate::interrupt::without_waiting(|| {
        let free = conn.execute_batch("BEGIN IMMEDIATE").is_ok();
        free && conn.execute_batch("ROLLBACK").is_ok()
    })
}

/// Runs `f` in a write transaction on `conn` (this process, `pid`, holds its turn to
/// write the file): ticks the buffered hits, purges the entries due at `now` (`None`: purges
/// nothing, for the hit writer, which has no clock of the handle), runs `f`, writes the
/// hits to their rows if `write_hits` or too many wait, and commits. The counters come
/// from `known` if `conn` has seen no other commit since its own last one, and go back
/// there once this one commits.
#[allow(clippy::too_many_arguments)]
fn transact<R>(
    shared: &FileShared,
    conn: &Connection,
    known: &Cell<Option<Known>>,
    pid: u32,
    now: Option<impl FnOnce() -> i64>,
    write_hits: bool,
    preload: Option<&[u8]>,
    f: impl FnOnce(&mut Txn<'_>) -> Result<R>,
) -> Result<(R, Tally)> {
    if !conn.is_autocommit() {
        // A panic in an earlier holder left a transaction open.
        let _ = conn.execute_batch("ROLLBACK");
    }
    let mut taken = TakenAccesses {
        shared,
        conn,
        pid,
        accesses: shared.accesses_in(pid).take_merged(),
        clock_at_start: i64::MAX,
        committed: false,
        written: false,
    };
    let mut lifetime = shared.lifetime.take_in(pid);
    // Taken: a write that does not commit leaves the connection knowing nothing.
    let known_before = known.take();
    let done = conn
        .prepare_cached("BEGIN IMMEDIATE")
        .and_then(|mut s| s.execute([]))
        .ctx("beginning a write")
        .and_then(|_| {
            // Read once the transaction has begun: SQLite has then looked for other
            // connections' commits, and none can come until it ends.
            let version = counters::data_version(conn)?;
            let known_now = known_before.filter(|k| k.version == version);
            // The clock is read once the write lock is held, not before BEGIN waited
            // for another process's: what this write sets expires (and a lease it takes
            // lasts) from when it is stored, and a set that waited longer than its
            // expiration for the lock stored an entry already expired.
            let now = now.map(|now| now());
            let mut txn = Txn::load(
                conn,
                shared,
                pid,
                now.unwrap_or(i64::MIN),
                &mut taken.accesses,
                preload,
                lifetime.lookups(),
                known_now,
            )?;
            taken.clock_at_start = txn.clock_at_start;
            txn.tick_accesses();
            if now.is_some() {
                txn.purge_expired()?;
            }
            let out = f(&mut txn)?;
            if write_hits {
                txn.write_accesses()?;
            } else if !shared.accesses_in(pid).writer_running() && txn.accesses_overflow() {
                // A batch, not all: this write's caller waits for it (a running hit
                // writer writes them without anyone waiting).
                txn.write_oldest_accesses(HIT_BATCH, &|| false)?;
            }
            // Values read through from the remote (remote/fill.rs), with a handle's clock.
            let start = txn.start;
            let fills = match now {
                Some(_) if write_hits => write_fills(&mut txn, shared.fills.to_write(start))?,
                _ => Vec::new(),
            };
            txn.store()?;
            let states = (start, txn.state());
            // Before the tally is taken: the lifetime counters count its evictions and
            // expirations.
            let left = txn.known();
            let tally = std::mem::take(&mut txn.tally);
            Ok((out, tally, txn.accesses_written, states, fills, left))
        })
        .and_then(|done| {
            // From the commit on no row names these files until they are unlinked,
            // and a sweep must not take them for orphans meanwhile.
            shared.unlinking(&done.1.files);
            // With the landing of the hits and misses it writes (lifetime.rs).
            lifetime
                .commit(|| {
                    conn.prepare_cached("COMMIT")
                        .and_then(|mut s| s.execute([]))
                        .ctx("committing a write")
                })
                .inspect_err(|_| shared.forget_unlinking(&done.1.files))?;
            Ok(done)
        });
    // Failed, its value files (in the tally) were removed as it was dropped.
    // A write to a file emptied behind our back (see `schema::emptied`) fails saying so.
    // One that succeeds is not looked at: a `stat` before each write cost a set 10-20%
    // (bench --only ops, set 1.19x raw without it, 1.38-1.41x with), and such a write is
    // as lost as one to a deleted file, which no check catches either.
    let (out, mut tally, accesses_written, (start, end), fills, (counters, earliest)) = match done {
        Ok(done) => done,
        Err(e) => {
            shared.not_emptied()?;
            return Err(e);
        }
    };
    // After the commit, which changed the version (a failure to read it only costs the
    // next write a read of the counters).
    if let Ok(version) = counters::data_version(conn) {
        known.set(Some(Known {
            version,
            counters,
            earliest_deadline: earliest,
        }));
    }
    tally.written.committed();
    shared
        .commits
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    shared.fills.committed(pid, start, end, fills);
    taken.committed = true;
    taken.written = accesses_written;
    Ok((out, tally))
}

/// Writes the values read through from the remote that wait in memory (remote/fill.rs)
/// where the file holds no entry for their keys, as a set would (eviction included),
/// unless due; returns them, to be dropped from memory once committed.
fn write_fills(t: &mut Txn<'_>, fills: Vec<(Vec<u8>, Fill)>) -> Result<Vec<(Vec<u8>, Fill)>> {
    for (key, f) in &fills {
        let len = f.value.len() as i64;
        if is_due(f.deadline, t.now) || len > f.max_size || t.has_row(key)? {
            continue;
        }
        t.evict_to_fit(f.policy, f.max_size, len)?;
        t.insert(key, &f.value, f.crc, f.deadline)?;
    }
    Ok(fills)
}

/// Starts a fill writer (remote/fill.rs): a thread that writes the pending fills, with
/// `now` as its clock, again while enough arrive meanwhile, then ends.
pub(crate) fn start_fill_writer(
    shared: &Arc<FileShared>,
    busy_timeout: Duration,
    now: impl Fn() -> i64 + Send + 'static,
) {
    let for_writer = shared.clone();
    let write = move || loop {
        // Opened, written and closed in a step that a fork waits for (see fork::step).
        let _step = fork::step();
        let wrote = pool::reopen(&for_writer.name, for_writer.id, busy_timeout).and_then(|conn| {
            let pid = std::process::id();
            let known = Cell::new(None);
            write_in_turn(
                &for_writer,
                &conn,
                &known,
                pid,
                busy_timeout,
                &now,
                true,
                None,
                |_| Ok(()),
            )
        });
        // The files of the entries its evictions removed.
        if let Ok((_, tally)) = &wrote {
            for_writer.unlink(&tally.files);
        }
        if !for_writer.fills.writer_wrote(wrote.is_ok()) {
            return;
        }
    };
    match std::thread::Builder::new()
        .name("backlite-fills".into())
        .spawn(write)
    {
        Ok(writer) => shared.add_hit_writer(writer),
        // No thread: the fills wait for the next flush.
        Err(_) => {
            shared.fills.writer_wrote(false);
        }
    }
}

/// How long a write at the process's exit waits for another process's write lock.
const AT_EXIT_BUSY_TIMEOUT: Duration = Duration::from_secs(1);

/// Writes what this process's handles still buffer (hits, and the lookups of the
/// lifetime counters) to every file open here, and sends the remote writes their
/// write-behind queues still hold and pays what their remote tiers still owe (the
/// unlinks of writes that never reached it): run at the process's normal exit by
/// the C library's `atexit` handler. A program that exits without freeing its handles
/// (a plain `exit`, a `return` from `main`) otherwise lost its hits, and another
/// process's eviction then took the entry it had just read for the least recently
/// used. Best effort, as the hits are hints: a file whose turn to write another thread
/// of this process holds is left as it is (that thread may be stopped anywhere), and
/// another process's write lock is waited for up to 1 s (`AT_EXIT_BUSY_TIMEOUT`).
pub fn write_waiting_at_exit() {
    // The remote writes the handles never freed still queue, sent as a free sends them,
    // and their debts paid (outside any step: a fork need not wait for the remote).
    crate::remote::settle_at_exit();
    for shared in crate::shared::open_files_now() {
        // An in-memory cache ends with the process.
        if shared.name.as_os_str().is_empty()
            || (shared.accesses().is_empty() && shared.lifetime.is_empty())
        {
            continue;
        }
        // A fork meanwhile must not copy this write's locks into a child.
        let _step = fork::step();
        let Some(_turn) = shared.try_writing() else {
            continue;
        };
        let pid = fork::this_process();
        if let Ok(conn) = pool::reopen(&shared.name, shared.id, AT_EXIT_BUSY_TIMEOUT) {
            let known = Cell::new(None);
            let _ = transact(
                &shared,
                &conn,
                &known,
                pid,
                NO_CLOCK,
                true,
                None,
                |_| Ok(()),
            );
        }
    }
}

/// Starts a hit writer for a full buffer of hits (the buffer said so when the hit was
/// recorded), so that no get writes other gets' hits.
pub(crate) fn start_hit_writer(shared: &Arc<FileShared>, busy_timeout: Duration) {
    let for_writer = shared.clone();
    match std::thread::Builder::new()
        .name("backlite-hits".into())
        .spawn(move || write_hits_in_background(&for_writer, busy_timeout))
    {
        Ok(writer) => shared.add_hit_writer(writer),
        // No thread: the hits wait for the next write (bounded, see MAX_WAITING).
        Err(_) => {
            shared.accesses().writer_wrote(false);
        }
    }
}

/// The hit writer: a thread started by the get that fills the buffer. On a connection
/// of its own, in this process's turn to write the file, it writes every waiting hit,
/// oldest first, committing early whenever another write of the process waits for the
/// turn (and going on after it), again while the buffer refilled meanwhile, then ends.
/// A process killed meanwhile loses only the order of those hits: the transaction
/// touches no entry's value.
fn write_hits_in_background(shared: &FileShared, busy_timeout: Duration) {
    yield_to_readers();
    let mut conn = None;
    let known = Cell::new(None);
    // Since when the file's write lock was found held by another process (BUSY), and
    // the pause before the next try.
    let mut busy_since: Option<Instant> = None;
    let mut pause = FIRST_PAUSE;
    loop {
        // Each write, its checkpoint, and the opening and closing of the connection,
        // in a step that a fork waits for (and gives way to, as to a set): a child
        // must not inherit SQLite's record of a write lock this thread held.
        let step = fork::step();
        let give_way = || shared.others_wait_to_write() || fork::fork_waits();
        let wrote = hit_writer_connection(&mut conn, shared, busy_timeout).and_then(|conn| {
            let pid = std::process::id();
            let wrote = {
                let _turn = shared.writing_after_others(pid);
                transact(shared, conn, &known, pid, NO_CLOCK, false, None, |t| {
                    let before = t.accesses_waiting();
                    t.write_oldest_accesses(usize::MAX, &give_way)?;
                    Ok((before - t.accesses_waiting(), t.accesses_waiting()))
                })
            };
            // It gave way to a set before writing them all: on after that set.
            let more = matches!(wrote, Ok(((_, left), _)) if left > 0);
            // Its own checkpoint after each write, with the turn released: a set goes
            // on meanwhile (SQLite lets a checkpoint and a write run at once; a set's
            // own checkpoint finds this one running and skips), where a checkpoint run
            // by its commit, or by the next set's, held that set for 10-50 ms (two
            // fsyncs). A failure is only a checkpoint left to the next commit.
            // Never into a file emptied behind our back: the log's pages would make it
            // a file of zeros and stray pages, refused for good (see `schema::emptied`).
            if matches!(wrote, Ok(((written, _), _)) if written > 0) && shared.not_emptied().is_ok()
            {
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            wrote.map(|_| more)
        });
        // Another process holds the write lock: tried again until the busy timeout,
        // not waited for in SQLite's busy handler (its connection has none), which
        // held this process's turn to write all along, so that a set of this process
        // was BUSY after twice its busy timeout (its wait for the turn, then its own).
        // Between tries the turn is free, and so is a fork.
        if matches!(&wrote, Err(e) if e.kind() == ErrorKind::Busy) {
            let since = *busy_since.get_or_insert_with(Instant::now);
            let left = busy_timeout.saturating_sub(since.elapsed());
            if !left.is_zero() {
                drop(step);
                std::thread::sleep(pause.min(left));
                pause = (pause * 2).min(LAST_PAUSE);
                continue;
            }
        }
        (busy_since, pause) = (None, FIRST_PAUSE);
        // It gave way: the rest, after the sets that waited.
        if matches!(wrote, Ok(true)) {
            continue;
        }
        if !shared.accesses().writer_wrote(wrote.is_ok()) {
            drop(conn.take()); // closed inside the step
            return;
        }
    }
}

/// The hit writer's pauses between two tries at a file whose write lock another
/// process holds: doubled from the first to the last, as SQLite's busy handler does.
const FIRST_PAUSE: Duration = Duration::from_millis(1);
const LAST_PAUSE: Duration = Duration::from_millis(20);

/// The most hits a write of the handle's writes when too many wait and no hit writer
/// runs (a hit writer that failed, an in-memory cache): its caller waits for them.
/// Small batches cost more per hit (pages dirtied per written hit, 100,000 entries:
/// 0.37 at 16,384 hits, 1.44 at 1,000; bench/README.md), so only a write that would
/// otherwise write them all writes one. An eviction, a flush and a close write all.
pub(crate) const HIT_BATCH: usize = 1024;

/// How much nicer than the get that started it the hit writer runs. Its CPU (a third to
/// a half of all the process spends on a large working set of reads, bench/README.md)
/// then weighs 335 against a reader's 1024 in the kernel's fair scheduler, so a reader
/// sharing a CPU with it gets three quarters of the time instead of half. It is never
/// starved: a fair scheduler gives every weight its share, so under full load its write
/// (which holds this process's turn to write and the file's write lock) takes at most
/// about three times as long as at the reader's priority, far inside a busy timeout.
const HIT_WRITER_NICENESS: i32 = 5;

/// Lowers the calling thread's priority by [`HIT_WRITER_NICENESS`], for the rest of its
/// life: only this thread's, which Linux keeps per thread (elsewhere the process's
/// would change, so nothing is done). The thread starts no other, so none inherits it;
/// raising a nice value needs no privilege, and a failure leaves the priority as it was.
fn yield_to_readers() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let me = Some(rustix::thread::gettid());
        if let Ok(nice) = getpriority_process(me) {
            let _ = setpriority_process(me, (nice + HIT_WRITER_NICENESS).min(19));
        }
    }
}

/// The page cache of the hit writer's connection, in KiB: 2 KiB per hit of a full
/// buffer (32 MiB), above the 0.4 pages of 4 KiB a written hit dirties. A full buffer of
/// random keys touches most pages of a large table (the row's old place, its key's
/// index entry); in SQLite's default 2 MiB they were spilled to the WAL and read back
/// within one write, which then cost 1.5-2x the CPU per written hit (bench/README.md,
/// "What a written hit costs"; 16 MiB was between, 64 MiB no better). Held only while a
/// hit writer runs.
const HIT_WRITER_CACHE_KIB: usize = 2 * FLUSH_THRESHOLD;

/// The hit writer's connection, opened on its first write and kept for the next ones
/// (with its warm page cache and prepared statements).
fn hit_writer_connection<'c>(
    conn: &'c mut Option<Connection>,
    shared: &FileShared,
    busy_timeout: Duration,
) -> Result<&'c Connection> {
    if conn.is_none() {
        let opened = pool::reopen(&shared.name, shared.id, busy_timeout)?;
        opened
            .pragma_update(None, "cache_size", -(HIT_WRITER_CACHE_KIB as i64))
            .ctx("sizing the hit writer's page cache")?;
        // It checkpoints after its turn (see write_hits_in_background), not at commit.
        opened
            .pragma_update(None, "wal_autocheckpoint", 0)
            .ctx("setting the hit writer's checkpoints")?;
        // It waits for another process's write lock without holding this process's
        // turn to write (see write_hits_in_background).
        opened
            .busy_timeout(Duration::ZERO)
            .ctx("setting the hit writer's busy timeout")?;
        *conn = Some(opened);
    }
    Ok(conn.as_ref().expect("opened above"))
}

/// The hits a write transaction took from the shared buffer: given back however the
/// transaction ends (a panic included), so that none is lost and none is written twice.
struct TakenAccesses<'a> {
    shared: &'a FileShared,
    conn: &'a Connection,
    /// This process.
    pid: u32,
    accesses: Accesses,
    /// The clock before the transaction: ticks above it are the transaction's.
    clock_at_start: i64,
    committed: bool,
    /// The transaction wrote them to their rows (they leave the buffer).
    written: bool,
}

impl Drop for TakenAccesses<'_> {
    fn drop(&mut self) {
        let mut accesses = std::mem::take(&mut self.accesses);
        if self.committed {
            accesses.committed();
            if self.written {
                accesses.clear();
            }
        } else {
            if !self.conn.is_autocommit() {
                let _ = self.conn.execute_batch("ROLLBACK");
            }
            // What it wrote or forgot is back, and the ticks of the rolled-back
            // transaction never happened.
            accesses.rolled_back();
            accesses.untick_after(self.clock_at_start);
            self.shared
                .accesses_in(self.pid)
                .unreserve_after(self.clock_at_start);
        }
        self.shared.accesses_in(self.pid).restore(accesses);
    }
}
