//! The store's [`RecordStore`] capability, over the writes and reads beside it.

use async_trait::async_trait;
use sonde_model::{Record, SessionTrace};

use crate::rows::WriteMode;
use crate::{ReadError, RecordStore, Scope, WriteError, WriteOutcome};

use super::PostgresStore;
use super::read::read_session;
use super::write::delete_session;

#[async_trait]
impl RecordStore for PostgresStore {
    async fn write(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        self.write_in_mode(records, WriteMode::KeepStored).await
    }

    async fn replace(&self, records: &[Record]) -> Result<WriteOutcome, WriteError> {
        self.write_in_mode(records, WriteMode::Replace).await
    }

    async fn get_session(
        &self,
        session_id: &str,
        scope: &Scope,
    ) -> Result<Option<SessionTrace>, ReadError> {
        self.on_runtime(read_session(
            self.pool.clone(),
            session_id.to_owned(),
            scope.clone(),
        ))
        .await
        .ok_or(ReadError::Closed)?
    }

    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        self.on_runtime(delete_session(
            self.pool.clone(),
            session_id.to_owned(),
            scope.clone(),
        ))
        .await
        .ok_or(ReadError::Closed)?
    }
}
