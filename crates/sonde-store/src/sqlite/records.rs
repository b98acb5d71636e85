//! The store's records: its [`RowStore`], which [`crate::RecordStore`] is written over.

use async_trait::async_trait;
use sonde_model::SessionTrace;

use crate::capabilities::RowStore;
use crate::rows::{RecordRow, WriteMode};
use crate::{CallPricer, ReadError, Scope, WriteError, WriteOutcome};

use super::read::read_session;
use super::write::{delete_session, write_rows};
use super::{SqliteStore, classify, payload, write_failed};

#[async_trait]
impl RowStore for SqliteStore {
    /// Stores rows on the writer thread (compressed payloads are made on the caller's).
    async fn write_rows(
        &self,
        mut rows: Vec<RecordRow>,
        mode: WriteMode,
    ) -> Result<WriteOutcome, WriteError> {
        // Blocks need a file: `sonde_payload()` reads them through a second connection,
        // which a database in memory cannot have.
        let blocks = self.path.is_some();
        // Compression is CPU work: on a Tokio runtime, off its async threads; under any
        // other executor (the tracer's sink thread), right here.
        let pack = move || {
            let packed = payload::pack(&mut rows, blocks);
            (rows, packed)
        };
        let (rows, packed) = match tokio::runtime::Handle::try_current() {
            Ok(runtime) => runtime
                .spawn_blocking(pack)
                .await
                .map_err(|_| WriteError::Closed)?,
            Err(_) => pack(),
        };
        Self::run(&self.writer, move |conn| {
            write_rows(conn, rows, packed, mode).map_err(write_failed)
        })
        .await
    }

    async fn session(&self, id: &str, scope: &Scope) -> Result<Option<SessionTrace>, ReadError> {
        let (session_id, scope) = (id.to_owned(), scope.clone());
        Self::run(&self.readers, move |conn| {
            read_session(conn, &session_id, &scope)
        })
        .await
    }

    fn pricer(&self) -> Option<&CallPricer> {
        self.pricer.as_ref()
    }

    async fn remove_session(&self, session_id: &str, scope: &Scope) -> Result<bool, ReadError> {
        let (session_id, scope) = (session_id.to_owned(), scope.clone());
        Self::run(&self.writer, move |conn| {
            delete_session(conn, &session_id, &scope).map_err(|e| ReadError::Backend(classify(&e)))
        })
        .await
    }
}
