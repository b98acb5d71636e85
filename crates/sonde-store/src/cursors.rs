//! Sync cursors: how far a transcript sync has read each source file, kept in the
//! store it syncs into, so that the next run starts where this one stopped.

/// Migration 5: the `sync_cursors` table (the same in both dialects).
pub(crate) const CURSORS_MIGRATION: &str = "CREATE TABLE sync_cursors (
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    cursor TEXT NOT NULL,
    PRIMARY KEY (source, path)
)";

/// Stores one cursor, replacing the one stored for the same source and path; `p` maps
/// a parameter number to the dialect's placeholder.
pub(crate) fn upsert_sql(p: impl Fn(usize) -> String) -> String {
    format!(
        "INSERT INTO sync_cursors (source, path, cursor) VALUES ({}, {}, {})
         ON CONFLICT (source, path) DO UPDATE SET cursor = excluded.cursor",
        p(1),
        p(2),
        p(3)
    )
}
