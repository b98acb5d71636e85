//! Writing records: rows inserted once by id (or replaced), the derived session and
//! step tables kept in the same transaction, and deleting a session.

use rusqlite::types::{Value as Sql, ValueRef};
use rusqlite::{Connection, OptionalExtension, params_from_iter};

use crate::rows::{Extra, Lifecycle, LifecycleParam, RecordRow, SessionKey, Table, WriteMode};
use crate::{Dialect, Scope, WriteOutcome};

use super::read::visible_tenants;
use super::rollups::{apply_rollups, subtract_rollups};
use super::{payload, runs};
use crate::record_keys::{self, search_record};

/// Inserts a row of `table`: binds [`values`].
fn insert_sql(table: Table) -> String {
    let columns = table.columns();
    let placeholders: Vec<String> = (1..=columns.len() + 1).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}, id_hash) VALUES ({})",
        table.name(),
        columns.join(", "),
        placeholders.join(", ")
    )
}

/// The `seq` of `table`'s record (id `?1`, tenant `?2`, its hash `?3`) stored in the
/// hour of `?4` (its time), found through `(key_hour, id_hash)` (see `record_keys.rs`):
/// a record sent again comes with the time it had. The check before each insert is
/// this statement on its own rather than an `INSERT ... SELECT ... WHERE NOT EXISTS`:
/// SQLite gives that form a statement journal, copying every page the insert touches
/// (measured: 6 % of the writer thread).
fn stored_in_hour_sql(table: Table) -> String {
    format!(
        "SELECT seq FROM {} WHERE {}",
        table.name(),
        record_keys::sqlite_lookup_at("", "?4", "?3", "?1", Some("?2"))
    )
}

/// The `seq` of the stored version of `row`'s record: looked for in the hour of its
/// time first (where a record sent again with the time it had is, one seek), then in
/// every hour (a replacement that moves its record in time, or a record not stored).
fn stored_seq(
    tx: &rusqlite::Transaction<'_>,
    row: &RecordRow,
) -> Result<Option<i64>, rusqlite::Error> {
    let table = row.table.name();
    let hash = record_keys::id_hash(&row.id);
    let at_hour = tx
        .prepare_cached(&stored_in_hour_sql(row.table))?
        .query_row(rusqlite::params![row.id, row.tenant, hash, row.ts], |r| {
            r.get(0)
        })
        .optional()?;
    if at_hour.is_some() {
        return Ok(at_hour);
    }
    tx.prepare_cached(&format!(
        "SELECT seq FROM {table} WHERE {}",
        record_keys::sqlite_lookup("", "?3", "?1", Some("?2"))
    ))?
    .query_row(rusqlite::params![row.id, row.tenant, hash], |r| r.get(0))
    .optional()
}

/// Adds the hours of `rows`' times to `record_hours` (see `record_keys.rs`).
fn list_hours(tx: &rusqlite::Transaction<'_>, rows: &[RecordRow]) -> Result<(), rusqlite::Error> {
    let hours: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| record_keys::key_hour(r.ts)).collect();
    let mut insert = tx.prepare_cached("INSERT OR IGNORE INTO record_hours (hour) VALUES (?1)")?;
    for hour in hours {
        insert.execute([hour])?;
    }
    Ok(())
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

/// The row's values in [`Table::columns`] order, then `hash` (its id's), borrowing its
/// text; `payload` is the payload column's.
fn values<'a>(row: &'a RecordRow, payload: Bound<'a>, hash: i64) -> Vec<Bound<'a>> {
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
    values.push(int(hash));
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
    // The `seq` of each inserted row.
    let mut seqs: Vec<i64> = Vec::with_capacity(rows.len());
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
        let mut stored: Vec<rusqlite::CachedStatement<'_>> = Vec::with_capacity(5);
        for table in Table::ALL {
            inserts.push(tx.prepare_cached(&insert_sql(table))?);
            stored.push(tx.prepare_cached(&stored_in_hour_sql(table))?);
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
            let hash = record_keys::id_hash(&row.id);
            // The same record twice is stored once.
            let duplicate = stored[position]
                .query_row(rusqlite::params![row.id, row.tenant, hash, row.ts], |r| {
                    r.get::<_, i64>(0)
                })
                .optional()?
                .is_some();
            if duplicate {
                outcome.duplicates += 1;
                if let Some(id) = block_id {
                    *not_inserted.entry(id).or_default() += 1;
                }
            } else {
                inserts[position].execute(params_from_iter(values(&row, payload, hash)))?;
                outcome.written += 1;
                seqs.push(tx.last_insert_rowid());
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
    list_hours(&tx, &inserted)?;
    index_text(&tx, &inserted, &seqs)?;
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
        let Some(seq) = stored_seq(tx, row)? else {
            continue;
        };
        if row.table == Table::Events {
            subtract_rollups(tx, "seq = ?1", [seq])?;
        }
        let removed: Option<(Sql, String)> = tx
            .prepare_cached(&format!(
                "DELETE FROM {} WHERE seq = ?1 RETURNING payload, session_id",
                row.table.name()
            ))?
            .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if let Some((payload, stored_session)) = removed {
            // The stored version may belong to another session than the new one (a
            // resumed session copies its parent's responses): both are recounted.
            sessions.insert(SessionKey {
                tenant: row.tenant.clone(),
                session_id: stored_session,
            });
            sessions.insert(SessionKey::of(row));
            unindex_text(
                tx,
                "record = ?1",
                rusqlite::params![search_record(row.table, seq)],
            )?;
            if let Sql::Blob(blob) = payload
                && let Some((block, _, _)) = payload::parse_block_ref(&blob)
            {
                release_block(tx, block, 1)?;
            }
        }
    }
    Ok(sessions.into_iter().collect())
}

/// Adds the searchable text of `rows` (stored with `seqs`) to the full-text index.
fn index_text(
    tx: &rusqlite::Transaction<'_>,
    rows: &[RecordRow],
    seqs: &[i64],
) -> Result<(), rusqlite::Error> {
    let mut doc = tx.prepare_cached(
        "INSERT INTO search_docs (record, session_id, tenant) VALUES (?1, ?2, ?3)",
    )?;
    let mut fts = tx.prepare_cached("INSERT INTO search_fts (rowid, body) VALUES (?1, ?2)")?;
    for (row, seq) in rows.iter().zip(seqs) {
        if let Some(body) = &row.search_text {
            doc.execute(rusqlite::params![
                search_record(row.table, *seq),
                row.context.session_id,
                row.tenant
            ])?;
            fts.execute(rusqlite::params![tx.last_insert_rowid(), body])?;
        }
    }
    Ok(())
}

/// Removes from the full-text index the search documents where `condition` (SQL over
/// `search_docs`, its placeholders bound to `params`) holds.
fn unindex_text(
    tx: &rusqlite::Transaction<'_>,
    condition: &str,
    params: impl rusqlite::Params + Copy,
) -> Result<(), rusqlite::Error> {
    let docs = format!("search_docs WHERE {condition}");
    tx.prepare_cached(&format!(
        "DELETE FROM search_fts WHERE rowid IN (SELECT id FROM {docs})"
    ))?
    .execute(params)?;
    tx.prepare_cached(&format!("DELETE FROM {docs}"))?
        .execute(params)?;
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
        let session = "tenant = ?2 AND session_id = ?1";
        subtract_rollups(&tx, session, [session_id, tenant])?;
        unindex_text(&tx, session, [session_id, tenant])?;
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

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sonde_model::*;

    use crate::{Analytics, AnalyticsFilter, RecordStore, Scope, SessionFilter, SqliteStore};

    /// An LLM call of session `s` by `model` whose response says `word`.
    fn call(id: &str, ctx: &Context, model: &str, word: &str) -> Record {
        Record {
            id: id.to_owned(),
            timestamp: Timestamp::from_micros(1_767_225_600_000_000),
            context: ctx.clone(),
            body: Body::Event(Event::Llm(LlmCall {
                model_name: model.to_owned(),
                input_tokens: 10,
                call_records: vec![LlmCallRecord {
                    response: Some(json!({ "content": word }).into()),
                    ..Default::default()
                }],
                ..Default::default()
            })),
        }
    }

    async fn model(store: &SqliteStore, id: &str, scope: &Scope) -> Option<String> {
        let call = store.get_call(id, scope).await.unwrap();
        call.and_then(|c| c.summary.model)
    }

    async fn found(store: &SqliteStore, word: &str) -> usize {
        let filter = SessionFilter {
            search: Some(word.into()),
            ..Default::default()
        };
        store.list_sessions(&filter).await.unwrap().sessions.len()
    }

    /// How SQLite runs `sql` (`EXPLAIN QUERY PLAN`), on the database at `path`.
    fn plan(path: &std::path::Path, sql: &str) -> String {
        let conn = rusqlite::Connection::open(path).unwrap();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let unbound = vec![rusqlite::types::Null; stmt.parameter_count()];
        let details = stmt
            .query_map(rusqlite::params_from_iter(unbound), |r| {
                r.get::<_, String>(3)
            })
            .unwrap();
        details.map(Result::unwrap).collect::<Vec<_>>().join("\n")
    }

    /// Every lookup by id seeks the `(key_hour, id_hash)` index: in one hour to tell a
    /// record sent again, in each listed hour to find a record whenever it was stored.
    /// (SQLite would scan the table for `ts / 3600000000 IN (...)` on an index on the
    /// expression; the generated column is what makes this a seek.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_by_id_seek_the_hour_and_hash_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let ctx = Context::session("s");
        store.write(&[call("c-1", &ctx, "m", "w")]).await.unwrap();
        drop(store);
        for table in crate::rows::Table::ALL {
            let name = table.name();
            let seek = format!("USING INDEX {name}_id (key_hour=? AND id_hash=?)");
            let in_hour = plan(&path, &super::stored_in_hour_sql(table));
            assert!(in_hour.contains(&seek), "{name}: {in_hour}");
            let any_hour = plan(
                &path,
                &format!(
                    "SELECT seq FROM {name} WHERE {}",
                    crate::record_keys::sqlite_lookup("", "?3", "?1", Some("?2"))
                ),
            );
            assert!(any_hour.contains(&seek), "{name}: {any_hour}");
        }
    }

    /// Ids starting `collide-` share one hash in unit tests (`record_keys::id_hash`):
    /// the full id tells the records apart in every write and lookup.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn records_whose_ids_share_a_hash_stay_apart() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("t.db")).await.unwrap();
        let ctx = Context::session("s");
        let a = call("collide-a", &ctx, "m-a", "alpha");
        let b = call("collide-b", &ctx, "m-b", "bravo");
        let first = store.write(&[a.clone(), b.clone()]).await.unwrap();
        assert_eq!((first.written, first.duplicates), (2, 0));
        let again = store.write(&[b.clone(), a.clone()]).await.unwrap();
        assert_eq!((again.written, again.duplicates), (0, 2));
        assert_eq!(
            model(&store, "collide-a", &Scope::All).await.as_deref(),
            Some("m-a")
        );
        assert_eq!(
            model(&store, "collide-b", &Scope::All).await.as_deref(),
            Some("m-b")
        );
        assert_eq!(model(&store, "collide-c", &Scope::All).await, None);

        // Replacing one leaves the other, its search text and its roll-up share alone.
        let replaced = call("collide-a", &ctx, "m-a2", "charlie");
        assert_eq!(store.replace(&[replaced]).await.unwrap().written, 1);
        assert_eq!(
            model(&store, "collide-a", &Scope::All).await.as_deref(),
            Some("m-a2")
        );
        assert_eq!(
            model(&store, "collide-b", &Scope::All).await.as_deref(),
            Some("m-b")
        );
        assert_eq!(
            (
                found(&store, "alpha").await,
                found(&store, "bravo").await,
                found(&store, "charlie").await
            ),
            (0, 1, 1)
        );
        let usage = store
            .usage_summary(&AnalyticsFilter::default())
            .await
            .unwrap();
        assert_eq!(usage.calls, 2);

        // The same id in another tenant is another record.
        let other = Context {
            org: Some("acme".into()),
            workspace: Some("prod".into()),
            ..ctx.clone()
        };
        let theirs = call("collide-b", &other, "m-theirs", "delta");
        assert_eq!(store.write(&[theirs]).await.unwrap().written, 1);
        let acme = Scope::tenant("acme", "prod");
        assert_eq!(
            model(&store, "collide-b", &acme).await.as_deref(),
            Some("m-theirs")
        );
        assert!(
            store.get_call("collide-b", &Scope::All).await.is_err(),
            "ambiguous"
        );
    }
}
