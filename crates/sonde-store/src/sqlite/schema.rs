//! SQLite schema, as versioned migrations recorded in `schema_migrations`.

use rusqlite::Connection;

use crate::{BackendError, OpenError};

use super::classify;

/// One schema change: applied once, in order, inside a transaction.
pub(super) struct Migration {
    pub version: i64,
    pub name: &'static str,
    pub sql: fn() -> String,
}

/// Every migration, oldest first. Append; never edit one that has shipped.
pub(super) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records",
        sql: || {
            r#"
-- Columns shared by every record table: id, kind, ts (microseconds since the epoch),
-- the context (session_id ... parent_span_id) and the payload as JSON text.
CREATE TABLE lifecycle (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX lifecycle_session ON lifecycle (session_id);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    input_tokens INTEGER,
    output_tokens INTEGER,
    cache_read_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    total_tokens INTEGER,
    cost_usd REAL,
    latency_ms REAL,
    ttft_ms REAL,
    response_status INTEGER,
    request_path TEXT,
    api_key_hash TEXT,
    gateway_key_id TEXT,
    tool_name TEXT
);
CREATE INDEX events_session ON events (session_id, ts);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_model ON events (model, ts) WHERE model IS NOT NULL;

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    message_type TEXT NOT NULL,
    from_role TEXT,
    to_role TEXT
);
CREATE INDEX messages_session ON messages (session_id, ts);

CREATE TABLE outcome_rewards (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    objective_key TEXT NOT NULL,
    total_reward REAL NOT NULL
);
CREATE INDEX outcome_rewards_session ON outcome_rewards (session_id);

CREATE TABLE event_rewards (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    event_id TEXT NOT NULL,
    value REAL NOT NULL
);
CREATE INDEX event_rewards_session ON event_rewards (session_id);
CREATE INDEX event_rewards_event ON event_rewards (event_id);

-- Derived from the records above, maintained in the same transaction.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    org TEXT,
    workspace TEXT,
    started_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL,
    ended_at INTEGER,
    end_id TEXT,
    start_ts INTEGER,
    start_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    event_count INTEGER NOT NULL DEFAULT 0,
    llm_calls INTEGER NOT NULL DEFAULT 0,
    message_count INTEGER NOT NULL DEFAULT 0,
    total_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL
);
CREATE INDEX sessions_started ON sessions (started_at DESC, session_id DESC);
CREATE INDEX sessions_tenant ON sessions (org, workspace, started_at DESC);

CREATE TABLE steps (
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index INTEGER,
    turn_number INTEGER,
    started_at INTEGER,
    start_id TEXT,
    completed_at INTEGER,
    end_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, step_id)
);
"#
            .to_owned()
        },
    },
    Migration {
        version: 2,
        name: "computed cost and key index",
        sql: || {
            r#"
ALTER TABLE events ADD COLUMN computed_cost_usd REAL;
CREATE INDEX events_key ON events (api_key_hash, ts) WHERE api_key_hash IS NOT NULL;
"#
            .to_owned()
        },
    },
    Migration {
        version: 3,
        name: "hourly roll-up of llm calls",
        sql: || {
            crate::rows::rollup_migration(
                "INTEGER",
                "REAL",
                "ts - ((ts % 3600000000) + 3600000000) % 3600000000",
                "ts - ((ts % 86400000000) + 86400000000) % 86400000000",
            )
        },
    },
    Migration {
        version: 4,
        name: "api keys",
        sql: || crate::keys::KEYS_MIGRATION.to_owned(),
    },
    Migration {
        version: 5,
        name: "sync cursors",
        sql: || crate::cursors::CURSORS_MIGRATION.to_owned(),
    },
    Migration {
        version: 6,
        name: "latency runs for exact percentiles",
        sql: || {
            crate::latency_runs::runs_migration(
                "INTEGER",
                "BLOB",
                "ts - ((ts % 3600000000) + 3600000000) % 3600000000",
                "ts - ((ts % 86400000000) + 86400000000) % 86400000000",
                |column| crate::Dialect::Sqlite.packed(column),
                "x''",
            )
        },
    },
    Migration {
        version: 7,
        name: "payload blocks",
        sql: || {
            r#"
-- The payloads of one session in one write, compressed together (see sqlite/payload.rs);
-- record rows point into them. `live` counts the rows that do.
CREATE TABLE payload_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    live INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX payload_blocks_session ON payload_blocks (session_id);
"#
            .to_owned()
        },
    },
    Migration {
        version: 8,
        name: "one cost column",
        // Virtual: computed when read, no row rewritten.
        sql: || crate::rows::one_cost_migration("REAL", "VIRTUAL"),
    },
];

/// The newest schema version this build knows.
pub(super) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the database lacks, each in its own immediate transaction so
/// that two processes opening the same file at once apply each migration once.
pub(super) fn migrate(conn: &mut Connection) -> Result<(), OpenError> {
    let setup = |e: rusqlite::Error| OpenError::Migration {
        version: 0,
        name: "schema_migrations",
        cause: classify(&e),
    };
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )",
    )
    .map_err(setup)?;
    for migration in MIGRATIONS {
        let fail = |e: rusqlite::Error| OpenError::Migration {
            version: migration.version,
            name: migration.name,
            cause: classify(&e),
        };
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(fail)?;
        let applied: bool = tx
            .query_row(
                "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?1)",
                [migration.version],
                |row| row.get(0),
            )
            .map_err(fail)?;
        if !applied {
            tx.execute_batch(&(migration.sql)()).map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?1, ?2)",
                rusqlite::params![migration.version, migration.name],
            )
            .map_err(fail)?;
        }
        tx.commit().map_err(fail)?;
    }
    let found: i64 = conn
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(setup)?;
    if found > latest_version() {
        return Err(OpenError::SchemaTooNew {
            found,
            known: latest_version(),
        });
    }
    Ok(())
}

/// Turns a rusqlite error at open time into the open error for `url`.
/// (SQLite names the file at the end of some messages; the error names it already.)
pub(super) fn open_failed(url: &str, e: &rusqlite::Error) -> OpenError {
    let message = e.to_string();
    let message = message
        .strip_suffix(&format!(": {url}"))
        .unwrap_or(&message);
    OpenError::Backend {
        url: url.to_owned(),
        cause: BackendError::new(classify(e).class, message),
    }
}
