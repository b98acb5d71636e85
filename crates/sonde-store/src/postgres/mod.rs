//! The PostgreSQL backend: pooled connections, one transaction per batch, each table's
//! rows inserted with one `INSERT ... SELECT FROM unnest(...)` (`ON CONFLICT DO NOTHING`
//! when the batch holds records already stored).
//!
//! Every operation runs on the Tokio runtime the store was opened on, so the store can
//! be used from any executor (the tracer's sink thread uses a plain blocking wait).

mod cursors;
mod keys;
mod partitions;
mod query;
mod read;
mod records;
mod role;
mod rollups;
mod runs;
mod schema;
mod write;

use std::str::FromStr;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio::runtime::Handle;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::error::ClosedError;
use crate::{BackendError, CallPricer, ErrorClass, OpenError};

/// Connections kept in the pool.
const POOL_SIZE: usize = 16;
/// Connections kept for statements from outside
/// ([`SqlQuery::query_limited`](crate::SqlQuery::query_limited)), in a pool of their
/// own: runaway queries can hold these, never the connections writes and key lookups
/// need.
const QUERY_POOL_SIZE: usize = 4;
/// Attempts of a batch that lost a deadlock or serialisation race.
const CONTENTION_ATTEMPTS: usize = 5;

type Param<'a> = Box<dyn ToSql + Sync + Send + 'a>;

/// The PostgreSQL store.
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = sonde_store::PostgresStore::open("postgres://localhost/sonde").await?;
/// # Ok(()) }
/// ```
pub struct PostgresStore {
    pool: Pool,
    /// The connections of statements from outside.
    queries: Pool,
    runtime: Handle,
    /// What computes the cost of an LLM call ([`PostgresStore::priced_by`]).
    pricer: Option<CallPricer>,
    /// Which database this is.
    database: crate::DatabaseIdentity,
    /// The weekly partitions of the record tables this store knows to exist.
    partitions: partitions::Partitions,
}

/// Maps a PostgreSQL error to a classified backend error.
pub(crate) fn classify(e: &tokio_postgres::Error) -> BackendError {
    let class = match e.code() {
        Some(code)
            if *code == SqlState::T_R_DEADLOCK_DETECTED
                || *code == SqlState::T_R_SERIALIZATION_FAILURE
                || *code == SqlState::LOCK_NOT_AVAILABLE =>
        {
            ErrorClass::Contention
        }
        Some(code) if *code == SqlState::QUERY_CANCELED => ErrorClass::Timeout,
        Some(code) if code.code().starts_with("23") => ErrorClass::Constraint,
        Some(code)
            if code.code().starts_with("08")
                || code.code().starts_with("57P")
                || *code == SqlState::TOO_MANY_CONNECTIONS =>
        {
            ErrorClass::Connection
        }
        Some(_) => ErrorClass::Unknown,
        None => ErrorClass::Connection,
    };
    // The driver keeps the cause of a failed connection ("connection refused") apart
    // from its own message ("error connecting to server").
    let message = match e.as_db_error() {
        Some(db) => db.message().to_owned(),
        None => crate::message_with_causes(e),
    };
    BackendError::new(class, message)
}

fn pool_error(e: deadpool_postgres::PoolError) -> BackendError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => classify(&e),
        PoolError::Timeout(_) => {
            BackendError::new(ErrorClass::Timeout, "timed out waiting for a connection")
        }
        other => BackendError::new(ErrorClass::Connection, crate::message_with_causes(&other)),
    }
}

/// The error for a failed open of `url`: the URL and the driver's message without the
/// password, should the message echo the connection string. (tokio-postgres names
/// options, not their values, and its `Config` prints no password; this keeps it so.)
fn open_failed(url: &str, cause: BackendError) -> OpenError {
    OpenError::Backend {
        url: crate::redact_url(url),
        cause: BackendError {
            message: crate::redact_url(&cause.message),
            ..cause
        },
    }
}

fn at(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl PostgresStore {
    /// Connects to `url` and applies pending migrations. Must be called inside a Tokio
    /// runtime; the store runs its work on that runtime.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let fail =
            |message: String| open_failed(url, BackendError::new(ErrorClass::Connection, message));
        let runtime = Handle::try_current()
            .map_err(|_| fail("the postgres backend needs a tokio runtime".into()))?;
        let config = tokio_postgres::Config::from_str(url).map_err(|e| fail(e.to_string()))?;
        let pool = Pool::builder(Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        ))
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| fail(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| open_failed(url, pool_error(e)))?;
        let login = schema::migrate(&mut client).await?;
        let database = crate::DatabaseIdentity {
            id: schema::database_id(&client)
                .await
                .map_err(|e| open_failed(url, classify(&e)))?,
            url: crate::redact_url(url),
        };
        drop(client);
        // This week's and next week's partitions are made ahead, so that writes at a
        // week's start rarely wait for one (the writer makes any other week it needs).
        let partitions = partitions::Partitions::default();
        let now = sonde_model::Timestamp::now().as_micros();
        partitions
            .ensure(&pool, [now, now + crate::partitions::WEEK].into_iter())
            .await
            .map_err(|e| open_failed(url, e))?;
        // Statements from outside log in as the query role when there is one.
        let mut query_config = config;
        if let Some(login) = login {
            query_config.user(&login.role).password(login.password);
        }
        // Session state a statement from outside leaves (settings, advisory locks,
        // prepared statements) is discarded before its connection is used again.
        let queries = Pool::builder(Manager::from_config(
            query_config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Custom("DISCARD ALL".into()),
            },
        ))
        .max_size(QUERY_POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            pool,
            queries,
            runtime,
            pricer: None,
            database,
            partitions,
        })
    }

    /// The store, computing the cost of each LLM call it stores with `pricer` (see
    /// [`CallPricer`]); with none, it computes no cost.
    pub fn priced_by(mut self, pricer: Option<CallPricer>) -> Self {
        self.pricer = pricer;
        self
    }

    /// Runs `work` on the store's runtime; "closed" when the runtime is gone.
    async fn on_runtime<T: Send + 'static, E: ClosedError + Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
    ) -> Result<T, E> {
        self.runtime
            .spawn(work)
            .await
            .unwrap_or_else(|_| Err(E::closed()))
    }
}

/// Boxed parameters as the driver takes them.
fn params<'a>(values: &'a [Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    values
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_carry_neither_the_password_nor_a_driver_message_echoing_it() {
        let echoed = BackendError::new(
            ErrorClass::Connection,
            "bad connection string postgres://u:s3cret@h/db or host=h password=s3cret",
        );
        let err = open_failed("postgres://u:s3cret@h/db", echoed).to_string();
        assert_eq!(
            err,
            "cannot open postgres://u:***@h/db: bad connection string postgres://u:***@h/db or host=h password=***"
        );
        let plain = BackendError::new(ErrorClass::Connection, "refused");
        let err = open_failed("postgres://u@h/db", plain).to_string();
        assert_eq!(err, "cannot open postgres://u@h/db: refused");
    }
}
