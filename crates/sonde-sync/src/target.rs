//! Where synced records go: a Sonde store, an OTLP/HTTP endpoint, Langfuse, or record
//! JSONL on a stream — and where each keeps its sync cursors.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use sonde_model::Record;
use sonde_model::TraceSink;
use sonde_store::{SyncCursor, TraceStore};

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

    /// The stored cursor positions of `source`, by file path.
    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError>;

    /// The parser state stored with one file's cursor.
    fn load_state(&mut self, source: &str, path: &str) -> Result<Option<String>, SyncError>;

    /// Sends new records and replacements of records sent before.
    fn send(&mut self, records: Vec<Record>, replacements: Vec<Record>) -> Result<(), SyncError>;

    /// Returns once everything sent is stored (or delivered).
    fn flush(&mut self) -> Result<(), SyncError>;

    /// Saves cursors of `source` (after [`SyncTarget::flush`]).
    fn save_cursors(&mut self, source: &str, cursors: Vec<SyncCursor>) -> Result<(), SyncError>;
}

/// Threads that turn batches into rows and hand them to the store, so that one
/// batch is prepared while the store writes another. Order between them does not
/// matter: a write keeps what is stored and a replacement replaces it, so a
/// replacement overtaking the first version of its record ends the same.
const STORE_WORKERS: usize = 2;

/// Batches sent and not yet stored, and the first failure.
#[derive(Default)]
struct InFlight {
    batches: usize,
    failure: Option<String>,
}

type Shared = Arc<(Mutex<InFlight>, Condvar)>;

/// A batch for the store: new records, and replacements.
type Batch = (Vec<Record>, Vec<Record>);

/// A Sonde store: records are written by threads of their own while the syncer reads
/// on; replacements replace; cursors are kept in the store itself.
pub struct StoreTarget {
    store: Arc<dyn TraceStore>,
    handle: tokio::runtime::Handle,
    jobs: Option<SyncSender<Batch>>,
    workers: Vec<JoinHandle<()>>,
    shared: Shared,
}

impl StoreTarget {
    /// A target writing into `store`, driving its futures on `handle`'s runtime. Call
    /// it from a thread outside that runtime (for instance in `spawn_blocking`).
    pub fn new(store: Arc<dyn TraceStore>, handle: tokio::runtime::Handle) -> Self {
        let (jobs, receiver) = sync_channel(STORE_QUEUE_BATCHES);
        let receiver = Arc::new(Mutex::new(receiver));
        let shared: Shared = Arc::default();
        let workers: Vec<JoinHandle<()>> = (0..STORE_WORKERS)
            .filter_map(|i| {
                let (store, handle, receiver, shared) = (
                    store.clone(),
                    handle.clone(),
                    receiver.clone(),
                    shared.clone(),
                );
                std::thread::Builder::new()
                    .name(format!("sonde-sync-store-{i}"))
                    .spawn(move || store_worker(store, handle, receiver, shared))
                    .ok()
            })
            .collect();
        Self {
            store,
            handle,
            jobs: (!workers.is_empty()).then_some(jobs),
            workers,
            shared,
        }
    }

    fn check(&self) -> Result<(), SyncError> {
        let failure = self.shared.0.lock().map_or_else(
            |_| Some("store writer panicked".into()),
            |f| f.failure.clone(),
        );
        match failure {
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
    jobs: Arc<Mutex<Receiver<Batch>>>,
    shared: Shared,
) {
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok((records, replacements)) = job else {
            return;
        };
        let failed = shared.0.lock().map(|f| f.failure.is_some()).unwrap_or(true);
        let result = if failed {
            Ok(())
        } else {
            handle.block_on(async {
                store.write(&records).await?;
                store.replace(&replacements).await.map(|_| ())
            })
        };
        if let Ok(mut in_flight) = shared.0.lock() {
            in_flight.batches = in_flight.batches.saturating_sub(1);
            if let Err(e) = result {
                in_flight.failure.get_or_insert(e.to_string());
            }
        }
        shared.1.notify_all();
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

    fn load_state(&mut self, source: &str, path: &str) -> Result<Option<String>, SyncError> {
        self.handle
            .block_on(self.store.sync_state(source, path))
            .map_err(|e| SyncError::Target {
                target: self.describe(),
                reason: e.to_string(),
            })
    }

    fn send(&mut self, records: Vec<Record>, replacements: Vec<Record>) -> Result<(), SyncError> {
        self.check()?;
        let jobs = self.jobs.as_ref().ok_or_else(|| self.closed())?;
        if let Ok(mut in_flight) = self.shared.0.lock() {
            in_flight.batches += 1;
        }
        jobs.send((records, replacements))
            .map_err(|_| self.closed())
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        let (lock, done) = &*self.shared;
        let mut in_flight = lock.lock().map_err(|_| self.closed())?;
        while in_flight.batches > 0 {
            in_flight = done.wait(in_flight).map_err(|_| self.closed())?;
        }
        drop(in_flight);
        self.check()
    }

    fn save_cursors(&mut self, source: &str, cursors: Vec<SyncCursor>) -> Result<(), SyncError> {
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
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

/// Cursors in a JSON file, for targets that cannot keep them:
/// `{source: {path: [position, state]}}`, replaced atomically (write, fsync, rename).
#[derive(Debug, Clone)]
pub struct CursorFile {
    path: PathBuf,
    cache: Option<CursorMap>,
}

type CursorMap = BTreeMap<String, BTreeMap<String, (String, String)>>;

impl CursorFile {
    /// Cursors kept in `path` (created on first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            cache: None,
        }
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

    fn all(&mut self) -> Result<&mut CursorMap, SyncError> {
        if self.cache.is_none() {
            let map = match std::fs::read(&self.path) {
                Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| self.error(e))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => CursorMap::new(),
                Err(e) => return Err(self.error(e)),
            };
            self.cache = Some(map);
        }
        Ok(self.cache.get_or_insert_default())
    }

    /// The cursor positions of `source`, by path.
    pub fn load(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        Ok(self
            .all()?
            .get(source)
            .map(|m| {
                m.iter()
                    .map(|(p, (pos, _))| (p.clone(), pos.clone()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The state stored with one cursor.
    pub fn state(&mut self, source: &str, path: &str) -> Result<Option<String>, SyncError> {
        Ok(self
            .all()?
            .get(source)
            .and_then(|m| m.get(path))
            .map(|(_, state)| state.clone()))
    }

    /// Saves cursors of `source`, keeping the others.
    pub fn save(&mut self, source: &str, cursors: Vec<SyncCursor>) -> Result<(), SyncError> {
        let all = self.all()?;
        let entries = all.entry(source.to_owned()).or_default();
        for c in cursors {
            entries.insert(c.path, (c.position, c.state));
        }
        let bytes = serde_json::to_vec(&*all).map_err(|e| self.error(e))?;
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| self.error(e))?;
        }
        let tmp = self.path.with_extension("tmp");
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

    /// Langfuse's ingestion API (see [`LangfuseSink`](crate::LangfuseSink)).
    pub fn langfuse(config: crate::LangfuseConfig, cursors: CursorFile) -> Result<Self, SyncError> {
        let name = format!("langfuse {}", config.host);
        let sink = crate::LangfuseSink::new(config).map_err(|e| SyncError::Target {
            target: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Self::new(name, Box::new(sink), cursors))
    }
}

impl SyncTarget for SinkTarget {
    fn describe(&self) -> String {
        self.name.clone()
    }

    fn load_cursors(&mut self, source: &str) -> Result<BTreeMap<String, String>, SyncError> {
        self.cursors.load(source)
    }

    fn load_state(&mut self, source: &str, path: &str) -> Result<Option<String>, SyncError> {
        self.cursors.state(source, path)
    }

    fn send(
        &mut self,
        mut records: Vec<Record>,
        replacements: Vec<Record>,
    ) -> Result<(), SyncError> {
        records.extend(replacements);
        self.sink.write(&records).map_err(|cause| SyncError::Sink {
            target: self.name.clone(),
            cause,
        })
    }

    fn flush(&mut self) -> Result<(), SyncError> {
        self.sink.flush().map_err(|cause| SyncError::Sink {
            target: self.name.clone(),
            cause,
        })
    }

    fn save_cursors(&mut self, source: &str, cursors: Vec<SyncCursor>) -> Result<(), SyncError> {
        self.cursors.save(source, cursors)
    }
}

/// Record JSONL on standard output, one line per record.
struct StdoutSink;

impl TraceSink for StdoutSink {
    fn write(&self, records: &[Record]) -> Result<(), sonde_model::SinkError> {
        let mut out = std::io::stdout().lock();
        for record in records {
            out.write_all(record.to_json_line().as_bytes())
                .and_then(|()| out.write_all(b"\n"))
                .map_err(|e| sonde_model::SinkError::Io {
                    path: "stdout".into(),
                    cause: e,
                })?;
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), sonde_model::SinkError> {
        std::io::stdout()
            .flush()
            .map_err(|e| sonde_model::SinkError::Io {
                path: "stdout".into(),
                cause: e,
            })
    }
}
