//! Reading a value kept in the `blobs` table through SQLite's incremental blob I/O,
//! straight into its destination, a chunk at a time (issue 16, item 1). A `SELECT`
//! of the value would first copy it whole into SQLite's own buffer and then again into
//! the caller's, and its CRC would be a third pass over memory long out of the CPU's
//! cache; here each chunk is copied once from SQLite's pages and hashed while it is
//! still cached. Streaming reads use the same handle with one bounded buffer.
//!
//! The caller holds the read transaction that found the entry (its statement is still
//! stepping), so the blob is read from the same snapshot as the row that names it.

use crate::error::{Result, SqliteContext};
use crate::table;
use crate::take::{Dest, Opened};
use crate::value_files::{uninit_buffer, Streamed, CHUNK};
use rusqlite::blob::Blob;
use rusqlite::{Connection, OptionalExtension, MAIN_DB};

/// Opens blob `id` for reading if it is a BLOB of `len` bytes; `None` if it is missing,
/// of another type or of another length (a damaged entry).
fn open(conn: &Connection, id: i64, len: u64) -> Result<Option<Blob<'_>>> {
    let is_blob = conn
        .prepare_cached(table::STORED_IS_BLOB)
        .and_then(|mut s| s.query_row([id], |r| r.get::<_, bool>(0)))
        .optional()
        .ctx("opening a value")?;
    if is_blob != Some(true) {
        return Ok(None);
    }
    handle(conn, id, len)
}

/// A read handle on blob `id` if it is `len` bytes long; `None` if it is missing or of
/// another length (a damaged entry). A reader (value_reader.rs) opens one, in the
/// snapshot [`open_for_reader`] kept, on the thread it gives that connection to (a
/// handle borrows the connection, and is not `Send`); within one snapshot the blob
/// stays what it was, so its type needs no second look.
pub(crate) fn handle(conn: &Connection, id: i64, len: u64) -> Result<Option<Blob<'_>>> {
    match conn.blob_open(MAIN_DB, c"blobs", c"value", id, true) {
        Ok(blob) if blob.len() as u64 == len => Ok(Some(blob)),
        Ok(_) => Ok(None),
        // "no such rowid" and a value that is not a blob or text are damage; any other
        // failure (I/O, a locked file) is an error of the read.
        Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::Unknown => {
            Ok(None)
        }
        Err(e) => Err(e).ctx("opening a value"),
    }
}

/// Copies blob `id` into `dest` (the entry's length) and checks its CRC. False: the
/// blob is missing, of another length, or its CRC is not `crc` (the entry is damaged).
pub(crate) fn read_into(conn: &Connection, id: i64, crc: u32, dest: Dest<'_>) -> Result<bool> {
    let len = match dest {
        Dest::Visit { len, visit } => {
            return Ok(match read_chunks(conn, id, len, crc, visit)? {
                Streamed::Done | Streamed::Stopped => true,
                Streamed::Damaged | Streamed::Missing => false,
            });
        }
        Dest::Open { len, opened } => return open_for_reader(conn, id, len, crc, opened),
        Dest::Sound { len } => return Ok(open(conn, id, len)?.is_some()),
        Dest::Init(ref d) => d.len() as u64,
        Dest::Uninit(ref d) => d.len() as u64,
    };
    let Some(blob) = open(conn, id, len)? else {
        return Ok(false);
    };
    let mut hasher = crc32fast::Hasher::new();
    let mut at = 0;
    match dest {
        Dest::Init(d) => {
            for chunk in d.chunks_mut(CHUNK) {
                blob.read_at_exact(chunk, at).ctx("reading a value")?;
                hasher.update(chunk);
                at += chunk.len();
            }
        }
        Dest::Uninit(d) => {
            for chunk in d.chunks_mut(CHUNK) {
                let read = blob.raw_read_at_exact(chunk, at).ctx("reading a value")?;
                hasher.update(read);
                at += read.len();
            }
        }
        Dest::Visit { .. } | Dest::Open { .. } | Dest::Sound { .. } => {
            unreachable!("handled above")
        }
    }
    Ok(hasher.finalize() == crc)
}

/// Hands blob `id` (`len` bytes) to `visit` in chunks of at most [`CHUNK`] bytes, in
/// one buffer of that size; `visit` returns false to stop. As with value files
/// (`value_files::ValueFiles::read_chunks`), a CRC that fails withholds the last chunk.
pub(crate) fn read_chunks(
    conn: &Connection,
    id: i64,
    len: u64,
    crc: u32,
    mut visit: impl FnMut(&[u8]) -> bool,
) -> Result<Streamed> {
    let Some(blob) = open(conn, id, len)? else {
        return Ok(Streamed::Damaged);
    };
    // Never zeroed: each chunk is read whole into it before it is looked at.
    let mut buf = uninit_buffer(CHUNK.min(len as usize));
    let mut hasher = crc32fast::Hasher::new();
    let mut at = 0usize;
    while (at as u64) < len {
        let n = ((len - at as u64) as usize).min(buf.len());
        let chunk = blob
            .raw_read_at_exact(&mut buf[..n], at)
            .ctx("reading a value")?;
        hasher.update(chunk);
        at += n;
        if at as u64 == len && hasher.clone().finalize() != crc {
            return Ok(Streamed::Damaged);
        }
        if !visit(chunk) {
            return Ok(Streamed::Stopped);
        }
    }
    Ok(if len == 0 && hasher.finalize() != crc {
        Streamed::Damaged
    } else {
        Streamed::Done
    })
}

/// Opens blob `id` (`len` bytes) for a reader (value_reader.rs). One of at most
/// [`CHUNK`] bytes is copied out and checked now, so that its reader holds no
/// connection. A larger one stays where it is: the read transaction that found it
/// (held by the look-up's statement, still stepping) is made to outlast the look-up
/// with a `BEGIN`, so that every chunk the reader reads later comes from this snapshot
/// (a set or delete meanwhile writes a new one). The caller lends the connection, in
/// its transaction, to the reader ([`crate::pool::Pool::read_lending`]). False: the
/// blob is missing, of another type or length, or (copied out) its CRC is not `crc`.
fn open_for_reader(
    conn: &Connection,
    id: i64,
    len: u64,
    crc: u32,
    opened: &mut Option<Opened>,
) -> Result<bool> {
    if len <= CHUNK as u64 {
        let mut value = vec![0; len as usize];
        let sound = read_into(conn, id, crc, Dest::Init(&mut value))?;
        *opened = sound.then_some(Opened::Bytes(value));
        return Ok(sound);
    }
    if open(conn, id, len)?.is_none() {
        return Ok(false);
    }
    conn.prepare_cached("BEGIN")
        .and_then(|mut s| s.execute([]))
        .ctx("keeping a value's snapshot")?;
    *opened = Some(Opened::Blob { id, crc });
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db_with(values: &[&[u8]]) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE blobs (id INTEGER PRIMARY KEY, value BLOB NOT NULL)")
            .unwrap();
        for v in values {
            conn.execute("INSERT INTO blobs (value) VALUES (?1)", [v])
                .unwrap();
        }
        conn
    }

    fn value(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 131 + 7) as u8).collect()
    }

    #[test]
    fn a_blob_reads_back_whole_and_in_chunks() {
        for len in [0, 1, CHUNK, 3 * CHUNK + 5] {
            let v = value(len);
            let conn = db_with(&[&v]);
            let crc = crc32fast::hash(&v);
            let mut dest = vec![0u8; len];
            assert!(read_into(&conn, 1, crc, Dest::Init(&mut dest)).unwrap());
            assert_eq!(dest, v);
            let mut streamed = Vec::new();
            let done = read_chunks(&conn, 1, len as u64, crc, |c| {
                assert!(c.len() <= CHUNK);
                streamed.extend_from_slice(c);
                true
            });
            assert_eq!((done.unwrap(), streamed), (Streamed::Done, v));
        }
    }

    #[test]
    fn a_missing_short_or_damaged_blob_is_damage() {
        let v = value(CHUNK + 1);
        let conn = db_with(&[&v]);
        let crc = crc32fast::hash(&v);
        let mut dest = vec![0u8; v.len()];
        assert!(
            !read_into(&conn, 2, crc, Dest::Init(&mut dest)).unwrap(),
            "no such row"
        );
        assert!(
            !read_into(&conn, 1, crc ^ 1, Dest::Init(&mut dest)).unwrap(),
            "wrong CRC"
        );
        let mut short = vec![0u8; v.len() - 1];
        assert!(
            !read_into(&conn, 1, crc, Dest::Init(&mut short)).unwrap(),
            "wrong length"
        );
        let mut seen = 0;
        let streamed = read_chunks(&conn, 1, v.len() as u64, crc ^ 1, |c| {
            seen += c.len();
            true
        });
        assert_eq!(streamed.unwrap(), Streamed::Damaged);
        assert!(seen < v.len(), "never the whole of a damaged value");
        let missing = read_chunks(&conn, 9, 1, crc, |_| panic!("no chunk"));
        assert_eq!(missing.unwrap(), Streamed::Damaged);
        // The same bytes as TEXT: a blob handle would read them; the type makes it damage.
        conn.execute("UPDATE blobs SET value = CAST(value AS TEXT)", [])
            .unwrap();
        assert!(
            !read_into(&conn, 1, crc, Dest::Init(&mut dest)).unwrap(),
            "text"
        );
        conn.execute("UPDATE blobs SET value = 42", []).unwrap();
        assert!(
            !read_into(&conn, 1, crc, Dest::Init(&mut dest)).unwrap(),
            "not a blob"
        );
    }

    #[test]
    fn a_visitor_can_stop() {
        let v = value(3 * CHUNK);
        let conn = db_with(&[&v]);
        let mut calls = 0;
        let done = read_chunks(&conn, 1, v.len() as u64, crc32fast::hash(&v), |_| {
            calls += 1;
            false
        });
        assert_eq!((done.unwrap(), calls), (Streamed::Stopped, 1));
    }
}
