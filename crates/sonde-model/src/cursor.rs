//! Sync cursors: how far a transcript sync has read a source file. The sync (a
//! source) hands them to its target (a sink), which keeps them; both sides know the
//! type from here, so neither depends on the other.

/// One file's sync cursor, as a sync hands it to the target that keeps it.
///
/// ```
/// let c = sonde_model::SyncCursor { path: "/a.jsonl".into(), position: "{}".into(), state: "{}".into() };
/// assert_eq!(c.path, "/a.jsonl");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncCursor {
    /// The file.
    pub path: String,
    /// Where the sync stopped (small: read for every file on every run).
    pub position: String,
    /// The parser's state there (read only when the file has changed).
    pub state: String,
}
