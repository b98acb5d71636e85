//! A file's parser, Claude Code's or Codex's, behind one face.

use serde_json::Value;

use crate::discover::SourceFile;
use crate::emit::Emitted;
use crate::final_only::FinalOnly;
use crate::{ClaudeState, CodexFile, CodexState, claude};

/// A file's parser, either kind, and for a target sent final records only, what it
/// holds until the records' ends.
pub(crate) struct Parser {
    source: SourceParser,
    final_only: Option<FinalOnly>,
}

/// A file's parser, either kind.
enum SourceParser {
    /// A Claude Code transcript.
    Claude(crate::ClaudeFile, Box<ClaudeState>),
    /// A Codex rollout.
    Codex(CodexFile, Box<CodexState>),
}

impl Parser {
    /// The parser of `file`, going on from `state` (`Null` for a file read from the
    /// start); `final_only` for a target that cannot replace (its state then holds the
    /// parser's under `parser` and what waits for its end under `final_only`).
    pub(crate) fn new(file: &SourceFile, state: Value, final_only: bool) -> Self {
        if !final_only {
            return Self {
                source: SourceParser::new(file, state),
                final_only: None,
            };
        }
        let (parser, held) = match state {
            Value::Object(mut map) if map.contains_key("parser") => (
                map.remove("parser").unwrap_or(Value::Null),
                map.remove("final_only")
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default(),
            ),
            // A state saved before final-only sends: the parser's alone.
            other => (other, FinalOnly::default()),
        };
        Self {
            source: SourceParser::new(file, parser),
            final_only: Some(held),
        }
    }

    /// Parses one line. An LLM call whose values cannot be stored exactly is refused
    /// and counted as an error.
    pub(crate) fn line(&mut self, bytes: &[u8], out: &mut Emitted) {
        let from = out.records.len();
        self.source.line(bytes, out);
        if let Some(held) = &mut self.final_only {
            held.absorb(out, from);
        }
    }

    /// Sends what is still open at the end of the file read. For a target sent final
    /// records only, nothing while the file is not `quiet`; once it is, everything,
    /// as final, with the ends of its steps and sessions.
    pub(crate) fn end_of_run(&mut self, out: &mut Emitted, quiet: bool) {
        let Some(held) = &mut self.final_only else {
            self.source.end_of_run(out);
            return;
        };
        if quiet {
            let from = out.records.len();
            self.source.end_of_run_final(out);
            held.absorb(out, from);
            held.close(out);
        }
    }

    /// Whether records wait for the file to go quiet (a start held for its end, or
    /// something still open in the parser).
    pub(crate) fn holding(&self) -> bool {
        self.final_only.as_ref().is_some_and(|held| {
            held.holding()
                || match &self.source {
                    SourceParser::Claude(_, state) => state.holds_open(),
                    SourceParser::Codex(_, state) => state.holds_open(),
                }
        })
    }

    /// The state to go on from in the next run.
    pub(crate) fn state(&self) -> Value {
        let parser = self.source.state();
        match &self.final_only {
            None => parser,
            Some(held) => serde_json::json!({
                "parser": parser,
                "final_only": serde_json::to_value(held).unwrap_or(Value::Null),
            }),
        }
    }
}

impl SourceParser {
    fn new(file: &SourceFile, state: Value) -> Self {
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
                SourceParser::Claude(
                    info,
                    Box::new(serde_json::from_value(state).unwrap_or_default()),
                )
            }
            None => SourceParser::Codex(
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

    fn line(&mut self, bytes: &[u8], out: &mut Emitted) {
        let before = (out.records.len(), out.replacements.len());
        let file = match self {
            SourceParser::Claude(file, state) => {
                state.line(file, bytes, out);
                &file.name
            }
            SourceParser::Codex(file, state) => {
                state.line(file, bytes, out);
                &file.name
            }
        };
        out.refuse_out_of_range(before.0, before.1, file);
    }

    fn end_of_run(&mut self, out: &mut Emitted) {
        let before = (out.records.len(), out.replacements.len());
        let file = match self {
            SourceParser::Claude(file, state) => {
                state.end_of_run(file, out);
                &file.name
            }
            SourceParser::Codex(file, state) => {
                state.end_of_run(file, out);
                &file.name
            }
        };
        out.refuse_out_of_range(before.0, before.1, file);
    }

    fn end_of_run_final(&mut self, out: &mut Emitted) {
        let before = (out.records.len(), out.replacements.len());
        let file = match self {
            SourceParser::Claude(file, state) => {
                state.end_of_run_final(file, out);
                &file.name
            }
            SourceParser::Codex(file, state) => {
                state.end_of_run_final(file, out);
                &file.name
            }
        };
        out.refuse_out_of_range(before.0, before.1, file);
    }

    fn state(&self) -> Value {
        match self {
            SourceParser::Claude(_, state) => serde_json::to_value(state),
            SourceParser::Codex(_, state) => serde_json::to_value(state),
        }
        .unwrap_or(Value::Null)
    }
}
