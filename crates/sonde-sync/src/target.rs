//! Where synced records go: any [`SyncTarget`] — a sink that keeps cursors. Here: the
//! interface, [`SinkTarget`] (any [`TraceSink`] with cursors in a [`CursorFile`]) and
//! record JSONL on standard output; the store's target is `StoreTarget` (feature
//! `store`); OTLP and Langfuse are sinks of their own crates, wrapped in a
//! [`SinkTarget`].

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use sonde_model::{Record, SyncCursor, TraceSink};

use crate::SyncError;

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

    /// Whether a record sent again replaces the copy sent before (a store, JSONL whose
    /// reader keeps an id's last line, Langfuse's upserts). A target that cannot (an
    /// OTLP backend keeps the first span of an id) is sent final records only: each
    /// once, when complete, or when its file has been quiet for
    /// [`SyncOptions::quiet_period`](crate::SyncOptions::quiet_period).
    fn replaces(&self) -> bool {
        true
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

/// A target that delivers through a [`TraceSink`] (JSONL on a stream, OTLP/HTTP,
/// Langfuse) and
/// keeps cursors in a [`CursorFile`]. Replacements are delivered again with the same
/// record id (a reader keeps the last line of an id; span ids repeat).
pub struct SinkTarget {
    name: String,
    sink: Box<dyn TraceSink>,
    cursors: CursorFile,
    replaces: bool,
}

impl SinkTarget {
    /// Delivers through `sink`, described as `name`, with cursors in `cursors`.
    pub fn new(name: impl Into<String>, sink: Box<dyn TraceSink>, cursors: CursorFile) -> Self {
        Self {
            name: name.into(),
            sink,
            cursors,
            replaces: true,
        }
    }

    /// The same target, sent final records only: for a sink whose receiver keeps the
    /// first copy of a record and drops later ones (OTLP backends).
    pub fn final_only(mut self) -> Self {
        self.replaces = false;
        self
    }

    /// Record JSONL on standard output.
    pub fn stdout(cursors: CursorFile) -> Self {
        Self::new("stdout", Box::new(StdoutSink), cursors)
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

    fn replaces(&self) -> bool {
        self.replaces
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
