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
//!   found the entry, and reads each buffer from that snapshot (a set or delete
//!   meanwhile is not seen). **It holds that snapshot until it is dropped**: writes go
//!   on, but the WAL cannot be checkpointed past it, and grows meanwhile.
//!
//! Bounded memory: besides a copy of at most 256 KiB (or a value that was in memory
//! already), a reader holds no buffer of its own: each read goes straight from the file
//! or blob into the caller's buffer.
//!
//! **Damage** shows only at the end, where the CRC is known: the read that reaches the
//! end of a damaged value returns [`Part::Damaged`] instead of its bytes (so a caller
//! that ignores the outcome never has the whole of a damaged value), and so does every
//! read after it; the entry is removed, as a get removes a damaged one. What was read
//! before must be dropped. A value whose file was shortened behind BackLite's back is
//! damage too, found where the file ends.
//!
//! A reader keeps its storage alive (an `Arc`): it may outlive every other handle on it.
//! It is `Send`, not `Sync`: one thread at a time. In a child forked while it was open, a
//! reader that holds a connection fails ([`ErrorKind::Io`]) rather than use the parent's.

use crate::error::{Error, ErrorKind, Result, SqliteContext};
use crate::pool::Lent;
use crate::storage::Storage;
use crate::take::{Dest, Opened, Take};
use crate::value_files::{Memory, ValueName};
use crate::{blob_read, value_files};
use rusqlite::blob::Blob;
use std::fs::File;
use std::io;
use std::mem::MaybeUninit;
use std::sync::Arc;
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
}

enum Source {
    /// The value itself, checked.
    Bytes(Vec<u8>),
    /// A value file, open, and its name.
    File(File, ValueName),
    /// Blob `id`, in the snapshot of the lent connection (`None` once given back).
    Blob { id: i64, conn: Option<Lent> },
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
        Ok(Found {
            source: Source::Bytes(value.to_vec()),
            crc: None,
            len: value.len() as u64,
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
        let reader = ValueReader {
            storage: Arc::clone(self),
            key: key.to_vec(),
            source: found.source,
            len: found.len,
            left: found.left,
            at: 0,
            crc: found.crc,
            hasher: crc32fast::Hasher::new(),
            damaged: false,
        };
        // The look-up always lends its connection for a blob it opened.
        if let Source::Blob { conn: None, .. } = reader.source {
            return Err(Error::new(
                ErrorKind::Internal,
                "a value was opened without its snapshot",
            ));
        }
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
        let n = match &self.source {
            _ if want == 0 => 0,
            // Checked already.
            Source::Bytes(value) => {
                buf.copy_from(&value[at as usize..][..want]);
                want
            }
            Source::File(file, _) => loop {
                match buf.read_at(file, value_files::HEADER_LEN + at) {
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
            Source::Blob { id, conn } => {
                let lent = conn.as_ref().filter(|c| c.is_here()).ok_or_else(|| {
                    Error::new(
                        ErrorKind::Io,
                        "a reader of a value in the database cannot be used in a \
                         process forked since it was opened: open it again there",
                    )
                })?;
                match blob_read::handle(&lent.conn, *id, self.len)? {
                    Some(blob) => {
                        let read = buf.read_blob(&blob, at as usize).ctx("reading a value")?;
                        hasher.update(read);
                        read.len()
                    }
                    None => 0, // gone from the snapshot: damage
                }
            }
        };
        // A file shortened, or a blob gone: the value cannot be whole.
        if n == 0 && want > 0 {
            return Ok(self.found_damaged());
        }
        self.at += n as u64;
        if let (Some(crc), true) = (self.crc, self.at == self.len) {
            if self.hasher.clone().finalize() != crc {
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
        match &self.source {
            Source::File(_, name) => self.storage.remove_if_names(&self.key, name),
            _ => self.storage.remove_if_damaged(&self.key),
        }
        Part::Damaged
    }

    /// Gives the lent connection (and its snapshot) back to the pool.
    fn release(&mut self) {
        if let Source::Blob { conn, .. } = &mut self.source {
            if let Some(lent) = conn.take() {
                self.storage.pool.give_back(lent);
            }
        }
    }
}

/// Memory a reader reads into: initialised (`io::Read`'s) or not (the C library's
/// caller's). Reading into either needs no copy in between.
trait Buffer: Memory {
    fn size(&self) -> usize;
    /// The first `n` bytes.
    fn first(&mut self, n: usize) -> &mut Self;
    /// Fills it with `from`, of its length.
    fn copy_from(&mut self, from: &[u8]);
    /// Fills it from `blob` at `at`: the bytes read.
    fn read_blob(&mut self, blob: &Blob<'_>, at: usize) -> rusqlite::Result<&[u8]>;
}

impl Buffer for [u8] {
    fn size(&self) -> usize {
        self.len()
    }

    fn first(&mut self, n: usize) -> &mut Self {
        &mut self[..n]
    }

    fn copy_from(&mut self, from: &[u8]) {
        self.copy_from_slice(from);
    }

    fn read_blob(&mut self, blob: &Blob<'_>, at: usize) -> rusqlite::Result<&[u8]> {
        blob.read_at_exact(self, at)?;
        Ok(self)
    }
}

impl Buffer for [MaybeUninit<u8>] {
    fn size(&self) -> usize {
        self.len()
    }

    fn first(&mut self, n: usize) -> &mut Self {
        &mut self[..n]
    }

    fn copy_from(&mut self, from: &[u8]) {
        for (slot, &byte) in self.iter_mut().zip(from) {
            slot.write(byte);
        }
    }

    fn read_blob(&mut self, blob: &Blob<'_>, at: usize) -> rusqlite::Result<&[u8]> {
        blob.raw_read_at_exact(self, at).map(|read| &*read)
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
