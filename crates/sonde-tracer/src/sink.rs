//! Sinks: where records go. JSONL files, stderr, several at once, or a store (the
//! [`TraceSink`] interface itself is the model's).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sonde_model::Record;
pub use sonde_model::{SinkError, TraceSink};
use sonde_store::{Enqueued, TraceStore, Writer};

/// Appends one JSON line per record to a file (creating it and its folders);
/// [`TraceSink::flush`] fsyncs.
///
/// ```
/// use sonde_model::*;
/// use sonde_tracer::{JsonlSink, TraceSink};
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("traces/run.jsonl");
/// let sink = JsonlSink::create(&path).unwrap();
/// sink.write(&[Record::new(Context::session("s"), Body::SessionStarted(SessionStarted::default()))]).unwrap();
/// sink.flush().unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 1);
/// ```
#[derive(Debug)]
pub struct JsonlSink {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl JsonlSink {
    /// Opens `path` for appending.
    ///
    /// ```
    /// let dir = tempfile::tempdir().unwrap();
    /// let sink = sonde_tracer::JsonlSink::create(dir.path().join("a.jsonl")).unwrap();
    /// assert!(sink.path().ends_with("a.jsonl"));
    /// ```
    pub fn create(path: impl AsRef<Path>) -> Result<Self, SinkError> {
        let path = path.as_ref().to_path_buf();
        let io = |cause| SinkError::Io {
            path: path.clone(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        Ok(Self {
            file: Mutex::new(BufWriter::with_capacity(256 * 1024, file)),
            path,
        })
    }

    /// The file written.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// let sink = sonde_tracer::JsonlSink::create(dir.path().join("b.jsonl")).unwrap();
    /// assert!(sink.path().is_absolute());
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, cause: std::io::Error) -> SinkError {
        SinkError::Io {
            path: self.path.clone(),
            cause,
        }
    }
}

/// Writes records as JSON lines to `out`.
fn write_lines(out: &mut impl Write, records: &[Record]) -> std::io::Result<()> {
    for record in records {
        serde_json::to_writer(&mut *out, record)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

impl TraceSink for JsonlSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        write_lines(&mut *file, records).map_err(|e| self.io(e))
    }

    fn flush(&self) -> Result<(), SinkError> {
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.flush().map_err(|e| self.io(e))?;
        file.get_ref().sync_data().map_err(|e| self.io(e))
    }
}

/// Writes each record as one JSON line to stderr — handy while debugging.
///
/// ```
/// use sonde_tracer::{StderrSink, TraceSink};
/// StderrSink.write(&[]).unwrap();
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct StderrSink;

impl TraceSink for StderrSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let stderr = std::io::stderr();
        write_lines(&mut stderr.lock(), records).map_err(|cause| SinkError::Io {
            path: PathBuf::from("<stderr>"),
            cause,
        })
    }
}

/// Sends every batch to several sinks in order. A failing sink does not stop the ones
/// after it; the first error is returned.
///
/// ```
/// use std::sync::Arc;
/// use sonde_tracer::{StderrSink, TeeSink, TraceSink};
/// let tee = TeeSink::new(vec![Arc::new(StderrSink), Arc::new(StderrSink)]);
/// tee.write(&[]).unwrap();
/// ```
pub struct TeeSink {
    sinks: Vec<Arc<dyn TraceSink>>,
}

impl TeeSink {
    /// Fans out to `sinks`, in this order.
    ///
    /// ```
    /// let tee = sonde_tracer::TeeSink::new(vec![]);
    /// # use sonde_tracer::TraceSink;
    /// tee.flush().unwrap();
    /// ```
    pub fn new(sinks: Vec<Arc<dyn TraceSink>>) -> Self {
        Self { sinks }
    }

    fn each(&self, f: impl Fn(&dyn TraceSink) -> Result<(), SinkError>) -> Result<(), SinkError> {
        let mut first = None;
        for sink in &self.sinks {
            if let Err(e) = f(sink.as_ref()) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl TraceSink for TeeSink {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        self.each(|s| s.write(records))
    }

    fn flush(&self) -> Result<(), SinkError> {
        self.each(|s| s.flush())
    }
}

/// Writes records into a [`TraceStore`], one transaction per batch.
///
/// `write` blocks until the store answers: call it from a thread that may block (the
/// tracer's worker does).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use sonde_model::*;
/// use sonde_tracer::{StoreSink, TraceSink};
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
    /// let _sink = sonde_tracer::StoreSink::new(store);
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
/// let _sink = sonde_tracer::WriterSink::new(writer)?;
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
