//! Which database a store is: a random id kept in the database itself, and where it is.
//!
//! The id is a row of `schema_migrations` with version 0 (`database id <uuid>`), added
//! the first time the database is opened: no migration, no new table, and every copy
//! made of the database later carries it. The writer records it in its spool, so that a
//! spool is never replayed into another database.

use serde::{Deserialize, Serialize};

/// The `schema_migrations` version whose row holds the database id (migrations start
/// at 1).
pub(crate) const DATABASE_ID_VERSION: i64 = 0;
/// What that row's name starts with.
pub(crate) const DATABASE_ID_PREFIX: &str = "database id ";

/// A database's identity.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sonde_store::SqlQuery;
/// let dir = tempfile::tempdir()?;
/// let store = sonde_store::SqliteStore::open(dir.path().join("t.db")).await?;
/// let identity = store.database().expect("a SQLite store knows its id").clone();
/// drop(store);
/// let again = sonde_store::SqliteStore::open(dir.path().join("t.db")).await?;
/// assert_eq!(again.database(), Some(&identity), "the id is kept in the database");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseIdentity {
    /// A random id stored in the database when it was first opened.
    pub id: String,
    /// Where it is: its URL, without password.
    pub url: String,
}

/// A new database id.
pub(crate) fn new_database_id() -> String {
    format!("{DATABASE_ID_PREFIX}{}", uuid::Uuid::new_v4())
}

/// The id in a `schema_migrations` name.
pub(crate) fn id_of(name: &str) -> String {
    name.strip_prefix(DATABASE_ID_PREFIX)
        .unwrap_or(name)
        .to_owned()
}
