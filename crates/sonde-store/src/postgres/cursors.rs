//! The store's [`CursorStore`] capability: saving sync cursors and states.

use async_trait::async_trait;

use crate::{CursorStore, SyncCursor, WriteError};

use super::{PostgresStore, classify, pool_error};

#[async_trait]
impl CursorStore for PostgresStore {
    async fn save_sync_cursors(
        &self,
        source: &str,
        cursors: &[SyncCursor],
    ) -> Result<(), WriteError> {
        let (pool, source, cursors) = (self.pool.clone(), source.to_owned(), cursors.to_vec());
        self.on_runtime(async move {
            let backend = |e: tokio_postgres::Error| WriteError::Backend(classify(&e));
            let mut client = pool
                .get()
                .await
                .map_err(|e| WriteError::Backend(pool_error(e)))?;
            let tx = client.transaction().await.map_err(backend)?;
            let [position_sql, state_sql] = crate::cursors::upsert_sql(|i| format!("${i}"));
            let positions = tx.prepare_cached(&position_sql).await.map_err(backend)?;
            let states = tx.prepare_cached(&state_sql).await.map_err(backend)?;
            for c in &cursors {
                tx.execute(&positions, &[&source, &c.path, &c.position])
                    .await
                    .map_err(backend)?;
                tx.execute(&states, &[&source, &c.path, &c.state])
                    .await
                    .map_err(backend)?;
            }
            tx.commit().await.map_err(backend)
        })
        .await
    }
}
