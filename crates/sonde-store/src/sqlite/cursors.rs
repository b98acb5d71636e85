//! The store's [`CursorStore`] capability: saving sync cursors and states.

use async_trait::async_trait;

use crate::{CursorStore, SyncCursor, WriteError};

use super::{SqliteStore, write_failed};

#[async_trait]
impl CursorStore for SqliteStore {
    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[SyncCursor],
    ) -> Result<(), WriteError> {
        let (source, cursors) = (source.to_owned(), cursors.to_vec());
        Self::run(&self.writer, move |conn| {
            save_cursors(conn, &source, &cursors).map_err(write_failed)
        })
        .await
    }
}

/// Stores `cursors` of `source` in one transaction.
fn save_cursors(
    conn: &mut rusqlite::Connection,
    source: &str,
    cursors: &[SyncCursor],
) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    {
        let [position_sql, state_sql] = crate::cursors::upsert_sql(|i| format!("?{i}"));
        let mut positions = tx.prepare_cached(&position_sql)?;
        let mut states = tx.prepare_cached(&state_sql)?;
        for c in cursors {
            positions.execute(rusqlite::params![source, c.path, c.position])?;
            states.execute(rusqlite::params![source, c.path, c.state])?;
        }
    }
    tx.commit()
}
