//! Transcript sync: the session logs that Claude Code and the Codex CLI write become
//! Sonde traces — sessions, turns, one LLM call per API response with its tokens and
//! cost, tool calls paired with their results, subagents nested under the call that
//! spawned them — shipped incrementally to any target that keeps cursors: a Sonde
//! store (`StoreTarget`, feature `store`, on by default), or any sink (an OTLP
//! endpoint, Langfuse, record JSONL) in a [`SinkTarget`]. The sync depends on no sink:
//! the store's target is behind its feature, the other sinks are their own crates.
//!
//! Each file's cursor (size, mtime, inode, the offset after the last complete line,
//! and the parser's state) is kept in the target, so a run reads only what was
//! appended since the last one, and a run over unchanged files opens none of them.
//! Record ids are derived from the sources' own ids, so syncing the same data twice,
//! or from two machines, stores each record once.
//!
//! The modules: [`Source`] (the agent CLIs and where they keep their logs),
//! [`discover`] (the files under a folder), [`detect`] (whose logs a folder holds),
//! [`Syncer`] (the loop, with [`SyncOptions`] and [`SyncResult`]), [`watch`]
//! (following the logs live), the targets ([`SyncTarget`], [`SinkTarget`],
//! [`CursorFile`]) and [`SyncError`].
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
mod cursor;
mod detect;
mod discover;
mod emit;
mod error;
mod final_only;
mod options;
mod parse_threads;
mod parser;
mod result;
mod source;
#[cfg(feature = "store")]
mod store_target;
mod syncer;
mod target;
mod watch;

pub use claude::{ClaudeFile, ClaudeState};
pub use codex::{CodexFile, CodexState};
pub use detect::detect;
pub use discover::{SourceFile, discover};
pub use emit::{Emitted, MAX_ERROR_MESSAGES};
pub use error::SyncError;
pub use options::{DEFAULT_QUIET_PERIOD, ProgressCallback, SyncOptions, SyncProgress};
pub use parse_threads::MAX_LINE_BYTES;
pub use result::SyncResult;
pub use source::Source;
#[cfg(feature = "store")]
pub use store_target::StoreTarget;
pub use syncer::{CURSOR_BATCH, RECORD_BATCH, Syncer};
pub use target::{CursorFile, SinkTarget, SyncTarget};
pub use watch::{POLL_INTERVAL, watch};
