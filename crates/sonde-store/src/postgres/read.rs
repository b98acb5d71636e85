//! Reading a whole session back: its rows in one repeatable-read snapshot, folded.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sonde_model::{Context, Record, SessionTrace};
use tokio_postgres::Row;

use crate::rows::{SHARED_COLUMNS, StoredColumns, Table};
use crate::{ReadError, Scope};

use super::{classify, pool_error};

pub(super) async fn session_visible(
    client: &deadpool_postgres::Transaction<'_>,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT org, workspace FROM sessions WHERE session_id = $1",
            &[&session_id],
        )
        .await?;
    Ok(row.is_some_and(|r| {
        let org: Option<String> = r.get(0);
        let workspace: Option<String> = r.get(1);
        scope.allows(org.as_deref(), workspace.as_deref())
    }))
}

fn stored_columns(row: &Row) -> Result<StoredColumns, tokio_postgres::Error> {
    Ok(StoredColumns {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        ts: row.try_get::<_, DateTime<Utc>>(2)?.timestamp_micros(),
        context: Context {
            session_id: row.try_get(3)?,
            step_id: row.try_get(4)?,
            org: row.try_get(5)?,
            workspace: row.try_get(6)?,
            trace_id: row.try_get(7)?,
            span_id: row.try_get(8)?,
            parent_span_id: row.try_get(9)?,
        },
        payload: row.try_get(10)?,
    })
}

pub(super) async fn read_session(
    pool: Pool,
    session_id: String,
    scope: Scope,
) -> Result<Option<SessionTrace>, ReadError> {
    let backend = |e: tokio_postgres::Error| ReadError::Backend(classify(&e));
    let mut client = pool
        .get()
        .await
        .map_err(|e| ReadError::Backend(pool_error(e)))?;
    // One snapshot across the tables.
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(backend)?;
    if !session_visible(&tx, &session_id, &scope)
        .await
        .map_err(backend)?
    {
        return Ok(None);
    }
    let mut records: Vec<Record> = Vec::new();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE session_id = $1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(backend)?;
        for row in tx.query(&stmt, &[&session_id]).await.map_err(backend)? {
            records.push(stored_columns(&row).map_err(backend)?.into_record()?);
        }
    }
    tx.commit().await.map_err(backend)?;
    Ok(SessionTrace::from_records(records).into_iter().next())
}
