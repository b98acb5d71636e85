//! The transcript parsers take any line without panicking: the lines of the real
//! Claude Code and Codex transcripts under `tests/data` (the corpus), cut short, with
//! bytes changed, in another order, mixed with arbitrary bytes; and a file's end.
//!
//! A property test: `PROPTEST_CASES` sets how many cases each property runs (256 by
//! default; CI's long run sets more). Failures are kept beside this file
//! (`fuzz.proptest-regressions`) and run again first.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::LazyLock;

use proptest::prelude::*;
use sonde_sync::{ClaudeFile, ClaudeState, CodexFile, CodexState, Emitted};

/// Every line of every `.jsonl` file under `tests/data/{dir}`.
fn corpus(dir: &str) -> Vec<Vec<u8>> {
    fn walk(path: &Path, out: &mut Vec<Vec<u8>>) {
        for entry in std::fs::read_dir(path).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "jsonl") {
                let text = std::fs::read(&path).unwrap();
                out.extend(text.split(|b| *b == b'\n').map(<[u8]>::to_vec));
            }
        }
    }
    let mut lines = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(dir),
        &mut lines,
    );
    lines.retain(|l| !l.is_empty());
    assert!(lines.len() > 20, "the corpus of {dir} is missing");
    lines
}

static CLAUDE: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| corpus("claude-code"));
static CODEX: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| corpus("codex"));

/// What is done to a corpus line.
#[derive(Debug, Clone)]
enum Damage {
    /// Left as it is.
    None,
    /// Cut at a position (modulo its length).
    Cut(usize),
    /// A byte changed (position modulo its length).
    Byte(usize, u8),
    /// The first number at or after a position (modulo its length) made huge.
    Huge(usize),
    /// Replaced by arbitrary bytes.
    Arbitrary(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        3 => Just(Damage::None),
        2 => any::<usize>().prop_map(Damage::Cut),
        2 => (any::<usize>(), prop::sample::select(b"{}[]\":,0-9.-tfn \\x".to_vec()))
            .prop_map(|(at, b)| Damage::Byte(at, b)),
        2 => any::<usize>().prop_map(Damage::Huge),
        1 => prop::collection::vec(any::<u8>(), 0..256).prop_map(Damage::Arbitrary),
    ]
}

/// Picks `count` corpus lines (by index, modulo the corpus) and damages them.
fn lines_of(corpus: &[Vec<u8>], picks: &[(usize, Damage)]) -> Vec<Vec<u8>> {
    picks
        .iter()
        .map(|(index, damage)| {
            let mut line = corpus[index % corpus.len()].clone();
            match damage {
                Damage::None => {}
                Damage::Cut(at) => line.truncate(at % (line.len() + 1)),
                Damage::Byte(at, b) => {
                    let len = line.len();
                    if len > 0 {
                        line[at % len] = *b;
                    }
                }
                Damage::Huge(at) => {
                    let from = at % (line.len() + 1);
                    if let Some(digit) = line[from..].iter().position(u8::is_ascii_digit) {
                        let digit = from + digit;
                        let end = line[digit..]
                            .iter()
                            .position(|b| !b.is_ascii_digit())
                            .map_or(line.len(), |n| digit + n);
                        line.splice(digit..end, *b"18446744073709551615");
                    }
                }
                Damage::Arbitrary(bytes) => line = bytes.clone(),
            }
            line
        })
        .collect()
}

fn picks() -> impl Strategy<Value = Vec<(usize, Damage)>> {
    prop::collection::vec((any::<usize>(), damage()), 1..40)
}

proptest! {
    #[test]
    fn the_claude_code_parser_never_panics(picks in picks(), agent in any::<bool>()) {
        let file = ClaudeFile {
            name: "s.jsonl".into(),
            path: "p/s.jsonl".into(),
            project: "p".into(),
            session_hint: Some("11111111-1111-4111-8111-111111111111".into()),
            agent_hint: agent.then(|| "a1".to_owned()),
            agent_type: None,
        };
        let mut state = ClaudeState::default();
        let mut out = Emitted::default();
        for line in lines_of(&CLAUDE, &picks) {
            state.line(&file, &line, &mut out);
        }
        state.end_of_run(&file, &mut out);
        // The state carried to the next run reads back.
        let saved = serde_json::to_value(&state).unwrap();
        let _: ClaudeState = serde_json::from_value(saved).unwrap();
    }

    #[test]
    fn the_codex_parser_never_panics(picks in picks()) {
        let file = CodexFile {
            name: "rollout-2026-01-02T03-04-05-11111111-1111-4111-8111-111111111111.jsonl".into(),
            path: "2026/01/02/rollout.jsonl".into(),
        };
        let mut state = CodexState::default();
        let mut out = Emitted::default();
        for line in lines_of(&CODEX, &picks) {
            state.line(&file, &line, &mut out);
        }
        state.end_of_run(&file, &mut out);
        let saved = serde_json::to_value(&state).unwrap();
        let _: CodexState = serde_json::from_value(saved).unwrap();
    }
}
