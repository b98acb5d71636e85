//! A file's parser, Claude Code's or Codex's, behind one face.

use serde_json::Value;

use crate::discover::SourceFile;
use crate::emit::Emitted;
use crate::{ClaudeState, CodexFile, CodexState, claude};

/// A file's parser, either kind.
pub(crate) enum Parser {
    /// A Claude Code transcript.
    Claude(crate::ClaudeFile, Box<ClaudeState>),
    /// A Codex rollout.
    Codex(CodexFile, Box<CodexState>),
}

impl Parser {
    /// The parser of `file`, going on from `state` (`Null` for a file read from the
    /// start).
    pub(crate) fn new(file: &SourceFile, state: Value) -> Self {
        match &file.claude {
            Some(info) => {
                let mut info = info.clone();
                if let Some(stem) = file.path.file_stem().filter(|_| info.agent_hint.is_some()) {
                    let meta = file
                        .path
                        .with_file_name(format!("{}.meta.json", stem.to_string_lossy()));
                    info.agent_type = std::fs::read(meta)
                        .ok()
                        .and_then(|m| claude::agent_type(&m));
                }
                Parser::Claude(
                    info,
                    Box::new(serde_json::from_value(state).unwrap_or_default()),
                )
            }
            None => Parser::Codex(
                CodexFile {
                    name: file
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    path: file.source_path.clone(),
                },
                Box::new(serde_json::from_value(state).unwrap_or_default()),
            ),
        }
    }

    /// Parses one line. An LLM call whose values cannot be stored exactly is refused
    /// and counted as an error.
    pub(crate) fn line(&mut self, bytes: &[u8], out: &mut Emitted) {
        let before = (out.records.len(), out.replacements.len());
        let file = match self {
            Parser::Claude(file, state) => {
                state.line(file, bytes, out);
                &file.name
            }
            Parser::Codex(file, state) => {
                state.line(file, bytes, out);
                &file.name
            }
        };
        out.refuse_out_of_range(before.0, before.1, file);
    }

    /// Sends what is still open at the end of the file read.
    pub(crate) fn end_of_run(&mut self, out: &mut Emitted) {
        let before = (out.records.len(), out.replacements.len());
        let file = match self {
            Parser::Claude(file, state) => {
                state.end_of_run(file, out);
                &file.name
            }
            Parser::Codex(file, state) => {
                state.end_of_run(file, out);
                &file.name
            }
        };
        out.refuse_out_of_range(before.0, before.1, file);
    }

    /// The state to go on from in the next run.
    pub(crate) fn state(&self) -> Value {
        match self {
            Parser::Claude(_, state) => serde_json::to_value(state),
            Parser::Codex(_, state) => serde_json::to_value(state),
        }
        .unwrap_or(Value::Null)
    }
}
