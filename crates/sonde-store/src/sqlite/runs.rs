//! The latency runs (see [`crate::latency_runs`]) in SQLite: merged into in the write
//! transaction, taken from on deletion; `sonde_packed(x)`, the aggregate that packs
//! values the way the runs hold them, and `sonde_sorted(run)`, a run sorted.
//!
//! The store has one writer thread, so reading a run and writing it back cannot race.

use std::collections::BTreeMap;

use rusqlite::functions::{Aggregate, Context, FunctionFlags};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Transaction};

use crate::latency_runs::{RunValues, key_match, merged, packed_len, run_to_append_to, take_out};
use crate::rows::RollupKey;

fn key_params(k: &RollupKey) -> [&dyn rusqlite::ToSql; 7] {
    [
        &k.hour,
        &k.org,
        &k.workspace,
        &k.provider,
        &k.model,
        &k.api_key_hash,
        &k.request_path,
    ]
}

/// Merges each key's values into its newest run (kept sorted), or into a new run when
/// they would make it hold more than [`RUN_VALUES`](crate::latency_runs::RUN_VALUES).
pub(super) fn append(
    tx: &Transaction<'_>,
    table: &str,
    runs: &BTreeMap<RollupKey, RunValues>,
) -> Result<(), rusqlite::Error> {
    let key_match = key_match(|i| format!("?{i}"));
    let mut newest = tx.prepare_cached(&format!(
        "SELECT run, latencies, ttfts FROM {table} WHERE {key_match} ORDER BY run DESC LIMIT 1"
    ))?;
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET latencies = ?9, ttfts = ?10 WHERE {key_match} AND run = ?8"
    ))?;
    let mut insert = tx.prepare_cached(&format!(
        "INSERT INTO {table} (hour, org, workspace, provider, model, api_key_hash, request_path,
             run, latencies, ttfts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
    ))?;
    for (k, values) in runs {
        let key = key_params(k);
        let last: Option<(i64, Vec<u8>, Vec<u8>)> = newest
            .query_row(&key[..], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let held = last
            .as_ref()
            .map(|(run, l, t)| (*run, packed_len(l).max(packed_len(t))));
        let run = run_to_append_to(held, values.len());
        let (existing, latencies, ttfts) = match last {
            Some((last, l, t)) if last == run => (true, l, t),
            _ => (false, Vec::new(), Vec::new()),
        };
        let latencies = merged(&latencies, &values.latencies);
        let ttfts = merged(&ttfts, &values.ttfts);
        let mut params: Vec<&dyn rusqlite::ToSql> = key.to_vec();
        params.extend([&run as &dyn rusqlite::ToSql, &latencies, &ttfts]);
        if existing {
            update.execute(&params[..])?;
        } else {
            insert.execute(&params[..])?;
        }
    }
    Ok(())
}

/// Takes each key's values out of its runs (one occurrence each); runs left empty are
/// deleted.
pub(super) fn remove(
    tx: &Transaction<'_>,
    table: &str,
    runs: &BTreeMap<RollupKey, RunValues>,
) -> Result<(), rusqlite::Error> {
    let key_match = key_match(|i| format!("?{i}"));
    let mut all = tx.prepare_cached(&format!(
        "SELECT run, latencies, ttfts FROM {table} WHERE {key_match} ORDER BY run"
    ))?;
    let mut update = tx.prepare_cached(&format!(
        "UPDATE {table} SET latencies = ?9, ttfts = ?10 WHERE {key_match} AND run = ?8"
    ))?;
    let mut delete = tx.prepare_cached(&format!(
        "DELETE FROM {table} WHERE {key_match} AND run = ?8"
    ))?;
    for (k, values) in runs {
        let key = key_params(k);
        let stored = all
            .query_map(&key[..], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Vec<u8>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (run, change) in take_out(stored, values) {
            let mut params: Vec<&dyn rusqlite::ToSql> = key.to_vec();
            params.push(&run);
            match &change {
                None => delete.execute(&params[..])?,
                Some((l, t)) => {
                    params.extend([l as &dyn rusqlite::ToSql, t]);
                    update.execute(&params[..])?
                }
            };
        }
    }
    Ok(())
}

/// `sonde_packed(x)`: the non-null values of `x` packed as the runs hold them, sorted
/// (NULL when there are none).
struct Packed;

impl Aggregate<Vec<u8>, Option<Vec<u8>>> for Packed {
    fn init(&self, _: &mut Context<'_>) -> rusqlite::Result<Vec<u8>> {
        Ok(Vec::new())
    }

    fn step(&self, ctx: &mut Context<'_>, acc: &mut Vec<u8>) -> rusqlite::Result<()> {
        let value = match ctx.get_raw(0) {
            ValueRef::Real(f) => f,
            ValueRef::Integer(i) => i as f64,
            _ => return Ok(()),
        };
        acc.extend(value.to_be_bytes());
        Ok(())
    }

    fn finalize(
        &self,
        _: &mut Context<'_>,
        acc: Option<Vec<u8>>,
    ) -> rusqlite::Result<Option<Vec<u8>>> {
        Ok(acc
            .filter(|a| !a.is_empty())
            .map(|a| crate::latency_runs::merged(&a, &[])))
    }
}

/// Registers `sonde_packed(x)` and `sonde_sorted(run)` on a connection.
pub(super) fn register(conn: &Connection) -> rusqlite::Result<()> {
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_aggregate_function("sonde_packed", 1, flags, Packed)?;
    conn.create_scalar_function("sonde_sorted", 1, flags, |ctx| {
        Ok(match ctx.get_raw(0) {
            ValueRef::Blob(run) => Some(crate::latency_runs::merged(run, &[])),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_aggregate_sorts_skips_nulls_and_is_null_over_nothing() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let packed: Vec<u8> = conn
            .query_row(
                "SELECT sonde_packed(x) FROM (SELECT 2 AS x UNION ALL SELECT NULL UNION ALL SELECT 1.5)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let mut values = Vec::new();
        crate::latency_runs::unpack_into(&packed, &mut values);
        assert_eq!(values, vec![1.5, 2.0]);
        let none: Option<Vec<u8>> = conn
            .query_row("SELECT sonde_packed(NULL)", [], |r| r.get(0))
            .unwrap();
        assert!(none.is_none());
    }

    #[test]
    fn sorted_sorts_a_run() {
        let conn = Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let run = crate::latency_runs::pack(&[3.0, 1.0, 2.0]);
        let sorted: Vec<u8> = conn
            .query_row("SELECT sonde_sorted(?1)", [run], |r| r.get(0))
            .unwrap();
        assert_eq!(sorted, crate::latency_runs::pack(&[1.0, 2.0, 3.0]));
    }
}
