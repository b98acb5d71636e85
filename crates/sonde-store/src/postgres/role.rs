//! The role statements from outside run as: `sonde_query_<database>`, a login role that
//! is no superuser, creates nothing, and may only read this database's tables.
//!
//! Switching roles inside a session (`SET ROLE`) would not do: a superuser's session can
//! switch back from SQL (`set_config('role', ...)`). So the query connections log in as
//! the role itself, with a password Sonde generates and keeps in `sonde_query_role`, a
//! table only the database's owner can read. Opening the store (`sonde migrate`, or any
//! command) creates the role, or repairs it, and grants it `SELECT` on every table.
//!
//! When the connecting role may not create roles (it is then no superuser either), the
//! statements run on its own connections, still in read-only transactions.

use deadpool_postgres::Object;
use tokio_postgres::error::SqlState;

use crate::OpenError;

use super::classify;

/// The longest role name PostgreSQL keeps.
const MAX_ROLE_NAME: usize = 63;

/// Connections the query role may hold at once (its pool holds fewer).
const QUERY_ROLE_CONNECTIONS: i32 = 8;

/// The login of the query role: its name and password.
pub(super) struct QueryLogin {
    /// The role's name.
    pub(super) role: String,
    /// Its password.
    pub(super) password: String,
}

/// The query role's name for `database`: `sonde_query_` and the database's name, with
/// anything but ASCII letters, digits and `_` as `_`, lowercase, at most 63 bytes.
pub(super) fn role_name(database: &str) -> String {
    let mut name: String = format!("sonde_query_{database}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(MAX_ROLE_NAME);
    name
}

/// `name` as a quoted SQL identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn failed(e: &tokio_postgres::Error) -> OpenError {
    OpenError::Migration {
        version: 0,
        name: "query_role",
        cause: classify(e),
    }
}

/// Creates (or repairs) the query role and grants it read access to every table of the
/// current schema; its login, or `None` when the connecting role may not create roles.
pub(super) async fn ensure_query_role(client: &Object) -> Result<Option<QueryLogin>, OpenError> {
    let row = client
        .query_one(
            "SELECT current_database()::text, current_schema()::text",
            &[],
        )
        .await
        .map_err(|e| failed(&e))?;
    let (database, schema): (String, String) = (row.get(0), row.get(1));
    let role = role_name(&database);
    let (role_id, database_id, schema_id) = (ident(&role), ident(&database), ident(&schema));
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS sonde_query_role (
                role TEXT PRIMARY KEY,
                password TEXT NOT NULL
            );
            REVOKE ALL ON sonde_query_role FROM PUBLIC;",
        )
        .await
        .map_err(|e| failed(&e))?;
    let stored: Option<String> = client
        .query_opt(
            "SELECT password FROM sonde_query_role WHERE role = $1",
            &[&role],
        )
        .await
        .map_err(|e| failed(&e))?
        .map(|r| r.get(0));
    let exists = client
        .query_opt("SELECT 1 FROM pg_roles WHERE rolname = $1", &[&role])
        .await
        .map_err(|e| failed(&e))?
        .is_some();
    let password = match stored {
        Some(password) if exists => password,
        _ => {
            let password = format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            );
            let verb = if exists { "ALTER" } else { "CREATE" };
            let made = client
                .batch_execute(&format!(
                    "{verb} ROLE {role_id} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT \
                     NOREPLICATION NOBYPASSRLS CONNECTION LIMIT {QUERY_ROLE_CONNECTIONS} \
                     PASSWORD '{password}'"
                ))
                .await;
            match made {
                Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                    tracing::warn!(
                        role = %role,
                        "the database role may not create roles: statements from outside run as it, in read-only transactions (see docs/reliability.md)"
                    );
                    return Ok(None);
                }
                other => other.map_err(|e| failed(&e))?,
            }
            client
                .execute(
                    "INSERT INTO sonde_query_role (role, password) VALUES ($1, $2)
                     ON CONFLICT (role) DO UPDATE SET password = excluded.password",
                    &[&role, &password],
                )
                .await
                .map_err(|e| failed(&e))?;
            password
        }
    };
    client
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE {database_id} TO {role_id};
             GRANT USAGE ON SCHEMA {schema_id} TO {role_id};
             GRANT SELECT ON ALL TABLES IN SCHEMA {schema_id} TO {role_id};
             REVOKE ALL ON sonde_query_role FROM {role_id};
             ALTER ROLE {role_id} SET default_transaction_read_only = on;"
        ))
        .await
        .map_err(|e| failed(&e))?;
    Ok(Some(QueryLogin { role, password }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_plain_lowercase_identifiers_within_postgres_limit() {
        assert_eq!(role_name("sonde"), "sonde_query_sonde");
        assert_eq!(role_name("My-DB.1"), "sonde_query_my_db_1");
        assert_eq!(role_name(&"x".repeat(100)).len(), MAX_ROLE_NAME);
    }
}
