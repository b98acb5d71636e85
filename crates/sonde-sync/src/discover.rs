//! Finding the transcript files under a folder, and what their place says about them.

use std::path::{Path, PathBuf};

use crate::claude::ClaudeFile;
use crate::{Source, SyncError};

/// One transcript file and what its place says about it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Its path.
    pub path: PathBuf,
    /// Its path under the folder synced, as records name it in `source_file`.
    pub source_path: String,
    /// Project, session and agent from a Claude Code file's path (`None` for Codex).
    pub(crate) claude: Option<ClaudeFile>,
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if matches!(i, 8 | 13 | 18 | 23) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A file's path as records name it (`source_file`): under the folder synced (e.g.
/// `<project>/<session>.jsonl` under `~/.claude/projects`), so that the same files
/// give the same records wherever they are synced from.
fn source_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Where a Claude Code file sits: project, session and agent from its path (named
/// `source_path` in records).
fn claude_file(root: &Path, path: &Path, source_path: &str) -> ClaudeFile {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".jsonl").unwrap_or(&name).to_owned();
    let components: Vec<String> = path
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let root_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (project, session_hint) = match components.iter().rposition(|c| c == "subagents") {
        // <project>/<session>/subagents/[workflows/<run>/]agent-<id>.jsonl
        Some(i) if i >= 2 => (components[i - 2].clone(), Some(components[i - 1].clone())),
        _ => (
            components.last().cloned().unwrap_or(root_name),
            is_uuid(&stem).then(|| stem.clone()),
        ),
    };
    let agent_hint = stem.strip_prefix("agent-").map(str::to_owned);
    ClaudeFile {
        name,
        path: source_path.to_owned(),
        project,
        session_hint: session_hint.filter(|s| is_uuid(s)),
        agent_hint,
        // Read when the file is parsed, not for every file of every run.
        agent_type: None,
    }
}

/// The `.jsonl` files under `root` (a file, or a folder walked recursively; links
/// are not followed below it), sorted by path. A missing root is an error.
pub(crate) fn jsonl_files(root: &Path) -> Result<Vec<PathBuf>, SyncError> {
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(root) {
        let entry = entry.map_err(|e| {
            let path = e.path().unwrap_or(root).to_path_buf();
            SyncError::read(&path, e.into())
        })?;
        let is_jsonl = entry.file_name().to_string_lossy().ends_with(".jsonl");
        // The root itself is taken whatever its name: it was asked for.
        if entry.file_type().is_file() && (is_jsonl || entry.depth() == 0) {
            files.push(entry.into_path());
        }
    }
    // By bytes: cheaper than comparing path components, and the same order here (a
    // session's file before its folder of subagents).
    files.sort_by(|a, b| a.as_os_str().cmp(b.as_os_str()));
    Ok(files)
}

/// The transcript files of `source` under `root` (a file or a folder walked
/// recursively), sorted by path. A missing root is an error.
pub fn discover(source: Source, root: &Path) -> Result<Vec<SourceFile>, SyncError> {
    let meta = std::fs::metadata(root).map_err(|e| SyncError::read(root, e))?;
    let files = jsonl_files(root)?;
    let root_dir = if meta.is_dir() {
        root.to_path_buf()
    } else {
        root.parent().map(Path::to_path_buf).unwrap_or_default()
    };
    Ok(files
        .into_iter()
        .map(|path| {
            let source_path = source_path(&root_dir, &path);
            SourceFile {
                claude: (source == Source::Claude)
                    .then(|| claude_file(&root_dir, &path, &source_path)),
                source_path,
                path,
            }
        })
        .collect())
}
