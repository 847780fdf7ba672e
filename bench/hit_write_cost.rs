//! What writing buffered hits costs (issue 12, "cheap hit writes"), on raw SQLite with
//! BackLite's statements: per written hit, the time and the WAL pages of one write
//! transaction that writes a batch of hits, for two layouts of the entries table:
//!
//! - `move`: today's, `seq` (the access order) is the rowid, so a hit's UPDATE of
//!   `seq` deletes the row and inserts it at the table's end, and rewrites its entry
//!   in the key index;
//! - `in place`: a stable rowid and `seq` in an index of its own, so a hit rewrites
//!   the row where it is and moves only its small entry in the `seq` index.
//!
//! Both files are created by BackLite itself (`Storage::open`), so they have the
//! current schema; `in place` then rebuilds the entries table with that one change.
//!
//! The fill's time per insert (one transaction) shows what the second layout's extra
//! index costs every set.
//!
//! With `order` after the rounds, only today's layout, with the hits ticked in the order
//! they happened (random against the keys, as in BackLite) and written in key order or
//! in tick order, on a connection with SQLite's default 2 MiB page cache or the hit
//! writer's 32 MiB (core/src/transact.rs).
//!
//! cargo run --release --example hit_write_cost -- [entries] [hits per write] [rounds] [order]

use backlite::{Options, Storage};
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::Instant;

/// BackLite's statement that writes a hit (core/src/table.rs, `WRITE_HITS`).
const WRITE_HITS: &str =
    "UPDATE entries SET hits = hits + ?1, seq = ?2 WHERE key = ?3 AND created < ?2";

/// A new cache file at `path`, created by BackLite, opened on raw SQLite. With
/// `in_place`, its (empty) entries table is made again from the core's own definition
/// with `seq INTEGER PRIMARY KEY` turned into `id INTEGER PRIMARY KEY, ..., seq INTEGER
/// NOT NULL` and a unique index on `seq`, with the core's other indexes on it.
fn create(path: &Path, in_place: bool) -> Connection {
    drop(Storage::open(path, &Options::new()).unwrap());
    let conn = Connection::open(path).unwrap();
    if in_place {
        let table: String = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let indexes: Vec<String> = conn
            .prepare(
                "SELECT sql FROM sqlite_master \
                 WHERE type = 'index' AND tbl_name = 'entries' AND sql IS NOT NULL",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let (start, primary) = ("CREATE TABLE entries (", "INTEGER PRIMARY KEY");
        let at = table.find(primary);
        assert!(
            table.starts_with(start)
                && table.matches(primary).count() == 1
                && at.is_some_and(|at| table[..at].trim_end().ends_with("seq")),
            "the entries table no longer starts with `seq INTEGER PRIMARY KEY`: {table}"
        );
        let table = table.replacen(primary, "INTEGER NOT NULL", 1).replacen(
            start,
            "CREATE TABLE entries (id INTEGER PRIMARY KEY, ",
            1,
        );
        conn.execute_batch(&format!(
            "BEGIN; DROP TABLE entries; {table}; {}; \
             CREATE UNIQUE INDEX entries_by_seq ON entries(seq); COMMIT;",
            indexes.join("; ")
        ))
        .unwrap();
    }
    conn
}

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .map_or(d, |a| a.parse().expect("a number"))
    };
    let (n, batch, rounds) = (arg(1, 100_000), arg(2, 16_384), arg(3, 5));
    let order = std::env::args().nth(4).as_deref() == Some("order");
    println!("{n} entries, {batch} hits per write transaction, {rounds} rounds; per hit:");
    // (name, write in tick order, page cache KiB)
    let cases: &[(&str, bool, i64)] = if order {
        &[
            ("key order, 2 MiB", false, 2000),
            ("key order, 32 MiB", false, 32768),
            ("tick order, 2 MiB", true, 2000),
            ("tick order, 32 MiB", true, 32768),
        ]
    } else {
        &[("move", false, 2000), ("in place", false, 2000)]
    };
    for value_len in [100usize, 3000] {
        for &(name, tick_order, cache) in cases {
            // On disk, not a tmpfs: the page writes are what is measured.
            let dir =
                tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
                    .unwrap();
            let conn = create(&dir.path().join("c.db"), name == "in place");
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{cache};"
            ))
            .unwrap();
            let page: i64 = conn
                .query_row("PRAGMA page_size", [], |r| r.get(0))
                .unwrap();
            let key = |i: u64| {
                format!("k{:015}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % (1 << 40)).into_bytes()
            };
            let value = vec![7u8; value_len];
            let filled = Instant::now();
            {
                let tx = conn.unchecked_transaction().unwrap();
                for i in 0..n as u64 {
                    let seq = i as i64 + 1;
                    let (inline, id) = if value_len <= 256 {
                        (Some(&value), None)
                    } else {
                        tx.execute("INSERT INTO blobs (value) VALUES (?1)", [&value])
                            .unwrap();
                        (None, Some(tx.last_insert_rowid()))
                    };
                    let cols = if name != "in place" {
                        "seq, key, value_id, size, crc, created, hits, value"
                    } else {
                        "seq, key, value_id, size, crc, created, hits, value, id"
                    };
                    let sql = format!(
                        "INSERT INTO entries ({cols}) VALUES (?1, ?2, ?3, ?4, 0, ?1, 0, ?5{})",
                        if name != "in place" { "" } else { ", ?1" }
                    );
                    tx.prepare_cached(&sql)
                        .unwrap()
                        .execute(params![seq, key(i), id, value_len as i64, inline])
                        .unwrap();
                }
                tx.commit().unwrap();
            }
            let fill = filled.elapsed().as_secs_f64() * 1e6 / n as f64;
            let mut clock = n as i64;
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            let (mut micros, mut frames) = (Vec::new(), Vec::new());
            for _ in 0..rounds {
                conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                    .unwrap();
                let mut keys: Vec<Vec<u8>> = (0..batch)
                    .map(|_| {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        key(rng % n as u64)
                    })
                    .collect();
                keys.sort();
                keys.dedup();
                // Ticks in key order; with `order`, in the (random) order of the hits.
                let mut ticks: Vec<(i64, Vec<u8>)> = Vec::with_capacity(keys.len());
                if order {
                    let mut by_hit: Vec<(u64, Vec<u8>)> = keys
                        .into_iter()
                        .map(|k| {
                            rng ^= rng << 13;
                            rng ^= rng >> 7;
                            rng ^= rng << 17;
                            (rng, k)
                        })
                        .collect();
                    by_hit.sort();
                    keys = by_hit.into_iter().map(|(_, k)| k).collect();
                }
                for k in keys {
                    clock += 1;
                    ticks.push((clock, k));
                }
                if tick_order {
                    ticks.sort();
                } else {
                    ticks.sort_by(|a, b| a.1.cmp(&b.1));
                }
                let start = Instant::now();
                let tx = conn.unchecked_transaction().unwrap();
                {
                    let mut stmt = tx.prepare_cached(WRITE_HITS).unwrap();
                    for (tick, k) in &ticks {
                        stmt.execute(params![1i64, tick, k]).unwrap();
                    }
                }
                tx.commit().unwrap();
                micros.push(start.elapsed().as_secs_f64() * 1e6 / ticks.len() as f64);
                let wal = std::fs::metadata(dir.path().join("c.db-wal"))
                    .unwrap()
                    .len() as i64;
                frames.push((wal - 32) as f64 / (page + 24) as f64 / ticks.len() as f64);
            }
            micros.sort_by(f64::total_cmp);
            frames.sort_by(f64::total_cmp);
            println!(
                "  value {value_len:>5} B, {name:<18}: {:.2} µs (min {:.2}, max {:.2}), {:.3} pages; \
                 fill {fill:.2} µs per insert",
                micros[rounds / 2],
                micros[0],
                micros[rounds - 1],
                frames[rounds / 2]
            );
        }
    }
}
