//! Writing records: each table's rows inserted with one `INSERT ... SELECT FROM
//! unnest(...)` (in a savepoint, with `ON CONFLICT DO NOTHING` only when the batch holds
//! stored records; see [`insert_table`]) or replaced, the derived session and step
//! tables kept in the same transaction, lost lock races retried; and deleting a session.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::future::Future;
use std::task::Poll;

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::rows::{Extra, LifecycleParam, RecordRow, SessionKey, Table, WriteMode};
use crate::{BackendError, Dialect, ErrorClass, ReadError, Scope, WriteError, WriteOutcome};

use super::partitions::{Partitions, is_missing_partition};
use super::read::visible_tenants;
use super::rollups::{apply_rollups, subtract_rollups};
use super::{CONTENTION_ATTEMPTS, Param, at, classify, params, pool_error, runs};

fn pg_type(column: &str) -> &'static str {
    match column {
        "ts" => "timestamptz",
        "input_tokens" | "output_tokens" | "cache_read_tokens" | "cache_write_tokens"
        | "reasoning_tokens" | "total_tokens" => "int8",
        "reported_cost_usd" | "computed_cost_usd" | "latency_ms" | "ttft_ms" | "total_reward"
        | "value" => "float8",
        "response_status" => "int4",
        _ => "text",
    }
}

/// One column of `rows` as an array parameter.
fn column<'a>(rows: &'a [&'a RecordRow], name: &str) -> Param<'a> {
    fn each<'a, T: ToSql + Sync + Send + 'a>(
        rows: &'a [&'a RecordRow],
        f: impl Fn(&'a RecordRow) -> T,
    ) -> Param<'a> {
        Box::new(rows.iter().map(|r| f(r)).collect::<Vec<T>>())
    }
    fn event(r: &RecordRow) -> Option<&crate::rows::EventColumns> {
        match &r.extra {
            Extra::Event(e) => Some(e),
            _ => None,
        }
    }
    let token = |i: usize| each(rows, move |r| event(r).and_then(|e| e.tokens).map(|t| t[i]));
    match name {
        "id" => each(rows, |r| r.id.as_str()),
        "kind" => each(rows, |r| r.kind),
        "ts" => each(rows, |r| at(r.ts)),
        "session_id" => each(rows, |r| r.context.session_id.as_str()),
        "step_id" => each(rows, |r| r.context.step_id.as_deref()),
        "org" => each(rows, |r| r.context.org.as_deref()),
        "workspace" => each(rows, |r| r.context.workspace.as_deref()),
        "trace_id" => each(rows, |r| r.context.trace_id.as_deref()),
        "span_id" => each(rows, |r| r.context.span_id.as_deref()),
        "parent_span_id" => each(rows, |r| r.context.parent_span_id.as_deref()),
        "payload" => each(rows, |r| r.payload.as_str()),
        "tenant" => each(rows, |r| r.tenant.as_str()),
        "event_type" => each(rows, |r| event(r).map_or("", |e| e.event_type)),
        "status" => each(rows, |r| event(r).map_or("ok", |e| e.status)),
        "provider" => each(rows, |r| event(r).and_then(|e| e.provider.as_deref())),
        "model" => each(rows, |r| event(r).and_then(|e| e.model.as_deref())),
        "input_tokens" => token(0),
        "output_tokens" => token(1),
        "cache_read_tokens" => token(2),
        "cache_write_tokens" => token(3),
        "reasoning_tokens" => token(4),
        "total_tokens" => token(5),
        "reported_cost_usd" => each(rows, |r| event(r).and_then(|e| e.reported_cost_usd)),
        "computed_cost_usd" => each(rows, |r| event(r).and_then(|e| e.computed_cost_usd)),
        "latency_ms" => each(rows, |r| event(r).and_then(|e| e.latency_ms)),
        "ttft_ms" => each(rows, |r| event(r).and_then(|e| e.ttft_ms)),
        "response_status" => each(rows, |r| event(r).and_then(|e| e.response_status)),
        "request_path" => each(rows, |r| event(r).and_then(|e| e.request_path.as_deref())),
        "api_key_hash" => each(rows, |r| event(r).and_then(|e| e.api_key_hash.as_deref())),
        "gateway_key_id" => each(rows, |r| event(r).and_then(|e| e.gateway_key_id.as_deref())),
        "tool_name" => each(rows, |r| event(r).and_then(|e| e.tool_name.as_deref())),
        "message_type" => each(rows, |r| match &r.extra {
            Extra::Message { message_type, .. } => message_type.as_str(),
            _ => "",
        }),
        "from_role" => each(rows, |r| match &r.extra {
            Extra::Message { from_role, .. } => from_role.as_deref(),
            _ => None,
        }),
        "to_role" => each(rows, |r| match &r.extra {
            Extra::Message { to_role, .. } => to_role.as_deref(),
            _ => None,
        }),
        "objective_key" => each(rows, |r| match &r.extra {
            Extra::OutcomeReward { objective_key, .. } => objective_key.as_str(),
            _ => "",
        }),
        "total_reward" => each(rows, |r| match &r.extra {
            Extra::OutcomeReward { total_reward, .. } => *total_reward,
            _ => 0.0,
        }),
        "event_id" => each(rows, |r| match &r.extra {
            Extra::EventReward { event_id, .. } => event_id.as_str(),
            _ => "",
        }),
        "value" => each(rows, |r| match &r.extra {
            Extra::EventReward { value, .. } => *value,
            _ => 0.0,
        }),
        _ => each(rows, |_| Option::<&str>::None),
    }
}

/// Inserts one table's rows; returns the tenants and ids stored for the first time, or
/// none when every row was (the common case, which then builds no set).
///
/// Most batches hold only new records, so the rows are first inserted plainly, in a
/// savepoint: each row's unique `(tenant, id)` index entry is checked once, as it goes
/// in, instead of probed first (what `ON CONFLICT` does for every row, a second descent
/// of an index keyed by random ids) and no ids come back. Only a batch holding a stored
/// record (a unique violation) goes back to the savepoint and inserts with
/// `ON CONFLICT DO NOTHING RETURNING`, which skips the stored ones and names the others.
async fn insert_table(
    tx: &deadpool_postgres::Transaction<'_>,
    table: Table,
    rows: &[&RecordRow],
) -> Result<Option<HashSet<(String, String)>>, tokio_postgres::Error> {
    let columns = table.columns();
    let arrays: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("${}::{}[]", i + 1, pg_type(c)))
        .collect();
    let insert = format!(
        "INSERT INTO {} ({}) SELECT * FROM unnest({})",
        table.name(),
        columns.join(", "),
        arrays.join(", ")
    );
    let values: Vec<Param<'_>> = columns.iter().map(|c| column(rows, c)).collect();
    let plain = tx.prepare_cached(&insert).await?;
    tx.batch_execute("SAVEPOINT fresh_rows").await?;
    match tx.execute(&plain, &params(&values)).await {
        Ok(_) => {
            tx.batch_execute("RELEASE SAVEPOINT fresh_rows").await?;
            return Ok(None);
        }
        Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
            tx.batch_execute("ROLLBACK TO SAVEPOINT fresh_rows; RELEASE SAVEPOINT fresh_rows")
                .await?;
        }
        Err(e) => return Err(e),
    }
    // No conflict target: the record tables are partitioned by week, and each
    // partition's unique (tenant, id) index is the arbiter (see crate::partitions).
    let stmt = tx
        .prepare_cached(&format!(
            "{insert} ON CONFLICT DO NOTHING RETURNING tenant, id"
        ))
        .await?;
    let stored = tx.query(&stmt, &params(&values)).await?;
    // Rows are distinct by (tenant, id) (write_rows): as many stored as given is all.
    if stored.len() == rows.len() {
        return Ok(None);
    }
    stored
        .iter()
        .map(|r| Ok((r.try_get::<_, String>(0)?, r.try_get::<_, String>(1)?)))
        .collect::<Result<_, _>>()
        .map(Some)
}

/// Deletes the stored versions of `rows` that [`WriteMode::Replace`] replaces, and takes
/// them out of the roll-ups; returns the sessions whose counters must be recounted.
async fn remove_replaced(
    tx: &deadpool_postgres::Transaction<'_>,
    groups: &BTreeMap<Table, Vec<&RecordRow>>,
) -> Result<BTreeSet<SessionKey>, tokio_postgres::Error> {
    let mut sessions = BTreeSet::new();
    for (table, rows) in groups {
        if *table == Table::Lifecycle {
            continue;
        }
        let delete = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE tenant = $2 AND id = $1 RETURNING session_id",
                table.name()
            ))
            .await?;
        for row in rows {
            if *table == Table::Events {
                subtract_rollups(tx, "id", &row.id, &row.tenant).await?;
            }
            // The stored version may belong to another session than the new one (a
            // resumed session copies its parent's responses): both are recounted.
            if let Some(stored) = tx.query_opt(&delete, &[&row.id, &row.tenant]).await? {
                let stored_session: String = stored.try_get(0)?;
                sessions.insert(SessionKey {
                    tenant: row.tenant.clone(),
                    session_id: stored_session.clone(),
                });
                sessions.insert(SessionKey::of(row));
                // Found by the stored version's session (search_docs_session): the
                // documents have no index on their record id (migration 18).
                tx.execute(
                    "DELETE FROM search_docs
                     WHERE session_id = $3 AND tenant = $2 AND record_id = $1",
                    &[&row.id, &row.tenant, &stored_session],
                )
                .await?;
            }
        }
    }
    Ok(sessions)
}

/// Why a batch was not written.
enum BatchError {
    /// A row's week has no partition: retention dropped it since this process made it.
    MissingPartition(BackendError),
    /// Anything else.
    Backend(BackendError),
}

fn batch_error(e: tokio_postgres::Error) -> BatchError {
    if is_missing_partition(&e) {
        BatchError::MissingPartition(classify(&e))
    } else {
        BatchError::Backend(classify(&e))
    }
}

async fn write_batch(
    pool: &Pool,
    groups: &BTreeMap<Table, Vec<&RecordRow>>,
    mode: WriteMode,
) -> Result<usize, BatchError> {
    let mut client = pool
        .get()
        .await
        .map_err(|e| BatchError::Backend(pool_error(e)))?;
    let tx = client.transaction().await.map_err(batch_error)?;
    let replaced_sessions = match mode {
        WriteMode::KeepStored => BTreeSet::new(),
        WriteMode::Replace => remove_replaced(&tx, groups).await.map_err(batch_error)?,
    };
    let mut inserted: Vec<&RecordRow> = Vec::new();
    for (table, rows) in groups {
        match insert_table(&tx, *table, rows).await.map_err(batch_error)? {
            None => inserted.extend(rows.iter().copied()),
            // Looked up by pairs borrowed from the row would need a second set type;
            // the clone per row is small next to the round trip.
            Some(ids) => inserted.extend(
                rows.iter()
                    .copied()
                    .filter(|r| ids.contains(&(r.tenant.clone(), r.id.clone()))),
            ),
        }
    }
    // What no other batch touches first; then the rows concurrent batches share
    // (sessions, steps, roll-ups, runs), whose locks are held until the commit: taken
    // last, so that a concurrent batch waits on them as briefly as can be.
    index_text(&tx, &inserted).await.map_err(batch_error)?;
    upsert_sessions(&tx, &inserted).await.map_err(batch_error)?;
    apply_lifecycles(&tx, &inserted)
        .await
        .map_err(batch_error)?;
    let rollups = crate::rows::rollup_deltas(inserted.iter().copied());
    apply_rollups(&tx, &rollups).await.map_err(batch_error)?;
    runs::append(&tx, "llm_hourly_runs", &rollups.hourly_runs)
        .await
        .map_err(batch_error)?;
    runs::append(&tx, "llm_daily_runs", &rollups.daily_runs)
        .await
        .map_err(batch_error)?;
    runs::append(&tx, "llm_key_daily_runs", &rollups.key_daily_runs)
        .await
        .map_err(batch_error)?;
    if !replaced_sessions.is_empty() {
        let recount = tx
            .prepare_cached(&crate::rows::recount_session_sql("$1", "$2"))
            .await
            .map_err(batch_error)?;
        for session in &replaced_sessions {
            tx.execute(&recount, &[&session.session_id, &session.tenant])
                .await
                .map_err(batch_error)?;
        }
    }
    tx.commit().await.map_err(batch_error)?;
    Ok(inserted.len())
}

/// Adds the searchable text of `rows` to the full-text index. `rows` were stored for
/// the first time by this transaction, so none has a document yet (no conflict clause:
/// the documents have no key on their record, see migration 18).
async fn index_text(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[&RecordRow],
) -> Result<(), tokio_postgres::Error> {
    let with_text: Vec<&RecordRow> = rows
        .iter()
        .copied()
        .filter(|r| r.search_text.is_some())
        .collect();
    if with_text.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = with_text.iter().map(|r| r.id.as_str()).collect();
    let sessions: Vec<&str> = with_text
        .iter()
        .map(|r| r.context.session_id.as_str())
        .collect();
    let tenants: Vec<&str> = with_text.iter().map(|r| r.tenant.as_str()).collect();
    let bodies: Vec<&str> = with_text
        .iter()
        .map(|r| r.search_text.as_deref().unwrap_or_default())
        .collect();
    let stmt = tx
        .prepare_cached(
            "INSERT INTO search_docs (record_id, session_id, body, tenant)
             SELECT i, s, to_tsvector('simple', b), t
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS t(i, s, b, t)",
        )
        .await?;
    tx.execute(&stmt, &[&ids, &sessions, &bodies, &tenants])
        .await?;
    Ok(())
}

async fn upsert_sessions(
    tx: &deadpool_postgres::Transaction<'_>,
    inserted: &[&RecordRow],
) -> Result<(), tokio_postgres::Error> {
    let deltas = crate::rows::session_deltas(inserted.iter().copied());
    if deltas.is_empty() {
        return Ok(());
    }
    let ids: Vec<&str> = deltas.keys().map(|k| k.session_id.as_str()).collect();
    let tenants: Vec<&str> = deltas.keys().map(|k| k.tenant.as_str()).collect();
    let d: Vec<&crate::rows::SessionDelta> = deltas.values().collect();
    let values: Vec<Param<'_>> = vec![
        Box::new(ids),
        Box::new(d.iter().map(|d| d.org.as_deref()).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.workspace.as_deref()).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| at(d.first)).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| at(d.last)).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.events).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.llm_calls).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.messages).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.total_tokens).collect::<Vec<_>>()),
        Box::new(d.iter().map(|d| d.cost_usd).collect::<Vec<_>>()),
        Box::new(tenants),
    ];
    let stmt = tx
        .prepare_cached(&format!(
            "{} {}",
            "INSERT INTO sessions (session_id, org, workspace, started_at, last_at, event_count,
                 llm_calls, message_count, total_tokens, cost_usd, tenant)
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[],
                 $5::timestamptz[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::float8[],
                 $11::text[])",
            crate::rows::session_upsert_tail("least", "greatest")
        ))
        .await?;
    tx.execute(&stmt, &params(&values)).await?;
    Ok(())
}

/// Applies the lifecycle records among `rows` to the derived tables
/// ([`Lifecycle::statement`]), in their order. The statements are prepared first, then
/// sent together (tokio-postgres pipelines the executions of one connection polled at
/// once, and PostgreSQL runs them in the order sent): one round trip for a batch's
/// lifecycle records instead of one each, while the batch holds its sessions' locks.
async fn apply_lifecycles(
    tx: &deadpool_postgres::Transaction<'_>,
    rows: &[&RecordRow],
) -> Result<(), tokio_postgres::Error> {
    let mut statements = Vec::new();
    for row in rows {
        if let Extra::Lifecycle(change) = &row.extra {
            let (sql, values) = change.statement(
                &row.tenant,
                &row.context.session_id,
                &row.id,
                row.ts,
                Dialect::Postgres,
            );
            let values: Vec<Param<'_>> = values
                .into_iter()
                .map(|v| -> Param<'_> {
                    match v {
                        LifecycleParam::Text(t) => Box::new(t),
                        LifecycleParam::Integer(i) => Box::new(i),
                        LifecycleParam::Time(t) => Box::new(at(t)),
                    }
                })
                .collect();
            // Prepared one at a time (a statement not yet cached is a round trip), so
            // that every execution below is sent as soon as it is first polled.
            let stmt = tx.prepare_cached(&sql).await?;
            statements.push((stmt, values));
        }
    }
    let bound: Vec<_> = statements
        .iter()
        .map(|(_, values)| params(values))
        .collect();
    // Each execution polled once, in order, sends its statement; then all are awaited.
    let mut pending = Vec::with_capacity(statements.len());
    for ((stmt, _), values) in statements.iter().zip(&bound) {
        let mut execution = Box::pin(tx.execute(stmt, values));
        let first = std::future::poll_fn(|cx| Poll::Ready(execution.as_mut().poll(cx))).await;
        match first {
            Poll::Ready(done) => {
                done?;
            }
            Poll::Pending => pending.push(execution),
        }
    }
    for execution in pending {
        execution.await?;
    }
    Ok(())
}

/// The first 8 bytes of `id` as a big-endian integer, zero-padded: ordered as the ids
/// are where they differ in those bytes.
fn id_prefix(id: &str) -> u64 {
    let mut first = [0u8; 8];
    let n = id.len().min(8);
    first[..n].copy_from_slice(&id.as_bytes()[..n]);
    u64::from_be_bytes(first)
}

/// Sorts `rows` by tenant and id. Compared through each id's first 8 bytes first, held
/// next to the row: a batch's thousands of rows sorted by chasing each row's strings
/// took a fifth of the writer's own time (BENCHMARKS.md, "Growth").
fn sort_by_key(rows: &mut Vec<&RecordRow>) {
    let mut keyed: Vec<(&str, u64, &RecordRow)> = rows
        .iter()
        .map(|r| (r.tenant.as_str(), id_prefix(&r.id), *r))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        (a.0, a.1)
            .cmp(&(b.0, b.1))
            .then_with(|| a.2.id.cmp(&b.2.id))
    });
    rows.clear();
    rows.extend(keyed.into_iter().map(|(_, _, r)| r));
}

pub(super) async fn write_rows(
    pool: Pool,
    partitions: Partitions,
    rows: Vec<RecordRow>,
    mode: WriteMode,
) -> Result<WriteOutcome, WriteError> {
    // A record id twice in one tenant's part of a batch counts once; rows are sorted by
    // tenant and id so that concurrent writers take row locks in the same order (no
    // deadlocks).
    let mut seen = HashSet::with_capacity(rows.len());
    let mut groups: BTreeMap<Table, Vec<&RecordRow>> = BTreeMap::new();
    let mut repeated = 0;
    for row in &rows {
        if seen.insert((row.tenant.as_str(), row.id.as_str())) {
            groups.entry(row.table).or_default().push(row);
        } else {
            repeated += 1;
        }
    }
    for rows in groups.values_mut() {
        sort_by_key(rows);
    }
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The weeks these rows go into exist before they are inserted.
        partitions
            .ensure(&pool, rows.iter().map(|r| r.ts))
            .await
            .map_err(WriteError::Backend)?;
        match write_batch(&pool, &groups, mode).await {
            Ok(written) => {
                return Ok(WriteOutcome {
                    written,
                    duplicates: rows.len() - written,
                });
            }
            Err(BatchError::Backend(e))
                if e.class == ErrorClass::Contention && attempt < CONTENTION_ATTEMPTS =>
            {
                tracing::debug!(attempt, error = %e, "write lost a lock race; retrying");
            }
            // Retention (here or in another process) dropped a week this process knew.
            Err(BatchError::MissingPartition(_)) if attempt < CONTENTION_ATTEMPTS => {
                tracing::debug!(attempt, "a week was dropped meanwhile; making it again");
                partitions.forget();
            }
            Err(BatchError::Backend(e) | BatchError::MissingPartition(e)) => {
                let _ = repeated;
                return Err(WriteError::Backend(e));
            }
        }
    }
}

pub(super) async fn delete_session(
    pool: Pool,
    session_id: String,
    scope: Scope,
) -> Result<bool, ReadError> {
    let backend = |e: tokio_postgres::Error| ReadError::Backend(classify(&e));
    let mut client = pool
        .get()
        .await
        .map_err(|e| ReadError::Backend(pool_error(e)))?;
    let tx = client.transaction().await.map_err(backend)?;
    let tenants = visible_tenants(&tx, &session_id, &scope)
        .await
        .map_err(backend)?;
    if tenants.is_empty() {
        return Ok(false);
    }
    // Every tenant's session of that id the scope sees: one for a tenant's key.
    for tenant in &tenants {
        subtract_rollups(&tx, "session_id", &session_id, tenant)
            .await
            .map_err(backend)?;
        for table in Table::ALL
            .iter()
            .map(|t| t.name())
            .chain(["steps", "sessions", "search_docs"])
        {
            tx.execute(
                &format!("DELETE FROM {table} WHERE tenant = $2 AND session_id = $1"),
                &[&session_id, tenant],
            )
            .await
            .map_err(backend)?;
        }
    }
    tx.commit().await.map_err(backend)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_ordered_by_their_prefix_then_whole_keep_the_order_of_the_ids() {
        let ids = [
            "",
            "a",
            "a\u{0}",
            "a\u{1}",
            "ab",
            "abcdefgh",
            "abcdefgh\u{0}",
            "abcdefghi",
            "abcdefgg~~~",
            "é",
            "zz",
            "0191e0c2-7c1a-7000-8000-000000000000",
            "0191e0c2-7c1a-7000-8000-000000000001",
        ];
        for a in ids {
            for b in ids {
                let by_prefix = id_prefix(a).cmp(&id_prefix(b)).then_with(|| a.cmp(b));
                assert_eq!(by_prefix, a.cmp(b), "{a:?} against {b:?}");
            }
        }
    }
}
