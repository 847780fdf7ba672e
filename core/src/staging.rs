//! An import's entries, kept aside until its transaction stores them. The files of
//! its large values are written first, before the write lock, as a set writes its
//! file: other writers wait for the rows only, not for those bytes. Until the commit
//! no row names those files; the folder's mark keeps every sweep off them, and a
//! crash leaves them as orphans, which check and the sweep remove.
//!
//! The entries are appended to a buffer as they come, and past [`SPILL_AT`] bytes to an
//! unnamed file (gone however the process ends): a dump of any size is staged in
//! bounded memory, and one of a few MiB without touching a disk. A private SQLite
//! database (38a8b49) cost each small entry an indexed insert and a read back, and
//! put the copy in the temporary folder, which may be a small tmpfs.

use crate::error::{Error, Result};
use crate::expiration::is_due;
use crate::lifetime::LifetimeStats;
use crate::options::MAX_VALUE_SIZE;
use crate::storage::Storage;
use crate::value_files::{io_error, Written};
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};

/// What a staged entry stores.
pub(crate) enum Staged<'a> {
    /// A value kept in the database, or one whose file is written inside the
    /// transaction (the folder's mark could not be had).
    Value(&'a [u8]),
    /// A value whose file was written ahead.
    File(&'a Written),
    /// Nothing: the entry was already due when given; it only removes the older one.
    Due,
}

/// An entry as [`Staging::replay`] hands it back.
pub(crate) struct StagedEntry<'a> {
    pub key: &'a [u8],
    pub value: Staged<'a>,
    pub expires_at_ms: Option<i64>,
    pub hits: u64,
    pub set_at_ms: Option<i64>,
    /// The caller's position of the entry ([`Staging::at`]).
    pub origin: u64,
}

/// Bytes of entries kept in memory before they go to the unnamed file.
const SPILL_AT: usize = 8 << 20;

/// The entries given so far, in order (see the module's documentation).
pub(crate) struct Staging {
    /// Entries not yet in `spill`, as [`Header`]s each followed by its key and value.
    kept: Vec<u8>,
    /// Where `kept` goes once it passes [`SPILL_AT`]; holds the entries before `kept`.
    spill: File,
    /// Whether anything was written to `spill`.
    spilled: bool,
    /// The files written ahead, in the order given; the entries refer to them by index.
    files: Vec<Written>,
    lifetimes: Vec<(LifetimeStats, u64)>,
    /// The caller's position of what it gives next ([`Staging::at`]).
    origin: u64,
    /// The folder's mark, held from before the first file let go until the files are
    /// named by a commit or removed (fields drop in order: after `files`).
    mark: Option<File>,
    /// The mark was asked for and could not be had.
    unmarked: bool,
}

/// An entry's fixed part, as staged: what it stores, its times, counts and lengths.
#[derive(Clone, Copy)]
struct Header {
    /// [`VALUE`], [`FILE`] or [`DUE`].
    kind: u8,
    key_len: u64,
    /// The value's length ([`VALUE`]) or the index of its file ([`FILE`]).
    value: u64,
    expires_at_ms: Option<i64>,
    hits: u64,
    set_at_ms: Option<i64>,
    origin: u64,
}

const VALUE: u8 = 0;
const FILE: u8 = 1;
const DUE: u8 = 2;
const HEADER_LEN: usize = 3 + 8 * 7;

impl Header {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.kind;
        out[1] = self.expires_at_ms.is_some() as u8;
        out[2] = self.set_at_ms.is_some() as u8;
        let words = [
            self.key_len,
            self.value,
            self.expires_at_ms.unwrap_or(0) as u64,
            self.hits,
            self.set_at_ms.unwrap_or(0) as u64,
            self.origin,
            0,
        ];
        for (i, w) in words.iter().enumerate() {
            out[3 + 8 * i..11 + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        out
    }

    fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let word = |i: usize| u64::from_le_bytes(b[3 + 8 * i..11 + 8 * i].try_into().unwrap());
        Header {
            kind: b[0],
            key_len: word(0),
            value: word(1),
            expires_at_ms: (b[1] != 0).then_some(word(2) as i64),
            hits: word(3),
            set_at_ms: (b[2] != 0).then_some(word(4) as i64),
            origin: word(5),
        }
    }

    /// The length of the value that follows the key.
    fn value_len(&self) -> u64 {
        if self.kind == VALUE {
            self.value
        } else {
            0
        }
    }
}

/// An unnamed file in the cache's folder, since that disk is to hold the entries
/// anyway (a temporary folder may be a small tmpfs), else in the temporary folder.
fn unnamed_file(storage: &Storage) -> io::Result<File> {
    let folder = storage.path().and_then(|p| p.parent());
    let folder = folder.map(|f| {
        if f.as_os_str().is_empty() {
            ".".as_ref()
        } else {
            f
        }
    });
    folder
        .map_or_else(
            || Err(io::ErrorKind::NotFound.into()),
            tempfile::tempfile_in,
        )
        .or_else(|_| tempfile::tempfile())
}

fn staging_error(e: io::Error) -> Error {
    io_error("staging the import's entries", e)
}

impl Staging {
    pub(crate) fn new(storage: &Storage) -> Result<Staging> {
        Ok(Staging {
            kept: Vec::new(),
            spill: unnamed_file(storage).map_err(staging_error)?,
            spilled: false,
            files: Vec::new(),
            lifetimes: Vec::new(),
            origin: 0,
            mark: None,
            unmarked: false,
        })
    }

    /// Sets the caller's position (a line number) of what it gives next, handed back
    /// with a failure to store it.
    pub(crate) fn at(&mut self, origin: u64) {
        self.origin = origin;
    }

    /// Keeps the entry `e` of `value` aside (its origin is [`Staging::at`]'s), writing
    /// the value's file now if it is kept in one. The caller has refused a value that
    /// is too large.
    pub(crate) fn put(
        &mut self,
        storage: &Storage,
        value: &[u8],
        e: StagedEntry<'_>,
    ) -> Result<()> {
        let StagedEntry {
            key,
            expires_at_ms,
            hits,
            set_at_ms,
            ..
        } = e;
        let len = value.len() as u64;
        let due = is_due(expires_at_ms, storage.now());
        let mut file = None;
        if !due && storage.in_file(len) {
            if self.mark.is_none() && !self.unmarked {
                self.mark = storage.writing_mark();
                self.unmarked = self.mark.is_none();
            }
            // Without the mark a file let go could be swept before the commit: the
            // value is written inside the transaction instead, unless SQLite cannot
            // hold it (then its file stays locked until the end).
            if self.mark.is_some() || len > MAX_VALUE_SIZE {
                let mut written = storage.write_value_file(value)?;
                if self.mark.is_some() {
                    written.let_go();
                }
                file = Some(self.files.len());
                self.files.push(written);
            }
        }
        let kept = (!due && file.is_none()).then_some(value);
        let header = Header {
            kind: match (kept, file) {
                (Some(_), _) => VALUE,
                (None, Some(_)) => FILE,
                (None, None) => DUE,
            },
            key_len: key.len() as u64,
            value: file.map_or(kept.map_or(0, |v| v.len() as u64), |n| n as u64),
            expires_at_ms,
            hits,
            set_at_ms,
            origin: self.origin,
        };
        self.keep(&[&header.encode(), key, kept.unwrap_or_default()])
            .map_err(staging_error)
    }

    /// Appends `parts` to what is kept, moving it to the unnamed file first if it
    /// would pass [`SPILL_AT`]; parts larger than that go straight to the file.
    fn keep(&mut self, parts: &[&[u8]]) -> io::Result<()> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.kept.len() + len > SPILL_AT {
            self.spill.write_all(&self.kept)?;
            self.kept.clear();
            self.spilled = true;
        }
        if len > SPILL_AT {
            self.spilled = true;
            return parts.iter().try_for_each(|p| self.spill.write_all(p));
        }
        parts.iter().for_each(|p| self.kept.extend_from_slice(p));
        Ok(())
    }

    /// Keeps lifetime counters of another file aside, to be merged with the entries.
    pub(crate) fn merge_lifetime(&mut self, counters: &LifetimeStats) {
        self.lifetimes.push((*counters, self.origin));
    }

    /// The lifetime counters given, each with its origin.
    pub(crate) fn lifetimes(&self) -> &[(LifetimeStats, u64)] {
        &self.lifetimes
    }

    /// Hands every entry to `store`, in the order given; `store` says whether a row
    /// now names the entry's file. Returns, for each file written ahead, whether one does.
    pub(crate) fn replay(
        &mut self,
        mut store: impl FnMut(StagedEntry<'_>) -> Result<bool>,
    ) -> Result<Vec<bool>> {
        let mut named = vec![false; self.files.len()];
        let files = &self.files;
        let mut hand = |h: Header, key: &[u8], value: &[u8]| -> Result<()> {
            let value = match h.kind {
                VALUE => Staged::Value(value),
                FILE => Staged::File(&files[h.value as usize]),
                _ => Staged::Due,
            };
            let entry = StagedEntry {
                key,
                value,
                expires_at_ms: h.expires_at_ms,
                hits: h.hits,
                set_at_ms: h.set_at_ms,
                origin: h.origin,
            };
            if store(entry)? && h.kind == FILE {
                named[h.value as usize] = true;
            }
            Ok(())
        };
        if self.spilled {
            // What was kept follows what was spilled; the whole is read back in order.
            self.spill.write_all(&self.kept).map_err(staging_error)?;
            self.kept = Vec::new();
            self.spill.seek(SeekFrom::Start(0)).map_err(staging_error)?;
            let mut from = BufReader::with_capacity(1 << 16, &self.spill);
            let (mut key, mut value) = (Vec::new(), Vec::new());
            let mut head = [0u8; HEADER_LEN];
            loop {
                match from.read_exact(&mut head) {
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => break,
                    read => read.map_err(staging_error)?,
                }
                let h = Header::decode(&head);
                read_exactly(&mut from, &mut key, h.key_len)?;
                read_exactly(&mut from, &mut value, h.value_len())?;
                hand(h, &key, &value)?;
            }
        } else {
            let mut rest = &self.kept[..];
            while let Some((head, tail)) = rest.split_first_chunk::<HEADER_LEN>() {
                let h = Header::decode(head);
                let (key, tail) = tail.split_at(h.key_len as usize);
                let (value, tail) = tail.split_at(h.value_len() as usize);
                hand(h, key, value)?;
                rest = tail;
            }
        }
        Ok(named)
    }

    /// Removes every file written ahead that no committed row names: `named` as
    /// [`Staging::replay`] returned it, `None` if the transaction did not commit.
    pub(crate) fn discard(&self, storage: &Storage, named: Option<&[bool]>) {
        for (n, written) in self.files.iter().enumerate() {
            if !named.is_some_and(|named| named[n]) {
                storage.discard_file(Some(written));
            }
        }
    }
}

/// Reads `len` bytes of `from` into `into`, replacing what it held.
fn read_exactly(from: &mut impl Read, into: &mut Vec<u8>, len: u64) -> Result<()> {
    into.clear();
    into.resize(len as usize, 0);
    from.read_exact(into).map_err(staging_error)
}
