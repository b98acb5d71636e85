//! What an input to `sonde import` is, judged from its first lines, so that a file of
//! another format gets one line saying what it is and what to run instead of an error
//! per line or an import of nothing.

use serde_json::Value;

/// How many non-empty lines at the start of an input decide its format.
pub const SNIFFED_LINES: usize = 5;

/// A format `sonde import` meets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Sonde's record JSONL.
    Records,
    /// OpenTelemetry OTLP/JSON trace requests.
    OtlpJson,
    /// A Claude Code transcript.
    ClaudeTranscript,
    /// A Codex CLI rollout.
    CodexRollout,
    /// A lash trace (lash-trace's JSONL records).
    Lash,
}

impl Format {
    /// The format of one JSON line, when it clearly is one.
    fn of_line(line: &str) -> Option<Format> {
        let Ok(Value::Object(object)) = serde_json::from_str::<Value>(line) else {
            return None;
        };
        let has = |key: &str| object.contains_key(key);
        let kind = object.get("type").and_then(Value::as_str);
        if has("schema_version") && has("kind") {
            Some(Format::Records)
        } else if has("schema_version") && has("context") && kind.is_some() {
            Some(Format::Lash)
        } else if has("resourceSpans") {
            Some(Format::OtlpJson)
        } else if has("sessionId") || has("parentUuid") || has("leafUuid") {
            Some(Format::ClaudeTranscript)
        } else if has("payload")
            && matches!(
                kind,
                Some("session_meta" | "response_item" | "event_msg" | "turn_context" | "compacted")
            )
        {
            Some(Format::CodexRollout)
        } else {
            None
        }
    }

    /// The format of an input whose first non-empty lines are `lines`, when they agree
    /// on one (a pretty-printed OTLP/JSON request counts by its `resourceSpans` key).
    pub fn of_lines(lines: &[&str]) -> Option<Format> {
        let mut found = None;
        for line in lines {
            match (Format::of_line(line), found) {
                (Some(format), None) => found = Some(format),
                (Some(format), Some(seen)) if format != seen => return None,
                _ => {}
            }
        }
        found.or_else(|| {
            lines
                .iter()
                .any(|l| l.contains("\"resourceSpans\""))
                .then_some(Format::OtlpJson)
        })
    }

    /// What to say when an input of this format was read as `wanted`, naming `input`;
    /// `None` when this is the format wanted.
    pub fn hint(self, wanted: Format, input: &str) -> Option<String> {
        if self == wanted {
            return None;
        }
        Some(match self {
            Format::CodexRollout => {
                format!("this looks like a Codex rollout: use sonde sync codex --path {input}")
            }
            Format::ClaudeTranscript => format!(
                "this looks like a Claude Code transcript: use sonde sync claude --path {input}"
            ),
            Format::Records => format!(
                "this looks like record JSONL: drop --format {}",
                wanted.flag()
            ),
            Format::OtlpJson | Format::Lash => {
                let what = if self == Format::Lash {
                    "a lash trace"
                } else {
                    "OTLP/JSON"
                };
                let verb = if wanted == Format::Records {
                    "add"
                } else {
                    "use"
                };
                format!("this looks like {what}: {verb} --format {}", self.flag())
            }
        })
    }

    /// The `--format` value that reads this format.
    fn flag(self) -> &'static str {
        match self {
            Format::Records => "records",
            Format::OtlpJson => "otlp-json",
            Format::Lash => "lash",
            Format::ClaudeTranscript => "claude",
            Format::CodexRollout => "codex",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_format_is_known_by_its_first_lines() {
        let codex = r#"{"timestamp":"2026-01-02T03:04:05.000Z","type":"session_meta","payload":{"id":"x"}}"#;
        let claude = r#"{"parentUuid":null,"sessionId":"s1","type":"user","message":{}}"#;
        let record = r#"{"schema_version":1,"id":"a","timestamp":"2026-01-01T00:00:00Z","context":{"session_id":"s"},"kind":"message","payload":{}}"#;
        let otlp = r#"{"resourceSpans":[]}"#;
        let lash = r#"{"schema_version":7,"id":"a","timestamp":"2026-08-22T10:00:00Z","context":{"session_id":"s"},"type":"session_started"}"#;
        assert_eq!(Format::of_lines(&[lash, lash]), Some(Format::Lash));
        assert_eq!(
            Format::of_lines(&[codex, codex]),
            Some(Format::CodexRollout)
        );
        assert_eq!(Format::of_lines(&[claude]), Some(Format::ClaudeTranscript));
        assert_eq!(Format::of_lines(&[record]), Some(Format::Records));
        assert_eq!(Format::of_lines(&[otlp]), Some(Format::OtlpJson));
        assert_eq!(
            Format::of_lines(&["{", r#"  "resourceSpans": ["#]),
            Some(Format::OtlpJson)
        );
    }

    #[test]
    fn mixed_or_unknown_lines_are_no_format() {
        let codex = r#"{"type":"event_msg","payload":{}}"#;
        let claude = r#"{"sessionId":"s1","type":"user"}"#;
        assert_eq!(Format::of_lines(&[codex, claude]), None);
        assert_eq!(Format::of_lines(&["not json", r#"{"a":1}"#]), None);
    }

    #[test]
    fn a_hint_names_the_command_to_run_instead() {
        assert_eq!(
            Format::CodexRollout
                .hint(Format::Records, "r.jsonl")
                .unwrap(),
            "this looks like a Codex rollout: use sonde sync codex --path r.jsonl"
        );
        assert_eq!(Format::Records.hint(Format::Records, "r.jsonl"), None);
        assert_eq!(
            Format::Records.hint(Format::Lash, "r.jsonl").unwrap(),
            "this looks like record JSONL: drop --format lash"
        );
        assert_eq!(
            Format::Lash.hint(Format::Records, "t.jsonl").unwrap(),
            "this looks like a lash trace: add --format lash"
        );
    }
}
