//! The agent CLIs whose logs Sonde reads, and where they keep them.

use std::path::PathBuf;

use serde::Serialize;

/// An agent CLI whose logs Sonde reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Claude Code: `~/.claude/projects/<project>/<session>.jsonl`.
    Claude,
    /// Codex CLI: `~/.codex/sessions/**/rollout-*.jsonl` (every `.jsonl` under it).
    Codex,
}

impl Source {
    /// `claude` or `codex`: the name cursors are kept under.
    ///
    /// ```
    /// assert_eq!(sonde_sync::Source::Codex.name(), "codex");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            Source::Claude => "claude",
            Source::Codex => "codex",
        }
    }

    /// Where the CLI keeps its logs: `$CLAUDE_CONFIG_DIR/projects` (a comma-separated
    /// list is allowed) or `~/.claude/projects` and `~/.config/claude/projects`;
    /// `$CODEX_HOME/sessions` or `~/.codex/sessions`.
    ///
    /// ```
    /// assert!(!sonde_sync::Source::Claude.default_roots().is_empty());
    /// ```
    pub fn default_roots(self) -> Vec<PathBuf> {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default();
        match self {
            Source::Claude => match std::env::var("CLAUDE_CONFIG_DIR") {
                Ok(dirs) if !dirs.trim().is_empty() => dirs
                    .split(',')
                    .map(|d| PathBuf::from(d.trim()).join("projects"))
                    .collect(),
                _ => vec![
                    home.join(".claude/projects"),
                    home.join(".config/claude/projects"),
                ],
            },
            Source::Codex => match std::env::var("CODEX_HOME") {
                Ok(dir) if !dir.trim().is_empty() => vec![PathBuf::from(dir).join("sessions")],
                _ => vec![home.join(".codex/sessions")],
            },
        }
    }

    /// The environment variable that moves the CLI's logs (`CLAUDE_CONFIG_DIR`,
    /// `CODEX_HOME`).
    ///
    /// ```
    /// assert_eq!(sonde_sync::Source::Codex.home_variable(), "CODEX_HOME");
    /// ```
    pub fn home_variable(self) -> &'static str {
        match self {
            Source::Claude => "CLAUDE_CONFIG_DIR",
            Source::Codex => "CODEX_HOME",
        }
    }
}
