//! The latency runs (see [`crate::latency_runs`]) in PostgreSQL: appended to in the
//! write transaction, taken from on deletion.
//!
//! Appending is an upsert that concatenates (`latencies || excluded.latencies`) under
//! the row's lock, so concurrent writers never lose each other's values; at worst a run
//! ends up a little over [`crate::latency_runs::RUN_VALUES`].

use std::collections::BTreeMap;

use crate::latency_runs::{RunValues, key_columns, key_match, pack, run_to_append_to, take_out};
use crate::rows::RollupKey;

use super::params;
use super::rollups::rollup_key_arrays;

/// Appends each key's values to its newest run, or to a new one when they would
/// overfill it: one statement finds the newest runs, one upserts.
pub(super) async fn append(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    runs: &BTreeMap<RollupKey, RunValues>,
) -> Result<(), tokio_postgres::Error> {
    if runs.is_empty() {
        return Ok(());
    }
    let key_columns = key_columns().join(", ");
    let keys: Vec<&RollupKey> = runs.keys().collect();
    let newest = tx
        .prepare_cached(&format!(
            "SELECT k.i, r.run, r.held FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS k({key_columns}, i)
             CROSS JOIN LATERAL (
                 SELECT t.run, greatest(octet_length(t.latencies), octet_length(t.ttfts)) / 8 AS held
                 FROM {table} t
                 WHERE t.hour = k.hour AND t.org = k.org AND t.workspace = k.workspace
                   AND t.provider = k.provider AND t.model = k.model
                   AND t.api_key_hash = k.api_key_hash AND t.request_path = k.request_path
                 ORDER BY t.run DESC LIMIT 1) r"
        ))
        .await?;
    let arrays = rollup_key_arrays(&keys);
    let mut held: Vec<Option<(i64, usize)>> = vec![None; keys.len()];
    for row in tx.query(&newest, &params(&arrays)).await? {
        let i: i64 = row.try_get(0)?;
        let run: i64 = row.try_get(1)?;
        let n: i32 = row.try_get(2)?;
        if let Some(slot) = usize::try_from(i - 1).ok().and_then(|i| held.get_mut(i)) {
            *slot = Some((run, usize::try_from(n).unwrap_or(0)));
        }
    }
    let values: Vec<&RunValues> = runs.values().collect();
    let run_numbers: Vec<i64> = held
        .iter()
        .zip(&values)
        .map(|(held, v)| run_to_append_to(*held, v.len()))
        .collect();
    let mut arrays = arrays;
    arrays.push(Box::new(run_numbers));
    arrays.push(Box::new(
        values
            .iter()
            .map(|v| pack(&v.latencies))
            .collect::<Vec<Vec<u8>>>(),
    ));
    arrays.push(Box::new(
        values
            .iter()
            .map(|v| pack(&v.ttfts))
            .collect::<Vec<Vec<u8>>>(),
    ));
    let upsert = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} ({key_columns}, run, latencies, ttfts)
             SELECT * FROM unnest($1::int8[], $2::text[], $3::text[], $4::text[], $5::text[],
                 $6::text[], $7::text[], $8::int8[], $9::bytea[], $10::bytea[])
             ON CONFLICT ({key_columns}, run) DO UPDATE SET
                 latencies = {table}.latencies || excluded.latencies,
                 ttfts = {table}.ttfts || excluded.ttfts"
        ))
        .await?;
    tx.execute(&upsert, &params(&arrays)).await?;
    Ok(())
}

/// Takes each key's values out of its runs (one occurrence each), locking them first;
/// runs left empty are deleted.
pub(super) async fn remove(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    runs: &BTreeMap<RollupKey, RunValues>,
) -> Result<(), tokio_postgres::Error> {
    if runs.is_empty() {
        return Ok(());
    }
    let key_match = key_match(|i| format!("${i}"));
    let all = tx
        .prepare_cached(&format!(
            "SELECT run, latencies, ttfts FROM {table} WHERE {key_match} ORDER BY run FOR UPDATE"
        ))
        .await?;
    let update = tx
        .prepare_cached(&format!(
            "UPDATE {table} SET latencies = $9, ttfts = $10 WHERE {key_match} AND run = $8"
        ))
        .await?;
    let delete = tx
        .prepare_cached(&format!(
            "DELETE FROM {table} WHERE {key_match} AND run = $8"
        ))
        .await?;
    for (k, values) in runs {
        let key: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &k.hour,
            &k.org,
            &k.workspace,
            &k.provider,
            &k.model,
            &k.api_key_hash,
            &k.request_path,
        ];
        let stored = tx
            .query(&all, &key)
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        for (run, change) in take_out(stored, values) {
            let mut p = key.to_vec();
            p.push(&run);
            match &change {
                None => tx.execute(&delete, &p).await?,
                Some((l, t)) => {
                    p.extend([l as &(dyn tokio_postgres::types::ToSql + Sync), t]);
                    tx.execute(&update, &p).await?
                }
            };
        }
    }
    Ok(())
}
