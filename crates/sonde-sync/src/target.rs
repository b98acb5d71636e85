//! Where synced records go: a Sonde store, an OTLP/HTTP endpoint, Langfuse, or record
//! JSONL on a stream — and where each keeps its sync cursors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sonde_model::Record;
use sonde_store::TraceStore;
use sonde_tracer::TraceSink;

use crate::SyncError;

/// Batches a store target lets wait while it writes one (parsing goes on meanwhile).
const STORE_QUEUE_BATCHES: usize = 2;

/// A destination for synced records.
///
/// The syncer sends batches, then flushes, then saves the cursors that say how far it
/// read: a cursor is saved only after what it covers is stored, so a crash costs a
/// re-read (de-duplicated by record id), never a lost record.
pub trait SyncTarget: Send {
    /// A short description for the summary (`sqlite:/path`, `langfuse https://…`).
    fn describe(&self) -> String;

    /// The stored cursors of `source`, by file path.
    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError>;

    /// Sends new records and replacements of records sent before.
    fn send(&mut self, records: Vec<Record>, replacements: Vec<Record>) -> Result<(), SyncError>;

    /// Returns once everything sent is stored (or delivered).
    fn flush(&mut self) -> Result<(), SyncError>;

    /// Saves cursors of `source` (after [`SyncTarget::flush`]).
    fn save_cursors(
        &mut self,
        source: &str,
        cursors: Vec<(String, String)>,
    ) -> Result<(), SyncError>;
}

enum Job {
    Write(Vec<Record>, Vec<Record>),
    Flush(SyncSender<()>),
}

/// A Sonde store: records are written on a thread of their own while the syncer reads
/// on; replacements replace; cursors are kept in the store itself.
pub struct StoreTarget {
    store: Arc<dyn TraceStore>,
    handle: tokio::runtime::Handle,
    jobs: Option<SyncSender<Job>>,
    worker: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl StoreTarget {
    /// A target writing into `store`, driving its futures on `handle`'s runtime. Call
    /// it from a thread outside that runtime (for instance in `spawn_blocking`).
    pub fn new(store: Arc<dyn TraceStore>, handle: tokio::runtime::Handle) -> Self {
        let (jobs, receiver) = sync_channel(STORE_QUEUE_BATCHES);
        let failure = Arc::new(Mutex::new(None));
        let worker = {
            let (store, handle, failure) = (store.clone(), handle.clone(), failure.clone());
            std::thread::Builder::new()
                .name("sonde-sync-store".into())
                .spawn(move || store_worker(store, handle, receiver, failure))
                .ok()
        };
        Self {
            store,
            handle,
            jobs: worker.is_some().then_some(jobs),
            worker,
            failure,
        }
    }

    fn check(&self) -> Result<(), SyncError> {
        match self.failure.lock().ok().and_then(|f| f.clone()) {
            Some(reason) => Err(SyncError::Target {
                target: self.describe(),
                reason,
            }),
            None => Ok(()),
        }
    }

    fn closed(&self) -> SyncError {
        SyncError::Target {
            target: self.describe(),
            reason: "store writer stopped".into(),
        }
    }
}

fn store_worker(
    store: Arc<dyn TraceStore>,
    handle: tokio::runtime::Handle,
    jobs: Receiver<Job>,
    failure: Arc<Mutex<Option<String>>>,
) {
    for job in jobs {
        match job {
            Job::Write(records, replacements) => {
                let failed = failure.lock().map(|f| f.is_some()).unwrap_or(true);
                if failed {
                    continue;
                }
                let result = handle.block_on(async {
                    store.write(&records).await?;
                    store.replace(&replacements).await
                });
                if let Err(e) = result
                    && let Ok(mut f) = failure.lock()
                {
                    *f = Some(e.to_string());
                }
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl SyncTarget for StoreTarget {
    fn describe(&self) -> String {
        format!("store ({})", self.store.backend())
    }

    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        self.handle
            .block_on(self.store.sync_cursors(source))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }

    fn send(&mut self, records: Vec<Record>, replacements: Vec<Record>) -> Result<(), SyncError> {
        self.check()?;
        let jobs = self.jobs.as_ref().ok_or_else(|| self.closed())?;
        jobs.send(Job::Write(records, replacements))
            .map_err(|_| self.closed())
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        let jobs = self.jobs.as_ref().ok_or_else(|| self.closed())?;
        let (done, wait) = sync_channel(1);
        jobs.send(Job::Flush(done)).map_err(|_| self.closed())?;
        wait.recv().map_err(|_| self.closed())?;
        self.check()
    }

    fn save_cursors(
        &mut self,
        source: &str,
        cursors: Vec<(String, String)>,
    ) -> Result<(), SyncError> {
        self.handle
            .block_on(self.store.save_sync_cursors(source, &cursors))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }
}

impl Drop for StoreTarget {
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// Cursors in a JSON file, for targets that cannot keep them: `{source: {path: cursor}}`,
/// replaced atomically (write, fsync, rename).
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
}

type CursorMap = BTreeMap<String, BTreeMap<String, String>>;

impl CursorFile {
    /// Cursors kept in `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, reason: impl ToString) -> SyncError {
        SyncError::State {
            path: self.path.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn read_all(&self) -> Result<CursorMap, SyncError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(e)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CursorMap::new()),
            Err(e) => Err(self.error(e)),
        }
    }

    /// The cursors of `source`.
    pub fn load(&self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        Ok(self.read_all()?.remove(source).unwrap_or_default())
    }

    /// Saves cursors of `source`, keeping the others.
    pub fn save(&self, source: &str, cursors: Vec<(String, String)>) -> Result<(), SyncError> {
        let mut all = self.read_all()?;
        all.entry(source.to_owned()).or_default().extend(cursors);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(&all).map_err(|e| self.error(e))?;
        let mut file = std::fs::File::create(&tmp).map_err(|e| self.error(e))?;
        file.write_all(&bytes).map_err(|e| self.error(e))?;
        file.sync_all().map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error(e))
    }
}

/// A target that delivers through a [`TraceSink`] (JSONL on a stream, OTLP/HTTP) and
/// keeps cursors in a [`CursorFile`]. Replacements are delivered again with the same
/// record id (a reader keeps the last line of an id; span ids repeat).
pub struct SinkTarget {
    name: String,
    sink: Box<dyn TraceSink>,
    cursors: CursorFile,
}

impl SinkTarget {
    /// Delivers through `sink`, described as `name`, with cursors in `cursors`.
    pub fn new(name: impl Into<String>, sink: Box<dyn TraceSink>, cursors: CursorFile) -> Self {
        Self {
            name: name.into(),
            sink,
            cursors,
        }
    }

    /// Record JSONL on standard output.
    pub fn stdout(cursors: CursorFile) -> Self {
        Self::new("stdout", Box::new(StdoutSink), cursors)
    }

    /// OTLP/HTTP protobuf to `endpoint` (`http://host:4318`).
    pub fn otlp(endpoint: &str, cursors: CursorFile) -> Result<Self, SyncError> {
        let sink = sonde_otlp::OtlpSink::new(endpoint).map_err(|e| SyncError::Target {
            target: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(
            format!("otlp {endpoint}"),
            Box::new(sink),
            cursors,
        ))
    }
}

impl SyncTarget for SinkTarget {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        self.cursors.load(source)
    }

    fn send(
        &mut self,
        mut records: Vec<Record>,
        replacements: Vec<Record>,
    ) -> Result<(), SyncError> {
        records.extend(replacements);
        self.sink.write(&records).map_err(|e| SyncError::Target {
            target: self.name.clone(),
            reason: e.to_string(),
        })
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        self.sink.flush().map_err(|e| SyncError::Target {
            target: self.name.clone(),
            reason: e.to_string(),
        })
    }

    fn save_cursors(
        &mut self,
        source: &str,
        cursors: Vec<(String, String)>,
    ) -> Result<(), SyncError> {
        self.cursors.save(source, cursors)
    }
}

/// Record JSONL on standard output, one line per record.
struct StdoutSink;

impl TraceSink for StdoutSink {
    fn write(&self, records: &[Record]) -> Result<(), sonde_tracer::SinkError> {
        let mut out = std::io::stdout().lock();
        for record in records {
            out.write_all(record.to_json_line().as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| sonde_tracer::SinkError::Io {
                    path: "stdout".into(),
                    source: e,
                })?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), sonde_tracer::SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| sonde_tracer::SinkError::Io {
                path: "stdout".into(),
                source: e,
            })
    }
}
