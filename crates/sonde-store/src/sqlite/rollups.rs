//! The roll-ups (`llm_hourly`, `llm_daily`, `llm_key_daily`) and their latency runs, kept exact in
//! the write transaction: deltas added on insert, subtracted on delete.

use crate::rows::{ROLLUP_COLUMNS, RollupDelta, RollupKey, Rollups};

use super::runs;

/// Adds deltas to the roll-ups.
pub(super) fn apply_rollups(
    tx: &rusqlite::Transaction<'_>,
    rollups: &Rollups,
) -> Result<(), rusqlite::Error> {
    apply_rollup(tx, "llm_hourly", &rollups.hourly)?;
    apply_rollup(tx, "llm_daily", &rollups.daily)?;
    apply_rollup(tx, "llm_key_daily", &rollups.key_daily)
}

/// Adds deltas to one roll-up table.
fn apply_rollup(
    tx: &rusqlite::Transaction<'_>,
    table: &str,
    deltas: &std::collections::BTreeMap<RollupKey, RollupDelta>,
) -> Result<(), rusqlite::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let placeholders: Vec<String> = (1..=ROLLUP_COLUMNS.len())
        .map(|i| format!("?{i}"))
        .collect();
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT INTO {table} ({}) VALUES ({}) {}",
        ROLLUP_COLUMNS.join(", "),
        placeholders.join(", "),
        crate::rows::rollup_upsert_tail(table)
    ))?;
    for (k, d) in deltas {
        let t = d.tokens;
        upsert.execute(rusqlite::params![
            k.hour,
            k.org,
            k.workspace,
            k.provider,
            k.model,
            k.api_key_hash,
            k.request_path,
            d.calls,
            t[0],
            t[1],
            t[2],
            t[3],
            t[4],
            t[5],
            d.cost,
            d.reported_cost,
            d.computed_cost,
            d.errors,
            d.http_4xx,
            d.http_5xx,
            d.latency_sum,
            d.latency_count
        ])?;
    }
    Ok(())
}

/// Takes the LLM calls of the events rows where `condition` (SQL over `events`, its
/// placeholders bound to `params`: a session's, or one event) holds out of the
/// roll-ups.
pub(super) fn subtract_rollups(
    tx: &rusqlite::Transaction<'_>,
    condition: &str,
    params: impl rusqlite::Params,
) -> Result<(), rusqlite::Error> {
    let mut rollups = crate::rows::RollupsBuilder::default();
    let mut stmt = tx.prepare_cached(&crate::rows::stored_calls_where(condition))?;
    let mut rows = stmt.query(params)?;
    while let Some(r) = rows.next()? {
        rollups.subtract_stored(r)?;
    }
    drop(rows);
    drop(stmt);
    let rollups = rollups.finish();
    if rollups.is_empty() {
        return Ok(());
    }
    apply_rollups(tx, &rollups)?;
    runs::remove(tx, "llm_hourly_runs", &rollups.hourly_runs)?;
    runs::remove(tx, "llm_daily_runs", &rollups.daily_runs)?;
    runs::remove(tx, "llm_key_daily_runs", &rollups.key_daily_runs)?;
    for sql in crate::rows::DELETE_EMPTY_ROLLUPS {
        tx.execute(sql, [])?;
    }
    Ok(())
}
