//! PostgreSQL schema, as versioned migrations applied under an advisory lock.

use deadpool_postgres::Object;

use crate::OpenError;
use crate::identity::{DATABASE_ID_VERSION, id_of, new_database_id};
use crate::migrations::{MIGRATIONS, POSTGRES, latest_version};

use super::classify;
use super::role::QueryLogin;

/// Key of the advisory lock held while migrating ("SONDE" in ASCII).
pub(super) const MIGRATION_LOCK: i64 = 0x0053_4f4e_4445;

/// Applies the migrations the database lacks and sets up the query role (see
/// [`super::role`]), under an advisory lock so that several processes starting at once
/// apply each migration once; the query role's login, if it could be made.
pub(super) async fn migrate(client: &mut Object) -> Result<Option<QueryLogin>, OpenError> {
    let setup = |e: tokio_postgres::Error| OpenError::Migration {
        version: 0,
        name: "schema_migrations",
        cause: classify(&e),
    };
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(setup)?;
    let result = match apply(client).await {
        Ok(()) => super::role::ensure_query_role(client).await,
        Err(e) => Err(e),
    };
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(setup);
    let login = result?;
    unlock.map(|_| login)
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
            tx.batch_execute(&(migration.sql)(&POSTGRES))
                .await
                .map_err(fail)?;
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

/// The database's id ([`crate::DatabaseIdentity`]), added the first time it is opened.
pub(super) async fn database_id(client: &Object) -> Result<String, tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING",
            &[&DATABASE_ID_VERSION, &new_database_id()],
        )
        .await?;
    let row = client
        .query_one(
            "SELECT name FROM schema_migrations WHERE version = $1",
            &[&DATABASE_ID_VERSION],
        )
        .await?;
    Ok(id_of(row.get(0)))
}
