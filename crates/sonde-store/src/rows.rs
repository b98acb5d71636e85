//! Records as rows, for every backend: which table a record goes to, the columns it
//! fills, what it changes in the derived `sessions` / `steps` tables, and how stored
//! columns become a record again.

use sonde_model::{Body, Context, Event, Record, Timestamp};

use crate::ReadError;

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

    /// Every column of the table, in insert order.
    pub(crate) fn columns(self) -> Vec<&'static str> {
        SHARED_COLUMNS
            .iter()
            .chain(self.extra_columns())
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
    "cost_usd",
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
    pub id: String,
    pub kind: &'static str,
    pub ts: i64,
    pub context: Context,
    pub payload: String,
    pub extra: Extra,
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
    pub cost_usd: Option<f64>,
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
    pub(crate) fn from_record(record: &Record) -> RecordRow {
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
            Body::Event(event) => (Table::Events, Extra::Event(EventColumns::from_event(event))),
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
            id: record.id.clone(),
            kind: record.kind(),
            ts: record.timestamp.as_micros(),
            context: record.context.clone(),
            payload: record.body.payload_json(),
            extra,
        }
    }

    pub(crate) fn is_event(&self) -> bool {
        matches!(self.extra, Extra::Event(_))
    }

    pub(crate) fn is_message(&self) -> bool {
        matches!(self.extra, Extra::Message { .. })
    }

    /// Total tokens and reported cost, for LLM calls.
    pub(crate) fn llm_usage(&self) -> Option<(i64, Option<f64>)> {
        match &self.extra {
            Extra::Event(e) => e.tokens.map(|t| (t[5], e.cost_usd)),
            _ => None,
        }
    }
}

impl EventColumns {
    fn from_event(event: &Event) -> Self {
        let mut columns = EventColumns {
            event_type: event.event_type(),
            status: event.status().as_str(),
            provider: None,
            model: None,
            tokens: None,
            cost_usd: None,
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
                columns.cost_usd = finite(c.cost_usd);
                columns.computed_cost_usd = finite(sonde_pricing::PriceTable::global().cost(c));
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
            Event::Environment(_) | Event::Custom(_) => {}
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

/// The summary deltas of newly stored rows, by session id (sorted, so that concurrent
/// writers lock summary rows in the same order).
pub(crate) fn session_deltas<'a>(
    rows: impl IntoIterator<Item = &'a RecordRow>,
) -> std::collections::BTreeMap<String, SessionDelta> {
    let mut deltas = std::collections::BTreeMap::new();
    for row in rows {
        deltas
            .entry(row.context.session_id.clone())
            .or_insert_with(|| SessionDelta::new(row.ts))
            .absorb(row);
    }
    deltas
}

/// Stored shared columns (in [`SHARED_COLUMNS`] order), read back.
pub(crate) struct StoredColumns {
    pub id: String,
    pub kind: String,
    pub ts: i64,
    pub context: Context,
    pub payload: String,
}

impl StoredColumns {
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
