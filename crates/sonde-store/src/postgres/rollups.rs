//! The roll-ups (`llm_hourly`, `llm_daily`, `llm_key_daily`) and their latency runs, kept exact in
//! the write transaction: deltas added on insert, subtracted on delete.

use std::collections::BTreeMap;

use crate::rows::{ROLLUP_COLUMNS, RollupDelta, RollupKey, Rollups};

use super::{Param, params, runs};

/// Adds deltas to the roll-ups.
pub(super) async fn apply_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    rollups: &Rollups,
) -> Result<(), tokio_postgres::Error> {
    apply_rollup(tx, "llm_hourly", &rollups.hourly).await?;
    apply_rollup(tx, "llm_daily", &rollups.daily).await?;
    apply_rollup(tx, "llm_key_daily", &rollups.key_daily).await
}

/// The key columns of roll-up (or run) rows as seven arrays: hour, then six texts.
pub(super) fn rollup_key_arrays<'a>(keys: &[&'a RollupKey]) -> Vec<Param<'a>> {
    let text = |f: fn(&RollupKey) -> &str| -> Param<'a> {
        Box::new(keys.iter().map(|k| f(k)).collect::<Vec<&str>>())
    };
    vec![
        Box::new(keys.iter().map(|k| k.hour).collect::<Vec<i64>>()),
        text(|k| &k.org),
        text(|k| &k.workspace),
        text(|k| &k.provider),
        text(|k| &k.model),
        text(|k| &k.api_key_hash),
        text(|k| &k.request_path),
    ]
}

/// Adds deltas to one roll-up table, in one statement.
async fn apply_rollup(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
    deltas: &BTreeMap<RollupKey, RollupDelta>,
) -> Result<(), tokio_postgres::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let k: Vec<&RollupKey> = deltas.keys().collect();
    let d: Vec<&RollupDelta> = deltas.values().collect();
    let mut values = rollup_key_arrays(&k);
    values.push(Box::new(d.iter().map(|d| d.calls).collect::<Vec<i64>>()));
    for i in 0..6 {
        values.push(Box::new(
            d.iter().map(|d| d.tokens[i]).collect::<Vec<i64>>(),
        ));
    }
    values.push(Box::new(d.iter().map(|d| d.cost).collect::<Vec<f64>>()));
    values.push(Box::new(
        d.iter().map(|d| d.reported_cost).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(
        d.iter().map(|d| d.computed_cost).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(d.iter().map(|d| d.errors).collect::<Vec<i64>>()));
    values.push(Box::new(d.iter().map(|d| d.http_4xx).collect::<Vec<i64>>()));
    values.push(Box::new(d.iter().map(|d| d.http_5xx).collect::<Vec<i64>>()));
    values.push(Box::new(
        d.iter().map(|d| d.latency_sum).collect::<Vec<f64>>(),
    ));
    values.push(Box::new(
        d.iter().map(|d| d.latency_count).collect::<Vec<i64>>(),
    ));
    let types = [
        "int8", "text", "text", "text", "text", "text", "text", "int8", "int8", "int8", "int8",
        "int8", "int8", "int8", "float8", "float8", "float8", "int8", "int8", "int8", "float8",
        "int8",
    ];
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let stmt = tx
        .prepare_cached(&format!(
            "INSERT INTO {table} ({}) SELECT * FROM unnest({}) {}",
            ROLLUP_COLUMNS.join(", "),
            arrays.join(", "),
            crate::rows::rollup_upsert_tail(table)
        ))
        .await?;
    tx.execute(&stmt, &params(&values)).await?;
    Ok(())
}

/// Takes the LLM calls of `tenant` whose `column` equals `value` (a session's, or one
/// event) out of the roll-ups.
pub(super) async fn subtract_rollups(
    tx: &deadpool_postgres::Transaction<'_>,
    column: &str,
    value: &str,
    tenant: &str,
) -> Result<(), tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(&crate::rows::stored_calls_sql(column, "$1", "$2"))
        .await?;
    let mut rollups = crate::rows::RollupsBuilder::default();
    for r in tx.query(&stmt, &[&value, &tenant]).await? {
        rollups.subtract_stored(&r)?;
    }
    let rollups = rollups.finish();
    if rollups.is_empty() {
        return Ok(());
    }
    apply_rollups(tx, &rollups).await?;
    runs::remove(tx, "llm_hourly_runs", &rollups.hourly_runs).await?;
    runs::remove(tx, "llm_daily_runs", &rollups.daily_runs).await?;
    runs::remove(tx, "llm_key_daily_runs", &rollups.key_daily_runs).await?;
    for sql in crate::rows::DELETE_EMPTY_ROLLUPS {
        tx.execute(sql, &[]).await?;
    }
    Ok(())
}
