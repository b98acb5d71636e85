//! Reading a whole session back: its rows in one repeatable-read snapshot, folded.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use sonde_model::{Record, SessionTrace};
use tokio_postgres::Row;
use tokio_postgres::types::Type;

use crate::rows::{SHARED_COLUMNS, StoredColumns, StoredRow, Table};
use crate::{ReadError, Scope};

use super::{classify, pool_error};

/// The tenants ([`crate::rows::tenant_key`]) whose session `session_id` `scope` sees:
/// at most one for a tenant's scope, any number for [`Scope::All`].
pub(super) async fn visible_tenants(
    client: &deadpool_postgres::Transaction<'_>,
    session_id: &str,
    scope: &Scope,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let (sql, tenant) = crate::tenancy::visible_tenants_sql(scope, "$1", "$2");
    let rows = match &tenant {
        Some(tenant) => client.query(&sql, &[&session_id, tenant]).await?,
        None => client.query(&sql, &[&session_id]).await?,
    };
    rows.iter().map(|r| r.try_get(0)).collect()
}

/// PostgreSQL reads instants as timestamps and `response_status` as a 4-byte integer.
impl StoredRow for Row {
    type Error = tokio_postgres::Error;

    fn micros(&self, i: usize) -> Result<i64, Self::Error> {
        Ok(self.try_get::<_, DateTime<Utc>>(i)?.timestamp_micros())
    }

    fn text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.try_get(i)
    }

    fn integer(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        match *self.columns()[i].type_() {
            Type::INT4 => Ok(self.try_get::<_, Option<i32>>(i)?.map(i64::from)),
            _ => self.try_get(i),
        }
    }

    fn real(&self, i: usize) -> Result<Option<f64>, Self::Error> {
        self.try_get(i)
    }
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
    let tenants = visible_tenants(&tx, &session_id, &scope)
        .await
        .map_err(backend)?;
    let Some(tenant) = crate::tenancy::one_tenant(&session_id, tenants)? else {
        return Ok(None);
    };
    let mut records: Vec<Record> = Vec::new();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant = $2 AND session_id = $1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let stmt = tx.prepare_cached(&sql).await.map_err(backend)?;
        for row in tx
            .query(&stmt, &[&session_id, &tenant])
            .await
            .map_err(backend)?
        {
            let payload = row.try_get(10).map_err(backend)?;
            let columns = StoredColumns::read(&row, payload).map_err(backend)?;
            records.push(columns.into_record()?);
        }
    }
    tx.commit().await.map_err(backend)?;
    Ok(SessionTrace::from_records(records).into_iter().next())
}
