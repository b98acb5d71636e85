//! Seed 000's tracer over a store: a tracer built on a store (or a store's writer)
//! writes into it and reads it back — `get_session`, `delete_session`, `query`. Only
//! with the `store` feature (on by default); without it the tracer depends on the
//! record model alone and writes to sinks.

use std::sync::Arc;

use serde_json::Value;
use sonde_model::SessionTrace;
use sonde_store::{QueryResult, ReadError, Scope, TraceStore};

use crate::{HookManager, SessionTracer, SinkError, TracerBuilder};

/// Why reading through the tracer failed.
///
/// ```
/// assert!(sonde_tracer::LookupError::NoStore.to_string().contains("no store"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LookupError {
    /// The tracer writes to sinks only; there is no store to read from.
    #[error("this tracer has no store to read from")]
    NoStore,
    /// Pending records could not be written before reading.
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// The store failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The query was refused or failed.
    #[error(transparent)]
    Query(#[from] sonde_store::QueryError),
}

impl TracerBuilder {
    /// Records go to `store`, and `get_session`, `delete_session` and `query` read it.
    pub fn store(mut self, store: Arc<dyn TraceStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Records go to the store through `writer` — batched, retried, and spooled when
    /// the store cannot take them — and reads go to the writer's store. Must be called
    /// inside the Tokio runtime the writer runs on.
    pub fn writer(mut self, writer: Arc<sonde_store::Writer>) -> Self {
        self.store = Some(writer.store().clone());
        self.writer = Some(writer);
        self
    }
}

impl SessionTracer {
    /// A tracer that writes into `storage` (and reads from it).
    pub fn new(storage: Arc<dyn TraceStore>) -> Result<Self, std::io::Error> {
        Self::builder().store(storage).build()
    }

    /// A tracer that writes into `storage`, with these hooks.
    pub fn with_hooks(
        storage: Arc<dyn TraceStore>,
        hooks: HookManager,
    ) -> Result<Self, std::io::Error> {
        Self::builder().store(storage).hooks(hooks).build()
    }

    fn store(&self) -> Result<&Arc<dyn TraceStore>, LookupError> {
        self.core.store.as_ref().ok_or(LookupError::NoStore)
    }

    /// The whole session from the store (after writing what is pending).
    pub async fn get_session(&self, session_id: &str) -> Result<Option<SessionTrace>, LookupError> {
        let store = self.store()?;
        self.core.worker.flush().await?;
        Ok(store.get_session(session_id, &self.scope()).await?)
    }

    /// Deletes a session from the store; false if it did not exist.
    pub async fn delete_session(&self, session_id: &str) -> Result<bool, LookupError> {
        let store = self.store()?;
        self.core.worker.flush().await?;
        Ok(store.delete_session(session_id, &self.scope()).await?)
    }

    /// Runs read-only SQL on the store; rows as JSON objects.
    pub async fn query(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<serde_json::Map<String, Value>>, LookupError> {
        Ok(self.query_table(sql, params).await?.to_objects())
    }

    /// Runs read-only SQL on the store; rows with their columns in order.
    pub async fn query_table(
        &self,
        sql: &str,
        params: &[Value],
    ) -> Result<QueryResult, LookupError> {
        let store = self.store()?;
        self.core.worker.flush().await?;
        Ok(store.query(sql, params).await?)
    }

    fn scope(&self) -> Scope {
        match &self.core.tenant {
            Some((org, workspace)) => Scope::tenant(org.clone(), workspace.clone()),
            None => Scope::All,
        }
    }
}
