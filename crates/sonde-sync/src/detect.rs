//! Telling whose logs a folder holds from the lines in its files.

use std::io::BufRead;
use std::path::Path;

use serde_json::Value;

use crate::discover::jsonl_files;
use crate::{Source, SyncError};

/// Lines of a file read to recognise it.
const LINES_READ: usize = 20;
/// Files opened to recognise a folder.
const FILES_READ: usize = 20;

/// Whose logs a line comes from: Codex rollout lines have a `type` of
/// `session_meta`, `response_item`, `event_msg` or `turn_context` and a `payload`;
/// Claude Code lines have a `sessionId`, or a `type` of `user` or `assistant` with
/// a `message`.
fn line_source(line: &str) -> Option<Source> {
    let value: Value = serde_json::from_str(line).ok()?;
    let kind = value.get("type").and_then(Value::as_str);
    if value.get("payload").is_some()
        && matches!(
            kind,
            Some("session_meta" | "response_item" | "event_msg" | "turn_context")
        )
    {
        return Some(Source::Codex);
    }
    if value.get("sessionId").is_some()
        || (matches!(kind, Some("user" | "assistant")) && value.get("message").is_some())
    {
        return Some(Source::Claude);
    }
    None
}

/// Whose logs `path` (a file, or a folder walked recursively) holds, from the first
/// lines of its first files; `None` when none of them says.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("sonde-detect-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// std::fs::write(dir.join("rollout.jsonl"), r#"{"type":"session_meta","payload":{"id":"x"}}"#).unwrap();
/// assert_eq!(sonde_sync::detect(&dir).unwrap(), Some(sonde_sync::Source::Codex));
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub fn detect(path: &Path) -> Result<Option<Source>, SyncError> {
    for file in jsonl_files(path)?.iter().take(FILES_READ) {
        let handle = std::fs::File::open(file).map_err(|e| SyncError::read(file, e))?;
        let found = std::io::BufReader::new(handle)
            .lines()
            .take(LINES_READ)
            .map_while(Result::ok)
            .find_map(|line| line_source(&line));
        if found.is_some() {
            return Ok(found);
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_whose_they_are() {
        assert_eq!(
            line_source(r#"{"type":"user","sessionId":"s","message":{"role":"user"}}"#),
            Some(Source::Claude)
        );
        assert_eq!(
            line_source(r#"{"type":"summary","sessionId":"s"}"#),
            Some(Source::Claude)
        );
        assert_eq!(
            line_source(r#"{"type":"response_item","payload":{"type":"message"}}"#),
            Some(Source::Codex)
        );
        assert_eq!(line_source(r#"{"type":"file-history-snapshot"}"#), None);
        assert_eq!(line_source("not json"), None);
    }
}
