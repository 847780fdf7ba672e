//! `ValueReader`: a value read when its caller is ready, a buffer at a time (issue 16,
//! item 3), where `Storage::get_chunks` pushes it to a visitor. It is `std::io::Read`,
//! so it goes wherever a reader goes (`io::copy`, a tar writer, an HTTP body), and it
//! is what the C library's `backlite_value_reader` and Python's `Storage.reader` wrap.
//!
//! The look-up is `get_chunks`'s ([`Storage::lookup_by`]): a hit is counted and recorded
//! as an access when the reader is opened; a miss, an expired entry, a damaged row and a
//! read through the remote tier behave as for any get. What the reader then holds
//! depends on where the value is:
//!
//! - **In its row, in memory or from the remote tier** (at most 32 KiB in a row; an
//!   in-memory cache's values are in memory anyway; a remote value arrives whole): a
//!   copy, checked before the reader is opened.
//! - **In a file of its own**: the open file (`O_NOFOLLOW`, its header checked). A file
//!   is never written once a row names it, and a set or delete that removes it meanwhile
//!   leaves the open file whole: the reader reads the value as it was when opened. Its
//!   CRC is taken as the bytes go by.
//! - **In the `blobs` table, at most 256 KiB**: copied out and checked at open, so the
//!   reader holds no connection and no transaction.
//! - **In the `blobs` table, larger** (a raised file threshold, or none): the reader
//!   takes a read connection out of the handle's pool, in the read transaction that
//!   found the entry, and gives it to a thread of its own, which opens the blob once in
//!   that snapshot (a set or delete meanwhile is not seen) and sends it on in chunks of
//!   256 KiB, at most two ahead of the reader. One open handle, because SQLite finds an
//!   offset in a blob by walking its chain of overflow pages from the start unless an
//!   open handle has cached it: a handle per read made reading a value quadratic (64
//!   MiB: 3.5 s), and a handle cannot be kept beside the connection it borrows in safe
//!   code, nor sent between threads (a reader is `Send`). **The snapshot is held until
//!   the reader reaches the end or is dropped**: writes go on, but the WAL cannot be
//!   checkpointed past it, and grows meanwhile. Dropping the reader stops and joins the
//!   thread, which gives the connection back to the pool.
//!
//! Bounded memory: besides a copy of at most 256 KiB (or a value that was in memory
//! already), or the three chunks of a value pumped from the database (one being read,
//! one waiting, one being filled), a reader holds no buffer of its own: each read goes
//! straight from the file into the caller's buffer.
//!
//! **Damage** shows only at the end, where the CRC is known: the read that reaches the
//! end of a damaged value returns [`Part::Damaged`] instead of its bytes (so a caller
//! that ignores the outcome never has the whole of a damaged value), and so does every
//! read after it; the entry is removed, as a get removes a damaged one, and the hit
//! counted at the open becomes a miss (in the handle's and the lifetime counters), as
//! a get of it counts one. What was read before must be dropped. A value whose file
//! was shortened behind BackLite's back is damage too, found where the file ends.
//!
//! A reader keeps its storage alive (an `Arc`): it may outlive every other handle on it.
//! It is `Send`, not `Sync`: one thread at a time. In a child forked while it was open, a
//! reader that holds a connection fails ([`ErrorKind::Io`]) rather than use the parent's.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::pool::Lent;
use crate::storage::Storage;
use crate::sync::lock;
use crate::take::{Dest, Opened, Take};
use crate::value_files::{Memory, ValueName, CHUNK};
use crate::{blob_read, fork};
use rusqlite::Connection;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What [`ValueReader::read_part`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// That many bytes were read into the buffer: 0 only at the end of the value (and
    /// then it proved sound), or for an empty buffer.
    Bytes(usize),
    /// The value proved damaged at its end: drop what was read. The entry is removed.
    Damaged,
}

/// A reader of one value; see [`Storage::open_reader`].
pub struct ValueReader {
    /// Kept alive for the reader's connection, and to remove a damaged entry.
    storage: Arc<Storage>,
    key: Vec<u8>,
    source: Source,
    len: u64,
    left: Option<Duration>,
    /// Bytes read so far.
    at: u64,
    /// The CRC the value must have, while it is still to be checked.
    crc: Option<u32>,
    hasher: crc32fast::Hasher,
    damaged: bool,
    /// Blob handles opened for this reader (a test hook: the reads are linear only if
    /// the handle is opened once).
    #[cfg(test)]
    pub(crate) blob_opens: Arc<std::sync::atomic::AtomicUsize>,
}

enum Source {
    /// The value itself, checked.
    Bytes(Vec<u8>),
    /// A value file, open, and its name.
    File(File, ValueName),
    /// Blob `id`, in the snapshot of the lent connection, as the look-up found it;
    /// [`Storage::open_reader`] gives both to a [`Pump`].
    Blob { id: i64, conn: Option<Lent> },
    /// A blob sent in chunks by a thread that holds its snapshot.
    Pumped(Pump),
}

/// A thread that reads a blob through one open handle, in the snapshot of the
/// connection lent to it, and hands it over a chunk at a time.
struct Pump {
    /// The chunks; the thread stops at the end, when the blob is not what the entry
    /// says (damage: the chunks end early), or when this is dropped.
    chunks: Option<Arc<Chunks>>,
    thread: Option<JoinHandle<()>>,
    /// The process that started the thread: a forked child has no such thread.
    pid: u32,
    /// The chunk being read, and how much of it was.
    chunk: Vec<u8>,
    used: usize,
    /// The error that ended the thread: every read from there on fails with it (none
    /// takes the value as damaged).
    failed: Option<Error>,
}

/// The chunks between a pump's thread and its reader: a mutex and a condition
/// variable rather than a channel, whose blocking receive would leave the calling
/// thread's `std::thread::current()` handle (a C caller's main thread's: never freed)
/// behind for leak checkers.
#[derive(Default)]
struct Chunks {
    state: Mutex<Handover>,
    changed: Condvar,
}

#[derive(Default)]
struct Handover {
    /// Chunks read and not taken yet: at most [`AHEAD`].
    ready: VecDeque<Result<Vec<u8>>>,
    /// The thread has sent all it will.
    ended: bool,
    /// The reader is gone: the thread stops.
    stop: bool,
}

/// Chunks a pump reads ahead of its reader (besides the one it is filling).
const AHEAD: usize = 1;

impl Chunks {
    /// The thread's side: false once the reader is gone.
    fn send(&self, chunk: Result<Vec<u8>>) -> bool {
        let mut state = lock(&self.state);
        while state.ready.len() >= AHEAD && !state.stop {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        if state.stop {
            return false;
        }
        state.ready.push_back(chunk);
        self.changed.notify_all();
        true
    }

    /// The reader's side: the next chunk, `None` once the thread ended.
    fn recv(&self) -> Option<Result<Vec<u8>>> {
        let mut state = lock(&self.state);
        loop {
            if let Some(chunk) = state.ready.pop_front() {
                self.changed.notify_all();
                return Some(chunk);
            }
            if state.ended {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn set(&self, flag: impl FnOnce(&mut Handover)) {
        flag(&mut lock(&self.state));
        self.changed.notify_all();
    }
}

/// Marks the thread's end however it ends (a panic too): its reader never waits on.
struct Ends(Arc<Chunks>);

impl Drop for Ends {
    fn drop(&mut self) {
        self.0.set(|s| s.ended = true);
    }
}

/// What the look-up found for a reader: its source, the CRC still to check, the
/// value's length and time left.
pub(crate) struct Found {
    source: Source,
    crc: Option<u32>,
    len: u64,
    left: Option<Duration>,
}

/// The [`Take`] of a reader: a value in memory is copied; one stored apart is opened.
struct Open;

impl Take for Open {
    type Out = Found;

    fn take(self, value: &[u8], left: Option<Duration>) -> Result<Found> {
        self.take_owned(value.to_vec(), left)
    }

    fn take_owned(self, value: Vec<u8>, left: Option<Duration>) -> Result<Found> {
        Ok(Found {
            len: value.len() as u64,
            source: Source::Bytes(value),
            crc: None,
            left,
        })
    }

    fn take_apart(
        self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<Found, Self>> {
        let mut opened = None;
        let len = len as u64;
        let sound = read(Dest::Open {
            len,
            opened: &mut opened,
        })?;
        let (source, crc) = match opened {
            Some(_) if !sound => return Ok(Err(self)),
            None => return Ok(Err(self)),
            Some(Opened::Bytes(value)) => (Source::Bytes(value), None),
            Some(Opened::File { file, name, crc }) => (Source::File(file, name), Some(crc)),
            Some(Opened::Blob { id, crc }) => (Source::Blob { id, conn: None }, Some(crc)),
        };
        Ok(Ok(Found {
            source,
            crc,
            len,
            left,
        }))
    }

    const LENDS: bool = true;

    fn lend(out: &mut Found, lent: Lent) {
        if let Source::Blob { conn, .. } = &mut out.source {
            *conn = Some(lent);
        }
    }
}

impl Storage {
    /// Opens a reader of the value under `key` (see [`ValueReader`]); `None`: no live
    /// entry. A hit or miss as for [`Storage::get`], counted now. A value in the
    /// database larger than 256 KiB holds a read snapshot until the reader is dropped.
    pub fn open_reader(self: &Arc<Self>, key: &[u8]) -> Result<Option<ValueReader>> {
        let Some(found) = self.lookup_by(key, true, true, Open)? else {
            return Ok(None);
        };
        #[cfg(test)]
        let blob_opens = Arc::<std::sync::atomic::AtomicUsize>::default();
        let source = match found.source {
            Source::Blob {
                id,
                conn: Some(lent),
            } => Source::Pumped(Pump::start(
                Arc::clone(self),
                lent,
                id,
                found.len,
                #[cfg(test)]
                Arc::clone(&blob_opens),
            )?),
            // The look-up always lends its connection for a blob it opened.
            Source::Blob { conn: None, .. } => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "a value was opened without its snapshot",
                ))
            }
            source => source,
        };
        let reader = ValueReader {
            storage: Arc::clone(self),
            key: key.to_vec(),
            source,
            len: found.len,
            left: found.left,
            at: 0,
            crc: found.crc,
            hasher: crc32fast::Hasher::new(),
            damaged: false,
            #[cfg(test)]
            blob_opens,
        };
        Ok(Some(reader))
    }
}

impl ValueReader {
    /// The value's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the value is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value's time left when the reader was opened; `None`: it never expires.
    /// (Once open, the reader reads the value to its end even if it expires meanwhile.)
    pub fn expires_in(&self) -> Option<Duration> {
        self.left
    }

    /// Reads the next bytes of the value into `buf` (at most its length): see [`Part`].
    /// The read that reaches the end checks the value's CRC, and withholds its bytes if
    /// the value proves damaged.
    pub fn read_part(&mut self, buf: &mut [u8]) -> Result<Part> {
        self.read_into(buf)
    }

    /// [`ValueReader::read_part`] into memory that need not be initialised (the C
    /// library's caller's): [`Part::Bytes`]`(n)` says its first `n` bytes now are.
    pub fn read_part_uninit(&mut self, buf: &mut [MaybeUninit<u8>]) -> Result<Part> {
        self.read_into(buf)
    }

    /// The bytes of the value not read yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.at
    }

    fn read_into<B: Buffer + ?Sized>(&mut self, buf: &mut B) -> Result<Part> {
        if self.damaged {
            return Ok(Part::Damaged);
        }
        let want = self.remaining().min(buf.size() as u64) as usize;
        let buf = buf.first(want);
        let at = self.at;
        // Read straight into `buf`, and hashed while in the CPU's cache.
        let hasher = &mut self.hasher;
        let n = match &mut self.source {
            _ if want == 0 => 0,
            // Checked already.
            Source::Bytes(value) => {
                buf.copy_from(&value[at as usize..][..want]);
                want
            }
            Source::File(file, name) => loop {
                match buf.read_at(file, name.value_offset() + at) {
                    Ok(read) => {
                        hasher.update(read);
                        break read.len();
                    }
                    Err(rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        return Err(Error::new(
                            ErrorKind::Io,
                            format!("cannot read a value's file: {e}"),
                        ))
                    }
                }
            },
            Source::Blob { .. } => {
                return Err(Error::new(ErrorKind::Internal, "a blob read unpumped"))
            }
            Source::Pumped(pump) => pump.fill(buf, hasher)?,
        };
        // A file shortened, or a blob gone: the value cannot be whole.
        if n == 0 && want > 0 {
            return Ok(self.found_damaged());
        }
        self.at += n as u64;
        if let (Some(crc), true) = (self.crc, self.at == self.len) {
            if self.hasher.clone().finalize() != crc {
                // Withheld from the caller's memory too, not only from the count: a
                // caller that reads the whole value at once would otherwise hold it.
                buf.first(n).zero();
                return Ok(self.found_damaged());
            }
            self.crc = None;
            // The snapshot is not needed any more.
            self.release();
        }
        Ok(Part::Bytes(n))
    }

    /// Marks the value damaged and removes its entry, as a get does: one in a file by
    /// the file's name (the file is damaged, so is the entry that names it), with no
    /// read of the value again.
    fn found_damaged(&mut self) -> Part {
        self.damaged = true;
        self.release();
        // Its open counted a hit; the value proved damaged: a miss, as for a get.
        self.storage.hit_proved_a_miss();
        match &self.source {
            Source::File(_, name) => self.storage.remove_if_names(&self.key, name),
            _ => self.storage.remove_if_damaged(&self.key),
        }
        Part::Damaged
    }

    /// Gives the lent connection (and its snapshot) back to the pool: the pump's
    /// thread does, once it is stopped.
    fn release(&mut self) {
        match &mut self.source {
            Source::Blob { conn, .. } => {
                if let Some(lent) = conn.take() {
                    self.storage.pool.give_back(lent);
                }
            }
            Source::Pumped(pump) => pump.stop(),
            _ => {}
        }
    }
}

impl Pump {
    /// Starts the thread that reads blob `id`, of `len` bytes, in the snapshot of `lent`
    /// and gives `lent` back to `storage`'s pool when it ends.
    fn start(
        storage: Arc<Storage>,
        lent: Lent,
        id: i64,
        len: u64,
        #[cfg(test)] opens: Arc<std::sync::atomic::AtomicUsize>,
    ) -> Result<Pump> {
        let chunks = Arc::<Chunks>::default();
        let ends = Ends(Arc::clone(&chunks));
        let thread = std::thread::Builder::new()
            .name("backlite-reader".into())
            .spawn(move || {
                #[cfg(test)]
                opens.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                pump(&lent.conn, id, len, &ends.0);
                {
                    // It may close the connection (a pool with no slot for it).
                    let _step = fork::step();
                    storage.pool.give_back(lent);
                }
                drop(ends);
            })
            .map_err(|e| {
                // The connection went with the closure: closed, as the pool closes one
                // it has no slot for.
                Error::new(
                    ErrorKind::Io,
                    format!("cannot start a thread to read a value: {e}"),
                )
            })?;
        Ok(Pump {
            chunks: Some(chunks),
            thread: Some(thread),
            pid: fork::this_process(),
            chunk: Vec::new(),
            used: 0,
            failed: None,
        })
    }

    /// Fills `buf` with the next bytes of the blob (fewer only where the chunks end),
    /// hashing them: how many.
    fn fill<B: Buffer + ?Sized>(
        &mut self,
        buf: &mut B,
        hasher: &mut crc32fast::Hasher,
    ) -> Result<usize> {
        if self.pid != fork::this_process() {
            return Err(Error::new(
                ErrorKind::Io,
                "a reader of a value in the database cannot be used in a \
                 process forked since it was opened: open it again there",
            ));
        }
        let want = buf.size();
        let mut filled = 0;
        while filled < want {
            if self.used == self.chunk.len() {
                if let Some(e) = &self.failed {
                    return if filled > 0 {
                        Ok(filled)
                    } else {
                        Err(e.clone())
                    };
                }
                match self.chunks.as_ref().and_then(|c| c.recv()) {
                    Some(Ok(chunk)) => (self.chunk, self.used) = (chunk, 0),
                    Some(Err(e)) => {
                        self.failed = Some(e);
                        continue;
                    }
                    // Ended early: the blob is not what the entry says (damage).
                    None => break,
                }
            }
            let n = (want - filled).min(self.chunk.len() - self.used);
            let from = &self.chunk[self.used..][..n];
            buf.part(filled, n).copy_from(from);
            hasher.update(from);
            self.used += n;
            filled += n;
        }
        Ok(filled)
    }

    /// Stops the thread and waits for it (it gives the connection back); in a forked
    /// child, which has no such thread, sets both aside instead.
    fn stop(&mut self) {
        self.chunk = Vec::new();
        let (Some(chunks), Some(thread)) = (self.chunks.take(), self.thread.take()) else {
            return;
        };
        if self.pid != fork::this_process() {
            fork::set_aside_pump((chunks, thread));
            return;
        }
        // Its next send fails, and it ends.
        chunks.set(|s| s.stop = true);
        let _ = thread.join();
    }
}

/// The pump's thread: sends blob `id` (of `len` bytes, read in `conn`'s snapshot
/// through one handle) to `send` a chunk at a time, until its end or until the reader
/// is gone; a blob gone or of another length ends it early (damage).
///
/// Each call into SQLite (the blob's opening, each read, its closing) is a step of the
/// fork gate ([`fork::step`]), never the waits for the reader in between: a child
/// forked while this thread was inside SQLite inherited SQLite's memory mutex held,
/// and hung on its first connection (test_value_file_probes2.c).
fn pump(conn: &Connection, id: i64, len: u64, send: &Chunks) {
    let opened = {
        let _step = fork::step();
        blob_read::handle(conn, id, len)
    };
    let blob = match opened {
        Ok(Some(blob)) => blob,
        Ok(None) => return,
        Err(e) => {
            send.send(Err(e));
            return;
        }
    };
    let len = len as usize;
    let mut at = 0;
    while at < len {
        let mut chunk = vec![0; CHUNK.min(len - at)];
        let read = {
            let _step = fork::step();
            blob.read_at_exact(&mut chunk, at).ctx("reading a value")
        };
        at += chunk.len();
        let failed = read.is_err();
        if !send.send(read.map(|()| chunk)) || failed {
            break;
        }
    }
    let _step = fork::step();
    drop(blob);
}

/// Memory a reader reads into: initialised (`io::Read`'s) or not (the C library's
/// caller's). Reading into either needs no copy in between.
trait Buffer: Memory {
    fn size(&self) -> usize;
    /// The first `n` bytes.
    fn first(&mut self, n: usize) -> &mut Self;
    /// Its `n` bytes from `at`.
    fn part(&mut self, at: usize, n: usize) -> &mut Self;
    /// Fills it with `from`, of its length.
    fn copy_from(&mut self, from: &[u8]);
    /// Fills it with zeros.
    fn zero(&mut self);
}

impl Buffer for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn first(&mut self, n: usize) -> &mut Self {
        &mut self[..n]
    }

    fn part(&mut self, at: usize, n: usize) -> &mut Self {
        &mut self[at..][..n]
    }

    fn copy_from(&mut self, from: &[u8]) {
        self.copy_from_slice(from);
    }

    fn zero(&mut self) {
        self.fill(0);
    }
}

impl Buffer for [MaybeUninit<u8>] {
    fn size(&self) -> usize {
        self.len()
    }

    fn first(&mut self, n: usize) -> &mut Self {
        &mut self[..n]
    }

    fn part(&mut self, at: usize, n: usize) -> &mut Self {
        &mut self[at..][..n]
    }

    fn copy_from(&mut self, from: &[u8]) {
        for (slot, &byte) in self.iter_mut().zip(from) {
            slot.write(byte);
        }
    }

    fn zero(&mut self) {
        self.fill(MaybeUninit::new(0));
    }
}

impl io::Read for ValueReader {
    /// [`ValueReader::read_part`]; a damaged value is an error of kind
    /// [`io::ErrorKind::InvalidData`], never a clean end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.read_part(buf) {
            Ok(Part::Bytes(n)) => Ok(n),
            Ok(Part::Damaged) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the value proved damaged (its CRC-32 does not match); its entry is removed",
            )),
            Err(e) => Err(io::Error::other(e)),
        }
    }
}

impl Drop for ValueReader {
    fn drop(&mut self) {
        self.release();
    }
}

impl std::fmt::Debug for ValueReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueReader")
            .field("len", &self.len)
            .field("at", &self.at)
            .field("expires_in", &self.left)
            .finish_non_exhaustive()
    }
}
