//! Reading a whole session back: its rows in one snapshot, payloads unpacked, folded.

use rusqlite::Connection;
use sonde_model::{Record, SessionTrace};

use crate::rows::{SHARED_COLUMNS, StoredColumns, StoredRow, Table};
use crate::{ReadError, Scope};

use super::{classify, payload};

/// The tenants ([`crate::rows::tenant_key`]) whose session `session_id` `scope` sees:
/// at most one for a tenant's scope, any number for [`Scope::All`].
pub(super) fn visible_tenants(
    conn: &Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<Vec<String>, rusqlite::Error> {
    let (sql, tenant) = crate::tenancy::visible_tenants_sql(scope, "?1", "?2");
    let mut stmt = conn.prepare_cached(&sql)?;
    match &tenant {
        Some(tenant) => stmt
            .query_map([session_id, tenant], |row| row.get(0))?
            .collect(),
        None => stmt.query_map([session_id], |row| row.get(0))?.collect(),
    }
}

pub(super) fn read_session(
    conn: &mut Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<Option<SessionTrace>, ReadError> {
    let backend = |e: rusqlite::Error| ReadError::Backend(classify(&e));
    // One read transaction: a consistent snapshot across the tables.
    let tx = conn.transaction().map_err(backend)?;
    let Some(tenant) = crate::tenancy::one_tenant(
        session_id,
        visible_tenants(&tx, session_id, scope).map_err(backend)?,
    )?
    else {
        return Ok(None);
    };
    let mut records: Vec<Record> = Vec::new();
    let mut payloads = payload::PayloadReader::default();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE tenant = ?2 AND session_id = ?1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([session_id, &tenant]).map_err(backend)?;
        while let Some(row) = rows.next().map_err(backend)? {
            records.push(
                stored_columns(row, &tx, &mut payloads)
                    .map_err(backend)?
                    .into_record()?,
            );
        }
    }
    Ok(SessionTrace::from_records(records).into_iter().next())
}

/// A stored row's shared columns; `conn` and `payloads` read the blocks its payload may
/// point into.
fn stored_columns(
    row: &rusqlite::Row<'_>,
    conn: &Connection,
    payloads: &mut payload::PayloadReader,
) -> Result<StoredColumns, rusqlite::Error> {
    let payload = payloads.unpack(Some(conn), row.get_ref(10)?).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(10, rusqlite::types::Type::Blob, e.into())
    })?;
    StoredColumns::read(row, payload)
}

/// SQLite keeps instants as microseconds, and converts nothing else.
impl StoredRow for rusqlite::Row<'_> {
    type Error = rusqlite::Error;

    fn micros(&self, i: usize) -> Result<i64, Self::Error> {
        self.get(i)
    }

    fn text(&self, i: usize) -> Result<Option<String>, Self::Error> {
        self.get(i)
    }

    fn integer(&self, i: usize) -> Result<Option<i64>, Self::Error> {
        self.get(i)
    }

    fn real(&self, i: usize) -> Result<Option<f64>, Self::Error> {
        self.get(i)
    }
}
