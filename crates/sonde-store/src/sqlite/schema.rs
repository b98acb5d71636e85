//! SQLite schema, as versioned migrations recorded in `schema_migrations`.

use rusqlite::Connection;

use crate::identity::{DATABASE_ID_VERSION, id_of, new_database_id};
use crate::migrations::{MIGRATIONS, SQLITE, latest_version};
use crate::{BackendError, OpenError};

use super::classify;

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
            tx.execute_batch(&(migration.sql)(&SQLITE)).map_err(fail)?;
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

/// The database's id ([`crate::DatabaseIdentity`]), added the first time it is opened.
pub(super) fn database_id(conn: &Connection) -> rusqlite::Result<String> {
    conn.execute(
        "INSERT OR IGNORE INTO schema_migrations (version, name) VALUES (?1, ?2)",
        rusqlite::params![DATABASE_ID_VERSION, new_database_id()],
    )?;
    let name: String = conn.query_row(
        "SELECT name FROM schema_migrations WHERE version = ?1",
        [DATABASE_ID_VERSION],
        |row| row.get(0),
    )?;
    Ok(id_of(&name))
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
