//! Every statement the cache runs is served by an index: no operation scans the
//! entries table (but `clear`, and `keys`, which walks it by rowid a page at a time).
//! The statements are captured from a real workload under each policy, so a new query
//! cannot slip past this test.

use crate::{Entry, EvictionPolicy, Expiration, Options, Storage, MEMORY};
use rusqlite::trace::{TraceEvent, TraceEventCodes};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn statements_of_a_workload(policy: EvictionPolicy) -> (Storage, BTreeSet<String>) {
    let mut o = Options::new();
    o.set_max_size(1000).unwrap();
    o.set_eviction_policy(policy);
    let s = Storage::open(MEMORY, &o).unwrap();
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let sink = seen.clone();
    s.pool
        .lock_writer()
        .trace_v2(
            TraceEventCodes::SQLITE_TRACE_STMT,
            Some(move |e: TraceEvent<'_>| {
                if let TraceEvent::Stmt(stmt, _) = e {
                    sink.lock().unwrap().insert(stmt.sql().into_owned());
                }
            }),
        )
        .unwrap();
    let soon = Expiration::After(Duration::from_millis(1));
    for i in 0..30u8 {
        s.set(&[i], &[0; 10], Expiration::Never).unwrap();
        s.set(&[i, 1], &[0; 10], soon).unwrap();
        s.get(&[i / 2]).unwrap();
    }
    // Values stored apart from their rows, and evictions of them.
    for i in 0..5u8 {
        s.set(&[b'L', i], &[0; 300], Expiration::Never).unwrap();
    }
    s.delete(&[b'L', 4]).unwrap();
    s.set(b"x", &[0; 2000], Expiration::Never).unwrap_err();
    s.set_many(&[Entry {
        key: b"m",
        value: b"1",
        expiration: soon,
    }])
    .unwrap();
    std::thread::sleep(Duration::from_millis(2));
    s.get(&[29, 1]).unwrap();
    s.contains(b"m").unwrap();
    s.delete(&[3]).unwrap();
    s.cached_call(b"c", Expiration::Never, None, || Ok(vec![1]))
        .unwrap();
    s.keys(|_| true).unwrap();
    s.stats().unwrap();
    s.flush().unwrap();
    let seen = seen.lock().unwrap().clone();
    (s, seen)
}

#[test]
fn no_statement_scans_the_entries_table() {
    for policy in EvictionPolicy::ALL {
        let (s, statements) = statements_of_a_workload(policy);
        assert!(
            statements.iter().any(|q| q.contains("ORDER BY")),
            "{policy}: no eviction ran"
        );
        let conn = s.pool.lock_writer();
        for sql in &statements {
            let upper = sql.to_uppercase();
            let skip = ["BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "CREATE", "INSERT"];
            if skip.iter().any(|w| upper.trim_start().starts_with(w))
                || sql == "DELETE FROM entries"
            {
                continue;
            }
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let n = stmt.parameter_count();
            let params: Vec<i64> = vec![0; n];
            let plan: Vec<String> = stmt
                .query_map(rusqlite::params_from_iter(params), |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            // Under `LIMIT 1`, a scan in index or rowid (`seq`) order reads one row.
            let first_in_order = upper.ends_with("LIMIT 1");
            let scans = plan.iter().any(|step| {
                step.starts_with("SCAN entries")
                    && !(first_in_order
                        && (step.contains("INDEX") || upper.contains("ORDER BY SEQ")))
            });
            assert!(!scans, "{policy}: `{sql}` scans the table: {plan:?}");
            if upper.contains("ORDER BY") {
                let sorts = plan.iter().any(|step| step.contains("TEMP B-TREE"));
                assert!(
                    !sorts,
                    "{policy}: `{sql}` sorts instead of using an index: {plan:?}"
                );
            }
        }
    }
}

/// The sweep's and check's question "does a row name this value file?" goes through
/// `entries_by_file` (schema 5), not a scan of the entries.
#[test]
fn a_value_file_is_looked_up_by_name_through_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let s = Storage::open(dir.path().join("c.db"), &Options::new()).unwrap();
    let conn = s.pool.lock_writer();
    let plan: Vec<String> = conn
        .prepare(&format!("EXPLAIN QUERY PLAN {}", crate::table::NAMES_FILE))
        .unwrap()
        .query_map(["v-0.blv"], |r| r.get::<_, String>(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        plan.iter().any(|step| step.contains("entries_by_file")),
        "{plan:?}"
    );
}

/// A get's lookup goes through a TEMP view (table.rs, `LOOKUP_VIEW`) for a short SQL
/// text: SQLite flattens it, so its plan is that of the query written out, on a file
/// and on an in-memory cache alike.
#[test]
fn the_lookup_view_is_flattened_into_the_query_written_out() {
    let dir = tempfile::tempdir().unwrap();
    let on_file = Storage::open(dir.path().join("c.db"), &Options::new()).unwrap();
    let in_memory = Storage::open(MEMORY, &Options::new()).unwrap();
    let written_out = "SELECT crc, size, expires_at, coalesce(value, (SELECT value FROM blobs \
        WHERE id = value_id AND size <= 32768)), value_id, file, created FROM entries WHERE key = ?1";
    let plan = |conn: &rusqlite::Connection, sql: &str| -> Vec<String> {
        conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap()
            .query_map([b"k".as_slice()], |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    for s in [&on_file, &in_memory] {
        s.set(b"k", b"v", Expiration::Never).unwrap();
        let (view, direct) = s
            .read(|conn| Ok((plan(conn, crate::table::LOOKUP), plan(conn, written_out))))
            .unwrap();
        assert_eq!(view.len(), 3, "{view:?}");
        assert!(
            view[0].starts_with("SEARCH entries USING INDEX"),
            "{view:?}"
        );
        // The subquery's number differs (the view's is numbered after the outer query).
        let unnumbered = |p: Vec<String>| -> Vec<String> {
            p.into_iter()
                .map(|step| step.trim_end_matches(char::is_numeric).to_string())
                .collect()
        };
        assert_eq!(unnumbered(view), unnumbered(direct));
        assert_eq!(s.get(b"k").unwrap().unwrap().0, b"v");
    }
}
