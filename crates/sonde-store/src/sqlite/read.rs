//! Reading a whole session back: its rows in one snapshot, payloads unpacked, folded.

use rusqlite::{Connection, OptionalExtension};
use sonde_model::{Record, SessionTrace};

use crate::rows::{SHARED_COLUMNS, StoredColumns, StoredRow, Table};
use crate::{ReadError, Scope};

use super::{classify, payload};

pub(super) fn session_visible(
    conn: &Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<bool, rusqlite::Error> {
    let tenant: Option<(Option<String>, Option<String>)> = conn
        .query_row(
            "SELECT org, workspace FROM sessions WHERE session_id = ?1",
            [session_id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(tenant.is_some_and(|(org, workspace)| scope.allows(org.as_deref(), workspace.as_deref())))
}

pub(super) fn read_session(
    conn: &mut Connection,
    session_id: &str,
    scope: &Scope,
) -> Result<Option<SessionTrace>, ReadError> {
    let backend = |e: rusqlite::Error| ReadError::Backend(classify(&e));
    // One read transaction: a consistent snapshot across the tables.
    let tx = conn.transaction().map_err(backend)?;
    if !session_visible(&tx, session_id, scope).map_err(backend)? {
        return Ok(None);
    }
    let mut records: Vec<Record> = Vec::new();
    let mut payloads = payload::PayloadReader::default();
    for table in Table::ALL {
        let sql = format!(
            "SELECT {} FROM {} WHERE session_id = ?1",
            SHARED_COLUMNS.join(", "),
            table.name()
        );
        let mut stmt = tx.prepare_cached(&sql).map_err(backend)?;
        let mut rows = stmt.query([session_id]).map_err(backend)?;
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
