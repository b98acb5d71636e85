//! Transcript sync: the session logs that Claude Code and the Codex CLI write become
//! Sonde traces — sessions, turns, one LLM call per API response with its tokens and
//! cost, tool calls paired with their results, subagents nested under the call that
//! spawned them — shipped incrementally to a store, an OTLP endpoint, Langfuse, or
//! record JSONL.
//!
//! Each file's cursor (size, mtime, inode, the offset after the last complete line,
//! and the parser's state) is kept in the target, so a run reads only what was
//! appended since the last one, and a run over unchanged files opens none of them.
//! Record ids are derived from the sources' own ids, so syncing the same data twice,
//! or from two machines, stores each record once.
//!
//! ```no_run
//! # fn demo(store: std::sync::Arc<dyn sonde_store::TraceStore>, handle: tokio::runtime::Handle) -> Result<(), sonde_sync::SyncError> {
//! use sonde_sync::{Source, StoreTarget, SyncOptions, Syncer};
//! let mut target = StoreTarget::new(store, handle);
//! let roots = Source::Claude.default_roots();
//! let result = Syncer::new(&mut target, SyncOptions::default()).run(Source::Claude, &roots)?;
//! println!("{} spans from {} files", result.spans_synced, result.files_updated);
//! # Ok(()) }
//! ```

mod claude;
mod codex;
mod emit;
mod langfuse;
mod target;
mod watch;

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use claude::{ClaudeFile, ClaudeState};
pub use codex::{CodexFile, CodexState};
pub use emit::{Emitted, MAX_ERROR_MESSAGES};
pub use langfuse::{LangfuseConfig, LangfuseSink, MAX_BATCH_BYTES, ingestion_events};
pub use target::{CursorFile, SinkTarget, StoreTarget, SyncTarget};
pub use watch::{POLL_INTERVAL, watch};

/// Records sent to the target at a time.
pub const RECORD_BATCH: usize = 2048;
/// Files whose cursors are saved together (after a flush).
pub const CURSOR_BATCH: usize = 1024;
/// Bytes read from a file at a time.
const READ_CHUNK: usize = 1 << 20;

/// What can go wrong in a sync.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A transcript file or folder could not be read.
    #[error("cannot read {path}: {cause}")]
    Read {
        /// The file or folder.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// A sink target (JSONL on stdout, OTLP, Langfuse) could not deliver.
    #[error("{target}: {cause}")]
    Sink {
        /// Which target.
        target: String,
        /// Why (a closed standard output is an I/O error of kind `BrokenPipe`: see
        /// [`SyncError::is_closed_pipe`]).
        cause: sonde_model::SinkError,
    },
    /// The target refused or failed.
    #[error("{target}: {reason}")]
    Target {
        /// Which target.
        target: String,
        /// Why.
        reason: String,
    },
    /// A state file could not be read or written.
    #[error("sync state {path}: {reason}")]
    State {
        /// The state file.
        path: String,
        /// Why.
        reason: String,
    },
}

impl SyncError {
    /// Whether the target was standard output and its reader has gone (`sonde sync
    /// --to - | head`): a reason to stop quietly, not a failure to report.
    ///
    /// ```
    /// use sonde_sync::SyncError;
    /// let closed = SyncError::Sink {
    ///     target: "stdout".into(),
    ///     cause: sonde_model::SinkError::Io {
    ///         path: "stdout".into(),
    ///         cause: std::io::ErrorKind::BrokenPipe.into(),
    ///     },
    /// };
    /// assert!(closed.is_closed_pipe());
    /// ```
    pub fn is_closed_pipe(&self) -> bool {
        matches!(
            self,
            SyncError::Sink {
                cause: sonde_model::SinkError::Io { cause, .. },
                ..
            } if cause.kind() == std::io::ErrorKind::BrokenPipe
        )
    }
}

/// An agent CLI whose logs Sonde reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Claude Code: `~/.claude/projects/<project>/<session>.jsonl`.
    Claude,
    /// Codex CLI: `~/.codex/sessions/**/rollout-*.jsonl` (every `.jsonl` under it).
    Codex,
}

impl Source {
    /// `claude` or `codex`: the name cursors are kept under.
    ///
    /// ```
    /// assert_eq!(sonde_sync::Source::Codex.name(), "codex");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Source::Claude => "claude",
            Source::Codex => "codex",
        }
    }

    /// Where the CLI keeps its logs: `$CLAUDE_CONFIG_DIR/projects` (a comma-separated
    /// list is allowed) or `~/.claude/projects` and `~/.config/claude/projects`;
    /// `$CODEX_HOME/sessions` or `~/.codex/sessions`.
    ///
    /// ```
    /// assert!(!sonde_sync::Source::Claude.default_roots().is_empty());
    /// ```
    pub fn default_roots(self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        match self {
            Source::Claude => match std::env::var("CLAUDE_CONFIG_DIR") {
                Ok(dirs) if !dirs.trim().is_empty() => dirs
                    .split(',')
                    .map(|d| PathBuf::from(d.trim()).join("projects"))
                    .collect(),
                _ => vec![
                    home.join(".claude/projects"),
                    home.join(".config/claude/projects"),
                ],
            },
            Source::Codex => match std::env::var("CODEX_HOME") {
                Ok(dir) if !dir.trim().is_empty() => vec![PathBuf::from(dir).join("sessions")],
                _ => vec![home.join(".codex/sessions")],
            },
        }
    }
}

/// One transcript file and what its place says about it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its path under the folder synced, as records name it in `source_file`.
    pub source_path: String,
    claude: Option<ClaudeFile>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A file's path as records name it (`source_file`): under the folder synced (e.g.
/// `<project>/<session>.jsonl` under `~/.claude/projects`), so that the same files
/// give the same records wherever they are synced from.
fn source_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Where a Claude Code file sits: project, session and agent from its path.
fn claude_file(root: &Path, path: &Path) -> ClaudeFile {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name).to_owned();
    let components: Vec<String> = path
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let root_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (project, session_hint) = match components.iter().rposition(|c| c == "subagents") {
        // <project>/<session>/subagents/[workflows/<run>/]agent-<id>.jsonl
        Some(i) if i >= 2 => (components[i - 2].clone(), Some(components[i - 1].clone())),
        _ => (
            components.last().cloned().unwrap_or(root_name),
            is_uuid(&stem).then(|| stem.clone()),
        ),
    };
    let agent_hint = stem.strip_prefix("agent-").map(str::to_owned);
    ClaudeFile {
        name,
        path: source_path(root, path),
        project,
        session_hint: session_hint.filter(|s| is_uuid(s)),
        agent_hint,
        // Read when the file is parsed, not for every file of every run.
        agent_type: None,
    }
}

/// The transcript files of `source` under `root` (a file or a folder walked
/// recursively), sorted by path. A missing root is an error.
pub fn discover(source: Source, root: &Path) -> Result<Vec<SourceFile>, SyncError> {
    let read_error = |path: &Path, cause: std::io::Error| SyncError::Read {
        path: path.display().to_string(),
        cause,
    };
    let mut files = Vec::new();
    let meta = std::fs::metadata(root).map_err(|e| read_error(root, e))?;
    let mut dirs = Vec::new();
    if meta.is_dir() {
        dirs.push(root.to_path_buf());
    } else {
        files.push(root.to_path_buf());
    }
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).map_err(|e| read_error(&dir, e))? {
            let entry = entry.map_err(|e| read_error(&dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| read_error(&entry.path(), e))?;
            let path = entry.path();
            if kind.is_dir() {
                dirs.push(path);
            } else if kind.is_file() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if name.ends_with(".jsonl") {
                    files.push(path);
                }
            }
        }
    }
    // By bytes: cheaper than comparing path components, and the same order here (a
    // session's file before its folder of subagents).
    files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    let root_dir = if meta.is_dir() {
        root.to_path_buf()
    } else {
        root.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    Ok(files
        .into_iter()
        .map(|path| SourceFile {
            claude: (source == Source::Claude).then(|| claude_file(&root_dir, &path)),
            source_path: source_path(&root_dir, &path),
            path,
        })
        .collect())
}

/// How far a file has been read (the parser's state there is kept beside it).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Cursor {
    size: u64,
    mtime_ns: u64,
    inode: u64,
    offset: u64,
}

/// A file's size, modification time and inode.
fn identity(meta: &std::fs::Metadata) -> (u64, u64, u64) {
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (meta.len(), mtime_ns, inode)
}

/// How a sync run behaves.
#[derive(Debug, Clone, Default)]
pub struct SyncOptions {
    /// Read and count, but send nothing and save no cursor.
    pub dry_run: bool,
    /// Show a progress line on standard error when the run lasts over a second.
    pub progress: bool,
    /// Set (by a signal handler, say) to stop a run between two files: the files read
    /// so far are flushed to the target and their cursors saved, the result says
    /// `interrupted`, and [`watch`] returns.
    pub cancel: Arc<AtomicBool>,
}

/// What a sync run did (seed 003's `SyncResult`, with more counts).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncResult {
    /// `claude` or `codex`.
    pub source: String,
    /// Where the records went.
    pub target: String,
    /// Transcript files found.
    pub files_scanned: u64,
    /// Files that had new lines (or were read again from the start).
    pub files_updated: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Lines read.
    pub lines_read: u64,
    /// Records sent (each a span, message or lifecycle record), replacements included.
    pub spans_synced: u64,
    /// Of those, replacements of records an earlier run sent (a record still open,
    /// sent for the first time as a replacement, is not counted).
    pub spans_replaced: u64,
    /// Lines and fields skipped, by what they were.
    pub skipped: BTreeMap<String, u64>,
    /// Lines or files that could not be read.
    pub errors: u64,
    /// The first of those, as `file:line: reason`.
    pub error_messages: Vec<String>,
    /// Wall time, in milliseconds.
    pub duration_ms: u64,
    /// Whether nothing was sent.
    pub dry_run: bool,
    /// Whether the run was cancelled ([`SyncOptions::cancel`]) before it read every
    /// file; the files it read keep their cursors.
    pub interrupted: bool,
}

impl SyncResult {
    fn absorb(&mut self, out: &mut Emitted) {
        self.lines_read += out.lines;
        out.lines = 0;
        for (what, n) in std::mem::take(&mut out.skipped) {
            *self.skipped.entry(what).or_default() += n;
        }
        self.errors += out.error_count;
        out.error_count = 0;
        for message in out.errors.drain(..) {
            if self.error_messages.len() < MAX_ERROR_MESSAGES {
                self.error_messages.push(message);
            }
        }
    }

    /// Adds a later run over the same files (a watch's next round): the files are
    /// those it scanned, the counts and the time are summed.
    ///
    /// ```
    /// let mut total = sonde_sync::SyncResult { files_scanned: 3, files_updated: 3, spans_synced: 10, ..Default::default() };
    /// total.add(&sonde_sync::SyncResult { files_scanned: 4, files_updated: 1, spans_synced: 2, ..Default::default() });
    /// assert_eq!((total.files_scanned, total.files_updated, total.spans_synced), (4, 4, 12));
    /// ```
    pub fn add(&mut self, later: &SyncResult) {
        self.files_scanned = later.files_scanned;
        self.files_updated += later.files_updated;
        self.bytes_read += later.bytes_read;
        self.lines_read += later.lines_read;
        self.spans_synced += later.spans_synced;
        self.spans_replaced += later.spans_replaced;
        for (what, n) in &later.skipped {
            *self.skipped.entry(what.clone()).or_default() += n;
        }
        self.errors += later.errors;
        let room = MAX_ERROR_MESSAGES.saturating_sub(self.error_messages.len());
        self.error_messages
            .extend(later.error_messages.iter().take(room).cloned());
        self.duration_ms += later.duration_ms;
        self.interrupted |= later.interrupted;
    }

    fn note_error(&mut self, message: String) {
        self.errors += 1;
        if self.error_messages.len() < MAX_ERROR_MESSAGES {
            self.error_messages.push(message);
        }
    }
}

/// A file's parser, either kind.
enum Parser {
    Claude(ClaudeFile, Box<ClaudeState>),
    Codex(CodexFile, Box<CodexState>),
}

impl Parser {
    fn new(file: &SourceFile, state: Value) -> Self {
        match &file.claude {
            Some(info) => {
                let mut info = info.clone();
                if let Some(stem) = file.path.file_stem().filter(|_| info.agent_hint.is_some()) {
                    let meta = file
                        .path
                        .with_file_name(format!("{}.meta.json", stem.to_string_lossy()));
                    info.agent_type = std::fs::read(meta)
                        .ok()
                        .and_then(|m| claude::agent_type(&m));
                }
                Parser::Claude(
                    info,
                    Box::new(serde_json::from_value(state).unwrap_or_default()),
                )
            }
            None => Parser::Codex(
                CodexFile {
                    name: file
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: file.source_path.clone(),
                },
                Box::new(serde_json::from_value(state).unwrap_or_default()),
            ),
        }
    }

    fn line(&mut self, bytes: &[u8], out: &mut Emitted) {
        match self {
            Parser::Claude(file, state) => state.line(file, bytes, out),
            Parser::Codex(file, state) => state.line(file, bytes, out),
        }
    }

    fn end_of_run(&mut self, out: &mut Emitted) {
        match self {
            Parser::Claude(file, state) => state.end_of_run(file, out),
            Parser::Codex(file, state) => state.end_of_run(file, out),
        }
    }

    fn state(&self) -> Value {
        match self {
            Parser::Claude(_, state) => serde_json::to_value(state),
            Parser::Codex(_, state) => serde_json::to_value(state),
        }
        .unwrap_or(Value::Null)
    }
}

/// Runs syncs into one target.
pub struct Syncer<'a> {
    target: &'a mut dyn SyncTarget,
    options: SyncOptions,
}

impl<'a> Syncer<'a> {
    /// A syncer sending to `target`.
    pub fn new(target: &'a mut dyn SyncTarget, options: SyncOptions) -> Self {
        Self { target, options }
    }

    /// Whether [`SyncOptions::cancel`] is set.
    pub fn cancelled(&self) -> bool {
        self.options.cancel.load(Ordering::SeqCst)
    }

    fn send(&mut self, out: &mut Emitted, result: &mut SyncResult) -> Result<(), SyncError> {
        let (records, replacements) = out.take_records();
        result.spans_synced += (records.len() + replacements.len()) as u64;
        result.spans_replaced += std::mem::take(&mut out.updates);
        if self.options.dry_run || (records.is_empty() && replacements.is_empty()) {
            return Ok(());
        }
        self.target.send(records, replacements)
    }

    fn commit(
        &mut self,
        source: Source,
        out: &mut Emitted,
        result: &mut SyncResult,
        cursors: &mut Vec<sonde_store::SyncCursor>,
    ) -> Result<(), SyncError> {
        self.send(out, result)?;
        if self.options.dry_run || cursors.is_empty() {
            cursors.clear();
            return Ok(());
        }
        self.target.flush()?;
        self.target
            .save_cursors(source.name(), std::mem::take(cursors))
    }

    /// Syncs every transcript of `source` under `roots` (missing roots are skipped when
    /// they are the default ones, and an error otherwise). When cancelled, it stops
    /// before the next file, flushes what it read and saves those files' cursors.
    pub fn run(&mut self, source: Source, roots: &[PathBuf]) -> Result<SyncResult, SyncError> {
        let started = Instant::now();
        let mut result = SyncResult {
            source: source.name().into(),
            target: self.target.describe(),
            dry_run: self.options.dry_run,
            ..SyncResult::default()
        };
        let mut files = Vec::new();
        for root in roots {
            files.extend(discover(source, root)?);
        }
        let stored = self.target.load_cursors(source.name())?;
        let mut progress = watch::Progress::new(self.options.progress, files.len());
        let mut out = Emitted::default();
        let mut cursors = Vec::new();
        for file in &files {
            if self.cancelled() {
                result.interrupted = true;
                break;
            }
            result.files_scanned += 1;
            progress.tick(&result);
            let key = std::path::absolute(&file.path)
                .unwrap_or_else(|_| file.path.clone())
                .display()
                .to_string();
            let meta = match std::fs::metadata(&file.path) {
                Ok(meta) => meta,
                Err(e) => {
                    result.note_error(format!("{}: {e}", file.path.display()));
                    continue;
                }
            };
            let (size, mtime_ns, inode) = identity(&meta);
            let known: Option<Cursor> = stored.get(&key).and_then(|c| serde_json::from_str(c).ok());
            if known
                .as_ref()
                .is_some_and(|c| c.size == size && c.mtime_ns == mtime_ns && c.inode == inode)
            {
                continue;
            }
            let known_state = known.is_some();
            let mut cursor = known.unwrap_or_default();
            // Replaced or truncated: read it again from the start; record ids keep the
            // result exact.
            let state = if cursor.inode != inode || size < cursor.offset {
                cursor = Cursor::default();
                Value::Null
            } else if known_state {
                self.target
                    .load_state(source.name(), &key)?
                    .and_then(|s| serde_json::from_str(&s).ok())
                    .unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            let mut parser = Parser::new(file, state);
            let offset =
                match self.read_file(file, cursor.offset, &mut parser, &mut out, &mut result) {
                    Ok(offset) => offset,
                    Err(e) => {
                        result.note_error(e.to_string());
                        continue;
                    }
                };
            parser.end_of_run(&mut out);
            result.bytes_read += offset - cursor.offset;
            result.files_updated += 1;
            result.absorb(&mut out);
            let position = Cursor {
                size,
                mtime_ns,
                inode,
                offset,
            };
            cursors.push(sonde_store::SyncCursor {
                path: key,
                position: serde_json::to_string(&position).unwrap_or_default(),
                state: parser.state().to_string(),
            });
            if out.len() >= RECORD_BATCH {
                self.send(&mut out, &mut result)?;
            }
            if cursors.len() >= CURSOR_BATCH {
                self.commit(source, &mut out, &mut result, &mut cursors)?;
            }
        }
        self.commit(source, &mut out, &mut result, &mut cursors)?;
        progress.finish();
        result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        Ok(result)
    }

    /// Feeds `file` from `offset` to the parser, complete lines only; returns the offset
    /// after the last line consumed. A last line without a newline is consumed only if
    /// it is complete JSON (else it is being written, and waits for the next run).
    fn read_file(
        &mut self,
        file: &SourceFile,
        offset: u64,
        parser: &mut Parser,
        out: &mut Emitted,
        result: &mut SyncResult,
    ) -> Result<u64, SyncError> {
        let read_error = |e: std::io::Error| SyncError::Read {
            path: file.path.display().to_string(),
            cause: e,
        };
        let mut handle = std::fs::File::open(&file.path).map_err(read_error)?;
        handle.seek(SeekFrom::Start(offset)).map_err(read_error)?;
        let mut consumed = offset;
        let mut buf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        loop {
            let n = (&mut handle)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut buf)
                .map_err(read_error)?;
            if n == 0 {
                break;
            }
            let mut start = 0;
            while let Some(end) = memchr::memchr(b'\n', &buf[start..]) {
                parser.line(&buf[start..start + end], out);
                start += end + 1;
            }
            consumed += start as u64;
            buf.drain(..start);
            if out.len() >= RECORD_BATCH {
                result.absorb(out);
                self.send(out, result)?;
            }
        }
        if !buf.is_empty() && serde_json::from_slice::<serde::de::IgnoredAny>(&buf).is_ok() {
            parser.line(&buf, out);
            consumed += buf.len() as u64;
        }
        Ok(consumed)
    }
}
