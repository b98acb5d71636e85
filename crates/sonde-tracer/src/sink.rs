//! Sinks: where records go. JSONL files, stderr, or several at once (the
//! [`TraceSink`] interface itself is the model's; the store's sinks are the store's:
//! `sonde_store::StoreSink` and `sonde_store::WriterSink`).

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sonde_model::Record;
pub use sonde_model::{SinkError, TraceSink};

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

/// Sends every batch to several sinks in order. By default a failing sink does not stop
/// the ones after it (independent destinations: a closed stderr must not cost the run
/// its file), and the first error is returned once every sink has had the batch. With
/// [`TeeSink::stop_at_first_error`], the first failing sink stops the batch there (lash's
/// original tee: when a later sink depends on an earlier one having the records).
///
/// ```
/// use std::sync::Arc;
/// use sonde_tracer::{StderrSink, TeeSink, TraceSink};
/// let tee = TeeSink::new(vec![Arc::new(StderrSink), Arc::new(StderrSink)]);
/// tee.write(&[]).unwrap();
/// ```
pub struct TeeSink {
    sinks: Vec<Arc<dyn TraceSink>>,
    stop_at_first_error: bool,
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
        Self {
            sinks,
            stop_at_first_error: false,
        }
    }

    /// The same tee, stopping a write or flush at the first sink that fails (the
    /// sinks after it do not get that batch) and returning its error.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use sonde_tracer::{StderrSink, TeeSink, TraceSink};
    /// let tee = TeeSink::new(vec![Arc::new(StderrSink)]).stop_at_first_error();
    /// assert!(tee.stops_at_first_error());
    /// ```
    pub fn stop_at_first_error(mut self) -> Self {
        self.stop_at_first_error = true;
        self
    }

    /// Whether a failing sink stops the batch there.
    ///
    /// ```
    /// assert!(!sonde_tracer::TeeSink::new(vec![]).stops_at_first_error());
    /// ```
    pub fn stops_at_first_error(&self) -> bool {
        self.stop_at_first_error
    }

    fn each(&self, f: impl Fn(&dyn TraceSink) -> Result<(), SinkError>) -> Result<(), SinkError> {
        let mut first = None;
        for sink in &self.sinks {
            if let Err(e) = f(sink.as_ref()) {
                if self.stop_at_first_error {
                    return Err(e);
                }
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
