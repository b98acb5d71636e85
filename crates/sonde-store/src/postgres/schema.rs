//! PostgreSQL schema, as versioned migrations applied under an advisory lock.

use deadpool_postgres::Object;

use crate::OpenError;

use super::classify;

/// Key of the advisory lock held while migrating ("SONDE" in ASCII).
const MIGRATION_LOCK: i64 = 0x0053_4f4e_4445;

struct Migration {
    version: i64,
    name: &'static str,
    sql: fn() -> String,
}

/// Every migration, oldest first. Append; never edit one that has shipped.
///
/// Payloads are `TEXT`, not `JSONB`: no query looks inside them, and PostgreSQL's JSONB
/// parsing would cost about a third of the write speed (measured: 113k rows/s with
/// JSONB against 315k with text). Metadata that filters query is `JSONB`.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "records",
        sql: || {
            r#"
CREATE TABLE lifecycle (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL
);
CREATE INDEX lifecycle_session ON lifecycle (session_id);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    event_type TEXT NOT NULL,
    status TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    input_tokens BIGINT,
    output_tokens BIGINT,
    cache_read_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    total_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION,
    ttft_ms DOUBLE PRECISION,
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
    ts TIMESTAMPTZ NOT NULL,
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
    ts TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    objective_key TEXT NOT NULL,
    total_reward DOUBLE PRECISION NOT NULL
);
CREATE INDEX outcome_rewards_session ON outcome_rewards (session_id);

CREATE TABLE event_rewards (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL,
    event_id TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL
);
CREATE INDEX event_rewards_session ON event_rewards (session_id);
CREATE INDEX event_rewards_event ON event_rewards (event_id);

CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    org TEXT,
    workspace TEXT,
    started_at TIMESTAMPTZ NOT NULL,
    last_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    end_id TEXT,
    start_ts TIMESTAMPTZ,
    start_id TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
    event_count BIGINT NOT NULL DEFAULT 0,
    llm_calls BIGINT NOT NULL DEFAULT 0,
    message_count BIGINT NOT NULL DEFAULT 0,
    total_tokens BIGINT NOT NULL DEFAULT 0,
    cost_usd DOUBLE PRECISION
);
CREATE INDEX sessions_started ON sessions (started_at DESC, session_id DESC);
CREATE INDEX sessions_tenant ON sessions (org, workspace, started_at DESC);

CREATE TABLE steps (
    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index BIGINT,
    turn_number BIGINT,
    started_at TIMESTAMPTZ,
    start_id TEXT,
    completed_at TIMESTAMPTZ,
    end_id TEXT,
    metadata JSONB NOT NULL DEFAULT '{}',
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
ALTER TABLE events ADD COLUMN computed_cost_usd DOUBLE PRECISION;
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
                "BIGINT",
                "DOUBLE PRECISION",
                "(floor(EXTRACT(EPOCH FROM ts) / 3600) * 3600000000)::int8",
                "(floor(EXTRACT(EPOCH FROM ts) / 86400) * 86400000000)::int8",
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
                "BIGINT",
                "BYTEA",
                "(floor(EXTRACT(EPOCH FROM ts) / 3600) * 3600000000)::int8",
                "(floor(EXTRACT(EPOCH FROM ts) / 86400) * 86400000000)::int8",
                |column| crate::Dialect::Postgres.packed(column),
                "''::bytea",
            )
        },
    },
    Migration {
        version: 7,
        name: "payload blocks",
        // SQLite's payload blocks have no counterpart here: PostgreSQL compresses large
        // values itself (TOAST). The version is kept so that both backends number alike.
        sql: || "SELECT 1".to_owned(),
    },
    Migration {
        version: 8,
        name: "one cost column",
        // PostgreSQL keeps generated columns stored only.
        sql: || crate::rows::one_cost_migration("DOUBLE PRECISION", "STORED"),
    },
];

/// The newest schema version this build knows.
fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Applies the migrations the database lacks, under an advisory lock so that several
/// processes starting at once apply each migration once.
pub(super) async fn migrate(client: &mut Object) -> Result<(), OpenError> {
    let setup = |e: tokio_postgres::Error| OpenError::Migration {
        version: 0,
        name: "schema_migrations",
        cause: classify(&e),
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(setup)?;
    let result = apply(client).await;
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(setup);
    result.and(unlock.map(|_| ()))
}

async fn apply(client: &mut Object) -> Result<(), OpenError> {
    let setup = |e: tokio_postgres::Error| OpenError::Migration {
        version: 0,
        name: "schema_migrations",
        cause: classify(&e),
    };
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(setup)?;
    for migration in MIGRATIONS {
        let fail = |e: tokio_postgres::Error| OpenError::Migration {
            version: migration.version,
            name: migration.name,
            cause: classify(&e),
        };
        let tx = client.transaction().await.map_err(fail)?;
        let applied = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[&migration.version],
            )
            .await
            .map_err(fail)?
            .is_some();
        if !applied {
            tx.batch_execute(&(migration.sql)()).await.map_err(fail)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[&migration.version, &migration.name],
            )
            .await
            .map_err(fail)?;
        }
        tx.commit().await.map_err(fail)?;
    }
    let found: i64 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(setup)?
        .get(0);
    if found > latest_version() {
        return Err(OpenError::SchemaTooNew {
            found,
            known: latest_version(),
        });
    }
    Ok(())
}
