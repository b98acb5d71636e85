//! Database URLs: `sqlite://PATH`, `sqlite::memory:`, `postgres://...`.

use std::path::PathBuf;
use std::sync::Arc;

use crate::{CallPricer, OpenError, TraceStore};

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
#[derive(Clone, PartialEq, Eq)]
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
            url: redact_url(url),
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

    /// The URL to show in messages: a PostgreSQL password replaced by `***`.
    ///
    /// ```
    /// use sonde_store::StoreUrl;
    /// let url = StoreUrl::parse("postgres://bob:s3cret@host/db").unwrap();
    /// assert_eq!(url.redacted(), "postgres://bob:***@host/db");
    /// assert_eq!(StoreUrl::parse("sqlite:///tmp/t.db").unwrap().redacted(), "sqlite:///tmp/t.db");
    /// ```
    pub fn redacted(&self) -> String {
        match self {
            StoreUrl::Sqlite(path) => redact_url(&format!("sqlite://{}", path.display())),
            StoreUrl::SqliteMemory => "sqlite::memory:".to_owned(),
            StoreUrl::Postgres(url) => redact_url(url),
        }
    }

    /// Opens the store this URL names only if it exists: a SQLite file that is not there
    /// is [`OpenError::NotFound`], and nothing is created. For commands that only read
    /// (or delete): a typo in a path must not look like an empty database. A database
    /// in memory and a PostgreSQL server open as with [`open`](Self::open); an existing
    /// file is migrated when needed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use sonde_store::{OpenError, StoreUrl};
    /// let dir = tempfile::tempdir().unwrap();
    /// let missing = dir.path().join("typo.db");
    /// let url = StoreUrl::Sqlite(missing.clone());
    /// let err = url.open_existing().await.err().unwrap();
    /// assert!(matches!(err, OpenError::NotFound { .. }));
    /// assert_eq!(err.to_string(), format!("no database at {}", missing.display()));
    /// assert!(!missing.exists());
    /// url.open().await.unwrap();
    /// url.open_existing().await.unwrap();
    /// # }
    /// ```
    pub async fn open_existing(&self) -> Result<Arc<dyn TraceStore>, OpenError> {
        self.open_existing_with(None).await
    }

    /// [`StoreUrl::open_existing`], computing the cost of each LLM call the store
    /// stores with `pricer` (see [`CallPricer`]).
    pub async fn open_existing_with(
        &self,
        pricer: Option<CallPricer>,
    ) -> Result<Arc<dyn TraceStore>, OpenError> {
        if let StoreUrl::Sqlite(path) = self
            && matches!(path.try_exists(), Ok(false))
        {
            return Err(OpenError::NotFound {
                path: redact_url(&path.display().to_string()),
            });
        }
        self.open_with(pricer).await
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
        self.open_with(None).await
    }

    /// [`StoreUrl::open`], computing the cost of each LLM call the store stores with
    /// `pricer` (see [`CallPricer`]); without one, no cost is computed.
    #[cfg_attr(
        not(any(feature = "sqlite", feature = "postgres")),
        allow(unused_variables)
    )]
    pub async fn open_with(
        &self,
        pricer: Option<CallPricer>,
    ) -> Result<Arc<dyn TraceStore>, OpenError> {
        match self {
            #[cfg(feature = "sqlite")]
            StoreUrl::Sqlite(path) => Ok(Arc::new(
                crate::SqliteStore::open(path).await?.priced_by(pricer),
            )),
            #[cfg(feature = "sqlite")]
            StoreUrl::SqliteMemory => Ok(Arc::new(
                crate::SqliteStore::open_in_memory()
                    .await?
                    .priced_by(pricer),
            )),
            #[cfg(not(feature = "sqlite"))]
            StoreUrl::Sqlite(_) | StoreUrl::SqliteMemory => {
                Err(OpenError::BackendNotBuilt("sqlite"))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(url) => Ok(Arc::new(
                crate::PostgresStore::open(url).await?.priced_by(pricer),
            )),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => Err(OpenError::BackendNotBuilt("postgres")),
        }
    }
}

/// Shows the URL without its password (see [`redact_url`]).
///
/// ```
/// let url = sonde_store::StoreUrl::parse("postgres://bob:s3cret@host/db").unwrap();
/// assert_eq!(format!("{url:?}"), r#"Postgres("postgres://bob:***@host/db")"#);
/// let url = sonde_store::StoreUrl::parse("/tmp/q.db").unwrap();
/// assert_eq!(format!("{url:?}"), r#"Sqlite("/tmp/q.db")"#);
/// ```
impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => f
                .debug_tuple("Sqlite")
                .field(&redact_url(&path.display().to_string()))
                .finish(),
            StoreUrl::SqliteMemory => f.write_str("SqliteMemory"),
            StoreUrl::Postgres(url) => f.debug_tuple("Postgres").field(&redact_url(url)).finish(),
        }
    }
}

/// What [`redact_url`] puts where a secret was.
pub const REDACTED: &str = "***";

/// `text` with every credential it carries replaced by `***`, for messages and logs.
///
/// It takes a database or endpoint URL, a libpq `key=value` connection string, or any
/// text that contains them (an error message echoing a connection string, a log line):
///
/// - the password of a URL's `user:password@` (the user stays),
/// - the value of a `password=`, `passwd=`, `pwd=`, `secret=`, `token=`, `apikey=` or
///   `authorization=` pair, or of a key ending in `password`, `secret`, `_token` or
///   `_key` (`sslpassword`, `client_secret`, `access_token`, `x-api-key`...), whether a
///   URL's query parameter or a connection string's keyword (quoted or not),
/// - a `Bearer` token.
///
/// Hand-written, not the `url` crate's: `url` parses one URL, while this finds secrets
/// in running text (error messages, log lines) that holds URLs, libpq connection
/// strings and headers among other words.
///
/// ```
/// use sonde_store::redact_url;
/// assert_eq!(redact_url("postgres://bob:s3cret@host/db"), "postgres://bob:***@host/db");
/// assert_eq!(redact_url("postgres://host/db?user=bob&password=s3cret&sslmode=disable"),
///            "postgres://host/db?user=bob&password=***&sslmode=disable");
/// assert_eq!(redact_url("host=db user=bob password='s3 cret' dbname=sonde"),
///            "host=db user=bob password=*** dbname=sonde");
/// assert_eq!(redact_url("cannot open postgres://bob:s3cret@host/db: refused"),
///            "cannot open postgres://bob:***@host/db: refused");
/// assert_eq!(redact_url("Authorization: Bearer sk-0123456789"), "Authorization: Bearer ***");
/// // Nothing secret: unchanged.
/// assert_eq!(redact_url("sqlite:///tmp/sonde.db"), "sqlite:///tmp/sonde.db");
/// assert_eq!(redact_url("output_tokens=12 max_tokens=5"), "output_tokens=12 max_tokens=5");
/// ```
pub fn redact_url(text: &str) -> String {
    redact_bearer(&redact_pairs(&redact_userinfo(text)))
}

/// Whether `c` ends a URL or a bare value in running text.
fn ends_token(c: u8) -> bool {
    c.is_ascii_whitespace() || matches!(c, b'"' | b'\'' | b'`' | b'<' | b'>')
}

/// Replaces `text[start..end]` with `***` for each range (sorted, not overlapping).
fn replace_ranges(text: &str, ranges: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut from = 0;
    for &(start, end) in ranges {
        out.push_str(&text[from..start]);
        out.push_str(REDACTED);
        from = end;
    }
    out.push_str(&text[from..]);
    out
}

/// The password of every `scheme://user:password@`.
fn redact_userinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    let mut searched = 0;
    while let Some(found) = text[searched..].find("://") {
        let start = searched + found + 3;
        let end = bytes[start..]
            .iter()
            .position(|&c| ends_token(c))
            .map_or(bytes.len(), |n| start + n);
        searched = end.max(start);
        // The last `@` of the token: a password with an unescaped `@` stays hidden.
        let Some(at) = text[start..end].rfind('@').map(|n| start + n) else {
            continue;
        };
        let Some(colon) = text[start..at].find(':').map(|n| start + n) else {
            continue;
        };
        if colon + 1 < at && !text[start..colon].contains('/') {
            ranges.push((colon + 1, at));
        }
    }
    replace_ranges(text, &ranges)
}

/// Whether a `key=value` pair with this key holds a secret.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    matches!(
        key.as_str(),
        "pwd" | "token" | "apikey" | "authorization" | "proxy-authorization"
    ) || [
        "password", "passwd", "secret", "apikey", "_token", "-token", "_key", "-key",
    ]
    .iter()
    .any(|end| key.ends_with(end))
}

/// The value of every secret `key=value` pair: a URL's query parameter (up to `&` or
/// `#`) or a connection string's keyword (up to a space; quoted values whole).
fn redact_pairs(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    let is_key = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.');
    for (eq, _) in text.match_indices('=') {
        if ranges.last().is_some_and(|&(_, end)| eq < end) {
            continue;
        }
        let mut key_end = eq;
        while key_end > 0 && bytes[key_end - 1] == b' ' {
            key_end -= 1;
        }
        let mut key_start = key_end;
        while key_start > 0 && is_key(bytes[key_start - 1]) {
            key_start -= 1;
        }
        let before = key_start.checked_sub(1).map(|i| bytes[i]);
        let in_query = matches!(before, Some(b'?' | b'&'));
        let delimited = in_query
            || before.is_none_or(|c| {
                c.is_ascii_whitespace() || matches!(c, b',' | b';' | b'(' | b'{' | b'"' | b'\'')
            });
        if key_start == key_end || !delimited || !is_secret_key(&text[key_start..key_end]) {
            continue;
        }
        let mut start = eq + 1;
        if !in_query {
            while start < bytes.len() && bytes[start] == b' ' {
                start += 1;
            }
        }
        let end = match bytes.get(start) {
            Some(&quote @ (b'\'' | b'"')) => {
                let mut i = start + 1;
                while i < bytes.len() && bytes[i] != quote {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                (i + 1).min(bytes.len())
            }
            _ => bytes[start..]
                .iter()
                .position(|&c| ends_token(c) || (in_query && matches!(c, b'&' | b'#')))
                .map_or(bytes.len(), |n| start + n),
        };
        if end > start {
            ranges.push((start, end));
        }
    }
    replace_ranges(text, &ranges)
}

/// Every `Bearer TOKEN` (also `Bearer%20TOKEN`) whose token is at least 8 characters.
fn redact_bearer(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut ranges = Vec::new();
    for (found, _) in lower.match_indices("bearer") {
        let after = found + "bearer".len();
        let start = if lower[after..].starts_with("%20") {
            after + 3
        } else if lower[after..].starts_with(' ') || lower[after..].starts_with('+') {
            after + 1
        } else {
            continue;
        };
        let end = bytes[start..]
            .iter()
            .position(|&c| {
                !(c.is_ascii_alphanumeric()
                    || matches!(c, b'.' | b'_' | b'~' | b'+' | b'/' | b'=' | b'-' | b'%'))
            })
            .map_or(bytes.len(), |n| start + n);
        if end - start >= 8 {
            ranges.push((start, end));
        }
    }
    replace_ranges(text, &ranges)
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn url_passwords_are_redacted_and_users_hosts_and_paths_kept() {
        for (given, shown) in [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            (
                "postgresql://u:p%40ss@h:5432/db?sslmode=disable",
                "postgresql://u:***@h:5432/db?sslmode=disable",
            ),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            ("postgres://u@h/db", "postgres://u@h/db"),
            (
                "http://user:pw@127.0.0.1:4318/v1/traces",
                "http://user:***@127.0.0.1:4318/v1/traces",
            ),
            (
                "postgres://h/db?password=s3cret",
                "postgres://h/db?password=***",
            ),
            (
                "postgres://h/db?sslpassword=a&password=b#x",
                "postgres://h/db?sslpassword=***&password=***#x",
            ),
            (
                "host=h password=s3cret user=u",
                "host=h password=*** user=u",
            ),
            (
                "host=h password = s3cret user=u",
                "host=h password = *** user=u",
            ),
            ("password='it\\'s secret' user=u", "password=*** user=u"),
            (
                "Authorization=Bearer%20sk-12345678,x-team=ops",
                "Authorization=***",
            ),
            (
                "LANGFUSE_SECRET_KEY=sk-lf-1 LANGFUSE_PUBLIC_KEY=pk-lf-1",
                "LANGFUSE_SECRET_KEY=*** LANGFUSE_PUBLIC_KEY=***",
            ),
            (
                "error: password=\"x y\" refused",
                "error: password=*** refused",
            ),
            (
                "needs Authorization: Bearer <key> (sonde keys create)",
                "needs Authorization: Bearer <key> (sonde keys create)",
            ),
            (
                "/home/me/.local/share/sonde/sonde.db",
                "/home/me/.local/share/sonde/sonde.db",
            ),
            (
                "spans=3 output_tokens=7 key_id=k1",
                "spans=3 output_tokens=7 key_id=k1",
            ),
            (
                "ünïcode://ü:ß@h password=é",
                "ünïcode://ü:***@h password=***",
            ),
            ("", ""),
            ("://", "://"),
            ("a=", "a="),
            ("password=", "password="),
        ] {
            assert_eq!(redact_url(given), shown, "{given}");
        }
    }
}
