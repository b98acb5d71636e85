//! The store as a sink: records handed to a [`TraceSink`] (the model's interface that
//! tracers and syncs write to) land in a [`TraceStore`], directly or through a
//! [`Writer`].

use std::sync::Arc;

use sonde_model::{Record, SinkError, TraceSink};

use crate::{Enqueued, TraceStore, Writer};

/// Writes records into a [`TraceStore`], one transaction per batch.
///
/// `write` blocks until the store answers: call it from a thread that may block (the
/// tracer's worker does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sonde_model::*;
/// use sonde_store::StoreSink;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await.unwrap();
/// let sink = StoreSink::new(store.clone());
/// let r = Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()));
/// tokio::task::spawn_blocking(move || sink.write(&[r])).await.unwrap().unwrap();
/// assert!(store.get_session("s", &sonde_store::Scope::All).await.unwrap().is_some());
/// # }
/// ```
pub struct StoreSink {
    store: Arc<dyn TraceStore>,
}

impl StoreSink {
    /// A sink into `store`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = sonde_store::StoreUrl::SqliteMemory.open().await.unwrap();
    /// let _sink = sonde_store::StoreSink::new(store);
    /// # }
    /// ```
    pub fn new(store: Arc<dyn TraceStore>) -> Self {
        Self { store }
    }
}

impl TraceSink for StoreSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        futures_executor::block_on(self.store.write(records))
            .map_err(|e| SinkError::Store(Box::new(e)))?;
        Ok(())
    }
}

/// Hands records to a [`Writer`]: batched, retried, and spooled to disk when the store
/// cannot take them, so that recording loses nothing the spool can hold.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// let dir = tempfile::tempdir()?;
/// let store = sonde_store::StoreUrl::SqliteMemory.open().await?;
/// let writer = Arc::new(sonde_store::Writer::start(store, sonde_store::WriterConfig {
///     spool_dir: Some(dir.path().join("spool")),
///     ..Default::default()
/// })?);
/// let _sink = sonde_store::WriterSink::new(writer)?;
/// # Ok(()) }
/// ```
pub struct WriterSink {
    writer: Arc<Writer>,
    runtime: tokio::runtime::Handle,
}

impl WriterSink {
    /// A sink into `writer`; must be made inside the Tokio runtime the writer runs on.
    pub fn new(writer: Arc<Writer>) -> Result<Self, std::io::Error> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
            std::io::Error::other("a writer sink must be made inside a tokio runtime")
        })?;
        Ok(Self { writer, runtime })
    }
}

impl TraceSink for WriterSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        match self.writer.enqueue(records.to_vec()) {
            Enqueued::Dropped => Err(SinkError::Dropped {
                records: records.len(),
            }),
            Enqueued::Queued | Enqueued::Spooled => Ok(()),
        }
    }

    /// Waits until everything handed over is written or spooled.
    fn flush(&self) -> Result<(), SinkError> {
        self.runtime.block_on(self.writer.flush());
        Ok(())
    }
}
