//! Records as rows, for every backend: which table a record goes to, the columns it
//! fills, what it changes in the derived `sessions` / `steps` tables, and how stored
//! columns become a record again.

use sonde_model::{Body, Context, Event, Record, Timestamp};

use crate::latency_runs::RunValues;
use crate::{CallPricer, Dialect, ReadError};

/// The table a record kind lives in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Table {
    Lifecycle,
    Events,
    Messages,
    OutcomeRewards,
    EventRewards,
}

impl Table {
    pub(crate) const ALL: [Table; 5] = [
        Table::Lifecycle,
        Table::Events,
        Table::Messages,
        Table::OutcomeRewards,
        Table::EventRewards,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Table::Lifecycle => "lifecycle",
            Table::Events => "events",
            Table::Messages => "messages",
            Table::OutcomeRewards => "outcome_rewards",
            Table::EventRewards => "event_rewards",
        }
    }

    /// The table's own columns, after [`SHARED_COLUMNS`].
    pub(crate) fn extra_columns(self) -> &'static [&'static str] {
        match self {
            Table::Lifecycle => &[],
            Table::Events => &EVENT_COLUMNS,
            Table::Messages => &["message_type", "from_role", "to_role"],
            Table::OutcomeRewards => &["objective_key", "total_reward"],
            Table::EventRewards => &["event_id", "value"],
        }
    }

    /// Every column of the table, in insert order: the shared ones, the table's own,
    /// then `tenant`.
    pub(crate) fn columns(self) -> Vec<&'static str> {
        SHARED_COLUMNS
            .iter()
            .chain(self.extra_columns())
            .chain(&["tenant"])
            .copied()
            .collect()
    }
}

/// Columns every record table has, in this order.
pub(crate) const SHARED_COLUMNS: [&str; 11] = [
    "id",
    "kind",
    "ts",
    "session_id",
    "step_id",
    "org",
    "workspace",
    "trace_id",
    "span_id",
    "parent_span_id",
    "payload",
];

/// The typed columns of `events`, in this order.
pub(crate) const EVENT_COLUMNS: [&str; 19] = [
    "event_type",
    "status",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "reported_cost_usd",
    "computed_cost_usd",
    "latency_ms",
    "ttft_ms",
    "response_status",
    "request_path",
    "api_key_hash",
    "gateway_key_id",
    "tool_name",
];

/// A record turned into column values, ready to insert off the caller's thread.
pub(crate) struct RecordRow {
    pub table: Table,
    /// [`crate::tenancy::tenant_key`] of the record's org and workspace.
    pub tenant: String,
    pub id: String,
    pub kind: &'static str,
    pub ts: i64,
    pub context: Context,
    /// The payload as JSON text (emptied once a backend has compressed it).
    pub payload: String,
    pub extra: Extra,
    /// The text full-text search finds the record by, if any
    /// ([`crate::search::searchable_text`]).
    pub search_text: Option<String>,
}

/// The table-specific columns of a row.
// Most rows are events; boxing their columns would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Extra {
    Lifecycle(Lifecycle),
    Event(EventColumns),
    Message {
        message_type: String,
        from_role: Option<String>,
        to_role: Option<String>,
    },
    OutcomeReward {
        objective_key: String,
        total_reward: f64,
    },
    EventReward {
        event_id: String,
        value: f64,
    },
}

/// The typed columns of an `events` row ([`EVENT_COLUMNS`]).
pub(crate) struct EventColumns {
    pub event_type: &'static str,
    pub status: &'static str,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// input, output, cache read, cache write, reasoning, total (LLM calls only).
    pub tokens: Option<[i64; 6]>,
    /// The cost the source reported.
    pub reported_cost_usd: Option<f64>,
    /// The cost from the price table, when the model is priced.
    pub computed_cost_usd: Option<f64>,
    /// LLM latency, or a tool call's duration.
    pub latency_ms: Option<f64>,
    pub ttft_ms: Option<f64>,
    pub response_status: Option<i32>,
    pub request_path: Option<String>,
    pub api_key_hash: Option<String>,
    pub gateway_key_id: Option<String>,
    pub tool_name: Option<String>,
}

/// Derived-table changes of lifecycle records.
pub(crate) enum Lifecycle {
    SessionStarted {
        metadata: String,
    },
    SessionEnded,
    StepStarted {
        step_id: String,
        step_index: i64,
        turn_number: Option<i64>,
        metadata: String,
    },
    StepEnded {
        step_id: String,
    },
}

/// A parameter of a [`Lifecycle::statement`], for each backend to bind its own way.
pub(crate) enum LifecycleParam<'a> {
    /// Text.
    Text(&'a str),
    /// An integer, or null.
    Integer(Option<i64>),
    /// An instant, in microseconds since the epoch.
    Time(i64),
}

impl Lifecycle {
    /// The statement that keeps the derived tables pointing at the earliest lifecycle
    /// record of each kind (as the fold does), in `dialect`, for the record `id` at `ts`
    /// of `session_id` in `tenant`; and its parameters.
    pub(crate) fn statement<'a>(
        &'a self,
        tenant: &'a str,
        session_id: &'a str,
        id: &'a str,
        ts: i64,
        dialect: Dialect,
    ) -> (String, Vec<LifecycleParam<'a>>) {
        use LifecycleParam::{Integer, Text, Time};
        let p = |n| dialect.placeholder(n);
        // Ids compare bytewise, whatever the collation.
        let id_of = |column: &str| dialect.bytewise(column);
        let id_param = |n| dialect.bytewise(&dialect.text(&p(n)));
        match self {
            Lifecycle::SessionStarted { metadata } => (
                format!(
                    "UPDATE sessions SET metadata = {}, start_ts = {}, start_id = {}
                     WHERE tenant = {} AND session_id = {}
                       AND (start_ts IS NULL OR (start_ts, {}) > ({}, {}))",
                    dialect.json(&p(3)),
                    p(4),
                    p(2),
                    p(5),
                    p(1),
                    id_of("start_id"),
                    p(4),
                    id_param(2),
                ),
                vec![
                    Text(session_id),
                    Text(id),
                    Text(metadata),
                    Time(ts),
                    Text(tenant),
                ],
            ),
            Lifecycle::SessionEnded => (
                format!(
                    "UPDATE sessions SET ended_at = {}, end_id = {}
                     WHERE tenant = {} AND session_id = {}
                       AND (ended_at IS NULL OR (ended_at, {}) > ({}, {}))",
                    p(3),
                    p(2),
                    p(4),
                    p(1),
                    id_of("end_id"),
                    p(3),
                    id_param(2),
                ),
                vec![Text(session_id), Text(id), Time(ts), Text(tenant)],
            ),
            Lifecycle::StepStarted {
                step_id,
                step_index,
                turn_number,
                metadata,
            } => (
                format!(
                    "INSERT INTO steps (session_id, step_id, step_index, turn_number, started_at, start_id, metadata, tenant)
                     VALUES ({}, {}, {}, {}, {}, {}, {}, {})
                     ON CONFLICT (tenant, session_id, step_id) DO UPDATE SET
                         step_index = excluded.step_index, turn_number = excluded.turn_number,
                         started_at = excluded.started_at, start_id = excluded.start_id,
                         metadata = excluded.metadata
                     WHERE steps.started_at IS NULL
                        OR (steps.started_at, {}) > (excluded.started_at, {})",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    p(6),
                    dialect.json(&p(7)),
                    p(8),
                    id_of("steps.start_id"),
                    id_of("excluded.start_id"),
                ),
                vec![
                    Text(session_id),
                    Text(step_id),
                    Integer(Some(*step_index)),
                    Integer(*turn_number),
                    Time(ts),
                    Text(id),
                    Text(metadata),
                    Text(tenant),
                ],
            ),
            Lifecycle::StepEnded { step_id } => (
                format!(
                    "INSERT INTO steps (session_id, step_id, completed_at, end_id, tenant)
                     VALUES ({}, {}, {}, {}, {})
                     ON CONFLICT (tenant, session_id, step_id) DO UPDATE SET
                         completed_at = excluded.completed_at, end_id = excluded.end_id
                     WHERE steps.completed_at IS NULL
                        OR (steps.completed_at, {}) > (excluded.completed_at, {})",
                    p(1),
                    p(2),
                    p(3),
                    p(4),
                    p(5),
                    id_of("steps.end_id"),
                    id_of("excluded.end_id"),
                ),
                vec![
                    Text(session_id),
                    Text(step_id),
                    Time(ts),
                    Text(id),
                    Text(tenant),
                ],
            ),
        }
    }
}

fn finite(value: Option<f64>) -> Option<f64> {
    value.filter(|v| v.is_finite())
}

fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn metadata_json(m: &sonde_model::Metadata) -> String {
    serde_json::to_string(m).unwrap_or_else(|_| "{}".to_owned())
}

impl RecordRow {
    /// The row of `record`; `pricer` computes the cost of an LLM call.
    pub(crate) fn from_record(record: &Record, pricer: Option<&CallPricer>) -> RecordRow {
        let step_id = record.context.step_id.clone().unwrap_or_default();
        let (table, extra) = match &record.body {
            Body::SessionStarted(p) => (
                Table::Lifecycle,
                Extra::Lifecycle(Lifecycle::SessionStarted {
                    metadata: metadata_json(&p.metadata),
                }),
            ),
            Body::SessionEnded(_) => (Table::Lifecycle, Extra::Lifecycle(Lifecycle::SessionEnded)),
            Body::StepStarted(p) => (
                Table::Lifecycle,
                Extra::Lifecycle(Lifecycle::StepStarted {
                    step_id,
                    step_index: i64::from(p.step_index),
                    turn_number: p.turn_number,
                    metadata: metadata_json(&p.metadata),
                }),
            ),
            Body::StepEnded(_) => (
                Table::Lifecycle,
                Extra::Lifecycle(Lifecycle::StepEnded { step_id }),
            ),
            Body::Event(event) => (
                Table::Events,
                Extra::Event(EventColumns::from_event(event, pricer)),
            ),
            Body::Message(m) => (
                Table::Messages,
                Extra::Message {
                    message_type: m.message_type.clone(),
                    from_role: m.from_role.clone(),
                    to_role: m.to_role.clone(),
                },
            ),
            Body::OutcomeReward(r) => (
                Table::OutcomeRewards,
                Extra::OutcomeReward {
                    objective_key: r.objective_key.clone(),
                    total_reward: finite(Some(r.total_reward)).unwrap_or(0.0),
                },
            ),
            Body::EventReward(r) => (
                Table::EventRewards,
                Extra::EventReward {
                    event_id: r.event_id.clone(),
                    value: finite(Some(r.value)).unwrap_or(0.0),
                },
            ),
        };
        RecordRow {
            table,
            tenant: crate::tenancy::tenant_key(
                record.context.org.as_deref(),
                record.context.workspace.as_deref(),
            ),
            id: record.id.clone(),
            kind: record.kind(),
            ts: record.timestamp.as_micros(),
            context: record.context.clone(),
            payload: record.body.payload_json(),
            extra,
            search_text: crate::search::searchable_text(record),
        }
    }

    pub(crate) fn is_event(&self) -> bool {
        matches!(self.extra, Extra::Event(_))
    }

    pub(crate) fn is_message(&self) -> bool {
        matches!(self.extra, Extra::Message { .. })
    }

    /// Total tokens and cost (reported, else computed), for LLM calls.
    pub(crate) fn llm_usage(&self) -> Option<(i64, Option<f64>)> {
        match &self.extra {
            // The reported cost, else Sonde's (as analytics count `cost_usd`).
            Extra::Event(e) => e
                .tokens
                .map(|t| (t[5], e.reported_cost_usd.or(e.computed_cost_usd))),
            _ => None,
        }
    }
}

impl EventColumns {
    fn from_event(event: &Event, pricer: Option<&CallPricer>) -> Self {
        let mut columns = EventColumns {
            event_type: event.event_type(),
            status: event.status().as_str(),
            provider: None,
            model: None,
            tokens: None,
            reported_cost_usd: None,
            computed_cost_usd: None,
            latency_ms: None,
            ttft_ms: None,
            response_status: None,
            request_path: None,
            api_key_hash: None,
            gateway_key_id: None,
            tool_name: None,
        };
        match event {
            Event::Llm(c) => {
                columns.provider.clone_from(&c.provider);
                columns.model = Some(c.model_name.clone());
                columns.tokens = Some([
                    int(c.input_tokens),
                    int(c.output_tokens),
                    int(c.cache_read_tokens),
                    int(c.cache_write_tokens),
                    int(c.reasoning_tokens),
                    int(c.total_tokens()),
                ]);
                columns.reported_cost_usd = finite(c.cost_usd);
                columns.computed_cost_usd = finite(pricer.and_then(|price| price(c)));
                columns.latency_ms = finite(c.latency_ms);
                columns.ttft_ms = finite(c.time_to_first_token_ms);
                columns.response_status = c.response_status.map(i32::from);
                columns.request_path.clone_from(&c.request_path);
                columns.api_key_hash.clone_from(&c.api_key_hash);
                columns.gateway_key_id.clone_from(&c.gateway_key_id);
            }
            Event::Runtime(a) => {
                columns.latency_ms = finite(a.duration_ms);
                columns.tool_name.clone_from(&a.tool_name);
            }
            Event::ToolCallStarted(start) => {
                columns.tool_name = Some(start.tool_name.clone());
            }
            Event::Environment(_) | Event::Custom(_) | Event::PromptBuilt(_) | Event::Stream(_) => {
            }
        }
        columns
    }
}

/// What one batch adds to a session's summary row.
pub(crate) struct SessionDelta {
    pub org: Option<String>,
    pub workspace: Option<String>,
    pub first: i64,
    pub last: i64,
    pub events: i64,
    pub llm_calls: i64,
    pub messages: i64,
    pub total_tokens: i64,
    pub cost_usd: Option<f64>,
}

impl SessionDelta {
    pub(crate) fn new(ts: i64) -> Self {
        Self {
            org: None,
            workspace: None,
            first: ts,
            last: ts,
            events: 0,
            llm_calls: 0,
            messages: 0,
            total_tokens: 0,
            cost_usd: None,
        }
    }

    /// Adds a newly stored row.
    pub(crate) fn absorb(&mut self, row: &RecordRow) {
        if self.org.is_none() {
            self.org.clone_from(&row.context.org);
        }
        if self.workspace.is_none() {
            self.workspace.clone_from(&row.context.workspace);
        }
        self.first = self.first.min(row.ts);
        self.last = self.last.max(row.ts);
        self.events += i64::from(row.is_event());
        self.messages += i64::from(row.is_message());
        if let Some((tokens, cost)) = row.llm_usage() {
            self.llm_calls += 1;
            self.total_tokens = self.total_tokens.saturating_add(tokens);
            if let Some(cost) = cost {
                self.cost_usd = Some(self.cost_usd.unwrap_or(0.0) + cost);
            }
        }
    }
}

/// The summary deltas of newly stored rows, by tenant and session id (sorted, so that
/// concurrent writers lock summary rows in the same order).
pub(crate) fn session_deltas<'a>(
    rows: impl IntoIterator<Item = &'a RecordRow>,
) -> std::collections::BTreeMap<SessionKey, SessionDelta> {
    let mut deltas = std::collections::BTreeMap::new();
    for row in rows {
        deltas
            .entry(SessionKey::of(row))
            .or_insert_with(|| SessionDelta::new(row.ts))
            .absorb(row);
    }
    deltas
}

/// A session as the store keys it: its tenant ([`crate::tenancy::tenant_key`]) and its
/// id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SessionKey {
    pub tenant: String,
    pub session_id: String,
}

impl SessionKey {
    /// The session `row` belongs to.
    pub(crate) fn of(row: &RecordRow) -> Self {
        Self {
            tenant: row.tenant.clone(),
            session_id: row.context.session_id.clone(),
        }
    }
}

/// Stored shared columns (in [`SHARED_COLUMNS`] order), read back.
pub(crate) struct StoredColumns {
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub context: Context,
    pub payload: String,
}

/// A stored row, read by column index as the backend's driver reads it.
pub(crate) trait StoredRow {
    /// The driver's error.
    type Error;
    /// An instant, in microseconds since the epoch.
    fn micros(&self, i: usize) -> Result<i64, Self::Error>;
    /// Text, or null.
    fn text(&self, i: usize) -> Result<Option<String>, Self::Error>;
    /// An integer, or null.
    fn integer(&self, i: usize) -> Result<Option<i64>, Self::Error>;
    /// A double, or null.
    fn real(&self, i: usize) -> Result<Option<f64>, Self::Error>;
}

impl StoredColumns {
    /// The shared columns of `row`, in [`SHARED_COLUMNS`] order, with `payload` (which
    /// each backend reads its own way) for the last.
    pub(crate) fn read<R: StoredRow>(row: &R, payload: String) -> Result<Self, R::Error> {
        Ok(Self {
            id: row.text(0)?.unwrap_or_default(),
            kind: row.text(1)?.unwrap_or_default(),
            ts: row.micros(2)?,
            context: Context {
                session_id: row.text(3)?.unwrap_or_default(),
                step_id: row.text(4)?,
                org: row.text(5)?,
                workspace: row.text(6)?,
                trace_id: row.text(7)?,
                span_id: row.text(8)?,
                parent_span_id: row.text(9)?,
            },
            payload,
        })
    }

    pub(crate) fn into_record(self) -> Result<Record, ReadError> {
        let body = Body::from_kind_and_payload(&self.kind, &self.payload).map_err(|e| {
            ReadError::Corrupt {
                id: self.id.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(Record {
            id: self.id,
            timestamp: Timestamp::from_micros(self.ts),
            context: self.context,
            body,
        })
    }
}

/// `ON CONFLICT ... DO UPDATE` merging a batch's delta into a `sessions` row, with the
/// dialect's two-argument minimum and maximum (`min`/`max` in SQLite,
/// `least`/`greatest` in PostgreSQL).
pub(crate) fn session_upsert_tail(min: &str, max: &str) -> String {
    format!(
        "ON CONFLICT (tenant, session_id) DO UPDATE SET
             org = coalesce(sessions.org, excluded.org),
             workspace = coalesce(sessions.workspace, excluded.workspace),
             started_at = {min}(sessions.started_at, excluded.started_at),
             last_at = {max}(sessions.last_at, excluded.last_at),
             event_count = sessions.event_count + excluded.event_count,
             llm_calls = sessions.llm_calls + excluded.llm_calls,
             message_count = sessions.message_count + excluded.message_count,
             total_tokens = sessions.total_tokens + excluded.total_tokens,
             cost_usd = CASE WHEN excluded.cost_usd IS NULL THEN sessions.cost_usd
                             ELSE coalesce(sessions.cost_usd, 0) + excluded.cost_usd END"
    )
}

/// What a write does with a record whose id is already stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteMode {
    /// Keep the stored record; count the new one as a duplicate.
    KeepStored,
    /// Replace the stored record (lifecycle records excepted, which are kept).
    Replace,
}

/// Recounts one session's summary counters from its stored rows, after replaced rows
/// changed them; `param` and `tenant` are the dialect's placeholders of the session id
/// and its tenant (`?1`, `?2` or `$1`, `$2`).
pub(crate) fn recount_session_sql(param: &str, tenant: &str) -> String {
    let param = format!("{param} AND tenant = {tenant}");
    format!(
        "UPDATE sessions SET
             event_count = (SELECT count(*) FROM events WHERE session_id = {param}),
             llm_calls = (SELECT count(*) FROM events WHERE session_id = {param} AND event_type = 'llm'),
             message_count = (SELECT count(*) FROM messages WHERE session_id = {param}),
             total_tokens = (SELECT coalesce(sum(total_tokens), 0) FROM events
                             WHERE session_id = {param} AND event_type = 'llm'),
             cost_usd = (SELECT sum(cost_usd) FROM events
                         WHERE session_id = {param} AND event_type = 'llm')
         WHERE session_id = {param}"
    )
}

/// One microsecond-hour: rows of `llm_hourly` start at multiples of it.
pub(crate) const HOUR_MICROS: i64 = 3_600_000_000;

/// The key of an `llm_hourly` row: the hour and every dimension analytics group or
/// filter by (a missing value is the empty string).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RollupKey {
    pub hour: i64,
    pub org: String,
    pub workspace: String,
    pub provider: String,
    pub model: String,
    pub api_key_hash: String,
    pub request_path: String,
}

/// What a set of LLM calls adds to one `llm_hourly` row.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RollupDelta {
    pub calls: i64,
    /// input, output, cache read, cache write, reasoning, total.
    pub tokens: [i64; 6],
    pub cost: f64,
    pub reported_cost: f64,
    pub computed_cost: f64,
    pub errors: i64,
    pub http_4xx: i64,
    pub http_5xx: i64,
    pub latency_sum: f64,
    pub latency_count: i64,
}

/// One day in microseconds: rows of `llm_key_daily` start at multiples of it (UTC).
pub(crate) const DAY_MICROS: i64 = 24 * HOUR_MICROS;

/// The three roll-ups: `llm_hourly` by hour and provider / model / route, `llm_daily`
/// the same by day (a month's range reads 24 times fewer rows than hourly), and
/// `llm_key_daily` by day and API key (kept apart so that many keys do not multiply the
/// hourly rows), with the latency runs of the same keys (see [`crate::latency_runs`]).
/// Sorted by key, so that concurrent writers lock roll-up rows in the same order; made
/// by a [`RollupsBuilder`].
#[derive(Debug, Default)]
pub(crate) struct Rollups {
    pub hourly: std::collections::BTreeMap<RollupKey, RollupDelta>,
    pub daily: std::collections::BTreeMap<RollupKey, RollupDelta>,
    pub key_daily: std::collections::BTreeMap<RollupKey, RollupDelta>,
    /// Values for `llm_hourly_runs`.
    pub hourly_runs: std::collections::BTreeMap<RollupKey, RunValues>,
    /// Values for `llm_daily_runs`.
    pub daily_runs: std::collections::BTreeMap<RollupKey, RunValues>,
    /// Values for `llm_key_daily_runs` (calls without a key under the empty key, so that
    /// they form their own group as they do in the events).
    pub key_daily_runs: std::collections::BTreeMap<RollupKey, RunValues>,
}

impl Rollups {
    /// True when no call was added or taken away.
    pub(crate) fn is_empty(&self) -> bool {
        self.hourly.is_empty() && self.key_daily.is_empty()
    }
}

/// A [`RollupKey`] borrowed from a call: what the builder looks keys up by, so that a
/// call whose key is already there allocates nothing (an owned key per call, looked up
/// in sorted maps, cost 2.3 µs a call on SQLite's single writer thread).
#[derive(Hash)]
struct RollupKeyRef<'a> {
    hour: i64,
    org: &'a str,
    workspace: &'a str,
    provider: &'a str,
    model: &'a str,
    api_key_hash: &'a str,
    request_path: &'a str,
}

impl RollupKeyRef<'_> {
    fn to_key(&self) -> RollupKey {
        RollupKey {
            hour: self.hour,
            org: self.org.to_owned(),
            workspace: self.workspace.to_owned(),
            provider: self.provider.to_owned(),
            model: self.model.to_owned(),
            api_key_hash: self.api_key_hash.to_owned(),
            request_path: self.request_path.to_owned(),
        }
    }
}

impl RollupKey {
    fn borrowed(&self) -> RollupKeyRef<'_> {
        RollupKeyRef {
            hour: self.hour,
            org: &self.org,
            workspace: &self.workspace,
            provider: &self.provider,
            model: &self.model,
            api_key_hash: &self.api_key_hash,
            request_path: &self.request_path,
        }
    }
}

// Hashes as its borrowed form does, so that one finds the other.
impl std::hash::Hash for RollupKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.borrowed().hash(state);
    }
}

impl hashbrown::Equivalent<RollupKey> for RollupKeyRef<'_> {
    fn equivalent(&self, key: &RollupKey) -> bool {
        // Most dimensions are empty. Comparing two empty strings still calls `memcmp`
        // (with their dangling pointers, length 0), and glibc's AVX-512 version took
        // ~70 ns a call for that on these machines (3 ns for short non-empty strings):
        // 0.9 µs a call for both keys, now 0.1.
        fn same(a: &str, b: &str) -> bool {
            a.len() == b.len() && (a.is_empty() || a == b)
        }
        self.hour == key.hour
            && same(self.org, &key.org)
            && same(self.workspace, &key.workspace)
            && same(self.provider, &key.provider)
            && same(self.model, &key.model)
            && same(self.api_key_hash, &key.api_key_hash)
            && same(self.request_path, &key.request_path)
    }
}

/// What the calls of one roll-up key add up to so far.
#[derive(Default)]
struct Accumulated {
    delta: RollupDelta,
    /// Whether the delta belongs in its table (`llm_key_daily` counts keyed calls only).
    counted: bool,
    runs: RunValues,
}

impl Accumulated {
    fn add(&mut self, e: &EventColumns, sign: i64, counted: bool) {
        if counted {
            self.counted = true;
            add_to_rollup(&mut self.delta, e, sign);
        }
        self.runs.latencies.extend(e.latency_ms);
        self.runs.ttfts.extend(e.ttft_ms);
    }
}

/// Adds LLM calls up into [`Rollups`].
#[derive(Default)]
pub(crate) struct RollupsBuilder {
    hourly: hashbrown::HashMap<RollupKey, Accumulated>,
    daily: hashbrown::HashMap<RollupKey, Accumulated>,
    key_daily: hashbrown::HashMap<RollupKey, Accumulated>,
}

impl RollupsBuilder {
    /// Takes away the stored LLM call of `row`: `ts`, then [`ROLLUP_SOURCE_COLUMNS`].
    pub(crate) fn subtract_stored<R: StoredRow>(&mut self, row: &R) -> Result<(), R::Error> {
        let mut tokens = [0; 6];
        for (i, t) in tokens.iter_mut().enumerate() {
            *t = row.integer(7 + i)?.unwrap_or(0);
        }
        let columns = EventColumns {
            event_type: "llm",
            status: if row.text(15)?.as_deref() == Some("error") {
                "error"
            } else {
                "ok"
            },
            provider: row.text(3)?,
            model: row.text(4)?,
            tokens: Some(tokens),
            reported_cost_usd: row.real(13)?,
            computed_cost_usd: row.real(14)?,
            latency_ms: row.real(17)?,
            ttft_ms: row.real(18)?,
            response_status: row.integer(16)?.and_then(|s| i32::try_from(s).ok()),
            request_path: row.text(6)?,
            api_key_hash: row.text(5)?,
            gateway_key_id: None,
            tool_name: None,
        };
        self.add(row.micros(0)?, &row.text(1)?, &row.text(2)?, &columns, -1);
        Ok(())
    }

    /// Adds (`sign` 1) or takes away (`sign` -1) one LLM call.
    pub(crate) fn add(
        &mut self,
        ts: i64,
        org: &Option<String>,
        workspace: &Option<String>,
        e: &EventColumns,
        sign: i64,
    ) {
        if e.tokens.is_none() {
            return;
        }
        fn text(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or_default()
        }
        let hourly = RollupKeyRef {
            hour: ts - ts.rem_euclid(HOUR_MICROS),
            org: text(org),
            workspace: text(workspace),
            provider: text(&e.provider),
            model: text(&e.model),
            api_key_hash: "",
            request_path: text(&e.request_path),
        };
        let daily = RollupKeyRef {
            hour: ts - ts.rem_euclid(DAY_MICROS),
            ..hourly
        };
        let key_daily = RollupKeyRef {
            hour: ts - ts.rem_euclid(DAY_MICROS),
            org: text(org),
            workspace: text(workspace),
            provider: "",
            model: "",
            api_key_hash: text(&e.api_key_hash),
            request_path: "",
        };
        for (map, key, counted) in [
            (&mut self.hourly, hourly, true),
            (&mut self.daily, daily, true),
            (&mut self.key_daily, key_daily, e.api_key_hash.is_some()),
        ] {
            match map.get_mut(&key) {
                Some(sums) => sums.add(e, sign, counted),
                None => map.entry(key.to_key()).or_default().add(e, sign, counted),
            }
        }
    }

    /// The sums, sorted by key.
    pub(crate) fn finish(self) -> Rollups {
        let mut rollups = Rollups::default();
        for (key, sums) in self.hourly {
            if sums.runs.len() > 0 {
                rollups.hourly_runs.insert(key.clone(), sums.runs);
            }
            rollups.hourly.insert(key, sums.delta);
        }
        for (key, sums) in self.daily {
            if sums.runs.len() > 0 {
                rollups.daily_runs.insert(key.clone(), sums.runs);
            }
            rollups.daily.insert(key, sums.delta);
        }
        for (key, sums) in self.key_daily {
            if sums.counted {
                rollups.key_daily.insert(key.clone(), sums.delta);
            }
            if sums.runs.len() > 0 {
                rollups.key_daily_runs.insert(key, sums.runs);
            }
        }
        rollups
    }
}

/// The roll-up deltas of newly stored rows.
pub(crate) fn rollup_deltas<'a>(rows: impl IntoIterator<Item = &'a RecordRow>) -> Rollups {
    let mut rollups = RollupsBuilder::default();
    for row in rows {
        if let Extra::Event(e) = &row.extra {
            rollups.add(row.ts, &row.context.org, &row.context.workspace, e, 1);
        }
    }
    rollups.finish()
}

/// Adds (`sign` 1) or takes away (`sign` -1) one LLM call to a roll-up row's delta.
fn add_to_rollup(d: &mut RollupDelta, e: &EventColumns, sign: i64) {
    let Some(tokens) = e.tokens else { return };
    let f = sign as f64;
    d.calls += sign;
    for (sum, n) in d.tokens.iter_mut().zip(tokens) {
        *sum = sum.saturating_add(sign * n);
    }
    d.cost += f * e.reported_cost_usd.or(e.computed_cost_usd).unwrap_or(0.0);
    d.reported_cost += f * e.reported_cost_usd.unwrap_or(0.0);
    d.computed_cost += f * e.computed_cost_usd.unwrap_or(0.0);
    let status = e.response_status.unwrap_or(0);
    d.errors += sign * i64::from(e.status == "error" || status >= 400);
    d.http_4xx += sign * i64::from((400..500).contains(&status));
    d.http_5xx += sign * i64::from(status >= 500);
    if let Some(latency) = e.latency_ms {
        d.latency_sum += f * latency;
        d.latency_count += sign;
    }
}

/// Reads back the roll-up relevant columns of an LLM event row (for deletions):
/// `ts, org, workspace, provider, model, api_key_hash, request_path, input, output,
/// cache read, cache write, reasoning, total, reported_cost_usd, computed_cost_usd, status,
/// response_status, latency_ms, ttft_ms`.
pub(crate) const ROLLUP_SOURCE_COLUMNS: &str = "org, workspace, provider, model, api_key_hash, request_path, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, total_tokens, \
     reported_cost_usd, computed_cost_usd, status, response_status, latency_ms, ttft_ms";

/// The stored LLM calls of tenant `tenant` (a placeholder) whose `column` equals the
/// parameter `placeholder` (a session's, or one event), as
/// [`RollupsBuilder::subtract_stored`] reads them (PostgreSQL's way; SQLite finds them
/// through the id hash).
#[cfg(feature = "postgres")]
pub(crate) fn stored_calls_sql(column: &str, placeholder: &str, tenant: &str) -> String {
    stored_calls_where(&format!("tenant = {tenant} AND {column} = {placeholder}"))
}

/// The stored LLM calls of the events rows where `condition` holds (SQL), as
/// [`RollupsBuilder::subtract_stored`] reads them.
pub(crate) fn stored_calls_where(condition: &str) -> String {
    format!(
        "SELECT ts, {ROLLUP_SOURCE_COLUMNS} FROM events
         WHERE {condition} AND event_type = 'llm'"
    )
}

/// Deletes the roll-up rows that no call is left in.
pub(crate) const DELETE_EMPTY_ROLLUPS: [&str; 3] = [
    "DELETE FROM llm_hourly WHERE calls <= 0",
    "DELETE FROM llm_daily WHERE calls <= 0",
    "DELETE FROM llm_key_daily WHERE calls <= 0",
];

/// The columns of `llm_hourly`, in insert order.
pub(crate) const ROLLUP_COLUMNS: [&str; 22] = [
    "hour",
    "org",
    "workspace",
    "provider",
    "model",
    "api_key_hash",
    "request_path",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "reported_cost_usd",
    "computed_cost_usd",
    "errors",
    "http_4xx",
    "http_5xx",
    "latency_sum",
    "latency_count",
];

/// `ON CONFLICT ... DO UPDATE` adding the new values to the row's (both dialects).
pub(crate) fn rollup_upsert_tail(table: &str) -> String {
    let adds: Vec<String> = ROLLUP_COLUMNS[7..]
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    format!(
        "ON CONFLICT (hour, org, workspace, provider, model, api_key_hash, request_path) DO UPDATE SET {}",
        adds.join(", ")
    )
}

/// Schema version 8: `events.cost_usd` becomes the cost Sonde reports everywhere (the
/// reported one, else the computed one), a column generated from the two beside it;
/// the cost the source reported is kept as `reported_cost_usd`. `real` is the
/// dialect's float type, `kept` how it keeps the generated column (`STORED` or
/// `VIRTUAL`).
pub(crate) fn one_cost_migration(real: &str, kept: &str) -> String {
    format!(
        "ALTER TABLE events RENAME COLUMN cost_usd TO reported_cost_usd;
         ALTER TABLE events ADD COLUMN cost_usd {real}
             GENERATED ALWAYS AS (coalesce(reported_cost_usd, computed_cost_usd)) {kept};"
    )
}

/// The roll-up tables and their backfill from existing events (`hour_expr` and
/// `day_expr` are the dialect's hour and day of `ts`), as of schema version 3, when
/// `events.cost_usd` was the reported cost (it is `reported_cost_usd` since version 8).
pub(crate) fn rollup_migration(int: &str, real: &str, hour_expr: &str, day_expr: &str) -> String {
    let table = |name: &str| rollup_table(name, int, real);
    let sums = "count(*), coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),
               coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),
               coalesce(sum(reasoning_tokens), 0), coalesce(sum(total_tokens), 0),
               coalesce(sum(coalesce(cost_usd, computed_cost_usd)), 0), coalesce(sum(cost_usd), 0),
               coalesce(sum(computed_cost_usd), 0),
               sum(CASE WHEN status = 'error' OR response_status >= 400 THEN 1 ELSE 0 END),
               sum(CASE WHEN response_status >= 400 AND response_status < 500 THEN 1 ELSE 0 END),
               sum(CASE WHEN response_status >= 500 THEN 1 ELSE 0 END),
               coalesce(sum(latency_ms), 0), count(latency_ms)";
    format!(
        "{}\n{}
        INSERT INTO llm_hourly
        SELECT {hour_expr}, coalesce(org, ''), coalesce(workspace, ''), coalesce(provider, ''),
               coalesce(model, ''), '', coalesce(request_path, ''), {sums}
        FROM events WHERE event_type = 'llm'
        GROUP BY 1, 2, 3, 4, 5, 6, 7;
        INSERT INTO llm_key_daily
        SELECT {day_expr}, coalesce(org, ''), coalesce(workspace, ''), '', '', api_key_hash, '', {sums}
        FROM events WHERE event_type = 'llm' AND api_key_hash IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7;",
        table("llm_hourly"),
        table("llm_key_daily")
    )
}

/// The daily roll-up `llm_daily` and its runs `llm_daily_runs` (schema version 12),
/// filled from the hourly ones: the same sums and values, by day. `concat` is the
/// dialect's aggregate that concatenates blobs (runs are multisets: their order does not
/// matter).
pub(crate) fn daily_rollup_migration(int: &str, real: &str, blob: &str, concat: &str) -> String {
    let day = format!("hour - ((hour % {DAY_MICROS}) + {DAY_MICROS}) % {DAY_MICROS}");
    let keys = "org, workspace, provider, model, api_key_hash, request_path";
    let sums: Vec<String> = ROLLUP_COLUMNS[7..]
        .iter()
        .map(|c| format!("sum({c})"))
        .collect();
    format!(
        "{}\n{}
        INSERT INTO llm_daily
        SELECT {day}, {keys}, {sums} FROM llm_hourly GROUP BY 1, 2, 3, 4, 5, 6, 7;
        INSERT INTO llm_daily_runs
        SELECT {day}, {keys}, 0, {latencies}, {ttfts}
        FROM llm_hourly_runs GROUP BY 1, 2, 3, 4, 5, 6, 7;",
        rollup_table("llm_daily", int, real),
        crate::latency_runs::runs_table("llm_daily_runs", int, blob),
        sums = sums.join(", "),
        latencies = concat.replace("{}", "latencies"),
        ttfts = concat.replace("{}", "ttfts"),
    )
}

/// The key columns of every roll-up and run table, as DDL: the granule's start in
/// `hour`, then six dimensions.
pub(crate) fn rollup_key_ddl(int: &str) -> String {
    format!(
        "hour {int} NOT NULL,
                org TEXT NOT NULL, workspace TEXT NOT NULL, provider TEXT NOT NULL, model TEXT NOT NULL,
                api_key_hash TEXT NOT NULL, request_path TEXT NOT NULL"
    )
}

/// A roll-up table's statement: its key ([`rollup_key_ddl`]) and its sums.
fn rollup_table(name: &str, int: &str, real: &str) -> String {
    format!(
        "CREATE TABLE {name} (
                {key},
                calls {int} NOT NULL, input_tokens {int} NOT NULL, output_tokens {int} NOT NULL,
                cache_read_tokens {int} NOT NULL, cache_write_tokens {int} NOT NULL,
                reasoning_tokens {int} NOT NULL, total_tokens {int} NOT NULL,
                cost_usd {real} NOT NULL, reported_cost_usd {real} NOT NULL, computed_cost_usd {real} NOT NULL,
                errors {int} NOT NULL, http_4xx {int} NOT NULL, http_5xx {int} NOT NULL,
                latency_sum {real} NOT NULL, latency_count {int} NOT NULL,
                PRIMARY KEY (hour, org, workspace, provider, model, api_key_hash, request_path)
            );",
        key = rollup_key_ddl(int)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(model: &str, key: Option<&str>, latency_ms: Option<f64>) -> EventColumns {
        EventColumns {
            event_type: "llm",
            status: "ok",
            provider: Some("openai".into()),
            model: Some(model.into()),
            tokens: Some([100, 10, 0, 0, 0, 110]),
            reported_cost_usd: None,
            computed_cost_usd: None,
            latency_ms,
            ttft_ms: None,
            response_status: None,
            request_path: None,
            api_key_hash: key.map(str::to_owned),
            gateway_key_id: None,
            tool_name: None,
        }
    }

    #[test]
    fn calls_add_up_per_hour_and_model_and_per_day_and_key() {
        let hour = 1_763_787_600_000_000;
        let mut builder = RollupsBuilder::default();
        builder.add(hour + 1, &None, &None, &call("a", Some("k"), Some(5.0)), 1);
        builder.add(hour + 2, &None, &None, &call("a", None, Some(7.0)), 1);
        builder.add(hour + 3, &None, &None, &call("b", None, None), 1);
        builder.add(hour + HOUR_MICROS, &None, &None, &call("a", None, None), 1);
        let rollups = builder.finish();

        let models: Vec<(i64, &str, i64)> = rollups
            .hourly
            .iter()
            .map(|(k, d)| (k.hour, k.model.as_str(), d.calls))
            .collect();
        assert_eq!(
            models,
            [(hour, "a", 2), (hour, "b", 1), (hour + HOUR_MICROS, "a", 1)]
        );
        // Only the keyed call counts in llm_key_daily ...
        let keys: Vec<(&str, i64)> = rollups
            .key_daily
            .iter()
            .map(|(k, d)| (k.api_key_hash.as_str(), d.calls))
            .collect();
        assert_eq!(keys, [("k", 1)]);
        // ... while the latency runs keep calls without a key under the empty key, and
        // no run at all where no call had a latency.
        let runs: Vec<(&str, &[f64])> = rollups
            .key_daily_runs
            .iter()
            .map(|(k, r)| (k.api_key_hash.as_str(), r.latencies.as_slice()))
            .collect();
        assert_eq!(runs, [("", &[7.0][..]), ("k", &[5.0][..])]);
        let hourly_runs: Vec<&str> = rollups
            .hourly_runs
            .keys()
            .map(|k| k.model.as_str())
            .collect();
        assert_eq!(hourly_runs, ["a"]);
    }

    #[test]
    fn a_call_taken_away_cancels_the_same_call_added() {
        let mut builder = RollupsBuilder::default();
        builder.add(
            10,
            &Some("o".into()),
            &None,
            &call("a", Some("k"), Some(5.0)),
            1,
        );
        builder.add(
            10,
            &Some("o".into()),
            &None,
            &call("a", Some("k"), Some(5.0)),
            -1,
        );
        let rollups = builder.finish();
        assert!(
            rollups
                .hourly
                .values()
                .all(|d| *d == RollupDelta::default())
        );
        assert!(
            rollups
                .key_daily
                .values()
                .all(|d| *d == RollupDelta::default())
        );
    }
}
