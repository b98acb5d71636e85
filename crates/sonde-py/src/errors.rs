//! `sonde.SondeError` and its subclasses, and the one conversion from Sonde's Rust
//! errors to them: the exception carries Sonde's own message.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;

create_exception!(
    sonde,
    SondeError,
    PyException,
    "Every error Sonde raises: its message says what failed and where."
);
create_exception!(
    sonde,
    OpenError,
    SondeError,
    "A database could not be opened (bad URL, unreachable server, newer schema)."
);
create_exception!(
    sonde,
    DatabaseNotFoundError,
    OpenError,
    "Reading a database that does not exist (reads never create one)."
);
create_exception!(
    sonde,
    RecordError,
    SondeError,
    "Recording failed: no active session, a session already active, a sink that failed."
);
create_exception!(
    sonde,
    ReadError,
    SondeError,
    "Reading the store failed, or the tracer has no store to read (a JSONL tracer)."
);
create_exception!(
    sonde,
    SessionNotFoundError,
    ReadError,
    "`load_session` was asked for a session the database does not hold."
);
create_exception!(
    sonde,
    QueryError,
    SondeError,
    "A SQL query was refused (it writes, or exceeds the limits) or failed."
);
create_exception!(sonde, SyncError, SondeError, "A transcript sync failed.");

/// Adds the exceptions to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("SondeError", py.get_type::<SondeError>())?;
    m.add("OpenError", py.get_type::<OpenError>())?;
    m.add(
        "DatabaseNotFoundError",
        py.get_type::<DatabaseNotFoundError>(),
    )?;
    m.add("RecordError", py.get_type::<RecordError>())?;
    m.add("ReadError", py.get_type::<ReadError>())?;
    m.add(
        "SessionNotFoundError",
        py.get_type::<SessionNotFoundError>(),
    )?;
    m.add("QueryError", py.get_type::<QueryError>())?;
    m.add("SyncError", py.get_type::<SyncError>())?;
    Ok(())
}

/// Why an operation failed, before it becomes a Python exception (made without the
/// GIL, raised with it).
#[derive(Debug)]
pub(crate) enum Failure {
    /// Opening the database.
    Open(sonde::store::OpenError),
    /// Recording.
    Record(sonde::RecordError),
    /// Reading through the tracer.
    Lookup(sonde::LookupError),
    /// Reading the store.
    Read(sonde::store::ReadError),
    /// A session that is not there.
    SessionNotFound(String),
    /// A query.
    Query(sonde::store::QueryError),
    /// A sync.
    Sync(String),
    /// An argument Python passed (raised as `ValueError`).
    Value(String),
    /// The runtime could not start, or a file could not be read.
    Runtime(String),
}

impl From<Failure> for PyErr {
    fn from(failure: Failure) -> PyErr {
        use sonde::store::OpenError as Open;
        match failure {
            Failure::Open(e @ Open::NotFound { .. }) => {
                DatabaseNotFoundError::new_err(e.to_string())
            }
            Failure::Open(e) => OpenError::new_err(e.to_string()),
            Failure::Record(e) => RecordError::new_err(e.to_string()),
            Failure::Lookup(sonde::LookupError::Query(e)) => QueryError::new_err(e.to_string()),
            Failure::Lookup(e) => ReadError::new_err(e.to_string()),
            Failure::Read(e) => ReadError::new_err(e.to_string()),
            Failure::SessionNotFound(message) => SessionNotFoundError::new_err(message),
            Failure::Query(e) => QueryError::new_err(e.to_string()),
            Failure::Sync(message) => SyncError::new_err(message),
            Failure::Value(message) => PyValueError::new_err(message),
            Failure::Runtime(message) => SondeError::new_err(message),
        }
    }
}

impl From<sonde::store::OpenError> for Failure {
    fn from(e: sonde::store::OpenError) -> Self {
        Failure::Open(e)
    }
}

impl From<sonde::RecordError> for Failure {
    fn from(e: sonde::RecordError) -> Self {
        Failure::Record(e)
    }
}

impl From<sonde::LookupError> for Failure {
    fn from(e: sonde::LookupError) -> Self {
        Failure::Lookup(e)
    }
}

impl From<sonde::store::ReadError> for Failure {
    fn from(e: sonde::store::ReadError) -> Self {
        Failure::Read(e)
    }
}

impl From<sonde::store::QueryError> for Failure {
    fn from(e: sonde::store::QueryError) -> Self {
        Failure::Query(e)
    }
}
