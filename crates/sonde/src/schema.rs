//! What `sonde query` can read: the tables of recorded traces and their columns, and
//! the schema version of a store.

use serde::Serialize;

use crate::store::{QueryError, TraceStore};

/// The tables of recorded traces, in the order a reader meets them.
pub const QUERY_TABLES: [&str; 6] = [
    "sessions",
    "steps",
    "events",
    "messages",
    "outcome_rewards",
    "event_rewards",
];

/// One table and its columns, as the store names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableColumns {
    /// The table.
    pub table: String,
    /// Its columns, in order.
    pub columns: Vec<String>,
}

/// The columns of each of [`QUERY_TABLES`], read from `store` through its read-only
/// query with a statement every backend runs alike.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde::store::StoreUrl::parse("sqlite::memory:")?.open().await?;
/// let tables = sonde::schema::query_tables(store.as_ref()).await?;
/// let events = tables.iter().find(|t| t.table == "events").unwrap();
/// assert!(events.columns.iter().any(|c| c == "cost_usd"));
/// # Ok(()) }
/// ```
pub async fn query_tables(store: &dyn TraceStore) -> Result<Vec<TableColumns>, QueryError> {
    let mut tables = Vec::with_capacity(QUERY_TABLES.len());
    for table in QUERY_TABLES {
        let result = store
            .query(&format!("SELECT * FROM {table} LIMIT 0"), &[])
            .await?;
        tables.push(TableColumns {
            table: table.to_owned(),
            columns: result.columns,
        });
    }
    Ok(tables)
}

/// The schema version of `store`: the last migration applied.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde::store::StoreUrl::parse("sqlite::memory:")?.open().await?;
/// assert!(sonde::schema::version(store.as_ref()).await? >= 1);
/// # Ok(()) }
/// ```
pub async fn version(store: &dyn TraceStore) -> Result<i64, QueryError> {
    let result = store
        .query("SELECT max(version) AS version FROM schema_migrations", &[])
        .await?;
    Ok(result
        .rows
        .first()
        .and_then(|row| row.first())
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0))
}

/// What a store holds, counted: what `sonde status` reports on a local database.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inventory {
    /// The schema version ([`version`]).
    pub schema_version: i64,
    /// The database's size on disk in bytes, where the database can say (PostgreSQL).
    pub size_bytes: Option<u64>,
    /// Sessions.
    pub sessions: u64,
    /// LLM calls.
    pub llm_calls: u64,
    /// Events of every kind.
    pub events: u64,
    /// The time of the oldest event, as stored (microseconds in SQLite, a time in
    /// PostgreSQL).
    pub oldest_event: serde_json::Value,
    /// The time of the newest event, as stored.
    pub newest_event: serde_json::Value,
}

/// Counts what `store` holds, through its read-only query.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde::open("sqlite::memory:").await?;
/// let tracer = sonde::SessionTracer::new(store.clone())?;
/// sonde::demo::record(&tracer).await?;
/// let inventory = sonde::schema::inventory(store.as_ref()).await?;
/// assert_eq!(inventory.sessions, 1);
/// assert!(inventory.llm_calls > 0);
/// # Ok(()) }
/// ```
pub async fn inventory(store: &dyn TraceStore) -> Result<Inventory, QueryError> {
    let one = |sql: &'static str| async move {
        let rows = store.query(sql, &[]).await?;
        Ok::<_, QueryError>(
            rows.rows
                .first()
                .and_then(|row| row.first())
                .cloned()
                .unwrap_or(serde_json::Value::Null),
        )
    };
    let count = |value: serde_json::Value| value.as_u64().unwrap_or(0);
    let size_bytes = match store.backend() {
        "postgres" => one("SELECT pg_database_size(current_database())")
            .await?
            .as_u64(),
        _ => None,
    };
    Ok(Inventory {
        schema_version: version(store).await?,
        size_bytes,
        sessions: count(one("SELECT count(*) FROM sessions").await?),
        llm_calls: count(one("SELECT count(*) FROM events WHERE event_type = 'llm'").await?),
        events: count(one("SELECT count(*) FROM events").await?),
        oldest_event: one("SELECT min(ts) FROM events").await?,
        newest_event: one("SELECT max(ts) FROM events").await?,
    })
}
