//! Sync cursors: how far a transcript sync has read each source file, kept in the
//! store it syncs into, so that the next run starts where this one stopped.

pub use sonde_model::SyncCursor;

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
