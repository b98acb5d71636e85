//! Files parsed side by side: however many parser threads a run has, the target is sent
//! the same records in the same order, and the same cursors, as from one thread.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sonde_model::{Record, SinkError, TraceSink};
use sonde_sync::{CursorFile, SinkTarget, Source, SyncOptions, Syncer};

fn data(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(path)
}

/// A sink that keeps each record it is sent, as its JSON line, in order.
#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<String>>>);

impl TraceSink for Lines {
    fn write(&self, records: &[Record]) -> Result<(), SinkError> {
        let mut lines = self.0.lock().unwrap();
        lines.extend(records.iter().map(Record::to_json_line));
        Ok(())
    }
}

/// Syncs `root` with `threads` parser threads; returns the lines sent, the summary's
/// counts and the cursor file.
fn sync(source: Source, root: &Path, threads: usize) -> (Vec<String>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state.json");
    let lines = Lines::default();
    let mut target = SinkTarget::new("lines", Box::new(lines.clone()), CursorFile::new(&state));
    let options = SyncOptions {
        parser_threads: threads,
        ..SyncOptions::default()
    };
    let mut result = Syncer::new(&mut target, options)
        .run(source, &[root.to_path_buf()])
        .unwrap();
    result.duration_ms = 0;
    let cursors = std::fs::read_to_string(&state).unwrap();
    let sent = std::mem::take(&mut *lines.0.lock().unwrap());
    (sent, serde_json::to_string(&result).unwrap(), cursors)
}

#[test]
fn any_number_of_parser_threads_sends_what_one_thread_sends_in_its_order() {
    for (source, root) in [
        (Source::Claude, data("claude-code")),
        (Source::Codex, data("codex")),
    ] {
        let one = sync(source, &root, 1);
        assert!(!one.0.is_empty(), "{} sends records", root.display());
        for threads in [2, 3, 8] {
            let many = sync(source, &root, threads);
            assert!(
                one.0 == many.0,
                "{threads} threads sent other records or another order"
            );
            assert_eq!(one.1, many.1, "{threads} threads: the same summary");
            assert_eq!(one.2, many.2, "{threads} threads: the same cursors");
        }
    }
}
