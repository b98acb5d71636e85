//! What can go wrong, one enum per operation.
//!
//! Each message says its cause once: a variant puts the cause's text in its own
//! message and does not also hand it out as its `source()`, so printing the chain
//! (`anyhow`'s `{:#}`) does not say it twice.

/// The class of a failed storage operation, for retry decisions and dashboards.
///
/// ```
/// use sonde_store::ErrorClass;
/// assert!(ErrorClass::Connection.is_transient());
/// assert!(!ErrorClass::Constraint.is_transient());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorClass {
    /// The store cannot be reached (refused, reset, closed, missing file).
    Connection,
    /// The operation took too long.
    Timeout,
    /// Another writer holds a lock; trying again later should succeed.
    Contention,
    /// The data violates a constraint; retrying will not help.
    Constraint,
    /// Anything else.
    Unknown,
}

impl ErrorClass {
    /// Whether retrying later can succeed.
    ///
    /// ```
    /// assert!(sonde_store::ErrorClass::Contention.is_transient());
    /// ```
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorClass::Connection | ErrorClass::Timeout | ErrorClass::Contention
        )
    }

    /// The lowercase name used in metrics and diagnostics.
    ///
    /// ```
    /// assert_eq!(sonde_store::ErrorClass::Timeout.as_str(), "timeout");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connection => "connection",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Contention => "contention",
            ErrorClass::Constraint => "constraint",
            ErrorClass::Unknown => "unknown",
        }
    }
}

/// An error reported by the database itself, classified.
///
/// ```
/// use sonde_store::{BackendError, ErrorClass};
/// let e = BackendError::new(ErrorClass::Contention, "database is locked");
/// assert_eq!(e.to_string(), "database is locked");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BackendError {
    /// What kind of failure it is.
    pub class: ErrorClass,
    /// The database's message.
    pub message: String,
}

impl BackendError {
    /// A classified backend error.
    ///
    /// ```
    /// let e = sonde_store::BackendError::new(sonde_store::ErrorClass::Unknown, "boom");
    /// assert_eq!(e.message, "boom");
    /// ```
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Self {
        Self {
            class,
            message: message.into(),
        }
    }
}

/// Why a store could not be opened.
///
/// ```
/// let err = sonde_store::StoreUrl::parse("mysql://x").unwrap_err();
/// assert!(err.to_string().starts_with("unsupported database url"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL names no backend this build has.
    #[error(
        "unsupported database url {url:?}: expected sqlite://PATH, sqlite::memory: or postgres://..."
    )]
    UnsupportedUrl {
        /// The URL given, its password replaced by `***`.
        url: String,
    },
    /// The backend is known but this build was compiled without it.
    #[error("this sonde was built without the {0} backend")]
    BackendNotBuilt(&'static str),
    /// The database folder could not be created.
    #[error("cannot create {path}: {cause}")]
    CreateDir {
        /// The folder.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
    /// The SQLite file does not exist and the open was one that must not create it
    /// ([`StoreUrl::open_existing`](crate::StoreUrl::open_existing)); nothing was created.
    #[error("no database at {path}")]
    NotFound {
        /// The path, as given (credentials-looking parts redacted).
        path: String,
    },
    /// The database refused to open.
    #[error("cannot open {url}: {cause}")]
    Backend {
        /// The URL, its password replaced by `***` (see [`redact_url`](crate::redact_url)).
        url: String,
        /// The database's error.
        cause: BackendError,
    },
    /// A migration failed; the database is left at the previous version.
    #[error("migration {version} ({name}) failed: {cause}")]
    Migration {
        /// The migration's version.
        version: i64,
        /// The migration's name.
        name: &'static str,
        /// The database's error.
        cause: BackendError,
    },
    /// The database was written by a newer Sonde.
    #[error("database schema version {found} is newer than this sonde knows ({known})")]
    SchemaTooNew {
        /// The newest migration applied in the database.
        found: i64,
        /// The newest migration this build knows.
        known: i64,
    },
}

/// Why records could not be written. Nothing of the batch is stored when this is
/// returned.
///
/// ```
/// let e = sonde_store::WriteError::Closed;
/// assert_eq!(e.to_string(), "the store is closed");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The database failed.
    #[error("write failed: {0}")]
    Backend(BackendError),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

impl From<BackendError> for WriteError {
    fn from(e: BackendError) -> Self {
        WriteError::Backend(e)
    }
}

impl From<BackendError> for ReadError {
    fn from(e: BackendError) -> Self {
        ReadError::Backend(e)
    }
}

impl WriteError {
    /// The class of the failure, for retries.
    ///
    /// ```
    /// assert_eq!(sonde_store::WriteError::Closed.class(), sonde_store::ErrorClass::Connection);
    /// ```
    pub fn class(&self) -> ErrorClass {
        match self {
            WriteError::Backend(e) => e.class,
            WriteError::Closed => ErrorClass::Connection,
        }
    }
}

/// Why a read (get, list, delete, export) failed.
///
/// ```
/// assert_eq!(sonde_store::ReadError::InvalidCursor.to_string(), "invalid cursor: pass the next_cursor of a previous page");
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The database failed.
    #[error("read failed: {0}")]
    Backend(BackendError),
    /// The page cursor was not made by this store.
    #[error("invalid cursor: pass the next_cursor of a previous page")]
    InvalidCursor,
    /// A stored row could not be turned back into a record.
    #[error("stored record {id} is corrupt: {reason}")]
    Corrupt {
        /// The record id.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
    /// Several tenants use the id (of a session, or a call), and the reader sees them
    /// all: it must read with one tenant's key.
    #[error("id {id} is used by {tenants} tenants: read it with one tenant's key")]
    AmbiguousId {
        /// The id.
        id: String,
        /// How many tenants use it.
        tenants: usize,
    },
}

/// Why a raw SQL query was refused or failed. A refused query changes nothing.
///
/// ```
/// let e = sonde_store::QueryError::NotReadOnly;
/// assert!(e.to_string().contains("read-only"));
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The statement would write, or is not a single SELECT / WITH / EXPLAIN / VALUES.
    #[error("refused: only a single read-only statement (SELECT, WITH, EXPLAIN, VALUES) may run")]
    NotReadOnly,
    /// The SQL is invalid or failed.
    #[error("query failed: {0}")]
    Sql(String),
    /// A parameter cannot be bound.
    #[error("parameter {index}: {reason}")]
    Param {
        /// 1-based parameter position.
        index: usize,
        /// Why.
        reason: String,
    },
    /// The statement ran longer than its timeout and was stopped.
    #[error("query stopped: it ran longer than the {} ms statement timeout", .limit.as_millis())]
    Timeout {
        /// The statement timeout.
        limit: std::time::Duration,
    },
    /// The result is over one of its caps ([`QueryLimits`](crate::QueryLimits)).
    #[error("the result is over the {limit}-{what} limit: add a LIMIT or select fewer columns")]
    TooLarge {
        /// What is capped: `row` or `byte`.
        what: &'static str,
        /// The cap.
        limit: usize,
    },
    /// The store cannot be reached (its server is down, or no connection is free).
    #[error("the store cannot be reached: {0}")]
    Unavailable(BackendError),
    /// The store was closed.
    #[error("the store is closed")]
    Closed,
}

/// The error an operation returns when the store's threads (or runtime) are gone.
pub(crate) trait ClosedError {
    /// The error saying that the store is closed.
    fn closed() -> Self;
}

impl ClosedError for WriteError {
    fn closed() -> Self {
        WriteError::Closed
    }
}

impl ClosedError for ReadError {
    fn closed() -> Self {
        ReadError::Closed
    }
}

impl ClosedError for QueryError {
    fn closed() -> Self {
        QueryError::Closed
    }
}
