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
