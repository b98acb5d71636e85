//! The store's [`RecordStore`] capability, over the writes and reads beside it.

use async_trait::async_trait;
use sonde_model::{Record, SessionTrace};

use crate::rows::WriteMode;
use crate::{ReadError, RecordStore, Scope, WriteError, WriteOutcome};

use super::read::read_session;
use super::write::delete_session;
use super::{SqliteStore, classify};

#[async_trait]
impl RecordStore for SqliteStore {
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
        let (session_id, scope) = (session_id.to_owned(), scope.clone());
        Self::run(&self.readers, move |conn| {
            read_session(conn, &session_id, &scope)
        })
        .await
        .ok_or(ReadError::Closed)?
    }

    async fn delete_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        let (session_id, scope) = (session_id.to_owned(), scope.clone());
        Self::run(&self.writer, move |conn| {
            delete_session(conn, &session_id, &scope)
        })
        .await
        .ok_or(ReadError::Closed)?
        .map_err(|e| ReadError::Backend(classify(&e)))
    }
}
