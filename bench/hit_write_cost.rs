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
//! The fill's time per insert (one transaction) shows what the second layout's extra
//! index costs every set.
//!
//! With `order` after the rounds, only today's layout, with the hits ticked in the order
//! they happened (random against the keys, as in BackLite) and written in key order or
//! in tick order, on a connection with SQLite's default 2 MiB page cache or the hit
//! writer's 32 MiB (core/src/transact.rs).
//!
//! cargo run --release --example hit_write_cost -- [entries] [hits per write] [rounds] [order]

use rusqlite::{params, Connection};
use std::time::Instant;

const SCHEMAS: [(&str, &str, &str); 2] = [
    (
        "move",
        "CREATE TABLE entries (seq INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE,
            value_id INTEGER, size INTEGER NOT NULL, crc INTEGER NOT NULL,
            created INTEGER NOT NULL, hits INTEGER NOT NULL, expires_at INTEGER,
            value BLOB, set_at INTEGER);",
        "UPDATE entries SET hits = hits + ?1, seq = ?2 WHERE key = ?3 AND created < ?2",
    ),
    (
        "in place",
        "CREATE TABLE entries (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL,
            key BLOB NOT NULL UNIQUE, value_id INTEGER, size INTEGER NOT NULL,
            crc INTEGER NOT NULL, created INTEGER NOT NULL, hits INTEGER NOT NULL,
            expires_at INTEGER, value BLOB, set_at INTEGER);
         CREATE UNIQUE INDEX entries_by_seq ON entries(seq);",
        "UPDATE entries SET hits = hits + ?1, seq = ?2 WHERE key = ?3 AND created < ?2",
    ),
];

fn main() {
    let arg = |i: usize, d: usize| {
        std::env::args()
            .nth(i)
            .map_or(d, |a| a.parse().expect("a number"))
    };
    let (n, batch, rounds) = (arg(1, 100_000), arg(2, 16_384), arg(3, 5));
    let order = std::env::args().nth(4).as_deref() == Some("order");
    println!("{n} entries, {batch} hits per write transaction, {rounds} rounds; per hit:");
    // (name, schema, update, write in tick order, page cache KiB)
    let mut cases: Vec<(&str, &str, &str, bool, i64)> = Vec::new();
    if order {
        let (_, schema, update) = SCHEMAS[0];
        cases.push(("key order, 2 MiB", schema, update, false, 2000));
        cases.push(("key order, 32 MiB", schema, update, false, 32768));
        cases.push(("tick order, 2 MiB", schema, update, true, 2000));
        cases.push(("tick order, 32 MiB", schema, update, true, 32768));
    } else {
        cases.extend(SCHEMAS.iter().map(|&(n, s, u)| (n, s, u, false, 2000)));
    }
    for value_len in [100usize, 3000] {
        for &(name, schema, update, tick_order, cache) in &cases {
            // On disk, not a tmpfs: the page writes are what is measured.
            let dir =
                tempfile::tempdir_in(std::env::var("BENCH_DIR").unwrap_or_else(|_| ".".into()))
                    .unwrap();
            let conn = Connection::open(dir.path().join("c.db")).unwrap();
            conn.execute_batch(&format!(
                "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
                 PRAGMA wal_autocheckpoint = 0; PRAGMA cache_size = -{cache};
                 CREATE TABLE blobs (id INTEGER PRIMARY KEY, value BLOB NOT NULL, file TEXT);
                 {schema}"
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
                    let mut stmt = tx.prepare_cached(update).unwrap();
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
