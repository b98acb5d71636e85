//! A consistent copy of a SQLite store while it is being written, through SQLite's
//! online backup API: pages are copied in steps, and a write between two steps makes
//! the backup start over from a new snapshot, so the copy is always one committed state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// Pages copied per step; writers wait at most for one step.
const PAGES_PER_STEP: std::ffi::c_int = 1024;
/// The pause between steps, for writers to get in.
const STEP_PAUSE: Duration = Duration::from_millis(5);

/// Why a backup failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BackupError {
    /// The copy exists already: a backup never overwrites.
    #[error("{} exists already: a backup never overwrites a file", .0.display())]
    Exists(PathBuf),
    /// SQLite failed, reading `source` or writing `dest`.
    #[error("cannot back up {} to {}: {cause}", database.display(), dest.display())]
    Sqlite {
        /// The database.
        database: PathBuf,
        /// The copy.
        dest: PathBuf,
        /// Why.
        cause: rusqlite::Error,
    },
}

/// Copies the SQLite store at `source` into a new file `dest`, consistently, while other
/// processes go on writing it.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let db = dir.path().join("sonde.db");
/// sonde_store::StoreUrl::Sqlite(db.clone()).open().await?;
/// sonde_store::backup_sqlite(&db, &dir.path().join("copy.db"))?;
/// assert!(dir.path().join("copy.db").is_file());
/// # Ok(()) }
/// ```
pub fn backup_sqlite(source: &Path, dest: &Path) -> Result<(), BackupError> {
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    let fail = |cause| BackupError::Sqlite {
        database: source.to_path_buf(),
        dest: dest.to_path_buf(),
        cause,
    };
    let from = Connection::open_with_flags(
        source,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    let mut to = Connection::open(dest).map_err(fail)?;
    rusqlite::backup::Backup::new(&from, &mut to)
        .and_then(|backup| backup.run_to_completion(PAGES_PER_STEP, STEP_PAUSE, None))
        .map_err(fail)?;
    Ok(())
}
