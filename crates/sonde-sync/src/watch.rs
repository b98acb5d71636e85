//! Following the logs live.

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Duration;

use notify::Watcher;

use crate::{Source, SyncError, SyncResult, Syncer};

/// The longest a change waits before a watching sync picks it up, when file
/// notifications are missing (or missed one).
pub const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long a burst of notifications is let settle before the sync runs.
const SETTLE: Duration = Duration::from_millis(50);

/// Syncs `sources` again and again: at once, then whenever a file under their roots
/// changes (file notifications, where the system has them), and at least every
/// [`POLL_INTERVAL`]. A run over unchanged files only looks at their sizes and times,
/// so polling costs little. Each run's result goes to `on_run`; the loop ends when
/// the syncer is cancelled ([`SyncOptions::cancel`](crate::SyncOptions::cancel)), or on
/// the first error.
pub fn watch(
    syncer: &mut Syncer<'_>,
    sources: &[(Source, Vec<PathBuf>)],
    on_run: &mut dyn FnMut(&SyncResult),
) -> Result<(), SyncError> {
    let (changed, changes) = mpsc::channel::<()>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = changed.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "file notifications unavailable; polling");
            None
        }
    };
    if let Some(w) = watcher.as_mut() {
        for root in sources.iter().flat_map(|(_, roots)| roots) {
            if let Err(e) = w.watch(root, notify::RecursiveMode::Recursive) {
                tracing::warn!(root = %root.display(), error = %e, "cannot watch; polling");
            }
        }
    }
    while !syncer.cancelled() {
        for (source, roots) in sources {
            let result = syncer.run(*source, roots)?;
            on_run(&result);
        }
        match changes.recv_timeout(POLL_INTERVAL) {
            Ok(()) => {
                std::thread::sleep(SETTLE);
                while changes.try_recv().is_ok() {}
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(POLL_INTERVAL),
        }
    }
    Ok(())
}
