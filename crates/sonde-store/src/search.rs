//! Full-text search over what people and models said: the text of messages, of LLM
//! calls' requests and responses, of tool calls' inputs and outputs and of custom
//! events, indexed when a record is written (SQLite FTS5, PostgreSQL `tsvector` with a
//! GIN index) and matched by [`SessionFilter::search`](crate::SessionFilter::search).
//!
//! A search is words (runs of letters and digits): a session matches when each word
//! occurs in one of its records (whole words: prefixes do not match; case does not
//! matter). Each record's indexed text is capped at
//! [`MAX_INDEXED_BYTES`].
//!
//! A record is indexed as its distinct words, each once: a search asks whether a word
//! occurs in a record, never where or how often, so the repeats (about half the words of
//! a transcript's records) would only cost the index's tokeniser, pending terms and
//! merges, all on the one thread that writes.

use serde_json::Value;
use sonde_model::{Body, Event, Record};

use crate::Dialect;

/// The most text of one record that is indexed (the first this many bytes).
pub const MAX_INDEXED_BYTES: usize = 64 * 1024;

/// The distinct words of `record` a search looks in ([`words`] of its text, each once,
/// in the order they first occur), space-separated, if it has any.
pub(crate) fn searchable_text(record: &Record) -> Option<String> {
    let mut out = Text::default();
    match &record.body {
        Body::Message(m) => {
            if let Some(text) = &m.content.text {
                out.push(text);
            }
            if let Some(json) = &m.content.json {
                out.strings(json);
            }
        }
        Body::Event(Event::Llm(call)) => {
            for r in &call.call_records {
                if let Some(request) = &r.request {
                    out.strings(request);
                }
                if let Some(response) = &r.response {
                    out.strings(response);
                }
            }
            if let Some(error) = &call.error {
                out.push(error);
            }
        }
        Body::Event(Event::Runtime(action)) => {
            if let Some(tool) = &action.tool_name {
                out.push(tool);
            }
            for value in [&action.arguments, &action.result].into_iter().flatten() {
                out.strings(value);
            }
            if let Some(error) = &action.error {
                out.push(error);
            }
        }
        Body::Event(Event::Custom(custom)) => {
            out.push(&custom.name);
            out.strings(&custom.data);
        }
        Body::Event(Event::ToolCallStarted(start)) => {
            out.push(&start.tool_name);
            if let Some(arguments) = &start.arguments {
                out.strings(arguments);
            }
        }
        Body::Event(Event::Stream(stream)) => {
            out.push(&stream.name);
            out.strings(&stream.data);
        }
        _ => {}
    }
    // Both backends index the same words: PostgreSQL's parser would otherwise read
    // `<script>` as a tag and drop it, or `a.rs` as one file name.
    out.finish()
}

/// The words of text gathered up to [`MAX_INDEXED_BYTES`] (counted as if its pieces were
/// joined by newlines), lowercased, then each once, space-separated: with no allocation
/// per word.
#[derive(Default)]
struct Text {
    /// The bytes of text taken so far, separators included.
    taken: usize,
    /// Every word met, lowercased, each followed by a space.
    all: String,
    /// Where each word of `all` starts and ends.
    spans: Vec<(usize, usize)>,
}

impl Text {
    fn push(&mut self, piece: &str) {
        let room = MAX_INDEXED_BYTES.saturating_sub(self.taken + 1);
        if room == 0 || piece.is_empty() {
            return;
        }
        if self.taken > 0 {
            self.taken += 1;
        }
        let mut end = piece.len().min(room);
        while !piece.is_char_boundary(end) {
            end -= 1;
        }
        self.taken += end;
        for word in split_words(piece.get(..end).unwrap_or_default()) {
            let start = self.all.len();
            lowercase_into(word, &mut self.all);
            self.spans.push((start, self.all.len()));
            self.all.push(' ');
        }
    }

    /// The string values in `value` (not its keys).
    fn strings(&mut self, value: &Value) {
        match value {
            Value::String(s) => self.push(s),
            Value::Array(items) => items.iter().for_each(|v| self.strings(v)),
            Value::Object(map) => map.values().for_each(|v| self.strings(v)),
            _ => {}
        }
    }

    /// The distinct words, space-separated, in the order they first occur.
    fn finish(self) -> Option<String> {
        let mut seen = hashbrown::HashSet::with_capacity(self.spans.len());
        let mut out = String::with_capacity(self.all.len());
        for &(start, end) in &self.spans {
            let word = self.all.get(start..end).unwrap_or_default();
            if seen.insert(word) {
                if !out.is_empty() {
                    out.push(' ');
                }
                out.push_str(word);
            }
        }
        (!out.is_empty()).then_some(out)
    }
}

/// The runs of letters and digits of `text`.
fn split_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// Appends `word` lowercased (as [`str::to_lowercase`] does) to `out`.
fn lowercase_into(word: &str, out: &mut String) {
    if word.is_ascii() {
        let start = out.len();
        out.push_str(word);
        if let Some(added) = out.get_mut(start..) {
            added.make_ascii_lowercase();
        }
    } else {
        out.push_str(&word.to_lowercase());
    }
}

/// The words of a text or a search: runs of letters and digits, lowercased.
pub(crate) fn words(query: &str) -> Vec<String> {
    split_words(query).map(str::to_lowercase).collect()
}

/// "The session has a record with `word`" over `sessions s`, as SQL in `d` with
/// `param` the placeholder bound to [`quoted`]`(d, word)`.
pub(crate) fn session_clause(d: Dialect, param: &str) -> String {
    match d {
        Dialect::Sqlite => format!(
            "(s.tenant, s.session_id) IN (SELECT sd.tenant, sd.session_id FROM search_fts
                JOIN search_docs sd ON sd.id = search_fts.rowid WHERE search_fts MATCH {param})"
        ),
        Dialect::Postgres => format!(
            "(s.tenant, s.session_id) IN (SELECT sd.tenant, sd.session_id FROM search_docs sd
                WHERE sd.body @@ to_tsquery('simple', {param}::text))"
        ),
    }
}

/// How many of the newest sessions (matching a listing's other filters) a SQLite search
/// probes one by one before it gathers the sessions holding each word instead: enough
/// for a page of sessions with words each in 1 of 8 sessions, few enough that rare words
/// (gathered fast) lose little to the probing.
pub(crate) const PROBED_SESSIONS: usize = 4096;

/// "The session has a record with `word`" over `sessions s` in SQLite, probed per
/// session: its search documents (by session) checked against the set of documents
/// holding the word. Fast when sessions with the word are common among the newest, where
/// [`session_clause`] would first gather every session holding it; the unary `+` keeps
/// SQLite from probing the documents by each rowid of that set instead.
pub(crate) fn session_probe(param: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM search_docs sd WHERE sd.session_id = s.session_id
            AND sd.tenant = s.tenant
            AND +sd.id IN (SELECT rowid FROM search_fts WHERE search_fts MATCH {param}))"
    )
}

/// A word (of [`words`]) as the backend's query language matches it whole.
pub(crate) fn quoted(d: Dialect, word: &str) -> String {
    // Words are letters and digits only: nothing in them needs escaping.
    match d {
        Dialect::Sqlite => format!("\"{word}\""),
        Dialect::Postgres => format!("'{word}'"),
    }
}

/// Migration 18: PostgreSQL's search documents lose their primary key on
/// `(tenant, record_id)`. Record ids are random, so every document inserted into that
/// index went to a page of its own, and the index, unlike the records' own keys (one per
/// week, see [`crate::partitions`]), grew with the whole store: the second-largest cost
/// of a write and one that grew with it (BENCHMARKS.md, "Growth"). Nothing needs it: a
/// document is written only for a record its own transaction has just stored for the
/// first time (the record tables' unique keys decide that), so two documents of one
/// record are never written; a replaced record's document is found by its session (the
/// stored record's, which `search_docs_session` indexes); a session's documents go by
/// session, a dropped week's by session. SQLite has nothing to do: the version is kept so
/// that both backends number alike.
pub(crate) fn search_key_migration(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => "SELECT 1".to_owned(),
        Dialect::Postgres => "ALTER TABLE search_docs DROP CONSTRAINT search_docs_pkey;".to_owned(),
    }
}

/// Migration 9's search tables in `d`, and the index for listing LLM calls newest first.
pub(crate) fn search_migration(d: Dialect) -> String {
    let calls_index =
        "CREATE INDEX events_calls ON events (ts DESC, id DESC) WHERE event_type = 'llm';";
    match d {
        Dialect::Sqlite => format!(
            "
-- One row per record with text; the FTS5 index (contentless: the text itself is in the
-- payloads) shares its rowid.
CREATE TABLE search_docs (
    id INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL,
    session_id TEXT NOT NULL
);
CREATE INDEX search_docs_record ON search_docs (record_id);
CREATE INDEX search_docs_session ON search_docs (session_id);
CREATE VIRTUAL TABLE search_fts USING fts5(body, content = '', contentless_delete = 1);
{calls_index}
"
        ),
        Dialect::Postgres => format!(
            "
CREATE TABLE search_docs (
    record_id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL,
    body tsvector NOT NULL
);
CREATE INDEX search_docs_session ON search_docs (session_id);
CREATE INDEX search_docs_body ON search_docs USING GIN (body);
{calls_index}
"
        ),
    }
}

/// How many segments of one level SQLite's full-text index lets gather before merging
/// them (FTS5's `automerge`; its default is 4). Every write adds segments, and merging
/// them was a quarter of the writing thread's work in a cold transcript sync: at 16, an
/// indexed word is rewritten about half as often, and a search probes more (smaller)
/// segments. Set by migration 15 ([`merge_migration`]); FTS5 keeps it in the index's
/// own configuration table.
pub(crate) const FTS_AUTOMERGE: i64 = 16;

/// Migration 15 in `d`: SQLite's full-text index merges by [`FTS_AUTOMERGE`] segments.
/// PostgreSQL's GIN index has no such setting: the version is kept so that both backends
/// number alike.
pub(crate) fn merge_migration(d: Dialect) -> String {
    match d {
        Dialect::Sqlite => format!(
            "INSERT INTO search_fts (search_fts, rank) VALUES ('automerge', {FTS_AUTOMERGE});"
        ),
        Dialect::Postgres => "SELECT 1".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sonde_model::{Context, Message, MessageContent, RuntimeAction};

    fn record(body: Body) -> Record {
        Record::new(Context::session("s"), body)
    }

    #[test]
    fn tool_calls_give_their_name_input_output_and_error_but_not_keys() {
        let text = searchable_text(&record(Body::Event(Event::Runtime(RuntimeAction {
            tool_name: Some("Bash".into()),
            arguments: Some(json!({"command": "cargo test"})),
            result: Some(json!(["1 failed"])),
            error: Some("exit 101".into()),
            ..Default::default()
        }))))
        .unwrap_or_default();
        assert_eq!(text, "bash cargo test 1 failed exit 101");
        assert!(!text.contains("command"));
    }

    #[test]
    fn text_is_capped_on_a_character_boundary() {
        // The cap (the first piece's room: the cap less a separator) falls inside "é".
        let kept = "a".repeat(MAX_INDEXED_BYTES - 2);
        let long = format!("{kept}é and more");
        let text = searchable_text(&record(Body::Message(Message {
            content: MessageContent::text(long),
            ..Default::default()
        })))
        .unwrap_or_default();
        assert_eq!(text, kept);
        // Distinct words up to the cap are all kept.
        let many: Vec<String> = (0..MAX_INDEXED_BYTES / 4)
            .map(|i| format!("w{i}"))
            .collect();
        let text = searchable_text(&record(Body::Message(Message {
            content: MessageContent::text(many.join(" ")),
            ..Default::default()
        })))
        .unwrap_or_default();
        assert!(text.len() < MAX_INDEXED_BYTES && text.len() > MAX_INDEXED_BYTES - 8);
        assert!(many.join(" ").starts_with(&text));
    }

    #[test]
    fn each_word_is_indexed_once_lowercased_in_first_order() {
        let text = searchable_text(&record(Body::Message(Message {
            content: MessageContent::text("Run cargo test; CARGO test ÉTÉ été Σ-ΟΔΟΣ"),
            ..Default::default()
        })))
        .unwrap_or_default();
        assert_eq!(text, "run cargo test été σ οδος");
        // The same words as a search of that text finds.
        let searched = words("Run cargo test; CARGO test ÉTÉ été Σ-ΟΔΟΣ");
        let mut distinct: Vec<&str> = Vec::new();
        for w in &searched {
            if !distinct.contains(&w.as_str()) {
                distinct.push(w);
            }
        }
        assert_eq!(text, distinct.join(" "));
    }

    #[test]
    fn records_without_text_index_nothing() {
        let empty = record(Body::Message(Message::default()));
        assert_eq!(searchable_text(&empty), None);
    }

    #[test]
    fn searches_become_quoted_words() {
        let quote = |d, q: &str| words(q).iter().map(|w| quoted(d, w)).collect::<Vec<_>>();
        assert_eq!(
            quote(Dialect::Sqlite, "Cargo  test\"; DROP"),
            ["\"cargo\"", "\"test\"", "\"drop\""]
        );
        assert_eq!(
            quote(Dialect::Postgres, "it's <script>"),
            ["'it'", "'s'", "'script'"]
        );
        assert!(quote(Dialect::Sqlite, " -- ").is_empty());
    }
}
