//! Database URLs: `sqlite://PATH`, `sqlite::memory:`, `postgres://...`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{OpenError, TraceStore};

/// Where a store lives.
///
/// ```
/// use sonde_store::StoreUrl;
/// use std::path::PathBuf;
/// assert_eq!(StoreUrl::parse("sqlite:///tmp/q.db").unwrap(), StoreUrl::Sqlite(PathBuf::from("/tmp/q.db")));
/// assert_eq!(StoreUrl::parse("sqlite://data/q.db").unwrap(), StoreUrl::Sqlite(PathBuf::from("data/q.db")));
/// assert_eq!(StoreUrl::parse("sqlite::memory:").unwrap(), StoreUrl::SqliteMemory);
/// assert_eq!(StoreUrl::parse("traces.db").unwrap(), StoreUrl::Sqlite(PathBuf::from("traces.db")));
/// assert!(matches!(StoreUrl::parse("postgres://localhost/sonde").unwrap(), StoreUrl::Postgres(_)));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// A throwaway SQLite database in memory.
    SqliteMemory,
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl StoreUrl {
    /// Parses a URL. A bare path (no scheme) is a SQLite file.
    ///
    /// ```
    /// assert!(sonde_store::StoreUrl::parse("sqlite://").is_err());
    /// ```
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let unsupported = || OpenError::UnsupportedUrl {
            url: url.to_owned(),
        };
        let url_trimmed = url.trim();
        if matches!(
            url_trimmed,
            "sqlite::memory:" | "sqlite://:memory:" | ":memory:"
        ) {
            return Ok(StoreUrl::SqliteMemory);
        }
        if url_trimmed.starts_with("postgres://") || url_trimmed.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url_trimmed.to_owned()));
        }
        let path = if let Some(rest) = url_trimmed.strip_prefix("sqlite://") {
            rest
        } else if let Some(rest) = url_trimmed.strip_prefix("sqlite:") {
            rest
        } else if url_trimmed.contains("://") {
            return Err(unsupported());
        } else {
            url_trimmed
        };
        let path = path.split('?').next().unwrap_or_default();
        if path.is_empty() {
            return Err(unsupported());
        }
        Ok(StoreUrl::Sqlite(PathBuf::from(path)))
    }

    /// The default database: `sonde.db` in the user's data folder
    /// (`~/.local/share/sonde/sonde.db` on Linux).
    ///
    /// ```
    /// let url = sonde_store::StoreUrl::default_url();
    /// assert!(url.starts_with("sqlite://"));
    /// ```
    pub fn default_url() -> String {
        format!("sqlite://{}", Self::data_dir().join("sonde.db").display())
    }

    /// Sonde's data folder: `$XDG_DATA_HOME/sonde`, else `~/.local/share/sonde`, where
    /// the default database, spools and sync state files live.
    ///
    /// ```
    /// assert!(sonde_store::StoreUrl::data_dir().ends_with("sonde"));
    /// ```
    pub fn data_dir() -> PathBuf {
        std::env::var_os("XDG_DATA_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
            .unwrap_or_else(std::env::temp_dir)
            .join("sonde")
    }

    /// Opens (creating and migrating when needed) the store this URL names.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let store = sonde_store::StoreUrl::parse("sqlite::memory:").unwrap().open().await.unwrap();
    /// assert_eq!(store.backend(), "sqlite");
    /// # }
    /// ```
    pub async fn open(&self) -> Result<Arc<dyn TraceStore>, OpenError> {
        match self {
            #[cfg(feature = "sqlite")]
            StoreUrl::Sqlite(path) => Ok(Arc::new(crate::SqliteStore::open(path).await?)),
            #[cfg(feature = "sqlite")]
            StoreUrl::SqliteMemory => Ok(Arc::new(crate::SqliteStore::open_in_memory().await?)),
            #[cfg(not(feature = "sqlite"))]
            StoreUrl::Sqlite(_) | StoreUrl::SqliteMemory => {
                Err(OpenError::BackendNotBuilt("sqlite"))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(url) => Ok(Arc::new(crate::PostgresStore::open(url).await?)),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => Err(OpenError::BackendNotBuilt("postgres")),
        }
    }
}
