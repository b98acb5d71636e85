//! `sonde sessions`, `show`, `query`, `schema` and `rm`.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;
use sonde::store::{Scope, SessionFilter, TraceStore};
use sonde::{Event, SessionTrace, Timestamp};

use crate::json;
use crate::out::{out, outln};
use crate::table::{Table, count, dollars, output_width, preview, thousands, wrapped};
use crate::time::{Zone, duration, parse_time};

/// Filters and output of `sonde sessions`.
#[derive(Args)]
pub struct ListArgs {
    /// At most this many sessions (1 or more).
    #[arg(long, default_value_t = SessionFilter::DEFAULT_LIMIT,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    limit: usize,
    /// Sessions started at or after this time: a date (2026-01-01), a date-time
    /// (2026-01-01T10:00, RFC 3339) or a span back from now (30m, 12h, 7d).
    #[arg(long)]
    since: Option<String>,
    /// Sessions started before this time (as --since).
    #[arg(long)]
    until: Option<String>,
    /// The time zone of the times printed, and of dates without an offset: an IANA
    /// name or UTC (default: the local one).
    #[arg(long)]
    tz: Option<String>,
    /// Sessions that called this model.
    #[arg(long)]
    model: Option<String>,
    /// Sessions that called this provider.
    #[arg(long)]
    provider: Option<String>,
    /// Sessions with a record (message, tool call, LLM request or response) holding
    /// every one of these words.
    #[arg(long, value_name = "WORDS")]
    search: Option<String>,
    /// Only sessions with a failed event (status error, or HTTP 4xx / 5xx).
    #[arg(long)]
    errors: bool,
    /// Sessions that cost at least this much (USD).
    #[arg(long, value_name = "USD")]
    min_cost: Option<f64>,
    /// Sessions whose metadata has KEY=VALUE (VALUE as JSON, or else a string).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Continue after a previous page (its next_cursor).
    #[arg(long)]
    cursor: Option<String>,
    /// Print JSON: {"sessions": [...], "next_cursor": ...}.
    #[arg(long)]
    json: bool,
}

impl Default for ListArgs {
    /// The newest sessions, as `sonde sessions` lists them.
    fn default() -> Self {
        Self {
            limit: SessionFilter::DEFAULT_LIMIT,
            since: None,
            until: None,
            tz: None,
            model: None,
            provider: None,
            search: None,
            errors: false,
            min_cost: None,
            metadata: Vec::new(),
            cursor: None,
            json: false,
        }
    }
}

impl ListArgs {
    /// The newest sessions, as JSON when `json`.
    pub fn newest(json: bool) -> Self {
        Self {
            json,
            ..Self::default()
        }
    }

    /// The command that lists the page after `cursor` with these filters, its
    /// arguments shell-quoted; `db` is the `--db` given, if any (redacted).
    fn next_page_command(&self, db: Option<&str>, cursor: &str) -> String {
        let mut command = "sonde".to_owned();
        if let Some(db) = db {
            command += &format!(" --db {}", shell_quoted(&sonde::store::redact_url(db)));
        }
        command += &format!(" sessions --limit {}", self.limit);
        for (name, value) in [
            ("--since", &self.since),
            ("--until", &self.until),
            ("--tz", &self.tz),
            ("--model", &self.model),
            ("--provider", &self.provider),
            ("--search", &self.search),
        ] {
            if let Some(value) = value {
                command += &format!(" {name} {}", shell_quoted(value));
            }
        }
        for kv in &self.metadata {
            command += &format!(" --meta {}", shell_quoted(kv));
        }
        if self.errors {
            command += " --errors";
        }
        if let Some(min) = self.min_cost {
            command += &format!(" --min-cost {min}");
        }
        command + &format!(" --cursor {}", shell_quoted(cursor))
    }
}

/// `word` as one shell word: as it is when it holds only safe characters, else in
/// single quotes.
pub fn shell_quoted(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@,+%".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

pub async fn list(
    store: &dyn TraceStore,
    args: ListArgs,
    db: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let metadata = crate::filters::metadata(&args.metadata)?;
    let zone = Zone::parse(args.tz.as_deref())?;
    let time = |text: &Option<String>| text.as_deref().map(|t| parse_time(t, &zone)).transpose();
    let filter = SessionFilter {
        scope: Scope::All,
        since: time(&args.since)?,
        until: time(&args.until)?,
        metadata,
        model: args.model.clone(),
        provider: args.provider.clone(),
        search: args.search.clone(),
        has_errors: args.errors,
        min_cost_usd: args.min_cost,
        limit: args.limit,
        cursor: args.cursor.clone(),
    };
    let page = store.list_sessions(&filter).await?;
    if args.json {
        return json::print(&page);
    }
    if page.sessions.is_empty() {
        outln!("no sessions")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "SESSION",
        "STARTED",
        "DURATION",
        "EVENTS",
        "LLM CALLS",
        "TOOL CALLS",
        "TOKENS",
        "COST",
        "ERRORS",
        "MODELS",
    ]);
    for s in &page.sessions {
        table.row(vec![
            s.session_id.clone(),
            zone.when(s.started_at),
            duration(s.last_at.millis_since(s.started_at)),
            thousands(s.events),
            thousands(s.llm_calls),
            thousands(s.tool_calls),
            thousands(s.total_tokens),
            dollars(s.cost_usd),
            thousands(s.errors),
            s.models.join(", "),
        ]);
    }
    out!("{}", table.render())?;
    if let Some(cursor) = page.next_cursor {
        outln!("more: {}", args.next_page_command(db, &cursor))?;
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(
    store: &dyn TraceStore,
    session_id: &str,
    json: bool,
    zone: &Zone,
) -> anyhow::Result<ExitCode> {
    let Some(trace) = store.get_session(session_id, &Scope::All).await? else {
        eprintln!("sonde: no session {session_id}");
        return Ok(ExitCode::FAILURE);
    };
    if json {
        return json::print(&trace);
    }
    out!("{}", render_session(&trace, output_width(), zone))?;
    Ok(ExitCode::SUCCESS)
}

/// The cost of a call as Sonde reports it everywhere: the reported one, else the one
/// computed from the price table.
fn cost(call: &sonde::LlmCall) -> Option<f64> {
    call.cost_usd
        .or_else(|| sonde_pricing::PriceTable::global().cost(call))
}

/// The human view of a session, no line wider than `width`: a header, then every
/// record in order (`session_started` first, then the rest in time order).
fn render_session(trace: &SessionTrace, width: usize, zone: &Zone) -> String {
    let mut out = String::new();
    let llm: Vec<&sonde::LlmCall> = trace
        .events
        .iter()
        .filter_map(|e| e.value.as_llm())
        .collect();
    let tokens: u64 = llm.iter().map(|c| c.total_tokens()).sum();
    let costs: Vec<f64> = llm.iter().filter_map(|c| cost(c)).collect();
    let records = trace.to_records();
    out.push_str(&format!("session   {}\n", trace.session_id));
    // Its earliest record, as `sonde sessions` says (a transcript's first lines may
    // come before the one that starts the session).
    if let Some(start) = records.iter().map(|r| r.timestamp).min() {
        out.push_str(&format!("started   {}\n", zone.when(start)));
    }
    if let Some(end) = &trace.ended {
        out.push_str(&format!("ended     {}\n", zone.when(end.timestamp)));
    }
    if !trace.metadata().is_empty() {
        let metadata = Value::Object(trace.metadata().clone()).to_string();
        out.push_str(&format!(
            "metadata  {}\n",
            preview(&metadata, width.saturating_sub(10))
        ));
    }
    out.push_str(&format!(
        "totals    {}, {} ({}), {}, {}, {}\n\n",
        count(trace.steps.len() as u64, "step"),
        count(trace.events.len() as u64, "event"),
        count(llm.len() as u64, "LLM call"),
        count(trace.messages.len() as u64, "message"),
        count(tokens, "token"),
        if costs.is_empty() {
            "cost unknown".to_owned()
        } else {
            dollars(Some(costs.iter().sum()))
        }
    ));
    let time_header = format!(
        "TIME ({})",
        zone.abbreviation(trace.created_at().unwrap_or_else(Timestamp::now))
    );
    let mut table = Table::new(&[&time_header, "STEP", "KIND", "DETAIL"]);
    for record in records {
        let detail = match &record.body {
            sonde::Body::Event(Event::Llm(c)) => format!(
                "{}{} in={} out={} cache_read={} cache_write={}{}{}{}",
                c.provider
                    .as_deref()
                    .map(|p| format!("{p}/"))
                    .unwrap_or_default(),
                c.model_name,
                thousands(c.input_tokens),
                thousands(c.output_tokens),
                thousands(c.cache_read_tokens),
                thousands(c.cache_write_tokens),
                cost(c)
                    .map(|v| format!(" {}", dollars(Some(v))))
                    .unwrap_or_default(),
                c.latency_ms
                    .map(|v| format!(" {}", duration(v)))
                    .unwrap_or_default(),
                c.error
                    .as_deref()
                    .map(|e| format!(" error: {}", preview(e, 60)))
                    .unwrap_or_default(),
            ),
            sonde::Body::Event(Event::Runtime(a)) => format!(
                "{}{}{}",
                a.tool_name.as_deref().unwrap_or("action"),
                a.duration_ms
                    .map(|v| format!(" {}", duration(v)))
                    .unwrap_or_default(),
                if a.status.is_ok() {
                    String::new()
                } else {
                    format!(
                        " error: {}",
                        preview(a.error.as_deref().unwrap_or("failed"), 60)
                    )
                },
            ),
            sonde::Body::Event(Event::Environment(e)) => format!(
                "reward={}{}{}",
                e.reward.map_or("-".to_owned(), |r| r.to_string()),
                if e.terminated { " terminated" } else { "" },
                if e.truncated { " truncated" } else { "" }
            ),
            sonde::Body::Event(Event::Custom(c)) => c.name.clone(),
            sonde::Body::Event(Event::ToolCallStarted(t)) => format!(
                "{} started{}",
                t.tool_name,
                t.arguments
                    .as_ref()
                    .map(|a| format!(" {}", preview(&a.to_string(), 60)))
                    .unwrap_or_default()
            ),
            sonde::Body::Event(Event::PromptBuilt(p)) => format!(
                "{} chars{}",
                p.prompt_chars.map_or("?".to_owned(), thousands),
                p.prompt_hash
                    .as_deref()
                    .map(|h| format!(" {}", preview(h, 16)))
                    .unwrap_or_default()
            ),
            sonde::Body::Event(Event::Stream(e)) => format!("{} {}", e.source, e.name),
            sonde::Body::Message(m) => format!(
                "{} {}→{}: {}",
                m.message_type,
                m.from_role.as_deref().unwrap_or("?"),
                m.to_role.as_deref().unwrap_or("?"),
                preview(&m.content.as_text(), 80)
            ),
            sonde::Body::OutcomeReward(r) => format!("{} = {}", r.objective_key, r.total_reward),
            sonde::Body::EventReward(r) => format!("{} on event {}", r.value, r.event_id),
            sonde::Body::StepStarted(s) => s
                .turn_number
                .map(|t| format!("turn {t}"))
                .unwrap_or_default(),
            _ => String::new(),
        };
        table.row(vec![
            zone.time_of_day(record.timestamp),
            record.context.step_id.clone().unwrap_or_default(),
            record.kind().to_owned(),
            detail,
        ]);
    }
    out.push_str(&table.render_within(width));
    out
}

pub async fn query(
    store: &dyn TraceStore,
    sql: &str,
    params: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let params: Vec<Value> = params
        .iter()
        .map(|p| crate::filters::json_or_text(p))
        .collect();
    let result = store.query(sql, &params).await?;
    if json {
        return json::print(&result.to_objects());
    }
    let headers: Vec<&str> = result.columns.iter().map(String::as_str).collect();
    let mut table = Table::new(&headers);
    for row in &result.rows {
        table.row(
            row.iter()
                .map(|v| match v {
                    Value::Null => "NULL".to_owned(),
                    Value::String(s) => preview(s, 120),
                    other => other.to_string(),
                })
                .collect(),
        );
    }
    out!("{}", table.render())?;
    eprintln!(
        "({} row{})",
        thousands(result.rows.len() as u64),
        if result.rows.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

/// Whether the person at the terminal says yes to `question` (asked on standard
/// error; anything but `y` or `yes` is no).
fn confirmed(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

/// Whether `sonde COMMAND` may delete `what`: with `--yes`, or when a person at a
/// terminal answers yes to `question`; without a terminal and `--yes`, a usage error.
fn may_delete(yes: bool, command: &str, what: &str, question: &str) -> anyhow::Result<bool> {
    if yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(crate::exit::usage(format!(
            "sonde {command} asks before deleting, and standard input is not a terminal: pass --yes to delete {what}"
        )));
    }
    confirmed(question)
}

/// `sonde rm`: asks first on a terminal; elsewhere, deletes only with `--yes`.
pub async fn remove(
    store: &dyn TraceStore,
    session_id: &str,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    if !may_delete(
        yes,
        "rm",
        &format!("session {session_id}"),
        &format!("delete session {session_id} and everything in it?"),
    )? {
        eprintln!("kept session {session_id}");
        return Ok(ExitCode::FAILURE);
    }
    if store.delete_session(session_id, &Scope::All).await? {
        if json {
            outln!("{}", serde_json::json!({ "deleted": session_id }))?;
        } else {
            eprintln!("deleted session {session_id}");
        }
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("sonde: no session {session_id}");
        Ok(ExitCode::FAILURE)
    }
}

/// The instant `older_than` before now.
pub fn cutoff(older_than: std::time::Duration) -> sonde::Timestamp {
    let micros = i64::try_from(older_than.as_micros()).unwrap_or(i64::MAX);
    sonde::Timestamp::from_micros(sonde::Timestamp::now().as_micros().saturating_sub(micros))
}

/// `sonde prune --older-than SPAN`: deletes the sessions whose last record is older.
pub async fn prune(
    store: &dyn TraceStore,
    older_than: std::time::Duration,
    yes: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let cutoff = cutoff(older_than);
    if !may_delete(
        yes,
        "prune",
        &format!("the sessions older than {cutoff}"),
        &format!("delete every session whose last record is older than {cutoff}?"),
    )? {
        eprintln!("kept every session");
        return Ok(ExitCode::FAILURE);
    }
    let pruned = sonde::retention::prune(store, &Scope::All, cutoff).await?;
    if json {
        return json::print(&serde_json::json!({
            "older_than": cutoff.to_string(),
            "sessions": pruned.sessions,
            "events": pruned.events,
            "llm_calls": pruned.llm_calls,
            "partitions": pruned.partitions,
        }));
    }
    eprintln!(
        "deleted {} ({}, {}) older than {cutoff}{}",
        count(pruned.sessions, "session"),
        count(pruned.events, "event"),
        count(pruned.llm_calls, "LLM call"),
        match pruned.partitions {
            0 => String::new(),
            n => format!(", {} dropped whole", count(n, "weekly partition")),
        },
    );
    Ok(ExitCode::SUCCESS)
}

/// How to read what `sonde schema` lists, whichever the backend.
const SCHEMA_NOTES: &str = "\
times are microseconds since the Unix epoch.
payload is each row's record as JSON: read it with sonde_payload(payload) on SQLite
  (e.g. json_extract(sonde_payload(payload), '$.tool_name')) and payload::jsonb on
  PostgreSQL (e.g. payload::jsonb ->> 'tool_name').
cost_usd is the cost Sonde reports: reported_cost_usd (what the source reported) when
  there is one, else computed_cost_usd (from the price table when the call was written).";

/// `sonde schema`: the tables and columns `sonde query` reads, and how to read them.
pub async fn schema(store: &dyn TraceStore, json: bool) -> anyhow::Result<ExitCode> {
    let tables = sonde::schema::query_tables(store).await?;
    if json {
        return json::print(&serde_json::json!({
            "backend": store.backend(),
            "tables": tables,
            "notes": SCHEMA_NOTES.lines().collect::<Vec<_>>(),
        }));
    }
    for t in &tables {
        outln!("{}", t.table)?;
        outln!("{}", wrapped(&t.columns.join(", "), output_width(), "  "))?;
    }
    outln!("\n{SCHEMA_NOTES}")?;
    Ok(ExitCode::SUCCESS)
}
