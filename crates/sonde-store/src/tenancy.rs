//! Tenancy in the store: every id (session, record, step) is unique within a tenant,
//! the org / workspace pair a record belongs to. Two tenants using the same ids each
//! keep their own data; a reader sees its tenant's.

use crate::migrations::Types;
use crate::{Dialect, ReadError, Scope};

/// The key of the tenant (org / workspace) a record or session belongs to, as the
/// `tenant` column of every record, session, step and search table holds it: ids are
/// unique within a tenant, so that two tenants using the same session or record id
/// each keep their own. No org and no workspace is the empty key; otherwise the org
/// and the workspace, each with `\` and `/` escaped by a `\`, joined by a `/` (a
/// missing one written as empty). [`TENANT_KEY_SQL`] computes the same in SQL.
///
/// ```text
/// (None, None)                 -> ""
/// (Some("acme"), Some("prod")) -> "acme/prod"
/// (Some("a/b"), Some("c"))     -> "a\/b/c"
/// ```
pub(crate) fn tenant_key(org: Option<&str>, workspace: Option<&str>) -> String {
    fn escaped(part: Option<&str>) -> String {
        part.unwrap_or_default()
            .replace('\\', "\\\\")
            .replace('/', "\\/")
    }
    if org.is_none() && workspace.is_none() {
        return String::new();
    }
    format!("{}/{}", escaped(org), escaped(workspace))
}

/// [`tenant_key`] of a row's `org` and `workspace` columns, in SQL (both dialects).
pub(crate) const TENANT_KEY_SQL: &str = "CASE WHEN org IS NULL AND workspace IS NULL THEN '' \
     ELSE replace(replace(coalesce(org, ''), '\\', '\\\\'), '/', '\\/') || '/' \
       || replace(replace(coalesce(workspace, ''), '\\', '\\\\'), '/', '\\/') END";

/// The query of the tenants whose session of id `session` (a placeholder) `scope`
/// sees, and the tenant key to bind to the `tenant` placeholder (none for
/// [`Scope::All`], whose query has no such parameter).
pub(crate) fn visible_tenants_sql(
    scope: &Scope,
    session: &str,
    tenant: &str,
) -> (String, Option<String>) {
    match scope {
        Scope::All => (
            format!("SELECT tenant FROM sessions WHERE session_id = {session} ORDER BY tenant"),
            None,
        ),
        Scope::Tenant { org, workspace } => (
            format!(
                "SELECT tenant FROM sessions WHERE tenant = {tenant} AND session_id = {session}"
            ),
            Some(tenant_key(Some(org), Some(workspace))),
        ),
    }
}

/// The one tenant a session read reads from `tenants` (those with a session of that id
/// in the reader's scope): none when there is none, an error when several tenants use
/// the id and the scope does not say which.
pub(crate) fn one_tenant(
    session_id: &str,
    mut tenants: Vec<String>,
) -> Result<Option<String>, ReadError> {
    match tenants.len() {
        0 | 1 => Ok(tenants.pop()),
        n => Err(ReadError::AmbiguousId {
            id: session_id.to_owned(),
            tenants: n,
        }),
    }
}

/// Migration 10: every id scoped by tenant. A `tenant` column ([`tenant_key`]) on the
/// record, session, step, search and payload-block tables, and the keys that were ids
/// alone made (tenant, id). Rows already stored take their session's tenant (before
/// this migration a session id was one session, whatever its records said).
pub(crate) fn tenant_migration(t: &Types) -> String {
    let session_tenant = |table: &str| {
        format!(
            "coalesce((SELECT s.tenant FROM sessions s WHERE s.session_id = {table}.session_id), '')"
        )
    };
    let mut sql = String::new();
    match t.dialect {
        Dialect::Sqlite => {
            // SQLite cannot change a primary key: each keyed table is built anew, the
            // sessions first (the others take their tenant).
            for table in SQLITE_REBUILT {
                let tenant = if table.name == "sessions" {
                    TENANT_KEY_SQL.to_owned()
                } else {
                    session_tenant(table.name)
                };
                sql.push_str(&table.rebuild(&tenant));
            }
            for table in ["search_docs", "payload_blocks"] {
                sql.push_str(&format!(
                    "ALTER TABLE {table} ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE {table} SET tenant = {};
",
                    session_tenant(table)
                ));
            }
        }
        Dialect::Postgres => {
            sql.push_str(&format!(
                "ALTER TABLE sessions ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE sessions SET tenant = {TENANT_KEY_SQL} WHERE org IS NOT NULL OR workspace IS NOT NULL;
ALTER TABLE sessions DROP CONSTRAINT sessions_pkey, ADD PRIMARY KEY (tenant, session_id);
"
            ));
            let keyed = [
                ("steps", "session_id, step_id"),
                ("lifecycle", "id"),
                ("events", "id"),
                ("messages", "id"),
                ("outcome_rewards", "id"),
                ("event_rewards", "id"),
                ("search_docs", "record_id"),
            ];
            for (table, key) in keyed {
                sql.push_str(&format!(
                    "ALTER TABLE {table} ADD COLUMN tenant TEXT NOT NULL DEFAULT '';
UPDATE {table} SET tenant = s.tenant FROM sessions s
    WHERE s.session_id = {table}.session_id AND s.tenant <> '';
ALTER TABLE {table} DROP CONSTRAINT {table}_pkey, ADD PRIMARY KEY (tenant, {key});
"
                ));
            }
        }
    }
    sql
}

/// A SQLite table that migration 10 builds anew, keyed by tenant.
pub(crate) struct RebuiltTable {
    pub(crate) name: &'static str,
    /// Its columns as at schema version 9, without its key (and without `tenant`).
    pub(crate) columns: &'static str,
    /// The columns copied over (all but generated ones).
    pub(crate) copied: &'static str,
    /// Its key before the migration (after it: tenant, then these).
    key: &'static str,
    /// Its indexes, made again.
    pub(crate) indexes: &'static [&'static str],
}

/// The SQLite record tables as at schema versions 10 and 11 (migration 11 changed
/// nothing in SQLite): [`RebuiltTable::columns`] plus `tenant`, keyed by
/// `(tenant, id)`, with these indexes. Migration 13 builds them anew from this.
pub(crate) fn sqlite_record_tables_v11() -> Vec<&'static RebuiltTable> {
    SQLITE_REBUILT
        .iter()
        .filter(|t| !matches!(t.name, "sessions" | "steps"))
        .collect()
}

impl RebuiltTable {
    /// The statements that build the table anew, its `tenant` column filled with
    /// `tenant` (an expression over the old row).
    fn rebuild(&self, tenant: &str) -> String {
        let RebuiltTable {
            name,
            columns,
            copied,
            key,
            indexes,
        } = self;
        let mut sql = format!(
            "CREATE TABLE {name}_by_tenant (
{columns},
    tenant TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (tenant, {key})
);
INSERT INTO {name}_by_tenant ({copied}, tenant) SELECT {copied}, {tenant} FROM {name};
DROP TABLE {name};
ALTER TABLE {name}_by_tenant RENAME TO {name};
"
        );
        for index in *indexes {
            sql.push_str(index);
            sql.push_str(";\n");
        }
        sql
    }
}

/// The columns every record table starts with, as at schema version 9.
macro_rules! record_columns {
    () => {
        "    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ts INTEGER NOT NULL,
    session_id TEXT NOT NULL,
    step_id TEXT, org TEXT, workspace TEXT, trace_id TEXT, span_id TEXT, parent_span_id TEXT,
    payload TEXT NOT NULL"
    };
}

/// Their names.
macro_rules! record_names {
    () => {
        "id, kind, ts, session_id, step_id, org, workspace, trace_id, span_id, parent_span_id, payload"
    };
}

/// The SQLite tables migration 10 builds anew, sessions first.
const SQLITE_REBUILT: [RebuiltTable; 7] = [
    RebuiltTable {
        name: "sessions",
        columns: "    session_id TEXT NOT NULL,
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
    cost_usd REAL",
        copied: "session_id, org, workspace, started_at, last_at, ended_at, end_id, start_ts, \
                 start_id, metadata, event_count, llm_calls, message_count, total_tokens, cost_usd",
        key: "session_id",
        indexes: &[
            "CREATE INDEX sessions_started ON sessions (started_at DESC, session_id DESC)",
            "CREATE INDEX sessions_tenant ON sessions (org, workspace, started_at DESC)",
        ],
    },
    RebuiltTable {
        name: "steps",
        columns: "    session_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    step_index INTEGER,
    turn_number INTEGER,
    started_at INTEGER,
    start_id TEXT,
    completed_at INTEGER,
    end_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}'",
        copied: "session_id, step_id, step_index, turn_number, started_at, start_id, \
                 completed_at, end_id, metadata",
        key: "session_id, step_id",
        indexes: &[],
    },
    RebuiltTable {
        name: "lifecycle",
        columns: record_columns!(),
        copied: record_names!(),
        key: "id",
        indexes: &["CREATE INDEX lifecycle_session ON lifecycle (session_id)"],
    },
    RebuiltTable {
        name: "events",
        columns: concat!(
            record_columns!(),
            ",
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
    reported_cost_usd REAL,
    latency_ms REAL,
    ttft_ms REAL,
    response_status INTEGER,
    request_path TEXT,
    api_key_hash TEXT,
    gateway_key_id TEXT,
    tool_name TEXT,
    computed_cost_usd REAL,
    cost_usd REAL GENERATED ALWAYS AS (coalesce(reported_cost_usd, computed_cost_usd)) VIRTUAL"
        ),
        copied: concat!(
            record_names!(),
            ", event_type, status, provider, model, input_tokens, output_tokens, \
             cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
             reported_cost_usd, latency_ms, ttft_ms, response_status, request_path, \
             api_key_hash, gateway_key_id, tool_name, computed_cost_usd"
        ),
        key: "id",
        indexes: &[
            "CREATE INDEX events_session ON events (session_id, ts)",
            "CREATE INDEX events_ts ON events (ts)",
            "CREATE INDEX events_model ON events (model, ts) WHERE model IS NOT NULL",
            "CREATE INDEX events_key ON events (api_key_hash, ts) WHERE api_key_hash IS NOT NULL",
            "CREATE INDEX events_calls ON events (ts DESC, id DESC) WHERE event_type = 'llm'",
        ],
    },
    RebuiltTable {
        name: "messages",
        columns: concat!(
            record_columns!(),
            ",
    message_type TEXT NOT NULL,
    from_role TEXT,
    to_role TEXT"
        ),
        copied: concat!(record_names!(), ", message_type, from_role, to_role"),
        key: "id",
        indexes: &["CREATE INDEX messages_session ON messages (session_id, ts)"],
    },
    RebuiltTable {
        name: "outcome_rewards",
        columns: concat!(
            record_columns!(),
            ",
    objective_key TEXT NOT NULL,
    total_reward REAL NOT NULL"
        ),
        copied: concat!(record_names!(), ", objective_key, total_reward"),
        key: "id",
        indexes: &["CREATE INDEX outcome_rewards_session ON outcome_rewards (session_id)"],
    },
    RebuiltTable {
        name: "event_rewards",
        columns: concat!(
            record_columns!(),
            ",
    event_id TEXT NOT NULL,
    value REAL NOT NULL"
        ),
        copied: concat!(record_names!(), ", event_id, value"),
        key: "id",
        indexes: &[
            "CREATE INDEX event_rewards_session ON event_rewards (session_id)",
            "CREATE INDEX event_rewards_event ON event_rewards (event_id)",
        ],
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_keys_tell_every_org_and_workspace_apart() {
        assert_eq!(tenant_key(None, None), "");
        assert_eq!(tenant_key(Some("acme"), Some("prod")), "acme/prod");
        assert_eq!(tenant_key(Some("acme"), None), "acme/");
        // A `/` or `\` in a name is escaped: these would otherwise be one key.
        let keys = [
            tenant_key(Some("a/b"), Some("c")),
            tenant_key(Some("a"), Some("b/c")),
            tenant_key(Some("a\\"), Some("b")),
            tenant_key(Some("a"), Some("\\b")),
        ];
        assert_eq!(keys[0], "a\\/b/c");
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn a_tenant_reads_its_session_and_the_local_view_every_one() {
        let (all, none) = visible_tenants_sql(&Scope::All, "?1", "?2");
        assert!(all.contains("session_id = ?1") && none.is_none());
        let (one, key) = visible_tenants_sql(&Scope::tenant("acme", "prod"), "$1", "$2");
        assert!(one.contains("tenant = $2"));
        assert_eq!(key.as_deref(), Some("acme/prod"));
        assert_eq!(one_tenant("s", vec![]).unwrap(), None);
        assert_eq!(
            one_tenant("s", vec!["t".into()]).unwrap().as_deref(),
            Some("t")
        );
        let err = one_tenant("s", vec!["a".into(), "b".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "id s is used by 2 tenants: read it with one tenant's key"
        );
    }
}
