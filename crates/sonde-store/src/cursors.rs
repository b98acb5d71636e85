//! Sync cursors: how far a transcript sync has read each source file, kept in the
//! store it syncs into, so that the next run starts where this one stopped.

/// One file's sync cursor as a sync stores it.
///
/// ```
/// let c = sonde_store::SyncCursor { path: "/a.jsonl".into(), position: "{}".into(), state: "{}".into() };
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

/// Migration 5: the `sync_cursors` table and, apart, the states (the same in both
/// dialects). Positions are read for every file on every run; keeping the larger
/// states in a table of their own keeps that read small.
pub(crate) const CURSORS_MIGRATION: &str = "CREATE TABLE sync_cursors (
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    cursor TEXT NOT NULL,
    PRIMARY KEY (source, path)
);
CREATE TABLE sync_states (
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (source, path)
)";

/// Stores one cursor's position and state (two statements), replacing those stored
/// for the same source and path; `p` maps a parameter number to the dialect's
/// placeholder.
pub(crate) fn upsert_sql(p: impl Fn(usize) -> String) -> [String; 2] {
    let upsert = |table: &str, column: &str| {
        format!(
            "INSERT INTO {table} (source, path, {column}) VALUES ({}, {}, {})
             ON CONFLICT (source, path) DO UPDATE SET {column} = excluded.{column}",
            p(1),
            p(2),
            p(3)
        )
    };
    [
        upsert("sync_cursors", "cursor"),
        upsert("sync_states", "state"),
    ]
}
