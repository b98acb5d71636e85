//! How SQLite finds a record by its id (schema version 13): through a narrow index on
//! a 64-bit hash of the id, not a unique index on the id itself.
//!
//! Record ids come from senders (OTLP span ids, transcript UUIDs): they are random, so
//! a B-tree keyed by them takes every insert on a different page, and as the index
//! outgrows the page cache each record dirties (and writes to the WAL, and checkpoints)
//! a page of its own. BENCHMARKS.md ("Growth") measured SQLite falling to a third of
//! its first speed within a million calls for that reason, and flat with ids that sort
//! by time. So from version 13 each record table is keyed by `seq`, an
//! `INTEGER PRIMARY KEY` that appends (and that `VACUUM` keeps), and carries
//! `id_hash` ([`id_hash`]), indexed on its own: 8 bytes an entry instead of the ~45 of
//! `(tenant, id)`, so the index is a quarter the size and stays in the cache four
//! times as long.
//!
//! - **Lookups** go `WHERE id_hash = ? AND tenant = ? AND id = ?`: the hash finds the
//!   candidates, the full id and tenant decide, so two ids sharing a hash stay two
//!   records. The hash is of the id alone, not of the tenant with it, so that a reader
//!   of every tenant ([`crate::Scope::All`]) finds a call by its id through the index.
//! - **Dedup.** The index is not unique (hashes may collide), so an insert stores a row
//!   only when no row with its hash, tenant and id exists (a `SELECT`, then an
//!   `INSERT`): the same record written twice is stored once, as before. SQLite has
//!   one writer at a time, so the check and the insert cannot race.
//! - **Search documents** point at their record by [`search_record`] (the record's
//!   `seq` and table), an integer that appends, instead of by the record's id.
//! - **Hours** (schema version 16). A hash is as random as the id: an index of hashes
//!   alone still took each insert on a page of its own, and the lookups before each
//!   insert and the pages each commit wrote grew with the store. So the index is
//!   `(key_hour, id_hash)`, `key_hour` the hour of the record's time
//!   ([`KEY_HOUR`]): records arrive close to their time, so inserts go into the last
//!   hours' part of the index, which stays in the cache. A record is sent again with
//!   the time it had (PostgreSQL's rule, see `partitions.rs`), so the check before an
//!   insert seeks its hour ([`sqlite_lookup_at`]); finding a record by its id alone
//!   seeks every hour `record_hours` lists ([`sqlite_lookup`]), and a replacement
//!   looks in its own hour before that.
//!
//! PostgreSQL keeps its per-partition unique `(tenant, id)` indexes: concurrent
//! writers (several `sonde serve`) need a unique index to arbitrate inserts
//! (`ON CONFLICT`), which a hash that may collide cannot be, and its partitions bound
//! each index to a week. Its `events_calls` becomes ascending as in SQLite (a B-tree
//! inserting at its left edge splits pages in half and leaves them so; at its right
//! edge PostgreSQL fills them).

use sha2::{Digest, Sha256};

use crate::rows::Table;

/// The 64-bit hash of a record id that SQLite indexes records by: the first 8 bytes of
/// the SHA-256 of the id's UTF-8 bytes, read as a big-endian signed integer. Fixed
/// forever: stored rows hold it (`sonde_id_hash(id)` computes it in SQL).
///
/// In this crate's own unit tests, ids starting with `collide-` all hash to 0, so that
/// the tests can make two records share a hash.
pub(crate) fn id_hash(id: &str) -> i64 {
    #[cfg(test)]
    if id.starts_with("collide-") {
        return 0;
    }
    let digest = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(first)
}

/// The key a search document (`search_docs.record`) finds its record by: the record's
/// `seq` times 8 plus its table's place in [`Table::ALL`].
pub(crate) fn search_record(table: Table, seq: i64) -> i64 {
    let code = Table::ALL.iter().position(|t| *t == table).unwrap_or(0) as i64;
    seq * 8 + code
}

/// The span of time SQLite groups record keys by (schema version 16): an hour, in
/// microseconds. Fixed forever: stored indexes hold [`KEY_HOUR`], which divides by it.
pub(crate) const KEY_HOUR_MICROS: i64 = 3_600_000_000;

/// The column holding the hour of a record's time, `ts / 3600000000`: a virtual
/// generated column (computed when read, stored only in the `{table}_id` indexes).
/// A column, not an index on the expression: SQLite's planner seeks an index on an
/// expression for `expr = ?` but not for `expr IN (SELECT ...)`, which
/// [`sqlite_lookup`] needs.
const KEY_HOUR: &str = "key_hour";

/// The hour [`KEY_HOUR`] holds for a record at `ts` (Rust's and SQLite's integer
/// divisions both truncate towards zero), as `record_hours` lists it.
pub(crate) fn key_hour(ts: i64) -> i64 {
    ts / KEY_HOUR_MICROS
}

/// The condition that the row of `alias` has id `id` (and tenant `tenant`; `None`: any
/// tenant), through the hash: `hash`, `id` and `tenant` are placeholders bound to
/// [`id_hash`] of the id, the id and its tenant.
fn id_match(alias: &str, hash: &str, id: &str, tenant: Option<&str>) -> String {
    let tenant = tenant.map_or(String::new(), |t| format!(" AND {alias}tenant = {t}"));
    format!("{alias}id_hash = {hash}{tenant} AND {alias}id = {id}")
}

/// "The row of `alias` is record `id` stored in the hour of `ts`" in SQLite: one seek
/// of the `(hour, id_hash)` index. `ts` is the placeholder bound to the record's time;
/// the others are [`sqlite_lookup`]'s.
pub(crate) fn sqlite_lookup_at(
    alias: &str,
    ts: &str,
    hash: &str,
    id: &str,
    tenant: Option<&str>,
) -> String {
    format!(
        "{alias}{KEY_HOUR} = {ts} / {KEY_HOUR_MICROS} AND {}",
        id_match(alias, hash, id, tenant)
    )
}

/// "The row of `alias` is record `id`", whenever it was stored, in SQLite: a seek of the
/// `(hour, id_hash)` index in every hour that `record_hours` lists. `hash`, `id` and
/// `tenant` are the placeholders bound to [`id_hash`] of the id, the id and its tenant
/// (`None`: any tenant).
pub(crate) fn sqlite_lookup(alias: &str, hash: &str, id: &str, tenant: Option<&str>) -> String {
    format!(
        "{alias}{KEY_HOUR} IN (SELECT hour FROM record_hours) AND {}",
        id_match(alias, hash, id, tenant)
    )
}

/// Registers `sonde_id_hash(id)` ([`id_hash`]) on a SQLite connection: migration 13
/// fills stored rows' hashes with it, and ad-hoc queries can find a record with it.
#[cfg(feature = "sqlite")]
pub(crate) fn register(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "sonde_id_hash",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let id: String = ctx.get(0)?;
            Ok(id_hash(&id))
        },
    )
}

/// Migration 13: SQLite's record tables keyed by `seq`, with `id_hash` indexed instead
/// of a unique `(tenant, id)`; the search documents pointing at `search_record`;
/// `events_calls` ascending (on PostgreSQL, only that).
pub(crate) fn key_layout_migration(t: &crate::migrations::Types) -> String {
    match t.dialect {
        crate::Dialect::Sqlite => sqlite_migration(),
        // On the partitioned table: dropped and made again in every partition.
        crate::Dialect::Postgres => format!("DROP INDEX events_calls;\n{CALLS_INDEX};\n"),
    }
}

/// The index listing LLM calls walks (newest first, backwards) from version 13.
const CALLS_INDEX: &str = "CREATE INDEX events_calls ON events (ts, id) WHERE event_type = 'llm'";

fn sqlite_migration() -> String {
    let mut sql = String::new();
    let tables = crate::tenancy::sqlite_record_tables_v11();
    // Each table copied, its rowid kept as `seq`; the old tables stay until the search
    // documents have found their records through the old `(tenant, id)` keys.
    for table in &tables {
        let (name, columns, copied) = (table.name, table.columns, table.copied);
        sql.push_str(&format!(
            "CREATE TABLE {name}_v13 (
    seq INTEGER PRIMARY KEY,
{columns},
    tenant TEXT NOT NULL DEFAULT '',
    id_hash INTEGER NOT NULL
);
INSERT INTO {name}_v13 (seq, {copied}, tenant, id_hash)
    SELECT rowid, {copied}, tenant, sonde_id_hash(id) FROM {name} ORDER BY rowid;
"
        ));
    }
    let record = |table: Table| {
        let name = table.name();
        format!(
            "(SELECT r.rowid * 8 + {} FROM {name} r WHERE r.tenant = d.tenant AND r.id = d.record_id)",
            search_record(table, 0)
        )
    };
    // A document whose record is gone (none should be) keeps a key no record has.
    sql.push_str(&format!(
        "CREATE TABLE search_docs_v13 (
    id INTEGER PRIMARY KEY,
    record INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    tenant TEXT NOT NULL DEFAULT ''
);
INSERT INTO search_docs_v13 (id, record, session_id, tenant)
    SELECT d.id, coalesce({}, {}, -d.id), d.session_id, d.tenant FROM search_docs d ORDER BY d.id;
DROP TABLE search_docs;
ALTER TABLE search_docs_v13 RENAME TO search_docs;
CREATE INDEX search_docs_session ON search_docs (session_id);
CREATE INDEX search_docs_record ON search_docs (record);
",
        record(Table::Events),
        record(Table::Messages)
    ));
    for table in &tables {
        let name = table.name;
        sql.push_str(&format!(
            "DROP TABLE {name};
ALTER TABLE {name}_v13 RENAME TO {name};
CREATE INDEX {name}_id ON {name} (id_hash);
"
        ));
        for index in table.indexes {
            // Listing calls newest first walks this index backwards: ascending, its
            // inserts append and its pages fill (descending, each split left them half
            // empty).
            let index = if index.starts_with("CREATE INDEX events_calls ") {
                CALLS_INDEX
            } else {
                index
            };
            sql.push_str(index);
            sql.push_str(";\n");
        }
    }
    sql
}

/// Migration 16: SQLite's record tables found by the hour of their time and the hash
/// of their id (`(ts / 3600000000, id_hash)`), and `record_hours` listing the hours
/// that hold records; nothing on PostgreSQL, whose weekly partitions bound its id
/// indexes already.
pub(crate) fn hour_key_migration(t: &crate::migrations::Types) -> String {
    if t.dialect == crate::Dialect::Postgres {
        return String::new();
    }
    let mut sql = String::from("CREATE TABLE record_hours (hour INTEGER PRIMARY KEY);\n");
    for table in Table::ALL {
        let name = table.name();
        // Adding a virtual column rewrites no row.
        sql.push_str(&format!(
            "ALTER TABLE {name} ADD COLUMN {KEY_HOUR} INTEGER
    GENERATED ALWAYS AS (ts / {KEY_HOUR_MICROS}) VIRTUAL;
DROP INDEX {name}_id;
CREATE INDEX {name}_id ON {name} ({KEY_HOUR}, id_hash);
INSERT OR IGNORE INTO record_hours (hour) SELECT DISTINCT {KEY_HOUR} FROM {name};
"
        ));
    }
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_hashes_are_the_first_8_bytes_of_the_ids_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea 414140de5dae2223 ...
        assert_eq!(id_hash("abc"), 0xba78_16bf_8f01_cfea_u64 as i64);
        assert_ne!(id_hash("abd"), id_hash("abc"));
        assert_eq!(id_hash("collide-a"), id_hash("collide-b"));
    }

    #[test]
    fn search_records_tell_tables_apart() {
        assert_ne!(
            search_record(Table::Events, 5),
            search_record(Table::Messages, 5)
        );
        assert_eq!(search_record(Table::Events, 5), 41);
    }

    #[cfg(feature = "sqlite")]
    #[test]
    fn sql_computes_the_same_hash() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        register(&conn).unwrap();
        let id = "01a237ff-090c-7117-930f-c71a391ad23d";
        let got: i64 = conn
            .query_row("SELECT sonde_id_hash(?1)", [id], |r| r.get(0))
            .unwrap();
        assert_eq!(got, id_hash(id));
        assert_eq!(
            sqlite_lookup_at("e.", "?4", "?1", "?2", Some("?3")),
            "e.key_hour = ?4 / 3600000000 AND e.id_hash = ?1 AND e.tenant = ?3 AND e.id = ?2"
        );
    }
}
