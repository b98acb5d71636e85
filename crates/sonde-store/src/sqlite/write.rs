//! Writing records: rows inserted once by id (or replaced), the derived session and
//! step tables kept in the same transaction, and deleting a session.

use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::rows::{Extra, Lifecycle, LifecycleParam, RecordRow, SessionKey, Table, WriteMode};
use crate::{Dialect, Scope, WriteOutcome};

use super::read::visible_tenants;
use super::rollups::{apply_rollups, subtract_rollups};
use super::{payload, runs};

fn insert_sql(table: Table) -> String {
    let columns = table.columns();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT OR IGNORE INTO {} ({}) VALUES ({})",
        table.name(),
        columns.join(", "),
        placeholders.join(", ")
    )
}

type Bound<'a> = rusqlite::types::ToSqlOutput<'a>;

fn text(value: &str) -> Bound<'_> {
    Bound::Borrowed(ValueRef::Text(value.as_bytes()))
}

fn opt_text(value: &Option<String>) -> Bound<'_> {
    value.as_deref().map_or(Bound::Owned(Sql::Null), text)
}

fn real(value: Option<f64>) -> Bound<'static> {
    Bound::Owned(value.map_or(Sql::Null, Sql::Real))
}

fn int(value: i64) -> Bound<'static> {
    Bound::Owned(Sql::Integer(value))
}

/// The row's values in [`Table::columns`] order, borrowing its text; `payload` is the
/// payload column's.
fn values<'a>(row: &'a RecordRow, payload: Bound<'a>) -> Vec<Bound<'a>> {
    let ctx = &row.context;
    let mut values = Vec::with_capacity(30);
    values.extend([
        text(&row.id),
        text(row.kind),
        int(row.ts),
        text(&ctx.session_id),
        opt_text(&ctx.step_id),
        opt_text(&ctx.org),
        opt_text(&ctx.workspace),
        opt_text(&ctx.trace_id),
        opt_text(&ctx.span_id),
        opt_text(&ctx.parent_span_id),
        payload,
    ]);
    match &row.extra {
        Extra::Lifecycle(_) => {}
        Extra::Event(e) => {
            values.extend([
                text(e.event_type),
                text(e.status),
                opt_text(&e.provider),
                opt_text(&e.model),
            ]);
            match e.tokens {
                Some(tokens) => values.extend(tokens.map(int)),
                None => values.extend(std::iter::repeat_n(Bound::Owned(Sql::Null), 6)),
            }
            values.extend([
                real(e.reported_cost_usd),
                real(e.computed_cost_usd),
                real(e.latency_ms),
                real(e.ttft_ms),
                e.response_status
                    .map_or(Bound::Owned(Sql::Null), |s| int(i64::from(s))),
                opt_text(&e.request_path),
                opt_text(&e.api_key_hash),
                opt_text(&e.gateway_key_id),
                opt_text(&e.tool_name),
            ]);
        }
        Extra::Message {
            message_type,
            from_role,
            to_role,
        } => values.extend([text(message_type), opt_text(from_role), opt_text(to_role)]),
        Extra::OutcomeReward {
            objective_key,
            total_reward,
        } => values.extend([text(objective_key), real(Some(*total_reward))]),
        Extra::EventReward { event_id, value } => {
            values.extend([text(event_id), real(Some(*value))]);
        }
    }
    values.push(text(&row.tenant));
    values
}

pub(super) fn write_rows(
    conn: &mut Connection,
    rows: Vec<RecordRow>,
    packed: payload::Packed,
    mode: WriteMode,
) -> Result<WriteOutcome, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let replaced_sessions = match mode {
        WriteMode::KeepStored => Vec::new(),
        WriteMode::Replace => remove_replaced(&tx, &rows)?,
    };
    let mut outcome = WriteOutcome::default();
    let mut inserted: Vec<RecordRow> = Vec::with_capacity(rows.len());
    {
        let mut block_ids = Vec::with_capacity(packed.blocks.len());
        let mut insert_block = tx.prepare_cached(
            "INSERT INTO payload_blocks (session_id, live, data, tenant) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for block in &packed.blocks {
            insert_block.execute(rusqlite::params![
                block.session.session_id,
                block.rows,
                block.data,
                block.session.tenant
            ])?;
            block_ids.push(tx.last_insert_rowid());
        }
        // Rows a block counts that turn out to be duplicates (never inserted).
        let mut not_inserted: std::collections::BTreeMap<i64, i64> = Default::default();
        let mut inserts: Vec<rusqlite::CachedStatement<'_>> = Vec::with_capacity(5);
        for table in Table::ALL {
            inserts.push(tx.prepare_cached(&insert_sql(table))?);
        }
        for (row, slot) in rows.into_iter().zip(&packed.slots) {
            let mut block_id = None;
            let payload = match slot {
                payload::Slot::Text => text(&row.payload),
                payload::Slot::Frame(frame) => Bound::Borrowed(ValueRef::Blob(frame)),
                payload::Slot::InBlock { block, offset, len } => {
                    let id = block_ids.get(*block).copied().unwrap_or_default();
                    block_id = Some(id);
                    Bound::Owned(Sql::Blob(payload::block_ref(id, *offset, *len)))
                }
            };
            let position = Table::ALL.iter().position(|t| *t == row.table).unwrap_or(0);
            let stored = inserts[position].execute(params_from_iter(values(&row, payload)))?;
            if stored == 0 {
                outcome.duplicates += 1;
                if let Some(id) = block_id {
                    *not_inserted.entry(id).or_default() += 1;
                }
            } else {
                outcome.written += 1;
                inserted.push(row);
            }
        }
        for (id, rows) in not_inserted {
            release_block(&tx, id, rows)?;
        }
    }
    {
        let mut upsert = tx.prepare_cached(&format!(
            "{} {}",
            "INSERT INTO sessions (session_id, org, workspace, started_at, last_at, event_count,
                 llm_calls, message_count, total_tokens, cost_usd, tenant)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            crate::rows::session_upsert_tail("min", "max")
        ))?;
        for (session, d) in crate::rows::session_deltas(&inserted) {
            upsert.execute(rusqlite::params![
                session.session_id,
                d.org,
                d.workspace,
                d.first,
                d.last,
                d.events,
                d.llm_calls,
                d.messages,
                d.total_tokens,
                d.cost_usd,
                session.tenant
            ])?;
        }
    }
    for row in &inserted {
        if let Extra::Lifecycle(change) = &row.extra {
            apply_lifecycle(&tx, row, change)?;
        }
    }
    index_text(&tx, &inserted)?;
    let rollups = crate::rows::rollup_deltas(&inserted);
    apply_rollups(&tx, &rollups)?;
    runs::append(&tx, "llm_hourly_runs", &rollups.hourly_runs)?;
    runs::append(&tx, "llm_daily_runs", &rollups.daily_runs)?;
    runs::append(&tx, "llm_key_daily_runs", &rollups.key_daily_runs)?;
    for session in &replaced_sessions {
        tx.prepare_cached(&crate::rows::recount_session_sql("?1", "?2"))?
            .execute([&session.session_id, &session.tenant])?;
    }
    tx.commit()?;
    Ok(outcome)
}

/// Deletes the stored versions of `rows` that [`WriteMode::Replace`] replaces, and takes
/// them out of the roll-ups; returns the sessions whose counters must be recounted.
fn remove_replaced(
    tx: &rusqlite::Transaction<'_>,
    rows: &[RecordRow],
) -> Result<Vec<SessionKey>, rusqlite::Error> {
    let mut sessions = std::collections::BTreeSet::new();
    for row in rows.iter().filter(|r| r.table != Table::Lifecycle) {
        if row.table == Table::Events {
            subtract_rollups(tx, "id", &row.id, &row.tenant)?;
        }
        let removed: Option<(Sql, String)> = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE tenant = ?2 AND id = ?1 RETURNING payload, session_id",
                row.table.name()
            ))?
            .query_row([&row.id, &row.tenant], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((payload, stored_session)) = removed {
            // The stored version may belong to another session than the new one (a
            // resumed session copies its parent's responses): both are recounted.
            sessions.insert(SessionKey {
                tenant: row.tenant.clone(),
                session_id: stored_session,
            });
            sessions.insert(SessionKey::of(row));
            unindex_text(tx, "record_id", &row.id, &row.tenant)?;
            if let Sql::Blob(blob) = payload
                && let Some((block, _, _)) = payload::parse_block_ref(&blob)
            {
                release_block(tx, block, 1)?;
            }
        }
    }
    Ok(sessions.into_iter().collect())
}

/// Adds the searchable text of `rows` to the full-text index.
fn index_text(tx: &rusqlite::Transaction<'_>, rows: &[RecordRow]) -> Result<(), rusqlite::Error> {
    let mut doc = tx.prepare_cached(
        "INSERT INTO search_docs (record_id, session_id, tenant) VALUES (?1, ?2, ?3)",
    )?;
    let mut fts = tx.prepare_cached("INSERT INTO search_fts (rowid, body) VALUES (?1, ?2)")?;
    for row in rows {
        if let Some(body) = &row.search_text {
            doc.execute([&row.id, &row.context.session_id, &row.tenant])?;
            fts.execute(rusqlite::params![tx.last_insert_rowid(), body])?;
        }
    }
    Ok(())
}

/// Removes from the full-text index the records of `tenant` whose `column`
/// (`record_id` or `session_id`) is `value`.
fn unindex_text(
    tx: &rusqlite::Transaction<'_>,
    column: &str,
    value: &str,
    tenant: &str,
) -> Result<(), rusqlite::Error> {
    let docs = format!("search_docs WHERE tenant = ?2 AND {column} = ?1");
    tx.prepare_cached(&format!(
        "DELETE FROM search_fts WHERE rowid IN (SELECT id FROM {docs})"
    ))?
    .execute([value, tenant])?;
    tx.prepare_cached(&format!("DELETE FROM {docs}"))?
        .execute([value, tenant])?;
    Ok(())
}

/// Takes `rows` rows out of block `id`'s count, and the block away when none is left.
pub(super) fn release_block(
    tx: &rusqlite::Transaction<'_>,
    id: i64,
    rows: i64,
) -> Result<(), rusqlite::Error> {
    tx.prepare_cached("UPDATE payload_blocks SET live = live - ?2 WHERE id = ?1")?
        .execute(rusqlite::params![id, rows])?;
    tx.prepare_cached("DELETE FROM payload_blocks WHERE id = ?1 AND live <= 0")?
        .execute([id])?;
    Ok(())
}

/// Applies a lifecycle record to the derived tables ([`Lifecycle::statement`]).
fn apply_lifecycle(
    tx: &rusqlite::Transaction<'_>,
    row: &RecordRow,
    change: &Lifecycle,
) -> Result<(), rusqlite::Error> {
    let (sql, values) = change.statement(
        &row.tenant,
        &row.context.session_id,
        &row.id,
        row.ts,
        Dialect::Sqlite,
    );
    let bound = values.into_iter().map(|v| match v {
        LifecycleParam::Text(t) => text(t),
        LifecycleParam::Integer(i) => Bound::Owned(i.map_or(Sql::Null, Sql::Integer)),
        LifecycleParam::Time(t) => int(t),
    });
    tx.prepare_cached(&sql)?.execute(params_from_iter(bound))?;
    Ok(())
}

pub(super) fn delete_session(
    conn: &mut Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let tenants = visible_tenants(&tx, session_id, scope)?;
    if tenants.is_empty() {
        return Ok(false);
    }
    // Every tenant's session of that id the scope sees: one for a tenant's key.
    for tenant in &tenants {
        subtract_rollups(&tx, "session_id", session_id, tenant)?;
        unindex_text(&tx, "session_id", session_id, tenant)?;
        for table in
            Table::ALL
                .iter()
                .map(|t| t.name())
                .chain(["payload_blocks", "steps", "sessions"])
        {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = ?2 AND session_id = ?1"),
                [session_id, tenant],
            )?;
        }
    }
    tx.commit()?;
    Ok(true)
}
