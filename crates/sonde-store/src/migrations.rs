//! The schema, written once for both backends: numbered migrations, each the same
//! statements in every dialect but for the column types and expressions of [`Types`].
//! Each backend's `schema` module applies them (and records them in
//! `schema_migrations`). Append; never edit a migration that has shipped.

use crate::Dialect;

/// One schema change: applied once, in order, inside a transaction.
pub(crate) struct Migration {
    /// Its number, from 1.
    pub version: i64,
    /// What it does, as `schema_migrations` records it.
    pub name: &'static str,
    /// Its statements in a dialect.
    pub sql: fn(&Types) -> String,
}

/// The column types and expressions a dialect writes the schema with.
pub(crate) struct Types {
    /// The dialect (for the expressions [`Dialect`] writes).
    pub dialect: Dialect,
    /// A 64-bit integer.
    pub integer: &'static str,
    /// A double.
    pub real: &'static str,
    /// An instant (SQLite: microseconds since the epoch).
    pub time: &'static str,
    /// A JSON object that queries filter on.
    pub json: &'static str,
    /// Bytes.
    pub blob: &'static str,
    /// Empty bytes, as a literal.
    pub empty_blob: &'static str,
    /// The hour of `ts`, in microseconds since the epoch.
    pub hour: &'static str,
    /// The day of `ts`, in microseconds since the epoch.
    pub day: &'static str,
    /// How a generated column is kept (`VIRTUAL` or `STORED`).
    pub generated: &'static str,
}

/// SQLite's types.
#[cfg(feature = "sqlite")]
pub(crate) const SQLITE: Types = Types {
    dialect: Dialect::Sqlite,
    integer: "INTEGER",
    real: "REAL",
    time: "INTEGER",
    json: "TEXT",
    blob: "BLOB",
    empty_blob: "x''",
    hour: "ts - ((ts % 3600000000) + 3600000000) % 3600000000",
    day: "ts - ((ts % 86400000000) + 86400000000) % 86400000000",
    // Virtual: computed when read, no row rewritten.
    generated: "VIRTUAL",
};

/// PostgreSQL's types.
#[cfg(feature = "postgres")]
///
/// Payloads are `TEXT`, not `JSONB`: no query looks inside them, and PostgreSQL's JSONB
/// parsing would cost about a third of the write speed (measured: 113k rows/s with
/// JSONB against 315k with text). Metadata that filters query is `JSONB`.
pub(crate) const POSTGRES: Types = Types {
    dialect: Dialect::Postgres,
    integer: "BIGINT",
    real: "DOUBLE PRECISION",
    time: "TIMESTAMPTZ",
    json: "JSONB",
    blob: "BYTEA",
    empty_blob: "''::bytea",
    hour: "(floor(EXTRACT(EPOCH FROM ts) / 3600) * 3600000000)::int8",
    day: "(floor(EXTRACT(EPOCH FROM ts) / 86400) * 86400000000)::int8",
    // PostgreSQL keeps generated columns stored only.
    generated: "STORED",
};

/// Every migration, oldest first.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records",
        sql: |t| {
            RECORDS
                .replace("{record}", RECORD_COLUMNS)
                .replace("{time}", t.time)
                .replace("{int}", t.integer)
                .replace("{real}", t.real)
                .replace("{json}", t.json)
        },
    },
    Migration {
        version: 2,
        name: "computed cost and key index",
        sql: |t| {
            format!(
                "
ALTER TABLE events ADD COLUMN computed_cost_usd {};
CREATE INDEX events_key ON events (api_key_hash, ts) WHERE api_key_hash IS NOT NULL;
",
                t.real
            )
        },
    },
    Migration {
        version: 3,
        name: "hourly roll-up of llm calls",
        sql: |t| crate::rows::rollup_migration(t.integer, t.real, t.hour, t.day),
    },
    Migration {
        version: 4,
        name: "api keys",
        sql: |_| crate::keys::KEYS_MIGRATION.to_owned(),
    },
    Migration {
        version: 5,
        name: "sync cursors",
        sql: |_| crate::cursors::CURSORS_MIGRATION.to_owned(),
    },
    Migration {
        version: 6,
        name: "latency runs for exact percentiles",
        sql: |t| {
            crate::latency_runs::runs_migration(
                t.integer,
                t.blob,
                t.hour,
                t.day,
                |column| t.dialect.packed(column),
                t.empty_blob,
            )
        },
    },
    Migration {
        version: 7,
        name: "payload blocks",
        sql: |t| match t.dialect {
            Dialect::Sqlite => PAYLOAD_BLOCKS.to_owned(),
            // PostgreSQL compresses large values itself (TOAST): the version is kept so
            // that both backends number alike.
            Dialect::Postgres => "SELECT 1".to_owned(),
        },
    },
    Migration {
        version: 8,
        name: "one cost column",
        sql: |t| crate::rows::one_cost_migration(t.real, t.generated),
    },
    Migration {
        version: 9,
        name: "full-text search and the calls index",
        sql: |t| crate::search::search_migration(t.dialect),
    },
    Migration {
        version: 10,
        name: "ids scoped by tenant",
        sql: crate::tenancy::tenant_migration,
    },
    Migration {
        version: 11,
        name: "record tables partitioned by week",
        sql: crate::partitions::partition_migration,
    },
    Migration {
        version: 12,
        name: "daily roll-up of llm calls",
        sql: |t| {
            let concat = match t.dialect {
                // group_concat keeps a blob's bytes (NULs too); the cast makes it a blob.
                Dialect::Sqlite => "CAST(group_concat({}, x'') AS BLOB)",
                Dialect::Postgres => "string_agg({}, ''::bytea)",
            };
            crate::rows::daily_rollup_migration(t.integer, t.real, t.blob, concat)
        },
    },
    Migration {
        version: 13,
        name: "records found by a hash of their id",
        sql: crate::record_keys::key_layout_migration,
    },
    Migration {
        version: 14,
        name: "sorted latency runs",
        sql: crate::latency_runs::sorted_runs_migration,
    },
    Migration {
        version: 15,
        name: "full-text index merged in larger steps",
        sql: |t| crate::search::merge_migration(t.dialect),
    },
    Migration {
        version: 16,
        name: "records found by their hour and a hash of their id",
        sql: crate::record_keys::hour_key_migration,
    },
    Migration {
        version: 17,
        name: "latency runs compressed with lz4",
        sql: crate::latency_runs::run_compression_migration,
    },
    Migration {
        version: 18,
        name: "search documents without a key on their record id",
        sql: |t| crate::search::search_key_migration(t.dialect),
    },
];

/// The newest schema version this build knows.
pub(crate) fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// The columns every record table starts with (`{record}` in [`RECORDS`]): id, kind, ts
/// (in SQLite microseconds since the epoch), the context (session_id ... parent_span_id)
/// and the payload as JSON text.
const RECORD_COLUMNS: &str = r#"    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts {time} NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL"#;

/// Migration 1: the record tables and the session and step tables derived from them.
const RECORDS: &str = r#"
-- Columns shared by every record table: id, kind, ts (microseconds since the epoch),
-- the context (session_id ... parent_span_id) and the payload as JSON text.
CREATE TABLE lifecycle (
{record}
);
CREATE INDEX lifecycle_session ON lifecycle (session_id);

CREATE TABLE events (
{record},
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    input_tokens {int},
    output_tokens {int},
    cache_read_tokens {int},
    cache_write_tokens {int},
    reasoning_tokens {int},
    total_tokens {int},
    cost_usd {real},
    latency_ms {real},
    ttft_ms {real},
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
{record},
    message_type TEXT NOT NULL,
    from_role TEXT,
    to_role TEXT
);
CREATE INDEX messages_session ON messages (session_id, ts);

CREATE TABLE outcome_rewards (
{record},
    objective_key TEXT NOT NULL,
    total_reward {real} NOT NULL
);
CREATE INDEX outcome_rewards_session ON outcome_rewards (session_id);

CREATE TABLE event_rewards (
{record},
    event_id TEXT NOT NULL,
    value {real} NOT NULL
);
CREATE INDEX event_rewards_session ON event_rewards (session_id);
CREATE INDEX event_rewards_event ON event_rewards (event_id);

-- Derived from the records above, maintained in the same transaction.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    org TEXT,
    workspace TEXT,
    started_at {time} NOT NULL,
    last_at {time} NOT NULL,
    ended_at {time},
    end_id TEXT,
    start_ts {time},
    start_id TEXT,
    metadata {json} NOT NULL DEFAULT '{}',
    event_count {int} NOT NULL DEFAULT 0,
    llm_calls {int} NOT NULL DEFAULT 0,
    message_count {int} NOT NULL DEFAULT 0,
    total_tokens {int} NOT NULL DEFAULT 0,
    cost_usd {real}
);
CREATE INDEX sessions_started ON sessions (started_at DESC, session_id DESC);
CREATE INDEX sessions_tenant ON sessions (org, workspace, started_at DESC);

CREATE TABLE steps (
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index {int},
    turn_number {int},
    started_at {time},
    start_id TEXT,
    completed_at {time},
    end_id TEXT,
    metadata {json} NOT NULL DEFAULT '{}',
    PRIMARY KEY (session_id, step_id)
);
"#;

/// Migration 7 (SQLite): the payload blocks.
const PAYLOAD_BLOCKS: &str = r#"
-- The payloads of one session in one write, compressed together (see sqlite/payload.rs);
-- record rows point into them. `live` counts the rows that do.
CREATE TABLE payload_blocks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id TEXT NOT NULL,
    live INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX payload_blocks_session ON payload_blocks (session_id);
"#;
