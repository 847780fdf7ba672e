//! What a look-up hands the value it found to: a closure that borrows it, or memory of
//! the caller's own that the value is read into (issue 16, item 1). A value stored
//! apart is read straight from SQLite's pages into the caller's memory (blob_read.rs):
//! the C library's `get` then copies a large value once, as raw SQLite does.

use crate::error::{Error, ErrorKind, Result};
use crate::pool::Lent;
use crate::value_files::{Read as FileRead, Streamed as FileStreamed, ValueFiles, ValueName};
use std::mem::MaybeUninit;
use std::time::Duration;

/// Where a value stored apart is read to.
pub(crate) enum Dest<'a> {
    /// Initialised memory (a vector).
    Init(&'a mut [u8]),
    /// Memory of the caller's, not initialised (the C library's `malloc`).
    Uninit(&'a mut [MaybeUninit<u8>]),
    /// No memory: the `len` bytes go to `visit` a chunk at a time, until it returns
    /// false. The CRC is known only at the end, and a damaged value's last chunk is
    /// withheld (blob_read.rs).
    Visit {
        len: u64,
        visit: &'a mut dyn FnMut(&[u8]) -> bool,
    },
    /// No memory: the `len` bytes are opened to be read later by a reader
    /// (value_reader.rs), which `opened` receives.
    Open {
        len: u64,
        opened: &'a mut Option<Opened>,
    },
    /// No memory: only whether a value of `len` bytes is stored there, from its file's
    /// length and record or its blob's length, none of it read. For a taker that found
    /// no memory for the length its row gives: a row whose size was made larger than
    /// the value stored (any memory's) is damaged, a miss, not a failure of the read.
    Sound { len: u64 },
}

/// A value stored apart, opened for a reader (value_reader.rs).
pub(crate) enum Opened {
    /// Copied out whole and checked: a blob of at most [`crate::value_files::CHUNK`]
    /// bytes, so that its reader holds no connection.
    Bytes(Vec<u8>),
    /// Its file `name`, open, its header checked (its CRC is checked at the end of the
    /// read).
    File {
        file: std::fs::File,
        name: ValueName,
        crc: u32,
    },
    /// Blob `id`, in the read transaction that found it, which the look-up leaves
    /// open for the reader (blob_read.rs); its CRC is checked at the end of the read.
    Blob { id: i64, crc: u32 },
}

/// Takes the value a look-up found, with its time left.
pub(crate) trait Take: Sized {
    type Out;
    /// The value, in SQLite's memory.
    fn take(self, value: &[u8], left: Option<Duration>) -> Result<Self::Out>;
    /// The value, copied out already (an in-memory cache's): a taker that keeps a
    /// vector takes this one rather than copy it again.
    fn take_owned(self, value: Vec<u8>, left: Option<Duration>) -> Result<Self::Out> {
        self.take(&value, left)
    }
    /// A value of `len` bytes stored apart: `read` writes all of it into the memory
    /// it is given and says whether it is sound. Damaged: the taker comes back
    /// (`Err(self)`) for a read-through.
    fn take_apart(
        self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<Self::Out, Self>>;

    /// Whether the look-up may leave its read transaction open for this taker's
    /// value ([`Dest::Open`] of a large blob): then the read connection is lent to it.
    const LENDS: bool = false;

    /// Gives the taker's value the read connection whose transaction was left open for
    /// it (only when [`Take::LENDS`]).
    fn lend(_out: &mut Self::Out, _conn: Lent) {
        unreachable!("only a taker that LENDS opens a blob for later")
    }

    /// What the look-up answers when it found no sound value after handing this taker
    /// a damaged one (and none to read through): `None`, a miss, unless the taker must
    /// say that what it was handed is to be dropped.
    fn given_up(self) -> Option<Self::Out> {
        None
    }

    /// Whether the look-up counts `out` as a hit (an access: the lifetime and handle
    /// counters, the entry's hits and its place in the eviction order).
    fn counted(_out: &Self::Out) -> bool {
        true
    }
}

/// A closure that borrows the value; one stored apart is read into a vector first.
pub(crate) struct Borrow<F>(pub F);

impl<R, F: FnOnce(&[u8], Option<Duration>) -> R> Take for Borrow<F> {
    type Out = R;

    fn take(self, value: &[u8], left: Option<Duration>) -> Result<R> {
        Ok((self.0)(value, left))
    }

    fn take_apart(
        self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<R, Self>> {
        Ok(match read_vec(len, read)? {
            Some(value) => Ok((self.0)(&value, left)),
            None => Err(self),
        })
    }
}

/// The value as a vector of its own (`Storage::get`): one stored apart is read into it.
pub(crate) struct Own;

impl Take for Own {
    type Out = (Vec<u8>, Option<Duration>);

    fn take(self, value: &[u8], left: Option<Duration>) -> Result<Self::Out> {
        Ok((value.to_vec(), left))
    }

    fn take_owned(self, value: Vec<u8>, left: Option<Duration>) -> Result<Self::Out> {
        Ok((value, left))
    }

    fn take_apart(
        self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<Self::Out, Self>> {
        Ok(match read_vec(len, read)? {
            Some(value) => Ok((value, left)),
            None => Err(self),
        })
    }
}

/// Memory that `alloc` gives for the value's length (exactly that many bytes), filled.
pub(crate) struct Fill<A>(pub A);

impl<B, A> Take for Fill<A>
where
    B: AsMut<[MaybeUninit<u8>]>,
    A: FnMut(usize) -> Result<B>,
{
    type Out = (B, Option<Duration>);

    fn take(mut self, value: &[u8], left: Option<Duration>) -> Result<Self::Out> {
        let mut dest = (self.0)(value.len())?;
        let slots = exactly(dest.as_mut(), value.len())?;
        for (slot, &byte) in slots.iter_mut().zip(value) {
            slot.write(byte);
        }
        Ok((dest, left))
    }

    fn take_apart(
        mut self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<Self::Out, Self>> {
        let mut dest = match (self.0)(len) {
            Ok(dest) => dest,
            Err(e) => return no_memory_for(len, e, read).map(|()| Err(self)),
        };
        let sound = read(Dest::Uninit(exactly(dest.as_mut(), len)?))?;
        Ok(if sound { Ok((dest, left)) } else { Err(self) })
    }
}

/// A value stored apart, read into a new vector; `None` if it is damaged.
fn read_vec(len: usize, read: impl FnOnce(Dest<'_>) -> Result<bool>) -> Result<Option<Vec<u8>>> {
    let mut value = Vec::new();
    if value.try_reserve_exact(len).is_err() {
        return no_memory_for(len, no_memory(len), read).map(|()| None);
    }
    value.resize(len, 0);
    Ok(read(Dest::Init(&mut value))?.then_some(value))
}

/// How a streaming read ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Streamed {
    /// Every chunk was handed over and the value is sound; its time left.
    Done(Option<Duration>),
    /// The visitor stopped it.
    Stopped,
    /// Chunks were handed over before the value proved damaged: they must be dropped.
    /// The entry is removed like any damaged one.
    Damaged,
}

/// A visitor of chunks (`Storage::get_chunks`); `STOP_IS_A_HIT` false for
/// `Storage::deliver_chunks`, whose read the visitor stopped counts no hit.
pub(crate) struct Chunks<V, const STOP_IS_A_HIT: bool> {
    pub visit: V,
    /// Chunks have gone to the visitor: a damaged value cannot be answered from
    /// elsewhere any more (no read-through after it).
    pub spoiled: bool,
    /// A look-up that finds nothing sound after chunks went to the visitor answers
    /// [`Streamed::Damaged`] rather than a miss (`get_chunks`, whose caller must drop
    /// them; not `contains`, whose visitor keeps none).
    pub tells_damage: bool,
}

impl<V: FnMut(&[u8]) -> bool, const STOP_IS_A_HIT: bool> Take for Chunks<V, STOP_IS_A_HIT> {
    type Out = Streamed;

    fn counted(out: &Streamed) -> bool {
        STOP_IS_A_HIT || *out != Streamed::Stopped
    }

    fn take(mut self, value: &[u8], left: Option<Duration>) -> Result<Streamed> {
        if self.spoiled {
            return Ok(Streamed::Damaged);
        }
        for chunk in value.chunks(crate::value_files::CHUNK) {
            if !(self.visit)(chunk) {
                return Ok(Streamed::Stopped);
            }
        }
        Ok(Streamed::Done(left))
    }

    fn take_apart(
        mut self,
        len: usize,
        left: Option<Duration>,
        read: impl FnOnce(Dest<'_>) -> Result<bool>,
    ) -> Result<std::result::Result<Streamed, Self>> {
        let mut handed = false;
        let mut stopped = false;
        let visit = &mut self.visit;
        let mut counted = |chunk: &[u8]| {
            handed = true;
            stopped = !visit(chunk);
            !stopped
        };
        let sound = read(Dest::Visit {
            len: len as u64,
            visit: &mut counted,
        })?;
        self.spoiled = handed;
        Ok(match (sound, stopped) {
            (_, true) => Ok(Streamed::Stopped),
            (true, false) => Ok(Streamed::Done(left)),
            (false, false) => Err(self),
        })
    }

    /// Chunks went to the visitor before the value proved damaged: the caller must
    /// hear so, to drop them (a miss said nothing of it: the CLI's `get -o` kept them).
    fn given_up(self) -> Option<Streamed> {
        (self.spoiled && self.tells_damage).then_some(Streamed::Damaged)
    }
}

/// No memory for a value of `len` bytes (`e` says so): `Ok` (a miss: damaged) when no
/// value of that length is stored, as a row whose size was damaged gives one larger
/// than any memory (2^62 failed every get of its key with "out of memory" where every
/// other read missed); `e` when one is, which no memory can hold.
fn no_memory_for(len: usize, e: Error, read: impl FnOnce(Dest<'_>) -> Result<bool>) -> Result<()> {
    match read(Dest::Sound { len: len as u64 })? {
        true => Err(e),
        false => Ok(()),
    }
}

fn exactly(dest: &mut [MaybeUninit<u8>], len: usize) -> Result<&mut [MaybeUninit<u8>]> {
    if dest.len() != len {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "a buffer of {} bytes was given for a value of {len}",
                dest.len()
            ),
        ));
    }
    Ok(dest)
}

fn no_memory(len: usize) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("no memory for a value of {len} bytes"),
    )
}

/// Reads the value kept in file `name` (its length is `dest`'s) to `dest`: whether it is
/// sound ([`FileRead::Value`]), or the file is missing, or does not hold what the row
/// says (a damaged value's last chunk is withheld from a visitor, as for a blob). A
/// missing file was never handed to a visitor.
pub(crate) fn read_file(
    files: &ValueFiles,
    name: &ValueName,
    crc: u32,
    dest: Dest<'_>,
) -> Result<FileRead<()>> {
    // Memory of the caller's is read into straight from the file, with no copy.
    match dest {
        Dest::Visit { len, visit } => Ok(match files.read_chunks(name, len, crc, visit)? {
            FileStreamed::Done | FileStreamed::Stopped => FileRead::Value(()),
            FileStreamed::Missing => FileRead::Missing,
            FileStreamed::Damaged => FileRead::Damaged,
        }),
        Dest::Init(d) => files.read_into(name, crc, d),
        Dest::Uninit(d) => files.read_into(name, crc, d),
        Dest::Open { len, opened } => Ok(match files.open_value(name, len, crc)? {
            FileRead::Value(file) => {
                *opened = Some(Opened::File {
                    file,
                    name: *name,
                    crc,
                });
                FileRead::Value(())
            }
            FileRead::Missing => FileRead::Missing,
            FileRead::Damaged => FileRead::Damaged,
        }),
        Dest::Sound { len } => Ok(match files.open_value(name, len, crc)? {
            FileRead::Value(_) => FileRead::Value(()),
            FileRead::Missing => FileRead::Missing,
            FileRead::Damaged => FileRead::Damaged,
        }),
    }
}
