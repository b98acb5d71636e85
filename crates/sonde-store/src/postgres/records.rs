//! The store's records: its [`RowStore`], which [`crate::RecordStore`] is written over.

use async_trait::async_trait;
use sonde_model::SessionTrace;

use crate::capabilities::RowStore;
use crate::rows::{RecordRow, WriteMode};
use crate::{CallPricer, ReadError, Scope, WriteError, WriteOutcome};

use super::PostgresStore;
use super::read::read_session;
use super::write::{delete_session, write_rows};

#[async_trait]
impl RowStore for PostgresStore {
    /// Stores rows on the store's runtime.
    async fn write_rows(
        &self,
        rows: Vec<RecordRow>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, WriteError> {
        self.on_runtime(write_rows(
            self.pool.clone(),
            self.partitions.clone(),
            rows,
            mode,
        ))
        .await
    }

    async fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionTrace>, ReadError> {
        self.on_runtime(read_session(
            self.pool.clone(),
            id.to_owned(),
            scope.clone(),
        ))
        .await
    }

    fn pricer(&self) -> Option<&CallPricer> {
        self.pricer.as_ref()
    }

    async fn remove_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        self.on_runtime(delete_session(
            self.pool.clone(),
            session_id.to_owned(),
            scope.clone(),
        ))
        .await
    }

    async fn drop_expired_partitions(
        &self,
        cutoff: sonde_model::Timestamp,
    ) -> Result<crate::DroppedPartitions, ReadError> {
        let (pool, partitions) = (self.pool.clone(), self.partitions.clone());
        self.on_runtime(async move {
            super::partitions::drop_expired(&pool, &partitions, cutoff.as_micros())
                .await
                .map_err(ReadError::Backend)
        })
        .await
    }
}
